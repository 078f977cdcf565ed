//! Assembles one node: storage, recovery or bootstrap, transport, driver, client
//! listener and ops HTTP, and runs it until shutdown. Used by `raftkv-node` and by
//! in-process tests.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use raft::{Message, NodeId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use wire::tls::ReloadingTls;

use crate::assembly::{run_member, MemberSettings, DRIVER_QUEUE_MAX};
use crate::backup_images::{BackupImages, SAVE_IDLE_TIMEOUT};
use crate::bootstrap::{open_data_dir, IdentitySettings};
use crate::client_listener::ClientPort;
use crate::config::{NodeSettings, Security};
use crate::driver::{DriverConfig, PeerNetwork};
use crate::membership::PeerEntry;
use crate::metrics::PeerCounters;
use crate::ops_http::{serve_ops, OpsState};
use crate::storage::ballast::{disk_free_bytes, tend_ballast, BallastAction, BALLAST_FILE};
use crate::storage::fjall_store::FjallStore;
use crate::transport::{Transport, TransportConfig};

impl PeerNetwork for Transport {
    fn send(&self, message: Message) {
        Transport::send(self, message);
    }

    fn peer_client_address(&self, id: NodeId) -> Option<String> {
        Transport::peer_client_address(self, id)
    }

    fn set_peers(&self, peers: BTreeMap<NodeId, PeerEntry>) {
        Transport::set_peers(self, peers);
    }
}

/// Runs a node until `shutdown` turns true (SIGTERM) or its storage fails. A data dir
/// that is not a member of any cluster first probes the initial members
/// (`crate::bootstrap`), then founds a cluster or joins one (`crate::join`).
pub async fn run_node(settings: NodeSettings, shutdown: watch::Receiver<bool>) -> Result<(), String> {
    create_private_dir(&settings.data_dir)?;
    let (tls, client_port) = match &settings.security {
        Security::Insecure => {
            warn!(
                "--insecure: plain TCP on every port, no authentication; anyone who reaches these ports \
                 can read and write every key and pose as a peer. For a laptop demo only."
            );
            let client_port = ClientPort {
                connections_max: settings.client_connections_max,
                ..ClientPort::insecure()
            };
            (None, client_port)
        }
        Security::Tls { files, roles } => {
            let tls = Arc::new(ReloadingTls::load(files.clone()).map_err(|e| format!("TLS: {e}"))?);
            let client_port = ClientPort {
                tls: Some(tls.clone()),
                roles: roles.clone(),
                connections_max: settings.client_connections_max,
                backups: None,
            };
            (Some(tls), client_port)
        }
    };
    tend_space_ballast(&settings);
    let backups = BackupImages::open(&settings.data_dir).map_err(|e| e.to_string())?;
    tokio::spawn(reap_idle_backups(backups.clone(), shutdown.clone()));
    let client_port = ClientPort {
        backups: Some(backups),
        ..client_port
    };
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
    let (inbound_sender, inbound) = mpsc::channel(DRIVER_QUEUE_MAX);
    let transport = Transport::start(
        TransportConfig {
            own_id: settings.id,
            cluster_name: settings.cluster_name.clone(),
            incarnation: opened.identity.incarnation,
            membership: opened.identity.cluster.clone(),
            listen_address: settings.listen_peer.clone(),
            peers: settings.peers.clone(),
            advertised_client_address: settings.advertise_client.clone(),
            queue_messages_max: 4096,
            reconnect_backoff_min: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_secs(1),
            tls: tls.clone(),
        },
        inbound_sender,
    )
    .await
    .map_err(|e| format!("cannot listen for peers on {}: {e}", settings.listen_peer))?;
    let client_listener = TcpListener::bind(&settings.listen_client)
        .await
        .map_err(|e| format!("cannot listen for clients on {}: {e}", settings.listen_client))?;
    let http_listener = TcpListener::bind(&settings.listen_http)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {}: {e}", settings.listen_http))?;
    let member_settings = MemberSettings {
        identity: identity_settings,
        raft: settings.raft.clone(),
        seeds: settings.peers.clone(),
        driver: DriverConfig {
            tick_interval: settings.tick_interval,
            snapshot_every_entries: settings.snapshot_every,
            snapshot_every_bytes: settings.snapshot_every_bytes,
            own_client_address: settings.advertise_client.clone(),
            own_peer_address: settings.advertise_peer.clone(),
            cluster_id: 0,
            shutdown_transfer_ticks_max: settings.raft.election_timeout_ticks_max.saturating_mul(2),
            inputs_per_turn_max: 4096,
            session_limits: settings.session_limits,
            quota_bytes: settings.quota_bytes,
            disk_free_min_bytes: settings.disk_free_min_bytes,
        },
        force_new_cluster: settings.force_new_cluster,
        client_port,
    };
    let ops_transport = transport.clone();
    let ops_tls = tls.clone();
    let ops_shutdown = shutdown.clone();
    let driver_stall_max = settings.driver_stall_max;
    let on_start = move |handles: &crate::driver::DriverHandles, calls| {
        let ops = OpsState {
            status: handles.status.clone(),
            metrics: handles.metrics.clone(),
            heartbeat: handles.heartbeat.clone(),
            calls,
            driver_stall_max,
            peer_counters: std::sync::Arc::new(move || {
                let stats = ops_transport.stats();
                PeerCounters {
                    messages_sent: stats.messages_sent,
                    messages_dropped: stats.messages_dropped,
                    send_errors: stats.send_errors,
                    connections_refused: stats.connections_refused,
                    malformed_frames: stats.malformed_frames,
                }
            }),
        };
        tokio::spawn(serve_ops(http_listener, ops, ops_tls, ops_shutdown));
        info!(
            id = settings.id,
            peer = %settings.listen_peer,
            client = %settings.listen_client,
            http = %settings.listen_http,
            "raftkv node serving"
        );
    };
    let network = |transport: Transport| transport;
    run_member(
        storage,
        opened,
        transport,
        network,
        member_settings,
        client_listener,
        inbound,
        shutdown,
        on_start,
    )
    .await
}

