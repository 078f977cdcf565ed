//! The node's settings: flags with `RAFTKV_*` environment fallbacks. Everything is
//! checked at start; a missing or contradictory setting fails with a message naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use raft::NodeId;

use wire::tls::TlsFiles;

use crate::client_roles::ClientRoles;
use crate::identity::ClusterId;
use crate::kv::command::SessionLimits;
use crate::pod::node_id_from_pod_name;

/// A week: a session that outlives it holds memory for a client long gone.
const SESSION_TIMEOUT_SECS_MAX: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A raftkv server: one member of a Raft-replicated key/value cluster.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "raftkv-node",
    version,
    after_help = "Restore a backup (`raftkv snapshot save`) into a fresh data dir: raftkv-node restore --help"
)]
pub struct NodeArgs {
    /// This node's Raft id (>= 1). Alternatively give --pod-name.
    #[arg(long, env = "RAFTKV_ID")]
    pub id: Option<NodeId>,
    /// A StatefulSet pod name such as `raftkv-2`: the id is its ordinal + 1.
    #[arg(long, env = "RAFTKV_POD_NAME")]
    pub pod_name: Option<String>,
    /// The initial members: `1=host:port,2=host:port,...` (peer ports). A first start of
    /// all of them founds a cluster; a node whose id is not listed (a scale-up) never
    /// founds, and joins the cluster these members run. After the first start the
    /// configuration in the log is the truth; these only seed the first connections.
    /// Host names are resolved on each connection attempt (stable DNS names work).
    #[arg(long, env = "RAFTKV_PEERS")]
    pub peers: String,
    /// The cluster's name: mixed into the cluster id when the cluster is founded, and
    /// checked in every handshake and against the data dir at start.
    #[arg(
        long,
        env = "RAFTKV_CLUSTER_NAME",
        default_value = "raftkv",
        alias = "cluster-id"
    )]
    pub cluster_name: String,
    /// Refuse to start on a data dir of any other cluster id (16 hex digits, as `/status`
    /// and the start-up log show it).
    #[arg(long, env = "RAFTKV_EXPECT_CLUSTER_ID")]
    pub expect_cluster_id: Option<String>,
    #[arg(long, env = "RAFTKV_LISTEN_PEER", default_value = "127.0.0.1:7001")]
    pub listen_peer: String,
    #[arg(long, env = "RAFTKV_LISTEN_CLIENT", default_value = "127.0.0.1:7101")]
    pub listen_client: String,
    #[arg(long, env = "RAFTKV_LISTEN_HTTP", default_value = "127.0.0.1:7201")]
    pub listen_http: String,
    /// The client address other nodes hand out in redirects to this one.
    /// Defaults to --listen-client when that names a concrete host.
    #[arg(long, env = "RAFTKV_ADVERTISE_CLIENT")]
    pub advertise_client: Option<String>,
    /// The peer address recorded for this node in the cluster's configuration. Defaults
    /// to this node's entry in --peers, else --listen-peer when that names a concrete host.
    #[arg(long, env = "RAFTKV_ADVERTISE_PEER")]
    pub advertise_peer: Option<String>,
    #[arg(long, env = "RAFTKV_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Length of one Raft tick. The defaults (10 ms ticks, elections after 150-300 ms of
    /// silence, heartbeats every 30 ms) suit members on one LAN, as etcd's do: a killed
    /// leader is replaced about 0.2 s later. Raise the tick for members a slow or
    /// jittery network apart (etcd's guidance: a heartbeat near the round trip, an
    /// election timeout ten times it); check-quorum and pre-vote keep a late heartbeat
    /// from deposing a healthy leader, but a follower that misses heartbeats for a whole
    /// election timeout still starts an election.
    #[arg(long, env = "RAFTKV_TICK_MS", default_value_t = 10)]
    pub tick_ms: u64,
    #[arg(long, env = "RAFTKV_ELECTION_TICKS_MIN", default_value_t = 15)]
    pub election_ticks_min: u32,
    #[arg(long, env = "RAFTKV_ELECTION_TICKS_MAX", default_value_t = 30)]
    pub election_ticks_max: u32,
    #[arg(long, env = "RAFTKV_HEARTBEAT_TICKS", default_value_t = 3)]
    pub heartbeat_ticks: u32,
    /// Lease reads (Raft thesis §6.4.1): as leader, serve linearizable reads without a
    /// heartbeat round of their own while a quorum acknowledged a heartbeat less than
    /// `election-ticks-min - 1 - 10%` ticks ago. Assumes every member's clock runs at the
    /// same rate within 10% (ticks are measured on each node's monotonic clock; a paused
    /// process catches up its ticks before it serves again). Off: every read confirms
    /// leadership with a heartbeat round (ReadIndex), which assumes nothing about clocks.
    #[arg(long, env = "RAFTKV_LEASE_READS")]
    pub lease_reads: bool,
    /// Snapshot the KV map and compact the log every this many applied entries (etcd's
    /// `--snapshot-count` default). An image holds the whole state, the history of up
    /// to 100,000 revisions included, so snapshotting more often rewrites that much more
    /// than was written (at 10,000, building images took 40% as much CPU as the driver
    /// under a put load); `--snapshot-every-bytes` bounds the log held in memory.
    #[arg(long, env = "RAFTKV_SNAPSHOT_EVERY", default_value_t = 100_000)]
    pub snapshot_every: u64,
    /// Log entries a compaction keeps before its snapshot, so that a follower this far
    /// behind catches up from the log instead of receiving a whole snapshot.
    #[arg(long, env = "RAFTKV_SNAPSHOT_TRAILING_ENTRIES", default_value_t = 1_000)]
    pub snapshot_trailing_entries: u64,
    /// Also snapshot once this many bytes of entries were applied since the last one: the
    /// Raft log since the last snapshot is held in memory, and this bounds it when values
    /// are large.
    #[arg(long, env = "RAFTKV_SNAPSHOT_EVERY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub snapshot_every_bytes: u64,
    /// At most this many bytes of the entries kept before a snapshot.
    #[arg(long, env = "RAFTKV_SNAPSHOT_TRAILING_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub snapshot_trailing_bytes: u64,
    #[arg(long, env = "RAFTKV_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A client session (exactly-once writes, Raft thesis §6.3) expires this long after
    /// its latest write: a retry later than that is refused, never applied twice. Carried
    /// in the log with each session this node opens as leader, so replicas never disagree.
    #[arg(long, env = "RAFTKV_SESSION_TIMEOUT_SECS", default_value_t = 3600)]
    pub session_timeout_secs: u64,
    /// Open client sessions kept at most; past it, the one closest to expiry is evicted
    /// (its retries are refused). Carried in the log like the timeout.
    #[arg(long, env = "RAFTKV_SESSIONS_MAX", default_value_t = 100_000)]
    pub sessions_max: u64,
    /// Bytes of cached answers kept at most over all sessions; past it, the sessions
    /// closest to expiry are evicted. Only writes that ask for the key's value before
    /// them (`--prev-kv`) cache a value; others cache a few bytes. Carried in the log
    /// like the timeout.
    #[arg(long, env = "RAFTKV_SESSION_CACHE_BYTES", default_value_t = SessionLimits::DEFAULT.cached_bytes_max)]
    pub session_cache_bytes: u64,
    /// `/livez` fails once the driver loop has not turned for this long (it turns at
    /// least every tick; a storage call that never returns stops it).
    #[arg(long, env = "RAFTKV_LIVEZ_STALL_SECS", default_value_t = 10)]
    pub livez_stall_secs: u64,
    /// Space quota, as etcd's: as leader, refuse writes that would take the clients' keys
    /// and values past this many bytes (`NoSpace`); reads, deletes and compaction go on.
    /// 0: no quota. Keep it well below the disk (the log, snapshots and the storage
    /// engine's overhead come on top) and below memory (a snapshot is built in memory).
    #[arg(long, env = "RAFTKV_QUOTA_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub quota_bytes: u64,
    /// A guard for what the quota does not count (the log, snapshot images, the storage
    /// engine's files, other tenants of the disk): as leader, refuse writes that store
    /// data (`NoSpace`) while the data dir's disk has less than this many bytes free, so
    /// the disk keeps room for deletes, compaction and snapshots. Checked about once a
    /// second. 0: no guard.
    #[arg(long, env = "RAFTKV_DISK_FREE_MIN_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub disk_free_min_bytes: u64,
    /// An emergency reserve: a file of this many bytes in the data dir, reserved (not
    /// written) at start when the disk has room. A node that starts on a disk with less
    /// free than this removes it, so it can start, serve reads and take deletes even after
    /// something else filled the disk (`storage/ballast.rs`). 0: none (and any left over
    /// is removed).
    #[arg(long, env = "RAFTKV_DISK_BALLAST_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub disk_ballast_bytes: u64,
    /// Disaster recovery from a survivor: make this node the only voter of its cluster,
    /// with every entry of its log committed. Only when a majority's data is lost for
    /// good; wipe the other members before they start again (they rejoin by themselves).
    #[arg(long, env = "RAFTKV_FORCE_NEW_CLUSTER")]
    pub force_new_cluster: bool,
    /// This node's certificate (PEM), naming `raftkv-node-<id>` (`raftkv certs init`).
    /// Used on the peer, client and ops HTTP ports, and to dial peers. (Its environment
    /// variable is not the CLI's `RAFTKV_TLS_CERT`, which names a client's certificate: a
    /// node started in a shell that exports the CLI's would otherwise take it.)
    #[arg(long, env = "RAFTKV_NODE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "RAFTKV_NODE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The certificate authority every peer and client certificate must chain to (PEM).
    #[arg(long, env = "RAFTKV_NODE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// A directory as `raftkv certs init` writes it (or a Secret made from one, mounted):
    /// short for --tls-cert DIR/node-<id>.crt --tls-key DIR/node-<id>.key --tls-ca
    /// DIR/ca.crt, with <id> this node's id (--id, or from --pod-name). For a StatefulSet,
    /// whose pods all get the same settings. Exclusive with the three flags.
    #[arg(long, env = "RAFTKV_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Plain TCP on every port, no authentication: for a laptop demo only. Without it,
    /// the three --tls-* flags are required.
    #[arg(long, env = "RAFTKV_INSECURE")]
    pub insecure: bool,
    /// Client roles: lines of `<certificate name> <read|write|admin>`. Without it, the
    /// `admin` client (as `raftkv certs init` makes) is the only client let in.
    #[arg(long, env = "RAFTKV_CLIENT_ROLES")]
    pub client_roles: Option<PathBuf>,
    /// Client connections served at once (past their TLS handshake).
    #[arg(long, env = "RAFTKV_CLIENT_CONNECTIONS_MAX", default_value_t = 1024)]
    pub client_connections_max: usize,
}

