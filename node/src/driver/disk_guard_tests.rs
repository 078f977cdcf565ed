//! The leader's disk guard (`disk_guard.rs`): under `--disk-free-min-bytes` a write that
//! stores data is refused with `NoSpace` naming the disk, the alarm is raised, reads and
//! deletes go on, and once the disk has room again writes resume without a restart.

use std::sync::atomic::Ordering;
use std::time::Duration;

use wire::{Command, ErrorKind, ReadConsistency, Request, Response, Session};

use super::faulty_store::FaultyStore;
use super::tests::SingleVoter;

const FREE_MIN_BYTES: u64 = 64 * 1024 * 1024;

fn write(sequence: u64, command: Command) -> Request {
    Request::Write {
        session: Session {
            client_id: 5,
            sequence,
        },
        command,
        return_prior: false,
    }
}

fn put(key: &str) -> Command {
    Command::Put {
        key: key.into(),
        value: b"v".to_vec(),
    }
}

/// Waits until the driver's published space status satisfies `condition` (it reads the
/// disk about once a second).
async fn wait_for_space(node: &SingleVoter, condition: impl Fn(&wire::SpaceStatus) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let space = node.handles.status.borrow().space;
        if condition(&space) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "space status never changed: {space:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_free_bound_writes_say_no_space_and_resume_once_there_is_room() {
    let store = FaultyStore::default();
    let free = store.disk_free_bytes.clone();
    free.store(10 * FREE_MIN_BYTES, Ordering::Relaxed);
    let node = SingleVoter::start_with(store, |config| {
        config.disk_free_min_bytes = Some(FREE_MIN_BYTES);
    })
    .await;
    let opened = node.ask(Request::OpenSession { client_id: 5 }).await;
    assert!(matches!(opened, Response::SessionOpened { .. }), "{opened:?}");
    let written = node.ask(write(1, put("a"))).await;
    assert!(matches!(written, Response::Written(_)), "{written:?}");

    // The disk fills from outside the quota's count.
    free.store(FREE_MIN_BYTES - 1, Ordering::Relaxed);
    wait_for_space(&node, |space| space.disk_alarm()).await;
    assert_eq!(node.handles.metrics.space_alarm.load(Ordering::Relaxed), 1);
    assert_eq!(
        node.handles.metrics.disk_free_bytes.load(Ordering::Relaxed),
        FREE_MIN_BYTES - 1
    );
    let refused = node.ask(write(2, put("b"))).await;
    assert!(
        matches!(&refused, Response::Error(reply)
            if reply.kind == ErrorKind::NoSpace && reply.message.contains("disk")),
        "{refused:?}"
    );
    let read = node
        .ask(Request::Get {
            key: "a".into(),
            consistency: ReadConsistency::Linearizable,
        })
        .await;
    assert!(
        matches!(&read, Response::Value(read) if read.value() == Some(b"v".as_slice())),
        "{read:?}"
    );
    let deleted = node.ask(write(3, Command::Delete { key: "a".into() })).await;
    assert!(matches!(deleted, Response::Written(_)), "{deleted:?}");

    // Room again: writes resume, with no restart.
    free.store(FREE_MIN_BYTES, Ordering::Relaxed);
    wait_for_space(&node, |space| !space.alarm()).await;
    let written = node.ask(write(4, put("b"))).await;
    assert!(matches!(written, Response::Written(_)), "{written:?}");
    assert_eq!(node.handles.metrics.space_alarm.load(Ordering::Relaxed), 0);
    node.stop().await;
}
