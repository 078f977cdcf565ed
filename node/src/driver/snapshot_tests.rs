//! A snapshot is built off the driver loop (issue 12): while its image is being read,
//! the driver goes on turning and answering writes; the compaction follows once the
//! image is done.

use std::sync::atomic::Ordering;
use std::time::Duration;

use wire::{Command, Request, Response, Session};

use super::faulty_store::FaultyStore;
use super::tests::SingleVoter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_answered_while_a_snapshot_is_built() {
    let store = FaultyStore::default();
    let held = store.image_held.clone();
    held.store(true, Ordering::Relaxed);
    let node = SingleVoter::start_with(store, |config| config.snapshot_every_entries = 10).await;
    let opened = node.ask(Request::OpenSession { client_id: 7 }).await;
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
            return_prior: false,
        };
        let written = node.ask(write).await;
        assert!(matches!(written, Response::Written(_)), "{written:?}");
    }
    assert!(node.handles.heartbeat.silent_for() < Duration::from_millis(500));
    assert_eq!(node.handles.metrics.snapshots_total.load(Ordering::Relaxed), 0);

    // The image done, the driver compacts at a later turn.
    held.store(false, Ordering::Relaxed);
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

/// With large values the entry count comes late: `snapshot_every_bytes` starts a
/// snapshot once that many bytes of entries were applied, bounding the in-memory log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_taken_after_its_bytes_whatever_the_entry_count() {
    let node = SingleVoter::start_with(FaultyStore::default(), |config| {
        config.snapshot_every_entries = 1_000_000;
        config.snapshot_every_bytes = 64 * 1024;
    })
    .await;
    let opened = node.ask(Request::OpenSession { client_id: 9 }).await;
    assert!(matches!(opened, Response::SessionOpened { .. }), "{opened:?}");
    for sequence in 1..=4 {
        let write = Request::Write {
            session: Session {
                client_id: 9,
                sequence,
            },
            command: Command::Put {
                key: format!("big{sequence}").into_bytes(),
                value: vec![7; 20 * 1024],
            },
            return_prior: false,
        };
        let written = node.ask(write).await;
        assert!(matches!(written, Response::Written(_)), "{written:?}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while node.handles.metrics.snapshots_total.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot after 80 KiB of entries with a 64 KiB bound"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.stop().await;
}