/// How the node's ports are secured.
#[derive(Debug, Clone)]
pub enum Security {
    /// `--insecure`: plain TCP, every client may do everything.
    Insecure,
    /// Mutual TLS on peer and client ports, TLS on the ops port; clients by role.
    Tls { files: TlsFiles, roles: ClientRoles },
}

/// Settings after validation.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub id: NodeId,
    /// Peer addresses of the other initial members (`--peers` without this node).
    pub peers: BTreeMap<NodeId, String>,
    /// Every initial member's id (`--peers`); this node's only if it is listed.
    pub voters: Vec<NodeId>,
    pub cluster_name: String,
    pub expected_cluster_id: Option<ClusterId>,
    pub listen_peer: String,
    pub listen_client: String,
    pub listen_http: String,
    pub advertise_client: String,
    pub advertise_peer: String,
    pub data_dir: PathBuf,
    pub tick_interval: Duration,
    pub raft: raft::Config,
    pub snapshot_every: u64,
    pub snapshot_every_bytes: u64,
    pub log_format: LogFormat,
    pub session_limits: SessionLimits,
    pub driver_stall_max: Duration,
    pub quota_bytes: Option<u64>,
    pub disk_free_min_bytes: Option<u64>,
    pub disk_ballast_bytes: u64,
    pub force_new_cluster: bool,
    pub security: Security,
    pub client_connections_max: usize,
}

