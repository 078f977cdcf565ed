//! What a server made durable: the only state that survives a crash in the harness.
//! The state machine image lives here, beside the snapshot Raft knows only the size of.

use raft::{Entry, HardState, Index, Message, MessageBody, Snapshot, SnapshotChunk};

#[derive(Debug, Clone, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The image `snapshot` stands for.
    pub image: Vec<u8>,
    /// The image being received from a leader: its snapshot index and the bytes so far.
    pub staged: Option<(Index, Vec<u8>)>,
    /// The durable log after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl Disk {
    /// One atomic durable write of a `Ready`'s state, as the contract describes.
    pub fn persist(&mut self, snapshot: Option<&Snapshot>, entries: &[Entry], hard_state: Option<HardState>) {
        if let Some(snapshot) = snapshot {
            let (index, image) = self.staged.take().expect("a snapshot installs a staged image");
            assert_eq!(index, snapshot.meta.index, "the staged image is the snapshot's");
            assert_eq!(
                image.len() as u64,
                snapshot.total_bytes,
                "the staged image is whole"
            );
            self.snapshot = Some(snapshot.clone());
            self.image = image;
            self.entries.clear();
        }
        if let Some(first) = entries.first() {
            self.entries.retain(|entry| entry.index < first.index);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state;
        }
        let offset = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
        for (position, entry) in self.entries.iter().enumerate() {
            assert_eq!(entry.index, offset + 1 + position as u64, "durable log has a gap");
        }
    }

    /// Writes an accepted chunk to the staged image (offset 0 starts it afresh).
    pub fn stage(&mut self, chunk: &SnapshotChunk) {
        if chunk.offset == 0 {
            self.staged = Some((chunk.meta.index, Vec::new()));
        }
        let (index, image) = self
            .staged
            .as_mut()
            .expect("a chunk after offset 0 extends a staged image");
        assert_eq!(*index, chunk.meta.index, "chunks of one snapshot only");
        assert_eq!(image.len() as u64, chunk.offset, "chunks arrive in order");
        image.extend_from_slice(&chunk.data);
    }

    /// Fills an outgoing chunk from the image; false when the image it names is gone
    /// (a newer compaction replaced it), and the message must be dropped.
    pub fn fill(&self, message: &mut Message) -> bool {
        let MessageBody::InstallSnapshot(chunk) = &mut message.body else {
            return true;
        };
        let Some((offset, length)) = chunk.range_to_fill() else {
            return true;
        };
        if self.snapshot.as_ref().map(|s| s.meta.index) != Some(chunk.meta.index) {
            return false;
        }
        let start = offset as usize;
        chunk.data = self.image[start..start + length].to_vec();
        true
    }

    /// The application's own compaction: keep the snapshot and its image, drop the log
    /// through `purged_to`.
    pub fn compact(&mut self, snapshot: Snapshot, image: Vec<u8>, purged_to: Index) {
        assert_eq!(image.len() as u64, snapshot.total_bytes);
        self.snapshot = Some(snapshot);
        self.image = image;
        self.entries.retain(|entry| entry.index > purged_to);
    }
}
