//! The client library against scripted fake nodes: leader discovery, exactly-once retries
//! (Raft thesis §6.3), the deadline, and errors that must not be retried.

mod support;

use std::time::{Duration, Instant};

use client::client::{Client, ClientError, ClientOptions};
use client::wire::{
    Command, ErrorKind, ErrorReply, Listing, NodeDump, NodeStatus, Prior, ReadConsistency, ReadValue,
    Request, Response, Session, WriteResult, KEY_BYTES_MAX,
};
use support::{dead_address, endpoint, FakeNode, Reply};

fn options(request_timeout_ms: u64, deadline_ms: u64) -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_millis(request_timeout_ms),
        deadline: Duration::from_millis(deadline_ms),
    }
}

fn written(previous: Option<&str>) -> Response {
    Response::Written(WriteResult::Done {
        previous: previous.map_or(Prior::Absent, |value| Prior::Value(value.as_bytes().to_vec())),
    })
}

fn error(kind: ErrorKind) -> Response {
    Response::Error(ErrorReply {
        kind,
        message: format!("scripted {kind:?}"),
    })
}

/// The sessions of the writes among `requests`, in order.
fn sessions(requests: &[Request]) -> Vec<Session> {
    requests
        .iter()
        .filter_map(|request| match request {
            Request::Write { session, .. } => Some(*session),
            _ => None,
        })
        .collect()
}

/// A node that serves reads and writes like a leader holding `key = value`.
async fn leader(value: &'static str) -> FakeNode {
    FakeNode::start(move |_, request| {
        Reply::respond(match request {
            Request::Get { .. } => Response::Value(ReadValue::unversioned(Some(value.as_bytes().to_vec()))),
            Request::Write { .. } => written(Some(value)),
            _ => error(ErrorKind::InvalidRequest),
        })
    })
    .await
}

#[tokio::test]
async fn a_follower_redirects_the_client_to_the_leader_it_names() {
    let leader = leader("v").await;
    let follower = FakeNode::follower_of(1, &leader.address).await;
    let mut client = Client::new(vec![follower.endpoint()], options(1000, 5000)).expect("endpoints");

    let value = client
        .get("k", ReadConsistency::Linearizable)
        .await
        .expect("served by the leader");
    assert_eq!(value.as_deref(), Some(b"v".as_slice()));
    assert_eq!(client.leader_address(), leader.address);

    // Later calls go straight to the leader.
    client.put("k", "w").await.expect("served by the leader");
    assert_eq!(follower.received().len(), 1);
    assert_eq!(leader.received().len(), 2);
}

#[tokio::test]
async fn without_a_hint_or_a_connection_the_client_tries_the_next_endpoint() {
    let leaderless = FakeNode::always(Response::NotLeader { leader: None }).await;
    let dead = dead_address().await;
    let leader = leader("v").await;
    let endpoints = vec![leaderless.endpoint(), endpoint(&dead), leader.endpoint()];
    let mut client = Client::new(endpoints, options(1000, 5000)).expect("endpoints");

    let value = client
        .get("k", ReadConsistency::Stale)
        .await
        .expect("found the leader");
    assert_eq!(value.as_deref(), Some(b"v".as_slice()));
    assert_eq!(leaderless.received().len(), 1);
    assert_eq!(client.leader_address(), leader.address);
}

#[tokio::test]
async fn a_timed_out_write_is_retried_with_the_same_sequence_and_the_next_write_takes_the_next() {
    // The first write is read and never answered, as by a leader that stalls.
    let node = FakeNode::start(|index, _| match index {
        0 => Reply::Ignore,
        _ => Reply::respond(written(None)),
    })
    .await;
    let mut client = Client::new(vec![node.endpoint()], options(200, 5000)).expect("endpoints");
    assert_eq!(client.next_sequence(), 1);

    client.put("a", "1").await.expect("the retry succeeds");
    client.put("b", "2").await.expect("a new write");

    let sessions = sessions(&node.received());
    let id = client.client_id();
    let expected = [(id, 1), (id, 1), (id, 2)].map(|(client_id, sequence)| Session { client_id, sequence });
    assert_eq!(sessions, expected);
    assert_eq!(client.next_sequence(), 3);
    // The retry is the very same command, not just the same session.
    let requests = node.received();
    assert_eq!(requests[0], requests[1]);
}

