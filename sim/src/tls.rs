//! Mutual TLS in the simulation, as in production: every run makes its own certificate
//! authority, node certificates and `admin` client (`wire::tls::certs`), so the peer
//! links and the clients' connections run through rustls under every fault. Key
//! generation and TLS handshakes draw randomness through `getrandom`, which madsim
//! answers from the run's seed, and certificate validity is checked against simulated
//! time, so a seed still replays exactly.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft::NodeId;
use wire::tls::certs::{init, CertsPlan};
use wire::tls::{client_config, ReloadingTls, TlsFiles};

use crate::cluster::node_ip;
use rustls::client::ClientConfig;

/// Distinguishes the runs of one process (a soak runs many) in directory names.
static RUNS_STARTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The current run's admin client config. madsim runs one seed at a time on one
    /// thread, and the supervisor's probes and the workload are free functions of node
    /// ids and endpoints: a per-run slot spares threading it through all of them.
    static CLIENT_TLS: RefCell<Option<Arc<ClientConfig>>> = const { RefCell::new(None) };
}

/// One run's certificates, in a directory removed when the run ends.
#[derive(Debug)]
pub struct SimTls {
    dir: PathBuf,
}

impl SimTls {
    /// Makes certificates for nodes `1..=nodes` and the admin client, and installs the
    /// client's config for this run's clients ([`client_tls`]).
    pub fn create(nodes: u64) -> Self {
        let run = RUNS_STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("raftkv-sim-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Clients dial the nodes' simulated IPs; peers verify `raftkv-node-<id>` whatever
        // the address, so naming every node's IP in every certificate weakens nothing here.
        let plan = CertsPlan {
            extra_names: (1..=nodes).map(|id| node_ip(id).to_string()).collect(),
            ..CertsPlan::for_manifests(dir.clone(), nodes)
        };
        init(&plan).expect("the simulation's certificates");
        let client = client_config(&TlsFiles::in_dir(&dir, "client")).expect("the admin client's TLS");
        CLIENT_TLS.with(|slot| *slot.borrow_mut() = Some(client));
        Self { dir }
    }

    /// Node `id`'s identity, loaded (and reloaded) from its files.
    pub fn node(&self, id: NodeId) -> Arc<ReloadingTls> {
        let files = TlsFiles::in_dir(&self.dir, &format!("node-{id}"));
        Arc::new(ReloadingTls::load(files).expect("a node's TLS files load"))
    }
}

impl Drop for SimTls {
    fn drop(&mut self) {
        CLIENT_TLS.with(|slot| *slot.borrow_mut() = None);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The current run's admin client config (`None` outside a run).
pub fn client_tls() -> Option<Arc<ClientConfig>> {
    CLIENT_TLS.with(|slot| slot.borrow().clone())
}

/// `client` over the current run's TLS.
pub fn with_run_tls(client: client::client::Client) -> client::client::Client {
    match client_tls() {
        Some(tls) => client.with_tls(tls),
        None => client,
    }
}
