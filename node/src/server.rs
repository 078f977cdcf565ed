//! Assembles one node: storage, recovery or bootstrap, transport, driver, client
//! listener and ops HTTP, and runs it until shutdown. Used by `raftkv-node` and by
//! in-process tests.

use std::time::Duration;

use raft::{Message, NodeId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::bootstrap::{await_membership, member_raft, open_data_dir, IdentitySettings};
use crate::client_listener::serve_clients;
use crate::config::NodeSettings;
use crate::driver::{Driver, DriverConfig, PeerNetwork};
use crate::metrics::PeerCounters;
use crate::ops_http::{serve_ops, OpsState};
use crate::storage::fjall_store::FjallStore;
use crate::transport::{Transport, TransportConfig};

/// Client sessions kept for exactly-once writes (thesis §6.3).
pub const SESSIONS_MAX: usize = 100_000;
/// Inbound peer messages and client calls queued for the driver.
const DRIVER_QUEUE_MAX: usize = 8192;

impl PeerNetwork for Transport {
    fn send(&self, message: Message) {
        Transport::send(self, message);
    }

    fn peer_client_address(&self, id: NodeId) -> Option<String> {
        Transport::peer_client_address(self, id)
    }
}

/// Runs a node until `shutdown` turns true (SIGTERM) or its storage fails. A data dir
/// that is not a member of any cluster first probes the initial members
/// (`crate::bootstrap`); a new incarnation of an existing cluster stays out until shutdown.
pub async fn run_node(settings: NodeSettings, shutdown: watch::Receiver<bool>) -> Result<(), String> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", settings.data_dir.display()))?;
    let mut storage = FjallStore::open(&settings.data_dir).map_err(|e| e.to_string())?;
    let identity_settings = IdentitySettings {
        own_id: settings.id,
        cluster_name: settings.cluster_name.clone(),
        expected_cluster_id: settings.expected_cluster_id,
        members: settings.voters.clone(),
    };
    let incarnation = getrandom::u64().map_err(|e| format!("no randomness for a new incarnation: {e}"))?;
    let opened = open_data_dir(&mut storage, &identity_settings, incarnation)
        .map_err(|e| format!("{}: {e}", settings.data_dir.display()))?;
    let identity = opened.identity;
    let (inbound_sender, inbound) = mpsc::channel(DRIVER_QUEUE_MAX);
    let transport = Transport::start(
        TransportConfig {
            own_id: settings.id,
            cluster_name: settings.cluster_name.clone(),
            incarnation: identity.incarnation,
            membership: identity.cluster.clone(),
            listen_address: settings.listen_peer.clone(),
            peers: settings.peers.clone(),
            advertised_client_address: settings.advertise_client.clone(),
            queue_messages_max: 4096,
            reconnect_backoff_min: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_secs(1),
        },
        inbound_sender,
    )
    .await
    .map_err(|e| format!("cannot listen for peers on {}: {e}", settings.listen_peer))?;
    let membership = match identity.cluster.clone() {
        Some(membership) => membership,
        None => {
            let found = await_membership(
                &mut storage,
                &transport,
                &identity,
                &identity_settings,
                shutdown.clone(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let Some(membership) = found else {
                transport.shutdown();
                return Ok(());
            };
            transport.join(membership.clone());
            membership
        }
    };
    info!(
        id = settings.id,
        cluster_id = %membership.cluster_id,
        incarnation = format_args!("{:016x}", identity.incarnation),
        "member of cluster {}", membership.cluster_id
    );
    let (raft, machine) = member_raft(settings.raft.clone(), &membership, opened.recovered, SESSIONS_MAX)
        .map_err(|e| e.to_string())?;
    let client_listener = TcpListener::bind(&settings.listen_client)
        .await
        .map_err(|e| format!("cannot listen for clients on {}: {e}", settings.listen_client))?;
    let http_listener = TcpListener::bind(&settings.listen_http)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {}: {e}", settings.listen_http))?;
    let driver_config = DriverConfig {
        tick_interval: settings.tick_interval,
        snapshot_every_entries: settings.snapshot_every,
        own_client_address: settings.advertise_client.clone(),
        shutdown_transfer_ticks_max: settings.raft.election_timeout_ticks_max.saturating_mul(2),
        inputs_per_turn_max: 4096,
    };
    let (driver, handles) = Driver::new(raft, storage, transport.clone(), machine, driver_config);
    let (calls_sender, calls) = mpsc::channel(DRIVER_QUEUE_MAX);
    tokio::spawn(serve_clients(client_listener, calls_sender, shutdown.clone()));
    let counters_transport = transport.clone();
    let ops = OpsState {
        status: handles.status.clone(),
        metrics: handles.metrics.clone(),
        peer_counters: std::sync::Arc::new(move || {
            let stats = counters_transport.stats();
            PeerCounters {
                messages_sent: stats.messages_sent,
                messages_dropped: stats.messages_dropped,
                send_errors: stats.send_errors,
                connections_refused: stats.connections_refused,
                malformed_frames: stats.malformed_frames,
            }
        }),
    };
    tokio::spawn(serve_ops(http_listener, ops, shutdown.clone()));
    info!(
        id = settings.id,
        peer = %settings.listen_peer,
        client = %settings.listen_client,
        http = %settings.listen_http,
        "raftkv node serving"
    );
    let result = driver.run(inbound, calls, shutdown).await;
    transport.shutdown();
    result.map_err(|e| e.to_string())
}
