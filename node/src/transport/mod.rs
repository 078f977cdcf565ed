//! The peer transport: carries Raft messages between nodes over TCP.
//!
//! Shape (ARCHITECTURE.md, "Peer transport"):
//! - Every node dials every peer for its own outbound traffic, and accepts the peers'
//!   connections for its inbound traffic, so each connection carries one direction only:
//!   a reply travels over the other node's outbound connection. No tie-breaking between
//!   simultaneous dials is needed, which is why many Raft implementations do this.
//! - Frames are the client crate's length-prefixed postcard frames with its size limit.
//!   The dialer's first frame is a [`Handshake`] (protocol version, cluster id, node id,
//!   client address); the acceptor answers [`HandshakeReply`] and then only reads
//!   `raft::Message` frames, each of which must come `from` the handshaken peer and be
//!   addressed `to` this node.
//! - Bad input from the network (garbage, an oversized length, an undecodable payload, a
//!   misrouted message, a refused handshake) closes that one connection with a logged
//!   reason and a counter; it never panics and never stops the listener.
//! - Outbound: one bounded queue and one task per peer. [`Transport::send`] never waits:
//!   a full queue drops the message and counts it, since Raft retransmits. The task
//!   encodes each message once and writes what is queued in one batch per flush; it
//!   reconnects with exponential backoff whose jitter is derived from the node ids, so
//!   simulations replay exactly.
//! - Inbound: messages go to the driver with `send().await` on its bounded channel, which
//!   turns a slow driver into TCP backpressure and, in the end, into counted drops at the
//!   sender's queue (see `inbound.rs`).
//!
//! Only tokio APIs that madsim simulates are used (`net`, `time`, `spawn`, `sync`,
//! `select!`), so the simulation runs this very code.

mod backoff;
mod config;
mod dial;
pub(crate) mod handshake;
mod inbound;
mod lifecycle;
mod listener;
mod outbound;
pub(crate) mod peer_frame;
mod shared;
mod stats;
#[cfg(test)]
mod test_log;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::net::TcpListener;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tracing::{debug, info, info_span, Instrument};

pub use self::config::TransportConfig;
pub use self::handshake::{Handshake, HandshakeReply, PeerState, Refusal, PROTOCOL_VERSION};
pub use self::stats::TransportStats;

use self::backoff::Backoff;
use self::lifecycle::{Shutdown, TaskGuard, TaskTracker, WeakTaskGuard};
use self::listener::PeerListener;
use self::outbound::OutboundPeer;
use self::shared::Shared;
use self::stats::bump;
use crate::identity::ClusterMembership;
use crate::membership::PeerEntry;