#[tokio::test]
async fn unavailable_and_overloaded_are_retried_with_the_same_sequence() {
    let node = FakeNode::start(|index, _| {
        Reply::respond(match index {
            0 => error(ErrorKind::Unavailable),
            1 => error(ErrorKind::Overloaded),
            _ => Response::Written(WriteResult::CompareAndSwap {
                swapped: true,
                current: Prior::Absent,
            }),
        })
    })
    .await;
    let mut client = Client::new(vec![node.endpoint()], options(1000, 5000)).expect("endpoints");

    let (swapped, current) = client
        .compare_and_swap("k", None, Some(b"v".to_vec()))
        .await
        .expect("third attempt succeeds");
    assert!(swapped);
    assert_eq!(current, Prior::Absent);
    let sequences: Vec<u64> = sessions(&node.received()).iter().map(|s| s.sequence).collect();
    assert_eq!(sequences, [1, 1, 1]);
}

#[tokio::test]
async fn the_deadline_bounds_retries_and_reports_the_last_error() {
    let node = FakeNode::start(|_, _| Reply::Ignore).await;
    let mut client = Client::new(vec![node.endpoint()], options(100, 600)).expect("endpoints");

    let started = Instant::now();
    let outcome = client.delete("k").await;
    let elapsed = started.elapsed();

    let text = outcome
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    let Err(ClientError::DeadlineExceeded {
        deadline,
        attempts,
        last_error,
        outcome_unknown,
        ..
    }) = outcome
    else {
        panic!("expected DeadlineExceeded, got {outcome:?}");
    };
    // The write reached a node that never answered: it may have been applied.
    assert!(outcome_unknown);
    assert!(
        text.starts_with("outcome unknown: the write may have been applied"),
        "{text}"
    );
    assert_eq!(deadline, Duration::from_millis(600));
    assert!(attempts >= 2, "retried before giving up: {attempts} attempt(s)");
    assert!(matches!(*last_error, ClientError::Timeout { .. }), "{last_error}");
    assert!(elapsed < Duration::from_millis(1500), "gave up late: {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(300),
        "gave up early: {elapsed:?}"
    );
    // Every attempt was the same write.
    let sessions = sessions(&node.received());
    assert_eq!(sessions.len() as u32, attempts);
    assert!(sessions.iter().all(|session| session.sequence == 1));
}

#[tokio::test]
async fn a_cached_connection_the_node_closed_is_replaced_without_moving_on() {
    let node = FakeNode::start(|_, _| {
        Reply::RespondThenClose(Box::new(Response::Value(ReadValue::unversioned(None))))
    })
    .await;
    let other = leader("v").await;
    let mut client =
        Client::new(vec![node.endpoint(), other.endpoint()], options(1000, 5000)).expect("endpoints");

    for _ in 0..3 {
        let value = client
            .get("k", ReadConsistency::Linearizable)
            .await
            .expect("served");
        assert_eq!(value, None, "answered by the first node");
    }
    // A stale connection is the client's problem, not a sign the node is down.
    assert!(other.received().is_empty());
    assert_eq!(node.received().len(), 3);
}

