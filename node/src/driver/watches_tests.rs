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
        require_leader: true,
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
            require_leader: false,
        })
        .await;
    assert!(
        matches!(&refused, Response::Error(reply) if reply.kind == ErrorKind::InvalidRequest),
        "{refused:?}"
    );
    node.stop().await;
}

/// Review finding: a watch whose page was cut short by the scan bound (here 1,000 events,
/// none under its prefix) must not wait, or every waiting watch would rescan old
/// history on every loop turn; it is answered at once and moves on.
#[tokio::test]
async fn a_watch_behind_the_history_is_answered_at_once_not_parked() {
    let node = SingleVoter::start(FaultyStore::default()).await;
    open(&node).await;
    let writes = wire::EVENTS_PER_PAGE_MAX as u64 + 5;
    for sequence in 1..=writes {
        let written = node.ask(put(sequence, &format!("a/{sequence}"), "v")).await;
        assert!(matches!(written, Response::Written(_)), "{written:?}");
    }
    let started = std::time::Instant::now();
    let first = page(node.ask(watch("elsewhere/", 1, 5_000)).await);
    assert!(started.elapsed() < Duration::from_secs(2), "it waited");
    assert!(first.events.is_empty());
    assert_eq!(first.next_revision, wire::EVENTS_PER_PAGE_MAX as u64 + 1);
    // The next page has caught up: that one waits (and runs out).
    let rest = page(node.ask(watch("elsewhere/", first.next_revision, 20)).await);
    assert_eq!(rest.next_revision, writes + 1);
    node.stop().await;
}

/// Past `PENDING_WATCHES_MAX` waiting watches, one more is refused `Overloaded` (its
/// client backs off) rather than answered an empty page it would ask again at once.
#[tokio::test]
async fn waiting_watches_are_bounded_and_one_more_is_overloaded() {
    let node = SingleVoter::start(FaultyStore::default()).await;
    let mut waiting = Vec::new();
    for _ in 0..super::watches::PENDING_WATCHES_MAX {
        waiting.push(super::tests::call(&node.calls, watch("", 0, 10_000)).await);
    }
    let refused = node.ask(watch("", 0, 10_000)).await;
    assert!(
        matches!(&refused, Response::Error(reply) if reply.kind == ErrorKind::Overloaded),
        "{refused:?}"
    );
    drop(waiting);
    node.stop().await;
}
