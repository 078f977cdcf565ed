//! One assembly of a member from its parts, used by `raftkv-node` (`crate::server`, with
//! fjall and TCP) and by the simulation (with its own storage and a network that shows
//! every message to the invariant checker) alike, so the simulation runs the server's own
//! wiring: membership (found, recover or join), Raft, driver, client listener, joiner.

use std::collections::BTreeMap;

use raft::{Message, NodeId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::bootstrap::{establish_membership, member_raft, IdentitySettings, OpenedDataDir};
use crate::client_listener::{serve_clients, ClientPort};
use crate::driver::{run_on_own_thread, ClientCall, Driver, DriverConfig, DriverHandles, PeerNetwork};
use crate::force_new_cluster::force_new_cluster;
use crate::join::{join_cluster, must_join, JoinSettings};
use crate::membership::{load_records, PeerDirectory};
use crate::storage::Storage;
use crate::transport::Transport;

/// Inbound peer messages and client calls queued for the driver.
pub const DRIVER_QUEUE_MAX: usize = 8192;

/// What a member is assembled with, beyond its storage and sockets.
#[derive(Debug, Clone)]
pub struct MemberSettings {
    pub identity: IdentitySettings,
    pub raft: raft::Config,
    /// `--peers` without this node: reaching the founders before they have records, and
    /// whom a joining node asks.
    pub seeds: BTreeMap<NodeId, String>,
    /// The driver's settings; `cluster_id` is filled in here.
    pub driver: DriverConfig,
    /// `--force-new-cluster`: become the only voter (`crate::force_new_cluster`).
    pub force_new_cluster: bool,
    /// The client port's TLS, roles and bounds; its TLS also serves a joining node's
    /// requests to the leader.
    pub client_port: ClientPort,
}

/// Runs a member until `shutdown` (or a storage failure). `network` wraps the started
/// transport for the driver; `on_start` sees the driver's handles and a sender of client
/// calls before it runs (the server starts ops HTTP there: `/readyz` reads through it). Returns `Ok` without running a driver if shutdown
/// comes while the node is still probing its peers.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of a node; a struct would only rename them"
)]
pub async fn run_member<S: Storage, N: PeerNetwork>(
    mut storage: S,
    opened: OpenedDataDir,
    transport: Transport,
    network: impl FnOnce(Transport) -> N,
    settings: MemberSettings,
    client_listener: TcpListener,
    inbound: mpsc::Receiver<Message>,
    shutdown: watch::Receiver<bool>,
    on_start: impl FnOnce(&DriverHandles, mpsc::Sender<ClientCall>),
) -> Result<(), String> {
    let identity = opened.identity;
    let own_id = identity.node_id;
    let recovered = if settings.force_new_cluster {
        Some(force_new_cluster(&mut storage, own_id, opened.recovered).map_err(|e| e.to_string())?)
    } else {
        opened.recovered
    };
    let joined = establish_membership(
        &mut storage,
        &identity,
        &transport,
        &settings.identity,
        shutdown.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let Some(joined) = joined else {
        transport.shutdown();
        return Ok(());
    };
    let membership = joined.membership().clone();
    info!(
        id = own_id,
        cluster_id = %membership.cluster_id,
        incarnation = format_args!("{:016x}", identity.incarnation),
        "member of cluster {}", membership.cluster_id
    );
    let had_raft_state = recovered.is_some();
    let mut start = member_raft(settings.raft.clone(), &joined, recovered).map_err(|e| e.to_string())?;
    if had_raft_state {
        let records = load_records(&storage).map_err(|e| e.to_string())?;
        start.joining = must_join(
            start.raft.conf_state(),
            own_id,
            identity.incarnation,
            records.get(&own_id),
        );
        if !start.joining && !start.raft.conf_state().contains(own_id) {
            warn!(
                id = own_id,
                "this node was removed from the configuration: it stays idle; wipe its data dir to make \
                 it join as a new incarnation"
            );
        }
    }
    let directory = PeerDirectory::new(settings.seeds.clone(), Some(&membership));
    let driver_config = DriverConfig {
        cluster_id: membership.cluster_id.0,
        ..settings.driver.clone()
    };
    let (mut driver, handles) = Driver::new(
        start.raft,
        storage,
        network(transport.clone()),
        start.machine,
        driver_config.clone(),
        directory,
    )
    .map_err(|e| e.to_string())?;
    if let Some(backups) = &settings.client_port.backups {
        driver.serve_backups(backups.clone());
    }
    let (calls_sender, calls) = mpsc::channel::<ClientCall>(DRIVER_QUEUE_MAX);
    let client_tls = settings.client_port.tls.clone();
    tokio::spawn(serve_clients(
        client_listener,
        settings.client_port.clone(),
        calls_sender.clone(),
        shutdown.clone(),
    ));
    if start.joining {
        let join = JoinSettings {
            own_id,
            incarnation: identity.incarnation,
            cluster_id: membership.cluster_id,
            own_peer_address: driver_config.own_peer_address.clone(),
            own_client_address: driver_config.own_client_address.clone(),
            seeds: settings.seeds.keys().copied().collect(),
            tls: client_tls,
        };
        tokio::spawn(join_cluster(
            join,
            transport.clone(),
            handles.status.clone(),
            shutdown.clone(),
        ));
    }
    on_start(&handles, calls_sender);
    let result = run_on_own_thread(driver.run(inbound, calls, shutdown)).await;
    transport.shutdown();
    result?.map_err(|e| e.to_string())
}
