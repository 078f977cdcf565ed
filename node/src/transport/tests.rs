//! End-to-end tests of the transport over real loopback sockets.
//!
//! Listeners are bound on port 0 before any transport starts (`start_with_listener`), so
//! every node knows its peers' addresses. Delivery is checked by sending until the message
//! arrives, as Raft itself does: a message queued while a connection was being replaced
//! may be lost, which the transport allows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};
use wire::connection::{Connection, ConnectionError};

use super::test_log::CapturedLogs;
use super::*;

/// Generous bound on anything that should happen "soon", so a loaded CI machine does not
/// fail the tests; they normally finish in milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);
const INBOX_CAPACITY: usize = 64;

/// The cluster named `name` in these tests (its id derives from the name).
fn membership(name: &str) -> crate::identity::ClusterMembership {
    // Node 1 of `config` (incarnation 100 + id): a founder's handshakes must carry the
    // founder's incarnation.
    let founder = crate::identity::Founder {
        node_id: 1,
        incarnation: 101,
    };
    crate::identity::ClusterMembership::found(name, vec![founder])
}

fn config(
    own_id: u64,
    cluster_name: &str,
    peers: &BTreeMap<u64, String>,
    listen: SocketAddr,
) -> TransportConfig {
    TransportConfig {
        own_id,
        cluster_name: cluster_name.to_string(),
        incarnation: 100 + own_id,
        membership: Some(membership(cluster_name)),
        listen_address: listen.to_string(),
        peers: peers.clone(),
        advertised_client_address: format!("client-{own_id}:7000"),
        queue_messages_max: 64,
        reconnect_backoff_min: Duration::from_millis(10),
        reconnect_backoff_max: Duration::from_millis(200),
        tls: None,
    }
}

fn message(from: u64, to: u64, tag: u64) -> raft::Message {
    raft::Message {
        from,
        to,
        term: 1,
        body: raft::MessageBody::Heartbeat(raft::Heartbeat {
            leader_commit: 0,
            read_round: tag,
        }),
    }
}

async fn bind_loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds a loopback port")
}

/// An address where nobody listens: bound once, then released.
async fn dead_address() -> String {
    let listener = bind_loopback().await;
    listener.local_addr().expect("bound").to_string()
}

/// A started transport and the driver's end of its inbox.
struct Node {
    transport: Transport,
    inbox: mpsc::Receiver<raft::Message>,
}

impl Node {
    fn start(config: TransportConfig, listener: TcpListener) -> Node {
        let (inbound, inbox) = mpsc::channel(INBOX_CAPACITY);
        let transport = Transport::start_with_listener(config, listener, inbound).expect("starts");
        Node { transport, inbox }
    }

    /// Sends `message` from this node until `receiver` gets it; earlier copies or other
    /// messages arriving meanwhile are skipped.
    async fn deliver(&self, receiver: &mut Node, message: raft::Message) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(
                Instant::now() < deadline,
                "{message:?} not delivered within {PATIENCE:?}"
            );
            self.transport.send(message.clone());
            if let Ok(Some(received)) = timeout(Duration::from_millis(50), receiver.inbox.recv()).await {
                if received == message {
                    return;
                }
            }
        }
    }

    /// Asserts nothing arrives for a while.
    async fn assert_inbox_stays_empty(&mut self, period: Duration) {
        let received = timeout(period, self.inbox.recv()).await;
        assert!(received.is_err(), "unexpected delivery: {received:?}");
    }
}

/// Two nodes, ids 1 and 2, listening on loopback, with the given cluster ids.
async fn two_nodes(cluster_one: &str, cluster_two: &str) -> (Node, Node) {
    let (listener_one, listener_two) = (bind_loopback().await, bind_loopback().await);
    let (address_one, address_two) = (
        listener_one.local_addr().expect("bound"),
        listener_two.local_addr().expect("bound"),
    );
    let peers = BTreeMap::from([(1, address_one.to_string()), (2, address_two.to_string())]);
    let one = Node::start(config(1, cluster_one, &peers, address_one), listener_one);
    let two = Node::start(config(2, cluster_two, &peers, address_two), listener_two);
    (one, two)
}

/// Polls `condition` until it holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        sleep(Duration::from_millis(10)).await;
    }
}

