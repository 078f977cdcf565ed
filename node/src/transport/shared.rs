//! State shared by the transport's handle and all of its tasks.
//!
//! The maps sit behind `std::sync::Mutex`: they are touched briefly and never across an
//! await, so a blocking lock is cheaper than an async one and is safe under madsim too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, watch, Notify};

use super::handshake::{Expected, PeerState};
use super::stats::Counters;
use crate::identity::{ClusterId, ClusterMembership};

/// Everything the tasks need; the handle keeps only what `send` and `shutdown` need on top.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) own_id: u64,
    pub(super) cluster_name: String,
    pub(super) incarnation: u64,
    /// `None` until this node is a member of a cluster; set once by `Transport::join`.
    membership: watch::Sender<Option<ClusterMembership>>,
    pub(super) advertised_client_address: String,
    /// Remote peers only (the configuration's entry for this node is left out).
    pub(super) peers: BTreeMap<u64, String>,
    pub(super) counters: Counters,
    /// Where received Raft messages go: the driver's bounded inbox.
    pub(super) inbound: mpsc::Sender<raft::Message>,
    peer_client_addresses: Mutex<BTreeMap<u64, String>>,
    /// The live inbound connection of each peer, by the signal that closes it.
    inbound_sessions: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Shared {
    pub(super) fn new(
        config: &super::TransportConfig,
        peers: BTreeMap<u64, String>,
        inbound: mpsc::Sender<raft::Message>,
    ) -> Self {
        let own_id = config.own_id;
        assert!(!peers.contains_key(&own_id), "a node is not its own peer");
        Self {
            own_id,
            cluster_name: config.cluster_name.clone(),
            incarnation: config.incarnation,
            membership: watch::Sender::new(config.membership.clone()),
            advertised_client_address: config.advertised_client_address.clone(),
            peers,
            counters: Counters::default(),
            inbound,
            peer_client_addresses: Mutex::new(BTreeMap::new()),
            inbound_sessions: Mutex::new(BTreeMap::new()),
        }
    }

    /// What an inbound handshake must match.
    pub(super) fn expected_handshake(&self) -> Expected<'_> {
        Expected {
            own_id: self.own_id,
            own_incarnation: self.incarnation,
            cluster_name: &self.cluster_name,
            cluster_id: self.cluster_id(),
            peers: &self.peers,
        }
    }

    pub(super) fn cluster_id(&self) -> Option<ClusterId> {
        self.membership
            .borrow()
            .as_ref()
            .map(|membership| membership.cluster_id)
    }

    /// This node as a probe's answer shows it.
    pub(super) fn peer_state(&self) -> PeerState {
        PeerState {
            node_id: self.own_id,
            incarnation: self.incarnation,
            membership: self.membership.borrow().clone(),
        }
    }

    /// Makes this node a member: from now on it sends and accepts Raft messages.
    pub(super) fn set_membership(&self, membership: ClusterMembership) {
        let previous = self.membership.send_replace(Some(membership.clone()));
        assert!(
            previous.is_none_or(|previous| previous == membership),
            "a node joins one cluster, once"
        );
    }

    /// Resolves once this node is a member of a cluster.
    pub(super) async fn membership_known(&self) {
        let mut membership = self.membership.subscribe();
        // Fails only if the sender is gone, which it is not while `self` lives.
        let _ = membership.wait_for(Option::is_some).await;
    }

    pub(super) fn record_client_address(&self, peer_id: u64, client_address: &str) {
        debug_assert!(
            self.peers.contains_key(&peer_id),
            "handshakes name configured peers"
        );
        let mut addresses = lock(&self.peer_client_addresses);
        if addresses.get(&peer_id).map(String::as_str) != Some(client_address) {
            addresses.insert(peer_id, client_address.to_string());
        }
    }

    pub(super) fn client_address(&self, peer_id: u64) -> Option<String> {
        lock(&self.peer_client_addresses).get(&peer_id).cloned()
    }

    /// Registers a new inbound connection of `peer_id` and closes the previous one. A peer
    /// dials again only when it believes its old connection dead (it restarted, or a
    /// write failed); without this, a connection left half-open by a crashed peer would
    /// hold a task and a slot forever, since nothing is ever written back on it.
    pub(super) fn claim_inbound_session(&self, peer_id: u64) -> Arc<Notify> {
        let close = Arc::new(Notify::new());
        if let Some(previous) = lock(&self.inbound_sessions).insert(peer_id, close.clone()) {
            // `notify_one` stores a permit if the old session is not waiting right now.
            previous.notify_one();
        }
        close
    }

    /// Unregisters an ended session, unless a newer one already replaced it.
    pub(super) fn release_inbound_session(&self, peer_id: u64, close: &Arc<Notify>) {
        let mut sessions = lock(&self.inbound_sessions);
        if sessions
            .get(&peer_id)
            .is_some_and(|current| Arc::ptr_eq(current, close))
        {
            sessions.remove(&peer_id);
        }
    }
}

/// Locks `mutex` even if a panicking thread poisoned it: the maps hold plain values that
/// are valid after any partial update.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
