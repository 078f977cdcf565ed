//! `Watch` in the driver (`watches.rs`): a page is answered at once when it holds an
//! event, a watch with none waits until a write under its prefix is applied (and not
//! for writes elsewhere), a wait that runs out answers an empty page that moves on, and
//! a revision compacted away is refused.

use std::time::Duration;

use wire::{Command, ErrorKind, EventKind, EventPage, Request, Response, Session};

use super::faulty_store::FaultyStore;
use super::tests::SingleVoter;

const CLIENT_ID: u64 = 7;

fn put(sequence: u64, key: &str, value: &str) -> Request {
    Request::Write {
        session: Session {
            client_id: CLIENT_ID,
            sequence,
        },
        command: Command::Put {
            key: key.into(),
            value: value.into(),
        },
        return_prior: false,
    }
}

fn watch(prefix: &str, from_revision: u64, wait_millis: u64) -> Request {
    Request::Watch {
        prefix: prefix.into(),
        from_revision,
        wait_millis,
    }
}

fn page(response: Response) -> EventPage {
    match response {
        Response::Events(page) => page,
        other => panic!("expected events, got {other:?}"),
    }
}

async fn open(node: &SingleVoter) {
    let opened = node.ask(Request::OpenSession { client_id: CLIENT_ID }).await;
    assert!(matches!(opened, Response::SessionOpened { .. }), "{opened:?}");
}

#[tokio::test]
async fn a_watch_answers_history_at_once_and_waits_for_new_events_under_its_prefix() {
    let node = SingleVoter::start(FaultyStore::default()).await;
    open(&node).await;
    for (sequence, key) in [(1, "a/1"), (2, "b/1"), (3, "a/2")] {
        let written = node.ask(put(sequence, key, "v")).await;
        assert!(matches!(written, Response::Written(_)), "{written:?}");
    }
    // The history from revision 1: the two changes under a/, at revisions 1 and 3.
    let first = page(node.ask(watch("a/", 1, 0)).await);
    let revisions: Vec<u64> = first.events.iter().map(|event| event.revision()).collect();
    assert_eq!(revisions, [1, 3]);
    assert_eq!((first.next_revision, first.revision), (4, 3));
    assert!(first.events.iter().all(|event| event.kind == EventKind::Put));

    // Nothing new: the watch waits; a write elsewhere does not answer it, one under a/ does.
    let waiting = {
        let calls = node.calls.clone();
        tokio::spawn(async move { super::tests::call(&calls, watch("a/", 4, 5_000)).await.await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a watch with no event answered at once");
    let written = node.ask(put(4, "b/2", "v")).await;
    assert!(matches!(written, Response::Written(_)), "{written:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "a write outside the prefix answered the watch"
    );
    let written = node.ask(put(5, "a/1", "w")).await;
    assert!(matches!(written, Response::Written(_)), "{written:?}");
    let answered = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("answered once a/1 changed")
        .expect("task")
        .expect("answered");
    let answered = page(answered);
    assert_eq!(answered.events.len(), 1, "{answered:?}");
    let event = &answered.events[0];
    assert_eq!(
        (event.revision(), event.kv.version, event.kv.create_revision),
        (5, 2, 1)
    );
    assert_eq!(event.kv.value, b"w");

    // A wait that runs out answers an empty page that has moved past what it scanned.
    let empty = page(node.ask(watch("a/", 6, 20)).await);
    assert!(empty.events.is_empty());
    assert_eq!(empty.next_revision, 6);
    node.stop().await;
}

#[tokio::test]
async fn a_watch_from_now_starts_after_the_current_revision() {
    let node = SingleVoter::start(FaultyStore::default()).await;
    open(&node).await;
    let written = node.ask(put(1, "k", "v")).await;
    assert!(matches!(written, Response::Written(_)), "{written:?}");
    let now = page(node.ask(watch("", 0, 0)).await);
    assert!(now.events.is_empty(), "{now:?}");
    assert_eq!((now.next_revision, now.revision), (2, 1));
    node.stop().await;
}

#[tokio::test]
async fn an_oversized_wait_or_prefix_is_refused() {
    let node = SingleVoter::start(FaultyStore::default()).await;
    let refused = node.ask(watch("", 1, 60_000)).await;
    assert!(
        matches!(&refused, Response::Error(reply) if reply.kind == ErrorKind::InvalidRequest),
        "{refused:?}"
    );
    let refused = node
        .ask(Request::Watch {
            prefix: vec![b'x'; 5_000],
            from_revision: 1,
            wait_millis: 0,
        })
        .await;
    assert!(
        matches!(&refused, Response::Error(reply) if reply.kind == ErrorKind::InvalidRequest),
        "{refused:?}"
    );
    node.stop().await;
}
