//! A cluster of real `raftkv-node` processes on 127.0.0.1: the `raftkv demo` command
//! and the integration tests start, kill (-9), terminate (SIGTERM) and restart them.
//! Each node keeps its data directory across restarts and logs to a file beside it.

use std::fmt;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rustls::client::ClientConfig;

use crate::tls::certs::{init, CertsPlan};
use crate::tls::{client_config, TlsFiles};

/// One member's fixed identity: id, ports, data directory.
#[derive(Debug, Clone)]
pub struct LocalNode {
    pub id: u64,
    pub peer_address: String,
    pub client_address: String,
    pub http_address: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
}

#[derive(Debug)]
pub struct LocalClusterError(pub String);

impl fmt::Display for LocalClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LocalClusterError {}

/// Settings passed to every node beyond identity and addresses.
#[derive(Debug, Clone)]
pub struct LocalClusterOptions {
    pub node_binary: PathBuf,
    pub base_dir: PathBuf,
    pub size: u64,
    pub cluster_name: String,
    pub tick_ms: u64,
    pub snapshot_every: u64,
    /// More `--flag value` pairs for every node.
    pub extra_args: Vec<String>,
    /// Mutual TLS with certificates made under `base_dir/certs` (`certs::init`); `false`
    /// runs the nodes `--insecure`.
    pub tls: bool,
}

#[derive(Debug)]
pub struct LocalCluster {
    options: LocalClusterOptions,
    nodes: Vec<LocalNode>,
    processes: Vec<Option<Child>>,
}

/// Free ports on 127.0.0.1, chosen by the OS. All listeners stay open until every port
/// is picked, so no two are the same; another process could still take one before the
/// node binds it, which the node's start failure then reports.
fn free_ports(count: usize) -> Result<Vec<u16>, LocalClusterError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalClusterError(format!("no free port: {e}")))?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalClusterError(format!("no free port: {e}")))
}

impl LocalCluster {
    /// Lays out `size` nodes with fresh ports and data directories, and starts them all.
    pub fn start(options: LocalClusterOptions) -> Result<Self, LocalClusterError> {
        fs::create_dir_all(&options.base_dir)
            .map_err(|e| LocalClusterError(format!("cannot create {}: {e}", options.base_dir.display())))?;
        let ports = free_ports(3 * options.size as usize)?;
        let nodes: Vec<LocalNode> = (1..=options.size)
            .zip(ports.chunks_exact(3))
            .map(|(id, ports)| LocalNode {
                id,
                peer_address: format!("127.0.0.1:{}", ports[0]),
                client_address: format!("127.0.0.1:{}", ports[1]),
                http_address: format!("127.0.0.1:{}", ports[2]),
                data_dir: options.base_dir.join(format!("node-{id}")),
                log_path: options.base_dir.join(format!("node-{id}.log")),
            })
            .collect();
        if options.tls {
            init_certs(&options.base_dir, options.size)?;
        }
        let processes = (0..nodes.len()).map(|_| None).collect();
        let mut cluster = Self {
            options,
            nodes,
            processes,
        };
        for id in 1..=cluster.options.size {
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    /// The process id of node `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.processes.get(Self::position(id))?.as_ref().map(Child::id)
    }

    /// Where the certificates are (with `tls`): `ca.crt`, `node-<id>.*`, `client.*`.
    pub fn certs_dir(&self) -> PathBuf {
        self.options.base_dir.join("certs")
    }

    /// The `admin` client's files, with `tls`.
    pub fn client_tls_files(&self) -> Option<TlsFiles> {
        self.options
            .tls
            .then(|| TlsFiles::in_dir(&self.certs_dir(), "client"))
    }

    /// A client config of the `admin` client, with `tls`.
    pub fn client_tls(&self) -> Result<Option<Arc<ClientConfig>>, LocalClusterError> {
        self.client_tls_files()
            .map(|files| client_config(&files).map_err(|e| LocalClusterError(e.to_string())))
            .transpose()
    }

    /// The `raftkv` CLI flags for the `admin` client (`--tls-*`), or none without `tls`.
    pub fn cli_tls_args(&self) -> Vec<String> {
        self.client_tls_files()
            .map(|files| files.flags())
            .unwrap_or_default()
    }

    /// Lays out one more node (id: the next one) with fresh ports, not started. It is
    /// not an initial member: its `--peers` lists the first `size` nodes only, so it
    /// joins the running cluster (as a scale-up pod does).
    pub fn add_node(&mut self) -> Result<u64, LocalClusterError> {
        let id = self.nodes.len() as u64 + 1;
        let ports = free_ports(3)?;
        self.nodes.push(LocalNode {
            id,
            peer_address: format!("127.0.0.1:{}", ports[0]),
            client_address: format!("127.0.0.1:{}", ports[1]),
            http_address: format!("127.0.0.1:{}", ports[2]),
            data_dir: self.options.base_dir.join(format!("node-{id}")),
            log_path: self.options.base_dir.join(format!("node-{id}.log")),
        });
        self.processes.push(None);
        Ok(id)
    }

    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    pub fn node(&self, id: u64) -> &LocalNode {
        &self.nodes[Self::position(id)]
    }

    fn position(id: u64) -> usize {
        assert!(id >= 1, "ids start at 1");
        (id - 1) as usize
    }

    /// The client addresses of all members, for a `Client`.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| node.client_address.clone())
            .collect()
    }