impl NodeArgs {
    pub fn validate(&self) -> Result<NodeSettings, String> {
        let from_pod =
            match &self.pod_name {
                Some(name) => Some(node_id_from_pod_name(name).ok_or_else(|| {
                    format!("--pod-name/RAFTKV_POD_NAME {name:?} does not end in -<ordinal>")
                })?),
                None => None,
            };
        let id = match (self.id, from_pod) {
            (Some(id), Some(pod_id)) if id != pod_id => {
                return Err(format!(
                    "--id {id} contradicts --pod-name {:?} (id {pod_id})",
                    self.pod_name
                ));
            }
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => return Err("set --id/RAFTKV_ID or --pod-name/RAFTKV_POD_NAME".into()),
        };
        if id == 0 {
            return Err("--id must be at least 1".into());
        }
        let members = parse_peers(&self.peers)?;
        let advertise_client = match &self.advertise_client {
            Some(address) => address.clone(),
            None if is_wildcard(&self.listen_client) => {
                return Err(format!(
                    "--listen-client {} is a wildcard: set --advertise-client/RAFTKV_ADVERTISE_CLIENT",
                    self.listen_client
                ));
            }
            None => self.listen_client.clone(),
        };
        let advertise_peer = match (&self.advertise_peer, members.get(&id)) {
            (Some(address), Some(listed)) if address != listed => {
                return Err(format!(
                    "--advertise-peer {address} contradicts this node's entry in --peers ({listed})"
                ));
            }
            (Some(address), _) | (None, Some(address)) => address.clone(),
            (None, None) if is_wildcard(&self.listen_peer) => {
                return Err(format!(
                    "--peers does not list node {id} and --listen-peer {} is a wildcard: set \
                     --advertise-peer/RAFTKV_ADVERTISE_PEER (where the other members reach this node)",
                    self.listen_peer
                ));
            }
            (None, None) => self.listen_peer.clone(),
        };
        if self.tick_ms == 0 {
            return Err("--tick-ms must be at least 1".into());
        }
        if self.snapshot_every == 0 {
            return Err("--snapshot-every must be at least 1".into());
        }
        if self.snapshot_every_bytes == 0 {
            return Err("--snapshot-every-bytes must be at least 1".into());
        }
        if self.session_timeout_secs == 0 || self.session_timeout_secs > SESSION_TIMEOUT_SECS_MAX {
            return Err(format!(
                "--session-timeout-secs must be within 1..={SESSION_TIMEOUT_SECS_MAX}"
            ));
        }
        if self.sessions_max == 0 {
            return Err("--sessions-max must be at least 1".into());
        }
        if self.livez_stall_secs == 0 {
            return Err("--livez-stall-secs must be at least 1".into());
        }
        let raft = raft::Config {
            election_timeout_ticks_min: self.election_ticks_min,
            election_timeout_ticks_max: self.election_ticks_max,
            heartbeat_interval_ticks: self.heartbeat_ticks,
            lease_reads: self.lease_reads,
            snapshot_trailing_entries: self.snapshot_trailing_entries,
            snapshot_trailing_bytes_max: usize::try_from(self.snapshot_trailing_bytes).unwrap_or(usize::MAX),
            // Distinct per node and per start is not needed: ids differ across members.
            seed: id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ..raft::Config::new(id)
        };
        raft.validate()
            .map_err(|error| format!("{error} (see --election-ticks-*, --heartbeat-ticks)"))?;
        if self.cluster_name.is_empty() {
            return Err("--cluster-name must not be empty".into());
        }
        let expected_cluster_id = match &self.expect_cluster_id {
            Some(text) => Some(
                u64::from_str_radix(text, 16)
                    .map(ClusterId)
                    .map_err(|_| format!("--expect-cluster-id {text:?} is not a hex cluster id"))?,
            ),
            None => None,
        };
        let voters = members.keys().copied().collect();
        let peers = members.into_iter().filter(|(member, _)| *member != id).collect();
        Ok(NodeSettings {
            id,
            peers,
            voters,
            cluster_name: self.cluster_name.clone(),
            expected_cluster_id,
            listen_peer: self.listen_peer.clone(),
            listen_client: self.listen_client.clone(),
            listen_http: self.listen_http.clone(),
            advertise_client,
            advertise_peer,
            data_dir: self.data_dir.clone(),
            tick_interval: Duration::from_millis(self.tick_ms),
            raft,
            snapshot_every: self.snapshot_every,
            snapshot_every_bytes: self.snapshot_every_bytes,
            log_format: self.log_format,
            session_limits: SessionLimits {
                timeout_millis: self.session_timeout_secs * 1000,
                sessions_max: self.sessions_max,
                cached_bytes_max: self.session_cache_bytes,
            },
            driver_stall_max: Duration::from_secs(self.livez_stall_secs),
            quota_bytes: (self.quota_bytes > 0).then_some(self.quota_bytes),
            disk_free_min_bytes: (self.disk_free_min_bytes > 0).then_some(self.disk_free_min_bytes),
            disk_ballast_bytes: self.disk_ballast_bytes,
            force_new_cluster: self.force_new_cluster,
            security: self.security(id)?,
            client_connections_max: self.client_connections_max.max(1),
        })
    }