/// Why a probe of a peer got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    UnknownPeer(u64),
    /// The peer could not be reached or refused (the text says which).
    Dial(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownPeer(id) => write!(f, "node {id} is not a configured peer"),
            Self::Dial(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ProbeError {}

/// A handle to the running transport. Clones share it; when the last clone is dropped the
/// tasks stop as if [`Transport::shutdown`] had been called.
#[derive(Debug, Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    /// Each reachable peer's outbound queue and task, replaced with the configuration
    /// (`set_peers`). A read lock per message: writers are rare (membership changes).
    queues: RwLock<BTreeMap<u64, OutboundQueue>>,
    local_address: SocketAddr,
    /// Dropping it (with the last handle) stops the tasks too.
    shutdown: watch::Sender<bool>,
    /// What a task spawned later watches and holds.
    shutdown_receiver: Shutdown,
    task_guard: WeakTaskGuard,
    /// Outbound settings, for peers added later.
    queue_messages_max: usize,
    reconnect_backoff_min: std::time::Duration,
    reconnect_backoff_max: std::time::Duration,
    tasks: Mutex<TaskTracker>,
    /// The runtime the transport was started in: peers added later get their task there,
    /// though `set_peers` is called from the driver's own thread (`driver::own_thread`).
    #[cfg(not(madsim))]
    runtime: tokio::runtime::Handle,
}

/// One peer's outbound queue. Dropping it (with `retire`) stops that peer's task.
#[derive(Debug)]
struct OutboundQueue {
    sender: mpsc::Sender<raft::Message>,
    address: String,
    _retire: oneshot::Sender<()>,
}

impl Transport {
    /// Binds the listener and starts one outbound task per peer; inbound messages go to
    /// `inbound`. Fails on an invalid configuration or if the address cannot be bound.
    pub async fn start(
        config: TransportConfig,
        inbound: mpsc::Sender<raft::Message>,
    ) -> io::Result<Transport> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen_address.as_str()).await?;
        Self::start_with_listener(config, listener, inbound)
    }

    /// Like [`Transport::start`] on a listener the caller already bound; `listen_address`
    /// is then not used. Lets tests bind port 0 for every node before any node needs its
    /// peers' addresses. Must be called inside the runtime (it spawns tasks).
    pub fn start_with_listener(
        config: TransportConfig,
        listener: TcpListener,
        inbound: mpsc::Sender<raft::Message>,
    ) -> io::Result<Transport> {
        config.validate()?;
        let local_address = listener.local_addr()?;
        let founders: BTreeMap<u64, u64> = config
            .membership
            .iter()
            .flat_map(|membership| membership.founders.iter())
            .map(|founder| (founder.node_id, founder.incarnation))
            .collect();
        let peers: BTreeMap<u64, PeerEntry> = config
            .remote_peers()
            .map(|(id, address)| {
                let entry = PeerEntry {
                    address: Some(address.clone()),
                    incarnation: founders.get(&id).copied(),
                };
                (id, entry)
            })
            .collect();
        let shared = Arc::new(Shared::new(&config, peers.clone(), inbound));
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let (tasks, task) = TaskTracker::new();
        let shutdown_receiver = Shutdown::new(shutdown_receiver);
        let span = info_span!("peer_listener", own_id = config.own_id, %local_address);
        let listener = PeerListener::new(listener, shared.clone());
        spawn_listener(listener, shutdown_receiver.clone(), task.clone(), span);
        let transport = Transport {
            inner: Arc::new(Inner {
                shared,
                queues: RwLock::new(BTreeMap::new()),
                local_address,
                shutdown,
                shutdown_receiver,
                task_guard: task.downgrade(),
                queue_messages_max: config.queue_messages_max,
                reconnect_backoff_min: config.reconnect_backoff_min,
                reconnect_backoff_max: config.reconnect_backoff_max,
                #[cfg(not(madsim))]
                runtime: tokio::runtime::Handle::current(),
                tasks: Mutex::new(tasks),
            }),
        };
        transport.reconcile_outbound(&peers);
        info!(
            own_id = config.own_id,
            %local_address,
            peers = peers.len(),
            "peer transport started"
        );
        // `task` (the first guard) is dropped here: the listener and outbound tasks hold
        // their own clones.
        drop(task);
        Ok(transport)
    }

    /// Replaces the peer set with the members of the current configuration (called by
    /// the driver when the configuration or a member record changes): starts a task for
    /// each new peer with an address, stops the tasks of removed peers and restarts those
    /// whose address changed, and closes inbound connections that no longer belong to a
    /// member (`Shared::replace_peers`).
    pub fn set_peers(&self, peers: BTreeMap<u64, PeerEntry>) {
        let own_id = self.inner.shared.own_id;
        let peers: BTreeMap<u64, PeerEntry> = peers.into_iter().filter(|(id, _)| *id != own_id).collect();
        if peers == self.inner.shared.peers() {
            return;
        }
        info!(own_id, peers = ?peers, "peer set changed");
        self.inner.shared.replace_peers(peers.clone());
        self.reconcile_outbound(&peers);
    }

    /// Makes the outbound tasks match `peers`.
    fn reconcile_outbound(&self, peers: &BTreeMap<u64, PeerEntry>) {
        let inner = &self.inner;
        let mut queues = inner.queues.write().unwrap_or_else(PoisonError::into_inner);
        queues.retain(|id, queue| {
            peers
                .get(id)
                .and_then(|entry| entry.address.as_deref())
                .is_some_and(|address| address == queue.address)
        });
        for (&peer_id, entry) in peers {
            let Some(address) = &entry.address else { continue };
            if queues.contains_key(&peer_id) {
                continue;
            }
            let Some(task) = inner.task_guard.upgrade() else {
                return; // shut down: no new tasks
            };
            let (sender, queue_receiver) = mpsc::channel(inner.queue_messages_max);
            let (retire, retired) = oneshot::channel();
            let backoff = Backoff::new(
                inner.reconnect_backoff_min,
                inner.reconnect_backoff_max,
                inner.shared.own_id,
                peer_id,
            );
            let peer = OutboundPeer::new(
                inner.shared.clone(),
                peer_id,
                address.clone(),
                queue_receiver,
                backoff,
            );
            let span = info_span!("peer_outbound", own_id = inner.shared.own_id, peer_id, %address);
            let shutdown = inner.shutdown_receiver.clone();
            let run = async move {
                tokio::select! {
                    () = peer.run(shutdown, task) => {}
                    // The queue was dropped: the peer left the configuration or moved.
                    _ = retired => debug!("peer retired; its outbound task stops"),
                }
            };
            #[cfg(not(madsim))]
            inner.runtime.spawn(run.instrument(span));
            #[cfg(madsim)]
            tokio::task::spawn(run.instrument(span));
            queues.insert(
                peer_id,
                OutboundQueue {
                    sender,
                    address: address.clone(),
                    _retire: retire,
                },
            );
        }
    }

    /// Queues a message for its `to` peer without waiting. If that peer's queue is full
    /// the message is dropped and counted: Raft tolerates loss, and the driver must never
    /// block on a slow or dead peer.
    pub fn send(&self, message: raft::Message) {
        let counters = &self.inner.shared.counters;
        let queues = self.inner.queues.read().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = queues.get(&message.to).map(|queue| &queue.sender) else {
            bump(&counters.messages_unroutable);
            debug!(
                to = message.to,
                "dropping a message for a node that is not a peer"
            );
            return;
        };
        match queue.try_send(message) {
            Ok(()) => {}
            // Closed only after shutdown: the message is dropped all the same.
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => bump(&counters.messages_dropped),
        }
    }

    /// Makes this node a member of `membership`'s cluster: Raft messages may flow from
    /// now on, in both directions (until then every Raft connection is refused).
    pub fn join(&self, membership: ClusterMembership) {
        info!(
            own_id = self.inner.shared.own_id,
            cluster_id = %membership.cluster_id,
            "peer transport joined the cluster"
        );
        self.inner.shared.set_membership(membership);
    }

    /// Asks peer `peer_id` who it is (its incarnation, and its cluster if any), without
    /// joining anything: how an empty data dir learns whether a cluster exists.
    pub async fn probe(&self, peer_id: u64) -> Result<PeerState, ProbeError> {
        let address = self
            .inner
            .shared
            .peer_address(peer_id)
            .ok_or(ProbeError::UnknownPeer(peer_id))?;
        dial::probe(&self.inner.shared, peer_id, &address)
            .await
            .map_err(|error| ProbeError::Dial(error.to_string()))
    }

    /// The client address a peer announced in its handshake, if known (for client
    /// redirects). Learned from either direction's handshake.
    pub fn peer_client_address(&self, id: u64) -> Option<String> {
        self.inner.shared.client_address(id)
    }

    /// The bound listen address (tests bind port 0).
    pub fn local_address(&self) -> SocketAddr {
        self.inner.local_address
    }

    /// A snapshot of the counters, for `/metrics`, `/status` and tests.
    pub fn stats(&self) -> TransportStats {
        self.inner.shared.counters.snapshot()
    }

    /// Asks every task to stop: the listener closes, connections close, queued messages
    /// are dropped. Returns at once; await [`Transport::stopped`] to know it is done.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once every task has stopped after [`Transport::shutdown`], so the listen
    /// port is free again (a restart in place, or a test, can bind it).
    pub async fn stopped(&self) {
        self.inner.tasks.lock().await.wait().await;
    }
}

/// Spawns the accept loop.
fn spawn_listener(listener: PeerListener, shutdown: Shutdown, task: TaskGuard, span: tracing::Span) {
    tokio::task::spawn(listener.run(shutdown, task).instrument(span));
}
