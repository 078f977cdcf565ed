//! A cluster of real raftkv nodes inside one madsim runtime: the node crate's driver,
//! peer transport, client listener, KV state machine and joiner, assembled by the
//! server's own `node::assembly::run_member`, with a [`SimStore`] instead of fjall and
//! without ops HTTP (which does not run under madsim).
//!
//! Each node is a madsim node at `10.0.0.<id>` whose `init` closure captures the node's
//! [`SimDisk`], so the disk outlives the node: [`SimCluster::kill`] kills the madsim node
//! and then crashes its disk (unsynced records lost, possibly a torn tail),
//! [`SimCluster::wipe`] empties a killed node's disk (a lost volume), and
//! [`SimCluster::restart`] re-runs `init`, which recovers from what the disk kept, or on
//! an empty disk starts a new incarnation that joins the cluster by itself.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use client::Endpoint;
use madsim::runtime::{Handle, NodeHandle};
use node::assembly::{run_member, MemberSettings, DRIVER_QUEUE_MAX};
use node::bootstrap::{open_data_dir, IdentitySettings};
use node::driver::{DriverConfig, PeerNetwork};
use node::membership::PeerEntry;
use node::transport::{Transport, TransportConfig};
use raft::{Message, NodeId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::incarnations::Incarnations;
use crate::invariants::RaftMonitor;
use crate::parameters::RunParameters;
use crate::sim_store::{CrashOutcome, SimDisk, SimStore};
use crate::tls::SimTls;

/// Port every node listens on for peers.
pub const PEER_PORT: u16 = 7001;
/// The simulated cluster's name (`--cluster-name`).
const CLUSTER_NAME: &str = "raftkv-sim";
/// Port every node listens on for clients.
pub const CLIENT_PORT: u16 = 7101;

/// The simulated address of node `id` (ids start at 1).
pub fn node_ip(id: NodeId) -> IpAddr {
    assert!(
        (1..=250).contains(&id),
        "node id {id} outside the simulated subnet"
    );
    IpAddr::from([10, 0, 0, id as u8])
}

/// The client endpoint of node `id`.
pub fn client_endpoint(id: NodeId) -> Endpoint {
    Endpoint {
        host: node_ip(id).to_string(),
        port: CLIENT_PORT,
    }
}

/// The driver's view of the peer transport. `impl PeerNetwork for Transport` lives in
/// `node::server`, which is not built under madsim; this forwards the same two calls,
/// showing every message to the invariant checker first.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    pub transport: Transport,
    pub id: NodeId,
    pub disk: SimDisk,
    pub monitor: RaftMonitor,
}

impl PeerNetwork for SimNetwork {
    fn send(&self, message: Message) {
        self.monitor.on_send(self.id, &message, &self.disk);
        self.transport.send(message);
    }

    fn peer_client_address(&self, id: NodeId) -> Option<String> {
        self.transport.peer_client_address(id)
    }

    fn set_peers(&self, peers: BTreeMap<NodeId, PeerEntry>) {
        self.transport.set_peers(peers);
    }
}

/// What every node of a simulated cluster is started with.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Voters, with ids `1..=size`.
    pub size: u64,
    pub tick_interval: Duration,
    pub election_timeout_ticks_min: u32,
    pub election_timeout_ticks_max: u32,
    pub heartbeat_interval_ticks: u32,
    pub snapshot_every_entries: u64,
    pub snapshot_trailing_entries: u64,
    pub snapshot_chunk_bytes: usize,
    pub max_append_bytes_per_message: usize,
    pub max_inflight_appends_per_follower: usize,
    pub lease_reads: bool,
    /// Sees every message and disk write of every node.
    pub monitor: RaftMonitor,
    /// Every node's data dir incarnation, kept outside the nodes.
    pub incarnations: Incarnations,
    /// The session limits every node puts in the log.
    pub session_limits: node::kv::command::SessionLimits,
    /// A known bug injected into every node (canary tests only).
    #[cfg(feature = "canaries")]
    pub canary: Option<raft::canary::Canary>,
    /// This run's certificates: every node runs mutual TLS, as in production.
    pub tls: Arc<SimTls>,
}

impl ClusterConfig {
    /// The cluster a run's parameters describe.
    pub fn from_parameters(parameters: &RunParameters) -> Self {
        Self {
            tls: Arc::new(SimTls::create(parameters.cluster_size)),
            size: parameters.cluster_size,
            tick_interval: parameters.tick_interval,
            election_timeout_ticks_min: parameters.election_timeout_ticks_min,
            election_timeout_ticks_max: parameters.election_timeout_ticks_max,
            heartbeat_interval_ticks: parameters.heartbeat_interval_ticks,
            snapshot_every_entries: parameters.snapshot_every_entries,
            snapshot_trailing_entries: parameters.snapshot_trailing_entries,
            snapshot_chunk_bytes: parameters.snapshot_chunk_bytes,
            max_append_bytes_per_message: parameters.max_append_bytes_per_message,
            max_inflight_appends_per_follower: parameters.max_inflight_appends_per_follower,
            lease_reads: parameters.lease_reads,
            monitor: RaftMonitor::new(),
            incarnations: Incarnations::default(),
            session_limits: parameters.session_limits,
            #[cfg(feature = "canaries")]
            canary: parameters.canary,
        }
    }
}

