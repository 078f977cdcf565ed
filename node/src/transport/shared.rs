//! State shared by the transport's handle and all of its tasks.
//!
//! The maps sit behind `std::sync::Mutex`: they are touched briefly and never across an
//! await, so a blocking lock is cheaper than an async one and is safe under madsim too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, watch, Notify};
use wire::tls::ReloadingTls;

use super::handshake::{Expected, PeerState};
use super::stats::Counters;
use crate::identity::{ClusterId, ClusterMembership};
use crate::membership::PeerEntry;

/// One peer's live inbound connection.
#[derive(Debug)]
struct InboundSession {
    /// Closes it.
    close: Arc<Notify>,
    /// The incarnation its handshake carried.
    incarnation: u64,
    /// Whether that incarnation was the member's when it was accepted (else only a
    /// leader's messages pass).
    verified: bool,
}

/// Everything the tasks need; the handle keeps only what `send` and `shutdown` need on top.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) own_id: u64,
    pub(super) cluster_name: String,
    pub(super) incarnation: u64,
    /// `None` until this node is a member of a cluster; set once by `Transport::join`.
    membership: watch::Sender<Option<ClusterMembership>>,
    pub(super) advertised_client_address: String,
    /// Remote peers only (the configuration's entry for this node is left out). Replaced
    /// whenever the configuration or its member records change (`Transport::set_peers`).
    peers: Mutex<BTreeMap<u64, PeerEntry>>,
    /// The configured peers at start (`--peers`): still probed when the configuration
    /// no longer names them (a joining node asks them for the cluster's leader).
    seeds: BTreeMap<u64, String>,
    pub(super) counters: Counters,
    /// Where received Raft messages go: the driver's bounded inbox.
    pub(super) inbound: mpsc::Sender<raft::Message>,
    peer_client_addresses: Mutex<BTreeMap<u64, String>>,
    /// The live inbound connection of each peer.
    inbound_sessions: Mutex<BTreeMap<u64, InboundSession>>,
    /// Mutual TLS on every link (`TransportConfig::tls`).
    pub(super) tls: Option<Arc<ReloadingTls>>,
}

impl Shared {
    pub(super) fn new(
        config: &super::TransportConfig,
        peers: BTreeMap<u64, PeerEntry>,
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
            tls: config.tls.clone(),
            seeds: peers
                .iter()
                .filter_map(|(&id, entry)| Some((id, entry.address.clone()?)))
                .collect(),
            peers: Mutex::new(peers),
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
            peers: self.peers(),
        }
    }

    /// The current peers (a copy: a handful of entries).
    pub(super) fn peers(&self) -> BTreeMap<u64, PeerEntry> {
        lock(&self.peers).clone()
    }

    /// The address of peer `peer_id`: the configuration's, else the seed's.
    pub(super) fn peer_address(&self, peer_id: u64) -> Option<String> {
        lock(&self.peers)
            .get(&peer_id)
            .and_then(|entry| entry.address.clone())
            .or_else(|| self.seeds.get(&peer_id).cloned())
    }

    /// Replaces the peer set, and closes every inbound connection whose standing changed:
    /// of a removed peer, of an incarnation that is no longer the member's (a node
    /// replaced by a new incarnation must stop speaking for it at once), or of one that
    /// just became the member's (it dials again and is accepted in full).
    pub(super) fn replace_peers(&self, peers: BTreeMap<u64, PeerEntry>) {
        assert!(!peers.contains_key(&self.own_id), "a node is not its own peer");
        let mut sessions = lock(&self.inbound_sessions);
        sessions.retain(|peer_id, session| {
            let unchanged = peers.get(peer_id).is_some_and(|entry| {
                let verified = entry
                    .incarnation
                    .is_none_or(|member| member == session.incarnation);
                verified == session.verified
            });
            if !unchanged {
                session.close.notify_one();
            }
            unchanged
        });
        *lock(&self.peers) = peers;
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
            client_address: self.advertised_client_address.clone(),
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
    pub(super) fn claim_inbound_session(
        &self,
        peer_id: u64,
        incarnation: u64,
        verified: bool,
    ) -> Arc<Notify> {
        let close = Arc::new(Notify::new());
        let session = InboundSession {
            close: close.clone(),
            incarnation,
            verified,
        };
        if let Some(previous) = lock(&self.inbound_sessions).insert(peer_id, session) {
            // `notify_one` stores a permit if the old session is not waiting right now.
            previous.close.notify_one();
        }
        close
    }

    /// Unregisters an ended session, unless a newer one already replaced it.
    pub(super) fn release_inbound_session(&self, peer_id: u64, close: &Arc<Notify>) {
        let mut sessions = lock(&self.inbound_sessions);
        if sessions
            .get(&peer_id)
            .is_some_and(|current| Arc::ptr_eq(&current.close, close))
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
