//! A snapshot is built off the driver loop (issue 12): while its image is being read,
//! the driver goes on turning and answering writes; the compaction follows once the
//! image is done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::wire::{Command, Request, Response, Session};
use raft::{Entry, HardState, Index, Snapshot};
use tokio::sync::oneshot;

use super::tests::SingleVoter;
use super::ClientCall;
use crate::identity::Identity;
use crate::storage::memory_store::MemoryStore;
use crate::storage::{ApplyBatch, ImageSource, KvPairs, Recovered, SnapshotImage, Storage, StorageError};

/// An image whose building waits until `gate` opens, as reading a large state does.
struct GatedImage {
    image: SnapshotImage,
    gate: Arc<AtomicBool>,
}

impl ImageSource for GatedImage {
    fn image(self: Box<Self>) -> Result<SnapshotImage, StorageError> {
        while !self.gate.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(self.image)
    }
}

/// The in-memory store, whose snapshot images are gated.
struct GatedStore {
    inner: MemoryStore,
    gate: Arc<AtomicBool>,
}

impl Storage for GatedStore {
    fn load_identity(&self) -> Result<Option<Identity>, StorageError> {
        self.inner.load_identity()
    }

    fn save_identity(&mut self, identity: &Identity) -> Result<(), StorageError> {
        self.inner.save_identity(identity)
    }

    fn recover(&mut self) -> Result<Option<Recovered>, StorageError> {
        self.inner.recover()
    }

    fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        self.inner.persist(snapshot, entries, hard_state)
    }

    fn apply(&mut self, batch: ApplyBatch) -> Result<(), StorageError> {
        self.inner.apply(batch)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }

    fn list(&self, prefix: &[u8], limit: usize, max_bytes: usize) -> Result<KvPairs, StorageError> {
        self.inner.list(prefix, limit, max_bytes)
    }

    fn snapshot_image(&self) -> Result<SnapshotImage, StorageError> {
        self.inner.snapshot_image()
    }

    fn image_source(&self) -> Result<Box<dyn ImageSource>, StorageError> {
        Ok(Box::new(GatedImage {
            image: self.inner.snapshot_image()?,
            gate: self.gate.clone(),
        }))
    }

    fn compact(&mut self, snapshot: &Snapshot, purged_to: Index) -> Result<(), StorageError> {
        self.inner.compact(snapshot, purged_to)
    }
}

async fn ask(node: &SingleVoter, request: Request) -> Response {
    let (reply, answer) = oneshot::channel();
    node.calls
        .send(ClientCall { request, reply })
        .await
        .expect("driver queue");
    tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("answered in time")
        .expect("answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_answered_while_a_snapshot_is_built() {
    let gate = Arc::new(AtomicBool::new(false));
    let store = GatedStore {
        inner: MemoryStore::default(),
        gate: gate.clone(),
    };
    let node = SingleVoter::start_with(store, |config| config.snapshot_every_entries = 10).await;
    let opened = ask(&node, Request::OpenSession { client_id: 7 }).await;
    assert!(matches!(opened, Response::SessionOpened { .. }), "{opened:?}");
    // Forty writes: a snapshot is due after ten entries and stays unfinished throughout.
    for sequence in 1..=40 {
        let write = Request::Write {
            session: Session {
                client_id: 7,
                sequence,
            },
            command: Command::Put {
                key: format!("k{sequence}").into_bytes(),
                value: b"v".to_vec(),
            },
        };
        let written = ask(&node, write).await;
        assert!(matches!(written, Response::Written(_)), "{written:?}");
    }
    assert!(node.handles.heartbeat.silent_for() < Duration::from_millis(500));
    assert_eq!(node.handles.metrics.snapshots_total.load(Ordering::Relaxed), 0);

    // The image done, the driver compacts at a later turn.
    gate.store(true, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while node.handles.metrics.snapshots_total.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the snapshot never finished"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = node.handles.status.borrow().clone();
    assert!(status.snapshot_index >= 10, "{status:?}");
    node.stop().await;
}
