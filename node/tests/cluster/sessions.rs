//! Exactly-once writes that never lapse (issue 12, Raft thesis §6.3): sessions are opened
//! through the log, and a retry that comes after its session was evicted or expired is
//! refused, never applied a second time. The session limits are the leader's flags,
//! carried in the log, so every replica holds the same sessions (that a replica's own
//! flags and restarts never change what it decides is shown by the unit tests of
//! `node/src/kv/state_machine.rs`).

use std::time::Duration;

use client::connection::Connection;
use client::wire::{
    Command, ErrorKind, ReadConsistency, Request, RequestEnvelope, Response, ResponseEnvelope, Session,
    CLIENT_PROTOCOL_VERSION,
};
use tokio::net::TcpStream;

use crate::support::{quick_options, TestCluster};

/// Sends one request to `address` on a connection of its own, as a client retrying
/// from scratch would, and returns the answer.
async fn send(address: &str, request: Request) -> Response {
    let stream = TcpStream::connect(address).await.expect("the leader accepts");
    let mut connection = Connection::new(stream);
    let envelope = RequestEnvelope {
        protocol_version: CLIENT_PROTOCOL_VERSION,
        id: 1,
        request,
    };
    connection.write_frame(&envelope).await.expect("sent");
    let answer: ResponseEnvelope = tokio::time::timeout(Duration::from_secs(5), connection.read_frame())
        .await
        .expect("answered in time")
        .expect("readable")
        .expect("an answer");
    answer.response
}

fn open(client_id: u64) -> Request {
    Request::OpenSession { client_id }
}

fn put(client_id: u64, sequence: u64, key: &str, value: &str) -> Request {
    Request::Write {
        session: Session { client_id, sequence },
        command: Command::Put {
            key: key.into(),
            value: value.into(),
        },
    }
}

fn assert_opened(response: Response) {
    assert!(matches!(response, Response::SessionOpened { .. }), "{response:?}");
}

fn assert_written(response: Response) {
    assert!(matches!(response, Response::Written(_)), "{response:?}");
}

fn assert_refused(response: Response, what: &str) {
    assert!(
        matches!(&response, Response::Error(reply) if reply.kind == ErrorKind::SessionExpired),
        "{what}: expected SessionExpired, got {response:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_its_session_was_evicted_or_expired_is_never_applied_again() {
    // Every node may lead: all run with two sessions at most and a two-second timeout,
    // given as flags; the log carries them from whichever leads.
    let extra = [
        "--sessions-max".to_string(),
        "2".to_string(),
        "--session-timeout-secs".to_string(),
        "2".to_string(),
    ];
    let test = TestCluster::start_with("sessions", 3, 1_000, false, &extra).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let address = test.cluster.node(leader.id).client_address.clone();

    // A write of a session never opened is refused, not applied.
    assert_refused(
        send(&address, put(100, 1, "k", "unopened")).await,
        "an unopened session",
    );

    // Evicted: session 101 writes, then two newer sessions leave no room for it.
    assert_opened(send(&address, open(101)).await);
    assert_written(send(&address, put(101, 1, "k", "first")).await);
    assert_opened(send(&address, open(102)).await);
    assert_opened(send(&address, open(103)).await);
    assert_written(send(&address, put(102, 1, "k", "second")).await);
    // 101's retry of its first write (its answer lost, say) would put "first" back
    // over "second": it is refused.
    assert_refused(
        send(&address, put(101, 1, "k", "first")).await,
        "a retry after eviction",
    );

    // Expired: 102 and 103 do nothing for longer than the timeout; a new session's
    // opening moves the log's clock past their expiry.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_opened(send(&address, open(104)).await);
    assert_refused(
        send(&address, put(102, 1, "k", "second")).await,
        "a retry after expiry",
    );
    assert_refused(
        send(&address, put(103, 1, "k", "late")).await,
        "a first write after expiry",
    );

    let mut client = test.client(quick_options());
    let value = client
        .get("k", ReadConsistency::Linearizable)
        .await
        .expect("a linearizable read");
    assert_eq!(
        value.as_deref(),
        Some(&b"second"[..]),
        "a refused write was applied"
    );

    // The library opens its session by itself, and every replica holds the same
    // sessions: 104 and the library's.
    client.put("k2", "v").await.expect("the library writes");
    test.wait_for_convergence(&ids).await;
    for id in &ids {
        test.wait_for_metric(*id, "raftkv_sessions_open", |open| open == 2)
            .await;
    }
}
