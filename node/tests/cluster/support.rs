//! Shared helpers of the integration tests: a `LocalCluster` of real `raftkv-node`
//! processes in a temporary directory, bounded waits for a leader and for convergence,
//! and a tiny HTTP GET for `/metrics`. Every wait ends within `WAIT_TIMEOUT` and fails
//! with what it last saw and the tail of every node's log.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::client::{Client, ClientOptions};
use client::local_cluster::{LocalCluster, LocalClusterOptions};
use client::{parse_endpoints, Endpoint};
use rustls::client::ClientConfig;
use tempfile::TempDir;
use wire::{NodeDump, NodeStatus};

/// Longest any single wait (election, convergence, a metric) may take.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls of a wait.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Short ticks keep elections and the tests fast: elections time out after 10..20 ticks.
pub const TICK_MS: u64 = 20;
/// Lines of each node's log quoted in a failure message.
const LOG_TAIL_LINES: usize = 60;

/// The node binary Cargo built for this test run.
pub fn node_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_raftkv-node"))
}

/// A running cluster and the temporary directory holding its data and logs. The cluster
/// is declared first so its processes are killed before the directory is removed.
#[derive(Debug)]
pub struct TestCluster {
    pub cluster: LocalCluster,
    endpoints: Vec<Endpoint>,
    name: String,
    /// The `admin` client's TLS, when the cluster runs mutual TLS.
    tls: Option<Arc<ClientConfig>>,
    directory: TempDir,
}

/// The state every node agreed on at convergence.
#[derive(Debug)]
pub struct Converged {
    pub statuses: Vec<NodeStatus>,
    pub dumps: Vec<NodeDump>,
    pub applied: u64,
}

impl Converged {
    /// The agreed KV map.
    pub fn kv(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.dumps[0].kv.iter().cloned().collect()
    }
}

impl TestCluster {
    /// Starts `size` nodes with the test tick; `name` (the test's) becomes the cluster id.
    /// Returns once every node is up and answers a status request.
    ///
    /// `LocalCluster` picks each port by binding port 0 and closing it again, so two of
    /// its addresses can coincide, or another test can take a port before the node binds
    /// it; the losing node then exits with "Address already in use". Such a start is
    /// retried on fresh ports (in a fresh directory), a few times at most.
    pub async fn start(name: &str, size: u64, snapshot_every: u64) -> Self {
        Self::start_with(name, size, snapshot_every, false, &[]).await
    }

    /// `start`, with mutual TLS on every port when `tls` (certificates under the
    /// cluster's directory, `certs/`).
    pub async fn start_with(
        name: &str,
        size: u64,
        snapshot_every: u64,
        tls: bool,
        extra_args: &[String],
    ) -> Self {
        const ATTEMPTS_MAX: u32 = 5;
        let mut directory = tempfile::Builder::new()
            .prefix(&format!("raftkv-{name}-"))
            .tempdir()
            .expect("cannot create a temporary directory");
        let mut problems = Vec::new();
        for attempt in 1..=ATTEMPTS_MAX {
            let cluster = LocalCluster::start(LocalClusterOptions {
                node_binary: node_binary(),
                base_dir: directory.path().join(format!("attempt-{attempt}")),
                size,
                cluster_name: name.to_string(),
                tick_ms: TICK_MS,
                snapshot_every,
                extra_args: extra_args.to_vec(),
                tls,
            })
            .unwrap_or_else(|error| panic!("[{name}] cannot start the cluster: {error}"));
            let endpoints =
                parse_endpoints(&cluster.endpoints().join(",")).expect("LocalCluster endpoints parse");
            let tls = cluster.client_tls().expect("the admin client's TLS files load");
            let mut test = Self {
                cluster,
                endpoints,
                name: name.to_string(),
                tls,
                directory,
            };
            match test.all_up().await {
                Ok(()) => return test,
                Err(problem) => {
                    eprintln!("[{name}] start attempt {attempt} failed, retrying: {problem}");
                    problems.push(problem);
                    drop(test.cluster);
                    directory = test.directory;
                }
            }
        }
        panic!("[{name}] the cluster did not start in {ATTEMPTS_MAX} attempts: {problems:#?}");
    }

