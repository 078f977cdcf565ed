//! What one server of the raft_step cluster made durable: all that survives its crash.

use raft::{Entry, HardState, Index, Message, MessageBody, Snapshot, SnapshotChunk};

#[derive(Debug, Clone, Default)]
pub(crate) struct Disk {
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: Option<Snapshot>,
    /// The state machine image `snapshot` stands for (Raft knows only its length).
    pub(crate) image: Vec<u8>,
    /// An image arriving from a leader: its snapshot index and the bytes so far.
    pub(crate) staged: Option<(Index, Vec<u8>)>,
    /// The log, contiguous: after the snapshot, and the entries a compaction kept
    /// before it (its trailing window).
    pub(crate) entries: Vec<Entry>,
}

impl Disk {
    /// Writes a chunk Raft accepted to the staged image. Raft hands chunks out in order,
    /// a new image starting at offset 0: anything else breaks its contract.
    pub(crate) fn stage(&mut self, id: u64, chunk: &SnapshotChunk) {
        if chunk.offset == 0 {
            self.staged = Some((chunk.meta.index, Vec::new()));
        }
        let (index, image) = self
            .staged
            .as_mut()
            .unwrap_or_else(|| panic!("{id}: a chunk at {} with nothing staged", chunk.offset));
        assert_eq!(*index, chunk.meta.index, "{id}: chunks of two snapshots spliced");
        assert_eq!(image.len() as u64, chunk.offset, "{id}: a chunk out of order");
        image.extend_from_slice(&chunk.data);
    }

    /// Takes the staged image a `Ready` installs; it must be whole.
    pub(crate) fn install(&mut self, id: u64, snapshot: &Snapshot) {
        let (index, image) = self
            .staged
            .take()
            .unwrap_or_else(|| panic!("{id}: installs a snapshot with nothing staged"));
        assert_eq!(
            index, snapshot.meta.index,
            "{id}: installs another snapshot's image"
        );
        assert_eq!(
            image.len() as u64,
            snapshot.total_bytes,
            "{id}: installs a partial image"
        );
        self.image = image;
    }

    /// Fills an outgoing chunk from the image; false when it names an image this disk
    /// no longer holds (the message is then dropped, as the node's driver does).
    pub(crate) fn fill(&self, message: &mut Message) -> bool {
        let MessageBody::InstallSnapshot(chunk) = &mut message.body else {
            return true;
        };
        let Some((offset, length)) = chunk.range_to_fill() else {
            return true;
        };
        if self.snapshot.as_ref().map(|s| (s.meta.index, s.total_bytes))
            != Some((chunk.meta.index, chunk.total_bytes))
        {
            return false;
        }
        let start = usize::try_from(offset).expect("small images");
        chunk.data = self.image[start..start + length].to_vec();
        true
    }

    /// The log after the snapshot, as a restart reads it.
    pub(crate) fn log_after_snapshot(&self) -> Vec<Entry> {
        let snapshot_index = self.snapshot_index();
        self.entries
            .iter()
            .filter(|entry| entry.index > snapshot_index)
            .cloned()
            .collect()
    }

    pub(crate) fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    pub(crate) fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    pub(crate) fn entry(&self, index: Index) -> Option<&Entry> {
        let first = self.entries.first()?.index;
        let position = usize::try_from(index.checked_sub(first)?).ok()?;
        self.entries.get(position)
    }

    pub(crate) fn holds(&self, index: Index) -> bool {
        index <= self.last_index()
    }
}
