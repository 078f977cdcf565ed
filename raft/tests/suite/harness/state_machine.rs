//! The test application: an ordered list of the values it applied.

use raft::{Entry, EntryPayload, Index};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateMachine {
    pub applied: Index,
    pub values: Vec<u64>,
}

/// The value a test proposal carries, if the entry is one.
pub fn value_of(payload: &EntryPayload) -> Option<u64> {
    match payload {
        EntryPayload::Normal(data) => Some(u64::from_be_bytes(
            data.as_ref().try_into().expect("8-byte test value"),
        )),
        _ => None,
    }
}

impl StateMachine {
    pub fn apply(&mut self, entry: &Entry) {
        assert_eq!(
            entry.index,
            self.applied + 1,
            "entries are applied in order, once"
        );
        self.applied = entry.index;
        self.values.extend(value_of(&entry.payload));
    }

    pub fn encode(&self) -> Vec<u8> {
        self.values.iter().flat_map(|value| value.to_be_bytes()).collect()
    }

    pub fn decode(applied: Index, data: &[u8]) -> Self {
        assert_eq!(data.len() % 8, 0, "snapshot data is whole values");
        let values = data
            .chunks_exact(8)
            .map(|chunk| u64::from_be_bytes(chunk.try_into().expect("8 bytes")))
            .collect();
        Self { applied, values }
    }
}