/// One member: its madsim node and the disk that survives it.
#[derive(Clone)]
struct Member {
    node: NodeHandle,
    disk: SimDisk,
    alive: bool,
}

/// A running simulated cluster. Create it inside a madsim runtime.
#[expect(missing_debug_implementations, reason = "madsim's NodeHandle is not Debug")]
pub struct SimCluster {
    handle: Handle,
    /// By Raft id.
    members: BTreeMap<NodeId, Member>,
    monitor: RaftMonitor,
    incarnations: Incarnations,
}

impl SimCluster {
    /// Creates and starts `config.size` nodes. They bootstrap on first start.
    pub fn start(config: ClusterConfig) -> Self {
        let handle = Handle::current();
        let mut members = BTreeMap::new();
        for id in 1..=config.size {
            let disk = SimDisk::new();
            config.monitor.register(id, disk.clone());
            let node_disk = disk.clone();
            let node_config = config.clone();
            let node = handle
                .create_node()
                .name(format!("raftkv-{id}"))
                .ip(node_ip(id))
                .init(move || {
                    let disk = node_disk.clone();
                    let config = node_config.clone();
                    async move {
                        if let Err(error) = run_sim_node(id, config, disk).await {
                            // A storage failure stops the node, as in production; the
                            // node stays down until the test restarts it.
                            tracing::error!(id, %error, "simulated node stopped");
                        }
                    }
                })
                .build();
            members.insert(
                id,
                Member {
                    node,
                    disk,
                    alive: true,
                },
            );
        }
        Self {
            handle,
            members,
            monitor: config.monitor,
            incarnations: config.incarnations,
        }
    }

    /// How many nodes the cluster has (every one meant to be a voter).
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The data dir incarnation node `id` runs under; `None` from the loss of its disk
    /// until it has opened the new one.
    pub fn incarnation(&self, id: NodeId) -> Option<u64> {
        self.incarnations.current(id)
    }

    /// Raft ids of every member.
    pub fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// Client endpoints of every member.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.members.keys().map(|&id| client_endpoint(id)).collect()
    }

    pub fn is_alive(&self, id: NodeId) -> bool {
        self.member(id).alive
    }

    /// Raft ids of the members running now.
    pub fn alive_ids(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(_, member)| member.alive)
            .map(|(id, _)| *id)
            .collect()
    }

    /// madsim's id of node `id`, for the network's clog calls.
    pub fn sim_node_id(&self, id: NodeId) -> madsim::task::NodeId {
        self.member(id).node.id()
    }

    /// Freezes node `id`: its tasks stop running; its sockets and timers stay.
    pub fn pause(&self, id: NodeId) {
        self.handle.pause(self.sim_node_id(id));
        info!(id, "paused node");
    }

    pub fn resume(&self, id: NodeId) {
        self.handle.resume(self.sim_node_id(id));
        info!(id, "resumed node");
    }

    /// The disk of node `id` (for counters and invariant checks).
    pub fn disk(&self, id: NodeId) -> &SimDisk {
        &self.member(id).disk
    }

    fn member(&self, id: NodeId) -> &Member {
        self.members
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    /// A power cut of node `id`: its tasks stop at once, then its disk loses what was not
    /// synced (with `tear`, a random prefix of the unsynced records survives).
    pub fn kill(&mut self, id: NodeId, tear: bool, rng_value: u64) -> CrashOutcome {
        let member = self.members.get_mut(&id).expect("known node");
        assert!(member.alive, "node {id} killed twice");
        // Kill before the crash, so no task of the dead node writes to the crashed disk.
        self.handle.kill(member.node.id());
        member.alive = false;
        let outcome = member.disk.crash(tear, rng_value);
        info!(id, ?outcome, "killed node");
        outcome
    }

    /// A lost disk: node `id` is killed if it runs, and its disk emptied (synced data,
    /// vote and identity gone); it stays down until [`SimCluster::restart`], which then
    /// finds an empty data dir. The invariant monitor is told, so the lost durable state
    /// is not taken for a violation, and the lost incarnation must stay silent.
    pub fn wipe(&mut self, id: NodeId) {
        if self.is_alive(id) {
            self.kill(id, false, 0);
        }
        let lost = self.member(id).disk.wipe();
        self.incarnations.lost(id, lost.incarnation);
        info!(id, lost_incarnation = ?lost.incarnation, "wiped node's disk");
        self.monitor.on_wipe(id, lost);
    }

    /// Starts node `id` again from what its disk kept.
    pub fn restart(&mut self, id: NodeId) {
        let member = self.members.get_mut(&id).expect("known node");
        assert!(!member.alive, "node {id} restarted while running");
        self.handle.restart(member.node.id());
        member.alive = true;
        info!(id, "restarted node");
    }
}