/// Drops the backups whose client went away, so their files do not wait for the next
/// backup request to be deleted.
async fn reap_idle_backups(backups: Arc<BackupImages>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(SAVE_IDLE_TIMEOUT / 4) => backups.reap(),
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Creates the data dir readable by its owner only (0700), and tightens an existing one:
/// it holds every key and value. (Files in it are 0600: `main` sets the umask.) A data
/// dir this user does not own (a Kubernetes volume's root, owned by root and shared
/// through `fsGroup`) cannot be chmod-ed: its mode is then the volume's business, and
/// everything the node creates inside is still its owner's alone.
fn create_private_dir(dir: &Path) -> Result<(), String> {
    let context = |e: std::io::Error| format!("cannot create data dir {}: {e}", dir.display());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(context)?;
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            warn!(dir = %dir.display(), %error, "cannot restrict the data dir to 0700 (not its owner); files in it are 0600");
            Ok(())
        }
        Err(error) => Err(context(error)),
    }
}

/// Keeps the data dir's emergency reserve (`storage::ballast`): removed when the disk is
/// short, so the store can open; reserved again once there is plenty of room.
fn tend_space_ballast(settings: &NodeSettings) {
    let data_dir = &settings.data_dir;
    match tend_ballast(data_dir, settings.disk_ballast_bytes, disk_free_bytes) {
        Ok(BallastAction::Removed { free_bytes }) => warn!(
            free_bytes,
            "the data dir's disk is nearly full: removed its ballast ({BALLAST_FILE}) to start; the \
             leader refuses writes until there is room (delete keys, or free disk space)"
        ),
        Ok(BallastAction::Created) => info!(bytes = settings.disk_ballast_bytes, "reserved the disk ballast"),
        Ok(BallastAction::Skipped { free_bytes }) => warn!(
            free_bytes,
            "too little disk room to reserve the ballast (--disk-ballast-bytes); starting without it"
        ),
        Ok(BallastAction::Kept | BallastAction::None) => {}
        // A ballast is a safety margin, not state: a filesystem that cannot reserve one
        // (no fallocate) runs without.
        Err(error) => {
            warn!(%error, dir = %data_dir.display(), "cannot tend the disk ballast; starting without it")
        }
    }
}