#[tokio::test]
async fn a_cluster_that_cannot_be_reached_fails_at_the_deadline() {
    let dead = [dead_address().await, dead_address().await];
    let endpoints = dead.iter().map(|address| endpoint(address)).collect();
    let mut client = Client::new(endpoints, options(100, 300)).expect("endpoints");

    let outcome = client.get("k", ReadConsistency::Linearizable).await;
    let Err(error) = outcome else {
        panic!("expected DeadlineExceeded, got {outcome:?}");
    };
    let text = error.to_string();
    match error {
        ClientError::DeadlineExceeded {
            last_error,
            unreachable,
            endpoints: 2,
            outcome_unknown: false,
            ..
        } => {
            assert!(
                matches!(*last_error, ClientError::Unreachable { .. }),
                "{last_error}"
            );
            assert_eq!(unreachable.len(), 2, "{unreachable:?}");
            assert!(
                text.contains("no leader reachable") && text.contains("2 of 2"),
                "{text}"
            );
        }
        other => panic!("expected DeadlineExceeded of two unreachable endpoints, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_request_and_internal_errors_are_returned_without_retry() {
    for (kind, check) in [
        (
            ErrorKind::InvalidRequest,
            (|e| matches!(e, ClientError::InvalidRequest { .. })) as fn(&_) -> bool,
        ),
        (ErrorKind::Internal, |e| matches!(e, ClientError::Server { .. })),
    ] {
        let node = FakeNode::always(error(kind)).await;
        let mut client = Client::new(vec![node.endpoint()], options(1000, 5000)).expect("endpoints");
        let outcome = client.put("k", "v").await;
        match outcome {
            Err(error) => assert!(check(&error), "{kind:?} became {error:?}"),
            Ok(previous) => panic!("{kind:?} became success {previous:?}"),
        }
        assert_eq!(node.received().len(), 1, "{kind:?} was retried");
    }
}

#[tokio::test]
async fn a_write_refused_for_its_dropped_session_is_sent_once_more_in_a_new_session() {
    // The cluster refused the only copy (thesis §6.3: a session it no longer holds is
    // never applied to), so the write can go again under a session opened anew, with a
    // new id: never the old one, whose late copies must stay refused.
    let node = FakeNode::start(|index, _| {
        Reply::respond(match index {
            0 => error(ErrorKind::SessionExpired),
            _ => written(Some("v")),
        })
    })
    .await;
    let mut client = Client::new(vec![node.endpoint()], options(1000, 5000)).expect("endpoints");
    let first_id = client.client_id();
    client.put("k", "w").await.expect("sent again in a new session");
    let opened = node.sessions_opened();
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert_eq!(opened[0], first_id);
    assert_ne!(opened[1], first_id);
    let expected =
        [(first_id, 1), (opened[1], 1)].map(|(client_id, sequence)| Session { client_id, sequence });
    assert_eq!(sessions(&node.received()), expected);
    assert_eq!(client.client_id(), opened[1]);

    // Refused again: no third try; the outcome is known (no copy was applied).
    let refusing = FakeNode::always(error(ErrorKind::SessionExpired)).await;
    let mut client = Client::new(vec![refusing.endpoint()], options(1000, 5000)).expect("endpoints");
    let outcome = client.put("k", "v").await;
    assert!(
        matches!(
            outcome,
            Err(ClientError::SessionExpired {
                outcome_unknown: false,
                ..
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(refusing.received().len(), 2);
}

#[tokio::test]
async fn a_session_dropped_after_an_attempt_timed_out_leaves_the_outcome_unknown() {
    // The first copy may have been applied before the session was dropped: the client
    // cannot tell, says so, and does not send the write again.
    let node = FakeNode::start(|index, _| match index {
        0 => Reply::Ignore,
        1 => Reply::respond(error(ErrorKind::SessionExpired)),
        _ => Reply::respond(written(None)),
    })
    .await;
    let mut client = Client::new(vec![node.endpoint()], options(200, 5000)).expect("endpoints");
    let outcome = client.put("k", "v").await;
    match &outcome {
        Err(
            error @ ClientError::SessionExpired {
                outcome_unknown: true,
                ..
            },
        ) => assert!(error.to_string().contains("the outcome is unknown"), "{error}"),
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
    assert_eq!(node.received().len(), 2);
    // The next write opens a new session and starts its sequence again.
    client.put("k2", "v").await.expect("a new session");
    let opened = node.sessions_opened();
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert_eq!(
        sessions(&node.received())[2],
        Session {
            client_id: opened[1],
            sequence: 1
        }
    );
}

#[tokio::test]
async fn over_limit_requests_fail_before_sending_and_spend_no_sequence() {
    let node = leader("v").await;
    let mut client = Client::new(vec![node.endpoint()], options(1000, 5000)).expect("endpoints");

    let key = vec![b'k'; KEY_BYTES_MAX + 1];
    let outcome = client.put(key.clone(), "v").await;
    assert!(
        matches!(outcome, Err(ClientError::InvalidRequest { .. })),
        "{outcome:?}"
    );
    let outcome = client.list("", 0, ReadConsistency::Linearizable).await;
    assert!(
        matches!(outcome, Err(ClientError::InvalidRequest { .. })),
        "{outcome:?}"
    );
    assert!(node.received().is_empty());
    assert_eq!(client.next_sequence(), 1);
}

#[tokio::test]
async fn a_response_of_the_wrong_kind_is_a_typed_error_not_a_panic() {
    let node = FakeNode::always(Response::Listing(Listing::default())).await;
    let mut client = Client::new(vec![node.endpoint()], options(1000, 5000)).expect("endpoints");
    let outcome = client.get("k", ReadConsistency::Linearizable).await;
    assert!(
        matches!(outcome, Err(ClientError::UnexpectedResponse { .. })),
        "{outcome:?}"
    );
}

fn status(id: u64) -> NodeStatus {
    NodeStatus {
        id,
        role: "Follower".to_string(),
        term: 2,
        leader: Some(1),
        commit: 5,
        applied: 5,
        first_index: 1,
        last_index: 5,
        snapshot_index: 0,
        voters: vec![1, 2, 3],
        learners: vec![],
        peers: vec![],
        space: Default::default(),
    }
}

#[tokio::test]
async fn status_and_dump_ask_the_named_node_once() {
    let node = FakeNode::start(|_, request| {
        Reply::respond(match request {
            Request::Status => Response::Status(status(2)),
            Request::Dump => Response::Dump(NodeDump {
                status: status(2),
                log: vec![(1, 1, "put k".to_string())],
                kv: vec![(b"k".to_vec(), b"v".to_vec())],
            }),
            _ => error(ErrorKind::InvalidRequest),
        })
    })
    .await;
    let other = leader("v").await;
    // The client's own endpoint list does not matter: status names its node.
    let mut client = Client::new(vec![other.endpoint()], options(1000, 5000)).expect("endpoints");

    assert_eq!(client.status(&node.endpoint()).await.expect("status").id, 2);
    let dump = client.dump(&node.endpoint()).await.expect("dump");
    assert_eq!(dump.kv, vec![(b"k".to_vec(), b"v".to_vec())]);
    assert!(other.received().is_empty());

    let dead = endpoint(&dead_address().await);
    let outcome = client.status(&dead).await;
    assert!(
        matches!(outcome, Err(ClientError::Unreachable { .. })),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_write_command_is_sent_as_given() {
    let node = leader("old").await;
    let mut client = Client::new(vec![node.endpoint()], options(1000, 5000))
        .expect("endpoints")
        .with_client_id(77);
    assert_eq!(
        client
            .put_returning_previous("k", "new")
            .await
            .expect("put")
            .as_deref(),
        Some(b"old".as_slice())
    );
    client.put("k", "newer").await.expect("put");
    let requests = node.received();
    let Request::Write {
        session,
        command,
        return_prior: true,
    } = &requests[0]
    else {
        panic!("expected a write asking for the previous value, got {requests:?}");
    };
    assert!(
        matches!(
            &requests[1],
            Request::Write {
                return_prior: false,
                ..
            }
        ),
        "{:?}",
        requests[1]
    );
    assert_eq!(session.client_id, 77);
    assert_eq!(
        *command,
        Command::Put {
            key: b"k".to_vec(),
            value: b"new".to_vec()
        }
    );
}