    fn security(&self, id: NodeId) -> Result<Security, String> {
        let flags = TlsFiles::from_flags(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_ca.as_deref(),
        )
        .map_err(|error| error.to_string())?;
        let files = match (flags, &self.tls_dir) {
            (Some(_), Some(_)) => {
                return Err("--tls-dir contradicts --tls-cert/--tls-key/--tls-ca: choose one".into())
            }
            (None, Some(dir)) => Some(TlsFiles::in_dir(dir, &format!("node-{id}"))),
            (flags, None) => flags,
        };
        match (files, self.insecure) {
            (Some(_), true) => {
                Err("--insecure contradicts --tls-cert/--tls-key/--tls-ca/--tls-dir: choose one".into())
            }
            (None, true) => {
                if self.client_roles.is_some() {
                    return Err("--client-roles needs TLS (clients are their certificates' names)".into());
                }
                Ok(Security::Insecure)
            }
            (None, false) => Err(
                "TLS is required: pass --tls-cert, --tls-key and --tls-ca, or --tls-dir (see \
                 `raftkv certs init`), or --insecure for plain TCP on a laptop"
                    .into(),
            ),
            (Some(files), false) => {
                let roles = match &self.client_roles {
                    Some(path) => ClientRoles::load(path).map_err(|error| error.to_string())?,
                    None => ClientRoles::default(),
                };
                Ok(Security::Tls { files, roles })
            }
        }
    }
}