/// A hand-driven dialer that completed the handshake as `node_id`.
async fn raw_peer(address: SocketAddr, node_id: u64) -> Connection<TcpStream> {
    let mut connection = Connection::new(TcpStream::connect(address).await.expect("connects"));
    let handshake = Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_name: "blue".to_string(),
        cluster_id: Some(membership("blue").cluster_id),
        node_id,
        incarnation: 9,
        client_address: "raw:1".to_string(),
        probe: false,
    };
    connection.write_frame(&handshake).await.expect("writes");
    let reply = connection.read_frame::<HandshakeReply>().await.expect("reads");
    assert!(
        matches!(reply, Some(HandshakeReply::Accepted { node_id: 1, .. })),
        "{reply:?}"
    );
    connection
}

/// Asserts the transport closed `connection` (clean close or reset), without writing.
async fn assert_closed_by_peer(connection: &mut Connection<TcpStream>) {
    match timeout(PATIENCE, connection.read_frame::<HandshakeReply>()).await {
        Ok(Ok(None) | Err(ConnectionError::Io(_))) => {}
        other => panic!("expected the transport to close the connection, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_flow_both_ways_in_order() {
    let (mut one, mut two) = two_nodes("blue", "blue").await;
    one.deliver(&mut two, message(1, 2, 0)).await;
    two.deliver(&mut one, message(2, 1, 0)).await;

    // Both connections are up: a burst within the queue's capacity arrives whole, in order.
    for tag in 1..=50 {
        one.transport.send(message(1, 2, tag));
    }
    let mut tags = Vec::new();
    while tags.last() != Some(&50) {
        let received = timeout(PATIENCE, two.inbox.recv())
            .await
            .expect("in time")
            .expect("open");
        if let raft::MessageBody::Heartbeat(heartbeat) = received.body {
            tags.push(heartbeat.read_round);
        }
    }
    let burst: Vec<u64> = tags.into_iter().skip_while(|&tag| tag != 1).collect();
    assert_eq!(burst, (1..=50).collect::<Vec<_>>());

    assert_eq!(
        one.transport.peer_client_address(2).as_deref(),
        Some("client-2:7000")
    );
    assert_eq!(
        two.transport.peer_client_address(1).as_deref(),
        Some("client-1:7000")
    );
    assert_eq!(one.transport.peer_client_address(3), None);
    let stats = one.transport.stats();
    assert!(stats.messages_sent >= 51, "{stats:?}");
    assert_eq!(stats.messages_dropped, 0, "{stats:?}");
    assert!(
        stats.connections_established >= 1 && stats.connections_accepted >= 1,
        "{stats:?}"
    );
    assert!(two.transport.stats().messages_received >= 51);
}

#[tokio::test]
async fn a_node_of_another_cluster_is_refused_with_a_clear_log_line() {
    let (logs, _guard) = CapturedLogs::install();
    let (mut blue, mut green) = two_nodes("blue", "green").await;

    eventually("both sides refused the other's handshake", || {
        blue.transport.stats().connections_refused >= 1 && green.transport.stats().connections_refused >= 1
    })
    .await;
    blue.transport.send(message(1, 2, 7));
    green.transport.send(message(2, 1, 7));
    blue.assert_inbox_stays_empty(Duration::from_millis(300)).await;
    green.assert_inbox_stays_empty(Duration::from_millis(1)).await;
    assert!(blue.transport.stats().connect_failures >= 1);
    assert_eq!(blue.transport.stats().connections_established, 0);
    assert_eq!(
        blue.transport.peer_client_address(2),
        None,
        "nothing learned from a refused node"
    );

    let lines = logs.lines();
    let named_both = "node 2 belongs to cluster \"green\" but node 1 belongs to cluster \"blue\"";
    let refusal = lines
        .iter()
        .find(|line| line.starts_with("WARN refused a peer connection") && line.contains(named_both));
    assert!(
        refusal.is_some(),
        "no warning naming both cluster ids in {lines:#?}"
    );
}

/// A node without a cluster (an empty data dir) answers probes with who it is, refuses
/// Raft connections both ways, and carries messages once it joins.
#[tokio::test]
async fn a_node_without_a_cluster_only_probes_until_it_joins() {
    let (listener_one, listener_two) = (bind_loopback().await, bind_loopback().await);
    let (address_one, address_two) = (
        listener_one.local_addr().expect("bound"),
        listener_two.local_addr().expect("bound"),
    );
    let peers = BTreeMap::from([(1, address_one.to_string()), (2, address_two.to_string())]);
    let one = Node::start(config(1, "blue", &peers, address_one), listener_one);
    let pending_config = TransportConfig {
        membership: None,
        ..config(2, "blue", &peers, address_two)
    };
    let mut two = Node::start(pending_config, listener_two);

    let answer = two.transport.probe(1).await.expect("a member answers a probe");
    assert_eq!(answer.node_id, 1);
    assert_eq!(answer.incarnation, 101);
    assert_eq!(answer.membership, Some(membership("blue")));
    let answer = one
        .transport
        .probe(2)
        .await
        .expect("a pending node answers a probe");
    assert_eq!((answer.incarnation, answer.membership), (102, None));
    assert!(matches!(
        two.transport.probe(3).await,
        Err(ProbeError::UnknownPeer(3))
    ));

    eventually("the member's Raft connection was refused", || {
        two.transport.stats().connections_refused >= 1
    })
    .await;
    one.transport.send(message(1, 2, 3));
    two.assert_inbox_stays_empty(Duration::from_millis(300)).await;

    two.transport.join(membership("blue"));
    let mut one = one;
    one.deliver(&mut two, message(1, 2, 4)).await;
    two.deliver(&mut one, message(2, 1, 5)).await;
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let (mut one, two) = two_nodes("blue", "blue").await;
    two.deliver(&mut one, message(2, 1, 0)).await;
    let address = one.transport.local_address();

    // Not a frame at all (an HTTP probe's length prefix is far beyond the limit).
    let mut http = Connection::new(TcpStream::connect(address).await.expect("connects"));
    http.write_encoded(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("writes");
    assert_closed_by_peer(&mut http).await;

    // After a valid handshake: an oversized length, then an undecodable payload.
    let mut oversized = raw_peer(address, 2).await;
    oversized
        .write_encoded(&[0x7F, 0xFF, 0xFF, 0xFF])
        .await
        .expect("writes");
    assert_closed_by_peer(&mut oversized).await;
    let mut undecodable = raw_peer(address, 2).await;
    undecodable
        .write_encoded(&[0, 0, 0, 3, 0xFF, 0xFF, 0xFF])
        .await
        .expect("writes");
    assert_closed_by_peer(&mut undecodable).await;

    assert_eq!(one.transport.stats().malformed_frames, 3);
    // The listener still serves: the real peer (whose connection the raw dialers
    // replaced) reconnects and its messages arrive.
    two.deliver(&mut one, message(2, 1, 1)).await;
}

#[tokio::test]
async fn a_message_not_from_the_handshaken_peer_closes_the_connection() {
    let listener = bind_loopback().await;
    let address = listener.local_addr().expect("bound");
    let peers = BTreeMap::from([
        (1, address.to_string()),
        (2, dead_address().await),
        (3, dead_address().await),
    ]);
    let mut one = Node::start(config(1, "blue", &peers, address), listener);

    let mut honest = raw_peer(address, 2).await;
    honest.write_frame(&message(2, 1, 1)).await.expect("writes");
    let received = timeout(PATIENCE, one.inbox.recv()).await.expect("in time");
    assert_eq!(received, Some(message(2, 1, 1)));

    let mut impostor = raw_peer(address, 2).await;
    impostor.write_frame(&message(3, 1, 2)).await.expect("writes");
    assert_closed_by_peer(&mut impostor).await;

    let mut misaddressed = raw_peer(address, 2).await;
    misaddressed.write_frame(&message(2, 3, 3)).await.expect("writes");
    assert_closed_by_peer(&mut misaddressed).await;

    one.assert_inbox_stays_empty(Duration::from_millis(100)).await;
    assert_eq!(one.transport.stats().malformed_frames, 2);
    assert_eq!(one.transport.stats().messages_received, 1);
}

#[tokio::test]
async fn messages_flow_again_after_a_peer_restarts_on_the_same_port() {
    let (mut one, mut two) = two_nodes("blue", "blue").await;
    one.deliver(&mut two, message(1, 2, 0)).await;
    let address_two = two.transport.local_address();
    let config_two = config(2, "blue", &configured_peers(&one, &two), address_two);

    two.transport.shutdown();
    timeout(PATIENCE, two.transport.stopped())
        .await
        .expect("tasks stop");
    drop(two);

    let (inbound, inbox) = mpsc::channel(INBOX_CAPACITY);
    let transport = Transport::start(config_two, inbound)
        .await
        .expect("rebinds the same port");
    assert_eq!(transport.local_address(), address_two);
    let mut two = Node { transport, inbox };
    one.deliver(&mut two, message(1, 2, 1)).await;
    two.deliver(&mut one, message(2, 1, 1)).await;
    assert!(one.transport.stats().connections_established >= 2);
}

fn configured_peers(one: &Node, two: &Node) -> BTreeMap<u64, String> {
    BTreeMap::from([
        (1, one.transport.local_address().to_string()),
        (2, two.transport.local_address().to_string()),
    ])
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let listener = bind_loopback().await;
    let address = listener.local_addr().expect("bound");
    let peers = BTreeMap::from([(1, address.to_string()), (2, dead_address().await)]);
    let mut config = config(1, "blue", &peers, address);
    config.queue_messages_max = 4;
    let one = Node::start(config, listener);

    // The peer is unreachable, so its task never takes from the queue: four messages fit
    // and the other six are dropped, without `send` ever waiting.
    for tag in 0..10 {
        one.transport.send(message(1, 2, tag));
    }
    one.transport.send(message(1, 9, 0));
    let stats = one.transport.stats();
    assert_eq!(stats.messages_dropped, 6, "{stats:?}");
    assert_eq!(stats.messages_unroutable, 1, "{stats:?}");

    eventually("the dialer keeps failing", || {
        one.transport.stats().connect_failures >= 2
    })
    .await;
    let stats = one.transport.stats();
    assert_eq!((stats.messages_dropped, stats.messages_sent), (6, 0), "{stats:?}");
}

#[tokio::test]
async fn shutdown_drops_further_messages_and_stops_every_task() {
    let (one, mut two) = two_nodes("blue", "blue").await;
    one.deliver(&mut two, message(1, 2, 0)).await;
    one.transport.shutdown();
    timeout(PATIENCE, one.transport.stopped())
        .await
        .expect("tasks stop");
    one.transport.send(message(1, 2, 1));
    assert_eq!(one.transport.stats().messages_dropped, 1);
    // Once stopped, later calls return at once.
    timeout(Duration::from_millis(100), one.transport.stopped())
        .await
        .expect("still stopped");
}

#[tokio::test]
async fn invalid_configuration_is_an_error_not_a_panic() {
    let (inbound, _inbox) = mpsc::channel(1);
    let mut config = config(
        1,
        "blue",
        &BTreeMap::new(),
        "127.0.0.1:0".parse().expect("address"),
    );
    config.queue_messages_max = 0;
    let error = Transport::start(config, inbound)
        .await
        .expect_err("zero capacity");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

/// Peers follow the configuration: a peer added later is dialed, a removed one is no
/// longer reachable, and a member re-bound to another incarnation loses its connection.
#[tokio::test]
async fn the_peer_set_follows_the_configuration() {
    let (listener_one, listener_three) = (bind_loopback().await, bind_loopback().await);
    let (address_one, address_three) = (
        listener_one.local_addr().expect("bound"),
        listener_three.local_addr().expect("bound"),
    );
    // Node 1 starts knowing nobody; node 3 knows node 1.
    let mut one = Node::start(config(1, "blue", &BTreeMap::new(), address_one), listener_one);
    let peers_of_three = BTreeMap::from([(1, address_one.to_string())]);
    let mut three = Node::start(config(3, "blue", &peers_of_three, address_three), listener_three);
    one.transport.send(message(1, 3, 0));
    assert_eq!(
        one.transport.stats().messages_unroutable,
        1,
        "3 is not a peer yet"
    );
    let entry = |address: SocketAddr, incarnation| crate::membership::PeerEntry {
        address: Some(address.to_string()),
        incarnation: Some(incarnation),
    };
    one.transport
        .set_peers(BTreeMap::from([(3, entry(address_three, 103))]));
    one.deliver(&mut three, message(1, 3, 1)).await;
    three.deliver(&mut one, message(3, 1, 2)).await;
    // Node 3 is re-bound to another incarnation: its live connection to 1 is closed, and
    // from now on only a leader's messages of it pass (a heartbeat), never a vote.
    one.transport
        .set_peers(BTreeMap::from([(3, entry(address_three, 999))]));
    three.deliver(&mut one, message(3, 1, 3)).await;
    let vote = raft::Message {
        from: 3,
        to: 1,
        term: 1,
        body: raft::MessageBody::VoteResponse(raft::VoteResponse { granted: true }),
    };
    // Heartbeat copies still in flight may arrive; a vote never does.
    for _ in 0..5 {
        three.transport.send(vote.clone());
    }
    eventually("the votes are dropped", || {
        one.transport.stats().messages_unverified_dropped >= 5
    })
    .await;
    while let Ok(received) = one.inbox.try_recv() {
        assert_ne!(
            received.body, vote.body,
            "a vote of an unverified incarnation passed"
        );
    }
    // Removed: nothing is routed to it any more.
    one.transport.set_peers(BTreeMap::new());
    let unroutable = one.transport.stats().messages_unroutable;
    one.transport.send(message(1, 3, 4));
    assert_eq!(one.transport.stats().messages_unroutable, unroutable + 1);
}