    /// `--peers` of every node: the initial members only.
    pub fn peers_flag(&self) -> String {
        self.nodes
            .iter()
            .take(self.options.size as usize)
            .map(|node| format!("{}={}", node.id, node.peer_address))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn is_running(&mut self, id: u64) -> bool {
        match &mut self.processes[Self::position(id)] {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts (or restarts, on the same data directory) node `id`.
    pub fn start_node(&mut self, id: u64) -> Result<(), LocalClusterError> {
        self.start_node_with(id, &[])
    }

    /// Starts node `id` with `extra` flags for this start only.
    pub fn start_node_with(&mut self, id: u64, extra: &[&str]) -> Result<(), LocalClusterError> {
        if self.is_running(id) {
            return Ok(());
        }
        let node = self.node(id).clone();
        let security: Vec<String> = if self.options.tls {
            // A node added past the initial size gets its certificate now.
            init_certs(&self.options.base_dir, id)?;
            TlsFiles::in_dir(&self.certs_dir(), &format!("node-{id}")).flags()
        } else {
            vec!["--insecure".to_string()]
        };
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .map_err(|e| LocalClusterError(format!("cannot open {}: {e}", node.log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| LocalClusterError(e.to_string()))?;
        let mut command = Command::new(&self.options.node_binary);
        command
            .args(["--id", &id.to_string()])
            .args(["--peers", &self.peers_flag()])
            .args(["--cluster-name", &self.options.cluster_name])
            .args(["--listen-peer", &node.peer_address])
            .args(["--listen-client", &node.client_address])
            .args(["--listen-http", &node.http_address])
            .args(["--tick-ms", &self.options.tick_ms.to_string()])
            .args(["--snapshot-every", &self.options.snapshot_every.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(&security)
            .args(&self.options.extra_args)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command.spawn().map_err(|e| {
            LocalClusterError(format!(
                "cannot start {}: {e}",
                self.options.node_binary.display()
            ))
        })?;
        self.processes[Self::position(id)] = Some(child);
        Ok(())
    }

    /// kill -9: the process gets no chance to flush or hand anything over.
    pub fn kill(&mut self, id: u64) -> Result<(), LocalClusterError> {
        if let Some(mut child) = self.processes[Self::position(id)].take() {
            child
                .kill()
                .map_err(|e| LocalClusterError(format!("cannot kill node {id}: {e}")))?;
            let _ = child.wait();
        }
        Ok(())
    }

    /// SIGTERM, then waits for the process to exit; returns its exit status code.
    pub fn terminate(&mut self, id: u64) -> Result<Option<i32>, LocalClusterError> {
        let Some(mut child) = self.processes[Self::position(id)].take() else {
            return Ok(None);
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map_err(|e| LocalClusterError(format!("cannot run kill: {e}")))?;
        if !status.success() {
            return Err(LocalClusterError(format!("kill -TERM of node {id} failed")));
        }
        let exit = child
            .wait()
            .map_err(|e| LocalClusterError(format!("cannot wait for node {id}: {e}")))?;
        Ok(exit.code())
    }

    pub fn log_of(&self, id: u64) -> String {
        fs::read_to_string(&self.node(id).log_path).unwrap_or_default()
    }

    pub fn base_dir(&self) -> &Path {
        &self.options.base_dir
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Certificates for nodes `1..=nodes` and the admin client under `base_dir/certs`
/// (extended, never replaced).
fn init_certs(base_dir: &Path, nodes: u64) -> Result<(), LocalClusterError> {
    let plan = CertsPlan::for_manifests(base_dir.join("certs"), nodes);
    init(&plan)
        .map(|_| ())
        .map_err(|e| LocalClusterError(format!("certificates: {e}")))
}
