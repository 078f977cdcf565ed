//! Exactly-once writes that never lapse (issue 12, Raft thesis §6.3): sessions are opened
//! through the log, and a retry that comes after its session was evicted or expired is
//! refused, never applied a second time. The session limits are the leader's flags,
//! carried in the log, so every replica holds the same sessions and applies the same,
//! whatever its own flags (`replicas_with_other_session_flags_apply_the_same`; that
//! restarts and clocks change nothing is shown by the unit tests of
//! `node/src/kv/state_machine.rs`).

use std::time::Duration;

use tokio::net::TcpStream;
use wire::connection::Connection;
use wire::{
    Command, ErrorKind, Prior, ReadConsistency, Request, RequestEnvelope, Response, ResponseEnvelope,
    Session, WriteResult, CLIENT_PROTOCOL_VERSION,
};

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
    put_asking(client_id, sequence, key, value.as_bytes(), false)
}

/// A put that asks (`return_prior`) for the value it replaces, or not.
fn put_asking(client_id: u64, sequence: u64, key: &str, value: &[u8], return_prior: bool) -> Request {
    Request::Write {
        session: Session { client_id, sequence },
        command: Command::Put {
            key: key.into(),
            value: value.to_vec(),
        },
        return_prior,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_keep_the_answer_not_the_replaced_value_so_big_overwrites_evict_no_session() {
    // The case: overwrites of big values used to cache each replaced value in
    // its session's record, and a few of them evicted a session whose client was still
    // retrying. Here the cache holds 1 MiB and values are 600 KiB.
    let extra = ["--session-cache-bytes".to_string(), (1 << 20).to_string()];
    let test = TestCluster::start_with("session-cache", 3, 1_000, false, &extra).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let address = test.cluster.node(leader.id).client_address.clone();
    let big = |fill: u8| vec![fill; 600 * 1024];

    // Not asked for the replaced values, the records hold none: both sessions stay, and
    // 201's retry, after 202 overwrote the key again, is answered from its record.
    assert_opened(send(&address, open(201)).await);
    assert_opened(send(&address, open(202)).await);
    assert_written(send(&address, put_asking(201, 1, "a", &big(1), false)).await);
    assert_written(send(&address, put_asking(202, 1, "a", &big(2), false)).await);
    let first = send(&address, put_asking(201, 2, "a", &big(3), false)).await;
    assert_eq!(
        first,
        Response::Written(WriteResult::Done {
            previous: Prior::Present {
                value_bytes: 600 * 1024
            }
        })
    );
    assert_written(send(&address, put_asking(202, 2, "a", &big(4), false)).await);
    let retry = send(&address, put_asking(201, 2, "a", &big(3), false)).await;
    assert_eq!(retry, first, "the retry is answered from the record");

    // Asked for them, two records hold 1.2 MiB: the older session is evicted, and its
    // retry refused (never applied again).
    assert_opened(send(&address, open(203)).await);
    assert_opened(send(&address, open(204)).await);
    let answer = send(&address, put_asking(203, 1, "a", &big(5), true)).await;
    assert_eq!(
        answer,
        Response::Written(WriteResult::Done {
            previous: Prior::Value(big(4))
        })
    );
    assert_written(send(&address, put_asking(204, 1, "a", &big(6), true)).await);
    assert_refused(
        send(&address, put_asking(203, 1, "a", &big(5), true)).await,
        "a retry after its record was evicted for bytes",
    );

    let mut client = test.client(quick_options());
    let value = client
        .get("a", ReadConsistency::Linearizable)
        .await
        .expect("a linearizable read");
    assert_eq!(value, Some(big(6)), "a retry was applied again");
    test.wait_for_convergence(&ids).await;
    for id in &ids {
        // 201, 202 and 204 (and the library's read opens none).
        test.wait_for_metric(*id, "raftkv_sessions_open", |open| open == 3)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_other_session_flags_apply_the_same() {
    // The followers restart with session limits far below the leader's (one session,
    // no cache, one-second timeout). Were limits read from local flags, those replicas
    // would evict session 301 when 302 opens and refuse its second write, which the
    // leader applies: their KV maps would differ. The limits come from the log, so every
    // replica decides as the leader's entries say.
    let mut test = TestCluster::start("session-flags", 3, 1_000).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let followers: Vec<u64> = ids.iter().copied().filter(|id| *id != leader.id).collect();
    let tiny = [
        ["--sessions-max", "1", "--session-cache-bytes", "0"],
        ["--session-timeout-secs", "1", "--sessions-max", "1"],
    ];
    for (follower, flags) in followers.iter().zip(tiny) {
        test.cluster.kill(*follower).expect("kill -9 of a follower");
        test.cluster
            .start_node_with(*follower, &flags)
            .expect("the follower restarts with other flags");
        test.wait_for_convergence(&ids).await;
    }
    let now_leader = test.wait_for_leader(&ids).await;
    let address = test.cluster.node(now_leader.id).client_address.clone();

    assert_opened(send(&address, open(301)).await);
    assert_written(send(&address, put(301, 1, "k", "one")).await);
    assert_opened(send(&address, open(302)).await);
    assert_opened(send(&address, open(303)).await);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_written(send(&address, put(302, 1, "other", "x")).await);
    let second = send(&address, put(301, 2, "k", "two")).await;
    let converged = test.wait_for_convergence(&ids).await;
    let mut open_counts = Vec::new();
    for id in &ids {
        let metric = test.wait_for_metric(*id, "raftkv_sessions_open", |_| true).await;
        open_counts.push(metric);
    }
    if now_leader.id == leader.id {
        // The leader's defaults decided: 301 stayed open and its write applied.
        assert!(matches!(second, Response::Written(_)), "{second:?}");
        let kv = &converged.dumps[0].kv;
        assert!(
            kv.iter().any(|(key, value)| key == b"k" && value == b"two"),
            "301's second write is missing"
        );
    }
    // Every replica holds the same sessions, whatever its own flags say (the metric is
    // published with the status that showed them converged).
    assert!(
        open_counts.windows(2).all(|pair| pair[0] == pair[1]),
        "replicas hold different numbers of sessions: {open_counts:?}"
    );
}