fn is_wildcard(address: &str) -> bool {
    address.starts_with("0.0.0.0:") || address.starts_with("[::]:")
}

/// Parses `1=host:port,2=host:port`.
pub fn parse_peers(list: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut members = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let (id, address) = item
            .split_once('=')
            .ok_or_else(|| format!("--peers item {item:?} is not <id>=<host:port>"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("--peers item {item:?}: id is not a number"))?;
        if id == 0 {
            return Err(format!("--peers item {item:?}: ids start at 1"));
        }
        let address = address.trim();
        if address
            .rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            return Err(format!("--peers item {item:?}: address is not host:port"));
        }
        if members.insert(id, address.to_string()).is_some() {
            return Err(format!("--peers lists id {id} twice"));
        }
    }
    if members.is_empty() {
        return Err("--peers/RAFTKV_PEERS is empty".into());
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<NodeSettings, String> {
        let mut argv = vec![
            "raftkv-node",
            "--data-dir",
            "/tmp/x",
            "--peers",
            "1=a:7001,2=b:7001,3=c:7001",
            "--insecure",
        ];
        argv.extend_from_slice(extra);
        NodeArgs::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn id_comes_from_the_flag_or_the_pod_ordinal_and_must_agree() {
        let settings = args(&["--pod-name", "raftkv-1", "--advertise-client", "b:7101"]).expect("valid");
        assert_eq!(settings.id, 2);
        assert_eq!(settings.peers.keys().copied().collect::<Vec<_>>(), [1, 3]);
        let contradiction = args(&[
            "--id",
            "3",
            "--pod-name",
            "raftkv-1",
            "--advertise-client",
            "b:7101",
        ]);
        assert!(contradiction.expect_err("contradictory").contains("contradicts"));
        assert!(args(&["--advertise-client", "b:7101"])
            .expect_err("no id")
            .contains("RAFTKV_ID"));
    }

    #[test]
    fn tls_or_an_explicit_insecure_and_never_both() {
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "raftkv-node",
                "--data-dir",
                "/tmp/x",
                "--peers",
                "1=a:7001",
                "--id",
                "1",
            ];
            argv.extend_from_slice(extra);
            NodeArgs::try_parse_from(argv)
                .map_err(|e| e.to_string())?
                .validate()
        };
        assert!(parse(&[]).expect_err("neither").contains("TLS is required"));
        assert!(parse(&["--tls-cert", "c"])
            .expect_err("partial")
            .contains("all three"));
        let both = parse(&["--insecure", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "a"]);
        assert!(both.expect_err("both").contains("contradicts"));
        let tls = parse(&["--tls-cert", "c", "--tls-key", "k", "--tls-ca", "a"]).expect("tls");
        assert!(matches!(tls.security, Security::Tls { .. }));
        assert!(matches!(
            parse(&["--insecure"]).expect("insecure").security,
            Security::Insecure
        ));
        assert_eq!(
            parse(&["--insecure"]).expect("insecure").listen_client,
            "127.0.0.1:7101",
            "only a deliberate flag listens beyond loopback"
        );
    }

    #[test]
    fn tls_dir_names_this_nodes_own_files_and_excludes_the_three_flags() {
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "raftkv-node",
                "--data-dir",
                "/tmp/x",
                "--peers",
                "1=a:7001,2=b:7001,3=c:7001",
                "--advertise-client",
                "b:7101",
            ];
            argv.extend_from_slice(extra);
            NodeArgs::try_parse_from(argv)
                .map_err(|e| e.to_string())?
                .validate()
        };
        // raftkv-1 is node 2: its files, whatever pod runs with the same settings.
        let settings = parse(&["--pod-name", "raftkv-1", "--tls-dir", "/etc/raftkv/tls"]).expect("tls dir");
        match settings.security {
            Security::Tls { files, .. } => {
                assert_eq!(files.cert, PathBuf::from("/etc/raftkv/tls/node-2.crt"));
                assert_eq!(files.key, PathBuf::from("/etc/raftkv/tls/node-2.key"));
                assert_eq!(files.ca, PathBuf::from("/etc/raftkv/tls/ca.crt"));
            }
            Security::Insecure => panic!("--tls-dir is TLS"),
        }
        let with_id = parse(&["--id", "3", "--tls-dir", "d"]).expect("tls dir");
        assert!(
            matches!(with_id.security, Security::Tls { files, .. } if files.cert == std::path::Path::new("d/node-3.crt"))
        );
        let both = parse(&[
            "--id",
            "1",
            "--tls-dir",
            "d",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--tls-ca",
            "a",
        ]);
        assert!(both.expect_err("dir and flags").contains("--tls-dir contradicts"));
        let insecure = parse(&["--id", "1", "--tls-dir", "d", "--insecure"]);
        assert!(insecure
            .expect_err("dir and insecure")
            .contains("--insecure contradicts"));
    }

    #[test]
    fn bad_settings_name_themselves() {
        assert!(args(&[
            "--id",
            "9",
            "--advertise-client",
            "x:1",
            "--listen-peer",
            "0.0.0.0:7001"
        ])
        .expect_err("not listed, wildcard peer address")
        .contains("--advertise-peer"));
        let joiner = args(&[
            "--id",
            "9",
            "--advertise-client",
            "x:1",
            "--advertise-peer",
            "x:2",
        ])
        .expect("a joiner");
        assert_eq!(joiner.advertise_peer, "x:2");
        assert_eq!(joiner.peers.len(), 3, "every listed member is a seed");
        assert!(args(&[
            "--id",
            "1",
            "--advertise-client",
            "x:1",
            "--advertise-peer",
            "x:2"
        ])
        .expect_err("contradiction")
        .contains("contradicts"));
        assert!(args(&["--id", "1", "--listen-client", "0.0.0.0:7101"])
            .expect_err("wildcard")
            .contains("--advertise-client"));
        let timeouts = args(&[
            "--id",
            "1",
            "--advertise-client",
            "a:1",
            "--election-ticks-min",
            "1",
        ]);
        assert!(timeouts.expect_err("bad ticks").contains("election"));
        assert!(parse_peers("1=a:1,1=b:2").expect_err("dup").contains("twice"));
        assert!(parse_peers("x=a:1").is_err());
        assert!(parse_peers("1=a").is_err());
    }

    #[test]
    fn lease_reads_are_off_unless_asked_and_need_room_for_a_lease() {
        let base = ["--id", "1", "--advertise-client", "a:1"];
        let settings = args(&base).expect("valid");
        assert!(!settings.raft.lease_reads, "ReadIndex unless --lease-reads");
        assert_eq!(
            settings.tick_interval,
            std::time::Duration::from_millis(10),
            "the defaults: 10 ms ticks"
        );
        let settings = args(&[&base[..], &["--lease-reads"]].concat()).expect("valid");
        assert!(settings.raft.lease_reads);
        assert!(settings.raft.read_lease_ticks() > 0);
        let tiny = args(
            &[
                &base[..],
                &[
                    "--lease-reads",
                    "--election-ticks-min",
                    "2",
                    "--election-ticks-max",
                    "4",
                    "--heartbeat-ticks",
                    "1",
                ],
            ]
            .concat(),
        );
        assert!(tiny.expect_err("no room for a lease").contains("lease_reads"));
    }
}