/// Runs node `id` until its storage fails (or forever), through the server's own
/// assembly (`node::assembly::run_member`) with a [`SimStore`] and a [`SimNetwork`].
async fn run_sim_node(id: NodeId, config: ClusterConfig, disk: SimDisk) -> Result<(), String> {
    let raft_config = raft::Config {
        election_timeout_ticks_min: config.election_timeout_ticks_min,
        election_timeout_ticks_max: config.election_timeout_ticks_max,
        heartbeat_interval_ticks: config.heartbeat_interval_ticks,
        max_append_bytes_per_message: config.max_append_bytes_per_message,
        max_inflight_appends_per_follower: config.max_inflight_appends_per_follower,
        snapshot_trailing_entries: config.snapshot_trailing_entries,
        snapshot_chunk_bytes: config.snapshot_chunk_bytes,
        lease_reads: config.lease_reads,
        // From the simulation's RNG: deterministic per run seed, different per start.
        seed: madsim::rand::random::<u64>(),
        #[cfg(feature = "canaries")]
        canary: config.canary,
        ..raft::Config::new(id)
    };
    let mut storage = SimStore::open_monitored(disk.clone(), id, config.monitor.clone());
    let identity_settings = IdentitySettings {
        own_id: id,
        cluster_name: CLUSTER_NAME.to_string(),
        expected_cluster_id: None,
        members: (1..=config.size).collect(),
    };
    // Used only if the data dir is empty (or must start over, see `check_data_dir`).
    let incarnation = madsim::rand::random::<u64>();
    #[cfg(feature = "canaries")]
    let incarnation = match config.canary {
        // The injected bug: an empty disk is taken for the member whose disk was lost.
        Some(raft::canary::Canary::EmptyDiskBootstrapsAsVoter) => {
            config.incarnations.last_lost(id).unwrap_or(incarnation)
        }
        _ => incarnation,
    };
    let opened = open_data_dir(&mut storage, &identity_settings, incarnation).map_err(|e| e.to_string())?;
    config.incarnations.opened(id, opened.identity.incarnation);
    let own_client_address = format!("{}:{CLIENT_PORT}", node_ip(id));
    let own_peer_address = format!("{}:{PEER_PORT}", node_ip(id));
    let peers: BTreeMap<NodeId, String> = (1..=config.size)
        .filter(|&peer| peer != id)
        .map(|peer| (peer, format!("{}:{PEER_PORT}", node_ip(peer))))
        .collect();
    let node_tls = config.tls.node(id);
    let (inbound_sender, inbound) = mpsc::channel(DRIVER_QUEUE_MAX);
    let transport = Transport::start(
        TransportConfig {
            own_id: id,
            cluster_name: CLUSTER_NAME.to_string(),
            incarnation: opened.identity.incarnation,
            membership: opened.identity.cluster.clone(),
            listen_address: format!("0.0.0.0:{PEER_PORT}"),
            peers: peers.clone(),
            advertised_client_address: own_client_address.clone(),
            queue_messages_max: 4096,
            reconnect_backoff_min: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_secs(1),
            tls: Some(node_tls.clone()),
        },
        inbound_sender,
    )
    .await
    .map_err(|e| format!("cannot listen for peers: {e}"))?;
    let client_listener = TcpListener::bind(format!("0.0.0.0:{CLIENT_PORT}"))
        .await
        .map_err(|e| format!("cannot listen for clients: {e}"))?;
    // Never sent: a simulated node stops by being killed. Kept alive for the whole run,
    // since a dropped sender reads as a shutdown request.
    let (_shutdown_sender, shutdown) = watch::channel(false);
    let settings = MemberSettings {
        identity: identity_settings,
        raft: raft_config,
        seeds: peers,
        driver: DriverConfig {
            tick_interval: config.tick_interval,
            snapshot_every_entries: config.snapshot_every_entries,
            // The simulation's entries are small: the entry count decides.
            snapshot_every_bytes: u64::MAX,
            own_client_address,
            own_peer_address,
            cluster_id: 0,
            shutdown_transfer_ticks_max: config.election_timeout_ticks_max.saturating_mul(2),
            inputs_per_turn_max: 4096,
            session_limits: config.session_limits,
            quota_bytes: None,
            disk_free_min_bytes: None,
            #[cfg(feature = "canaries")]
            canary: config.canary,
        },
        force_new_cluster: false,
        client_port: node::client_listener::ClientPort {
            tls: Some(node_tls),
            ..node::client_listener::ClientPort::insecure()
        },
    };
    let monitor = config.monitor.clone();
    let network = move |transport: Transport| SimNetwork {
        transport,
        id,
        disk,
        monitor,
    };
    run_member(
        storage,
        opened,
        transport,
        network,
        settings,
        client_listener,
        inbound,
        shutdown,
        |_, _| {},
    )
    .await
}