    /// Waits until every node answers a status request; an error if addresses collide
    /// or a node exits (with the end of its log).
    async fn all_up(&mut self) -> Result<(), String> {
        let mut addresses: Vec<&str> = Vec::new();
        for node in self.cluster.nodes() {
            addresses.extend([
                node.peer_address.as_str(),
                node.client_address.as_str(),
                node.http_address.as_str(),
            ]);
        }
        let distinct: std::collections::BTreeSet<&str> = addresses.iter().copied().collect();
        if distinct.len() != addresses.len() {
            return Err(format!(
                "LocalCluster gave one port to two listeners: {addresses:?}"
            ));
        }
        let deadline = Instant::now() + WAIT_TIMEOUT;
        for id in self.ids() {
            while self.status(id).await.is_none() {
                if !self.cluster.is_running(id) {
                    let log = self.cluster.log_of(id);
                    let last = log.lines().last().unwrap_or("(empty log)");
                    return Err(format!("node {id} exited: {}", strip_ansi(last)));
                }
                if Instant::now() > deadline {
                    return Err(format!("node {id} does not answer after {WAIT_TIMEOUT:?}"));
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok(())
    }

    pub fn ids(&self) -> Vec<u64> {
        self.cluster.nodes().iter().map(|node| node.id).collect()
    }

    /// Lays out and starts one more node (not an initial member: it joins by itself);
    /// returns its id once it answers a status request.
    pub async fn add_node(&mut self) -> u64 {
        let id = self
            .cluster
            .add_node()
            .unwrap_or_else(|error| self.fail(&format!("cannot add a node: {error}")));
        let endpoint = parse_endpoints(&self.cluster.node(id).client_address)
            .expect("LocalCluster endpoints parse")
            .remove(0);
        self.endpoints.push(endpoint);
        if let Err(error) = self.cluster.start_node(id) {
            self.fail(&format!("cannot start node {id}: {error}"));
        }
        let deadline = Instant::now() + WAIT_TIMEOUT;
        while self.status(id).await.is_none() {
            if Instant::now() > deadline || !self.cluster.is_running(id) {
                self.fail(&format!("the added node {id} does not answer"));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        id
    }

    /// Stops node `id` (SIGTERM), deletes its data dir and starts it again: a lost
    /// volume. Returns the length of its log before the restart.
    pub fn wipe_and_restart(&mut self, id: u64) -> usize {
        if let Err(error) = self.cluster.terminate(id) {
            self.fail(&format!("cannot stop node {id}: {error}"));
        }
        let data_dir = self.cluster.node(id).data_dir.clone();
        std::fs::remove_dir_all(&data_dir)
            .unwrap_or_else(|error| self.fail(&format!("cannot wipe node {id}: {error}")));
        let log_length = self.cluster.log_of(id).len();
        if let Err(error) = self.cluster.start_node(id) {
            self.fail(&format!("cannot restart node {id}: {error}"));
        }
        log_length
    }

    /// The leader's member list, polled until `accept` holds.
    pub async fn wait_for_members(
        &self,
        what: &str,
        accept: impl Fn(&wire::MemberList) -> bool,
    ) -> wire::MemberList {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        let mut last = None;
        loop {
            let mut client = self.client(quick_options());
            if let Ok(list) = client.members().await {
                if accept(&list) {
                    return list;
                }
                last = Some(list);
            }
            if Instant::now() > deadline {
                self.fail(&format!("members never became {what}; last list: {last:?}"));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls node `id`'s log, from byte `since` on, until it has a line containing `text`.
    pub async fn wait_for_log(&self, id: u64, since: usize, text: &str) {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let log = self.cluster.log_of(id);
            if log
                .get(since..)
                .unwrap_or_default()
                .lines()
                .any(|line| line.contains(text))
            {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!("node {id} never logged {text:?}"));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The incarnation the leader's configuration binds to member `id`.
    pub async fn members_incarnation(&self, id: u64) -> Option<u64> {
        let list = self.wait_for_members("readable", |_| true).await;
        list.member(id).and_then(|member| member.incarnation)
    }

    pub fn endpoint(&self, id: u64) -> &Endpoint {
        &self.endpoints[(id - 1) as usize]
    }

    /// The test's name, which is also the cluster's (`--cluster-name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn directory(&self) -> &std::path::Path {
        self.directory.path()
    }

    /// A client of every member; one per concurrent task (a `Client` sends one request
    /// at a time).
    pub fn client(&self, options: ClientOptions) -> Client {
        self.with_tls(Client::new(self.endpoints.clone(), options).expect("endpoints are not empty"))
    }

    /// `client` over the cluster's TLS, if it runs TLS.
    pub fn with_tls(&self, client: Client) -> Client {
        match &self.tls {
            Some(tls) => client.with_tls(tls.clone()),
            None => client,
        }
    }

    /// The last lines of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for id in self.ids() {
            let log = self.cluster.log_of(id);
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!(
                "\n----- node {id} log (last {} of {} lines, {}) -----\n",
                tail.len(),
                lines.len(),
                self.cluster.node(id).log_path.display()
            ));
            for line in tail {
                out.push_str(&strip_ansi(line));
                out.push('\n');
            }
        }
        out
    }

    /// Fails the test with `message` and the nodes' logs.
    #[track_caller]
    pub fn fail(&self, message: &str) -> ! {
        panic!("[{}] {message}\n{}", self.name, self.log_tails())
    }

    /// Asserts `condition`, failing with `message` and the nodes' logs.
    #[track_caller]
    pub fn check(&self, condition: bool, message: impl FnOnce() -> String) {
        if !condition {
            self.fail(&message());
        }
    }

    /// One status request to node `id`, or `None` if it does not answer within 500 ms.
    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        let endpoint = self.endpoint(id).clone();
        let mut client = self.with_tls(Client::new(vec![endpoint.clone()], quick_options()).ok()?);
        client.status(&endpoint).await.ok()
    }

    /// One dump of node `id`, or `None` if it does not answer.
    pub async fn dump(&self, id: u64) -> Option<NodeDump> {
        let endpoint = self.endpoint(id).clone();
        let options = ClientOptions {
            request_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(5),
        };
        let mut client = self.with_tls(Client::new(vec![endpoint.clone()], options).ok()?);
        client.dump(&endpoint).await.ok()
    }

    /// Polls the nodes `among` until one of them leads with a term no other answering
    /// node of `among` has passed, so the leader is current, not a deposed one.
    pub async fn wait_for_leader(&self, among: &[u64]) -> NodeStatus {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let mut statuses = Vec::new();
            for id in among {
                if let Some(status) = self.status(*id).await {
                    statuses.push(status);
                }
            }
            let highest_term = statuses.iter().map(|status| status.term).max().unwrap_or(0);
            let leader = statuses
                .iter()
                .find(|status| status.role == "leader" && status.term == highest_term);
            if let Some(leader) = leader {
                return leader.clone();
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = statuses.iter().map(describe).collect();
                self.fail(&format!(
                    "no leader among nodes {among:?} within {WAIT_TIMEOUT:?}; last statuses: {seen:?}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls the nodes `ids` until all answer with applied == commit at one index and
    /// their dumps hold equal KV maps.
    pub async fn wait_for_convergence(&self, ids: &[u64]) -> Converged {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let problem = match self.converged(ids).await {
                Ok(converged) => return converged,
                Err(problem) => problem,
            };
            if Instant::now() > deadline {
                self.fail(&format!(
                    "nodes {ids:?} did not converge within {WAIT_TIMEOUT:?}: {problem}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn converged(&self, ids: &[u64]) -> Result<Converged, String> {
        let mut statuses = Vec::new();
        for id in ids {
            statuses.push(
                self.status(*id)
                    .await
                    .ok_or(format!("node {id} does not answer"))?,
            );
        }
        let applied = statuses[0].applied;
        if statuses
            .iter()
            .any(|s| s.applied != applied || s.commit != applied)
        {
            let seen: Vec<String> = statuses.iter().map(describe).collect();
            return Err(format!("applied/commit differ: {seen:?}"));
        }
        let mut dumps = Vec::new();
        for id in ids {
            dumps.push(
                self.dump(*id)
                    .await
                    .ok_or(format!("node {id} does not answer a dump"))?,
            );
        }
        // The dumps come after the statuses: a write in between moves some node on.
        if dumps.iter().any(|dump| dump.status.applied != applied) {
            return Err("a node applied more between status and dump".into());
        }
        if let Some(dump) = dumps.iter().find(|dump| dump.kv != dumps[0].kv) {
            return Err(format!(
                "KV maps differ at applied index {applied}: node {} has {} keys, node {} has {}",
                dumps[0].status.id,
                dumps[0].kv.len(),
                dump.status.id,
                dump.kv.len()
            ));
        }
        Ok(Converged {
            statuses,
            dumps,
            applied,
        })
    }

    /// Polls node `id`'s metric `name` until `accept` holds. Fails at once if `/metrics`
    /// answers without the metric (it is not exported), else after `WAIT_TIMEOUT` with
    /// its last value.
    pub async fn wait_for_metric(&self, id: u64, name: &str, accept: impl Fn(u64) -> bool) -> u64 {
        let address = &self.cluster.node(id).http_address;
        let deadline = Instant::now() + WAIT_TIMEOUT;
        let mut last: String;
        loop {
            match http_get(address, "/metrics") {
                Ok((200, body)) => match metric_value(&body, name) {
                    Some(value) if accept(value) => return value,
                    Some(value) => last = format!("{name} {value}"),
                    None => {
                        let exported: Vec<&str> = body
                            .lines()
                            .filter(|line| line.starts_with("raftkv_peer"))
                            .collect();
                        self.fail(&format!(
                            "node {id}'s /metrics does not export {name}; its peer metrics: {exported:?}"
                        ));
                    }
                },
                Ok((code, body)) => last = format!("/metrics answered {code}: {body}"),
                Err(error) => last = format!("/metrics failed: {error}"),
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "node {id}'s metric {name} not as expected after {WAIT_TIMEOUT:?}; last: {last}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Status calls give up fast: a dead node must not slow a poll loop.
pub fn quick_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_millis(500),
        deadline: Duration::from_millis(500),
    }
}

/// One line per status, for failure messages.
pub fn describe(status: &NodeStatus) -> String {
    format!(
        "node {} {} term {} leader {:?} commit {} applied {} first {} last {} snapshot {}",
        status.id,
        status.role,
        status.term,
        status.leader,
        status.commit,
        status.applied,
        status.first_index,
        status.last_index,
        status.snapshot_index
    )
}

/// A bare HTTP/1.1 GET over a blocking socket, every step bounded by two seconds.
/// Returns the status code and the body.
pub fn http_get(address: &str, path: &str) -> Result<(u16, String), String> {
    let timeout = Duration::from_secs(2);
    let socket: SocketAddr = address
        .parse()
        .map_err(|e| format!("bad address {address}: {e}"))?;
    let mut stream =
        TcpStream::connect_timeout(&socket, timeout).map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send to {address}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read from {address}: {e}"))?;
    let response = String::from_utf8(response).map_err(|_| format!("{address}: response is not UTF-8"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{address}: no end of the response head"))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{address}: bad status line {:?}", head.lines().next()))?;
    Ok((code, body.to_string()))
}

/// The value of an unlabelled sample `name` in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (sample, value) = line.split_once(' ')?;
            (sample == name).then(|| value.trim().parse::<f64>().ok())?
        })
        .map(|value| value as u64)
}

/// Removes terminal colour sequences (`ESC [ ... m`) that the node's log may carry.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The first `key=value` field named `field` in node logs (colours stripped).
pub fn log_field(log: &str, message: &str, field: &str) -> Option<String> {
    log.lines()
        .map(strip_ansi)
        .filter(|line| line.contains(message))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(&format!("{field}=")).map(str::to_string))
        })
}

/// A seeded xorshift PRNG for garbage bytes; the seed is printed so a run can be replayed.
#[derive(Debug)]
pub struct Garbage(u64);

impl Garbage {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 32) as u8
            })
            .collect()
    }
}
