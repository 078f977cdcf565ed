//! The raft_step cluster's application: a digest of every entry applied, in order, so
//! two servers that applied different entries (or the same in another order) differ.

use raft::{Entry, EntryPayload, Index};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Machine {
    pub(crate) applied: Index,
    pub(crate) digest: u64,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn payload_digest(payload: &EntryPayload) -> u64 {
    match payload {
        EntryPayload::Empty => mix(1),
        EntryPayload::Normal(data) => data.iter().fold(mix(2), |h, &b| mix(h ^ u64::from(b))),
        EntryPayload::Config(conf) => conf
            .voters
            .iter()
            .chain([&0])
            .chain(conf.learners.iter())
            .fold(mix(3), |h, &id| mix(h ^ id)),
    }
}

impl Machine {
    pub(crate) fn apply(&mut self, entry: &Entry) {
        assert_eq!(
            entry.index,
            self.applied + 1,
            "entries are applied in order, once"
        );
        self.applied = entry.index;
        self.digest = mix(self.digest ^ mix(entry.term ^ mix(payload_digest(&entry.payload))));
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        self.digest.to_be_bytes().to_vec()
    }

    /// A forged snapshot may hold any bytes: they restore to some digest all the same.
    pub(crate) fn decode(applied: Index, data: &[u8]) -> Self {
        let mut digest = [0u8; 8];
        for (to, from) in digest.iter_mut().zip(data) {
            *to = *from;
        }
        Self {
            applied,
            digest: u64::from_be_bytes(digest),
        }
    }
}
