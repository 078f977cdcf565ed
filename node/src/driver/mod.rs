//! The driver task: it owns the Raft state machine and loops over peer messages,
//! client requests and ticks, then handles every `Ready` in the contract's order
//! (raft/src/ready.rs): send, persist with one sync, send what needed durability, apply,
//! answer. Inputs that queue up while a sync runs are all taken before the next
//! `Ready`, so one sync covers them all (group commit).
//!
//! Only tokio APIs that madsim simulates are used here (sync, time, select!), so the
//! simulation runs this very loop.

mod backups;
mod describe;
mod disk_guard;
#[cfg(test)]
mod disk_guard_tests;
#[cfg(test)]
mod faulty_store;
mod heartbeat;
mod membership;
mod own_thread;
#[cfg(test)]
mod probe_tests;
mod reads;
mod reply;
mod requests;
#[cfg(test)]
mod snapshot_tests;
mod snapshots;
#[cfg(test)]
mod tests;
mod tick_clock;
mod watches;
#[cfg(test)]
mod watches_tests;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::{ConfState, Index, Message, NodeId, Raft, Role, Term};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use wire::{ErrorKind, ErrorReply, NodeStatus, Request, Response, SpaceStatus};

use self::disk_guard::DiskGuard;
pub use self::heartbeat::DriverHeartbeat;
pub use self::own_thread::run_on_own_thread;
pub use self::reply::{Reply, RequestPermits};
use self::tick_clock::TickClock;
use self::watches::PendingWatch;
use crate::kv::command::SessionLimits;
use crate::kv::state_machine::{Applied, StateMachine};
use crate::membership::{is_member_key, PeerDirectory, PeerEntry};
use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError};

/// Where the driver sends Raft messages: the TCP transport, or the simulation's.
pub trait PeerNetwork: Send + Sync + 'static {
    /// Queues a message; never waits (Raft tolerates loss).
    fn send(&self, message: Message);
    /// The client address a peer announced, for redirects.
    fn peer_client_address(&self, id: NodeId) -> Option<String>;
    /// Replaces the peers with the configuration's members (`crate::membership`).
    fn set_peers(&self, peers: BTreeMap<NodeId, PeerEntry>);
}

/// A client request and where its answer goes.
#[derive(Debug)]
pub struct ClientCall {
    pub request: Request,
    pub reply: Reply,
}

#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub tick_interval: Duration,
    /// Take a snapshot and compact the log after this many applied entries...
    pub snapshot_every_entries: u64,
    /// ...or after this many bytes of applied entries, whichever comes first: the Raft log
    /// since the last snapshot is held in memory, so this bounds it when values are large.
    pub snapshot_every_bytes: u64,
    /// This node's client address, for redirects pointing at itself.
    pub own_client_address: String,
    /// This node's peer address, recorded in the configuration.
    pub own_peer_address: String,
    /// The cluster's id, shown with the members.
    pub cluster_id: u64,
    /// On shutdown, how many ticks a leader waits for its transfer to complete.
    pub shutdown_transfer_ticks_max: u32,
    /// Upper bound of inputs taken per loop turn before handling the `Ready`.
    pub inputs_per_turn_max: usize,
    /// The session limits this node puts in the log when it opens a session as leader.
    pub session_limits: SessionLimits,
    /// `--quota-bytes`: as leader, refuse writes that would take the clients' data past it.
    pub quota_bytes: Option<u64>,
    /// `--disk-free-min-bytes`: as leader, refuse writes that store data while the
    /// store's disk has less free (`Storage::disk_free_bytes`).
    pub disk_free_min_bytes: Option<u64>,
    /// A known bug to inject (simulation self-test only; see `raft::canary`).
    #[cfg(feature = "canaries")]
    pub canary: Option<raft::canary::Canary>,
}

/// Why the driver stopped.
#[derive(Debug)]
pub enum DriverError {
    /// Durable state could not be written: continuing could lose acknowledged data.
    Storage(StorageError),
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(error) => write!(f, "driver stopped: {error}"),
        }
    }
}

impl std::error::Error for DriverError {}

impl From<StorageError> for DriverError {
    fn from(error: StorageError) -> Self {
        Self::Storage(error)
    }
}

/// What woke the driver loop.
enum Input {
    /// The shutdown signal changed; true once the node is to stop.
    Shutdown(bool),
    Message(Message),
    Call(ClientCall),
    Tick,
}

struct PendingWrite {
    term: Term,
    reply: Reply,
}

struct PendingRead {
    request: Request,
    reply: Reply,
}

#[expect(
    missing_debug_implementations,
    reason = "holds the storage engine and pending reply channels"
)]
pub struct Driver<S: Storage, N: PeerNetwork> {
    raft: Raft,
    storage: S,
    network: N,
    machine: StateMachine,
    config: DriverConfig,
    metrics: Arc<Metrics>,
    heartbeat: Arc<DriverHeartbeat>,
    status: watch::Sender<NodeStatus>,
    /// Writes proposed by this leader, by log index.
    pending_writes: BTreeMap<Index, PendingWrite>,
    /// Linearizable reads waiting for their ReadIndex, by context.
    pending_reads: BTreeMap<u64, PendingRead>,
    /// Watches waiting for an event (`watches.rs`).
    pending_watches: Vec<PendingWatch>,
    /// The revision the waiting watches were last served at.
    watched_revision: u64,
    next_read_context: u64,
    snapshot_index: Index,
    /// Bytes of the entries applied since the last snapshot was started.
    applied_bytes_since_snapshot: u64,
    /// A snapshot image being built off the loop (`snapshots.rs`).
    snapshot_build: Option<snapshots::SnapshotBuild>,
    was_leader: bool,
    /// How to reach the members (seeds, founders, records).
    directory: PeerDirectory,
    /// Membership changes this leader proposed, answered once applied, by log index.
    pending_member_changes: BTreeMap<Index, PendingWrite>,
    /// The term in which this leader recorded every member without a record.
    members_recorded_term: Term,
    /// The configuration the transport's peers were last set from.
    peers_conf: ConfState,
    /// The store's free disk space, read about once a second.
    disk_guard: DiskGuard,
    /// Where backups are built and kept for `raftkv snapshot save` (`backups.rs`).
    backups: Option<Arc<crate::backup_images::BackupImages>>,
    /// Backups whose ReadIndex completed, begun after this turn's `advance`.
    backups_due: Vec<Reply>,
}

/// The handles other tasks use to talk to a running driver.
#[derive(Debug, Clone)]
pub struct DriverHandles {
    pub status: watch::Receiver<NodeStatus>,
    pub metrics: Arc<Metrics>,
    pub heartbeat: Arc<DriverHeartbeat>,
}

impl<S: Storage, N: PeerNetwork> Driver<S, N> {
    /// A driver for `raft`; `directory` holds the seeds and founders, and its records are
    /// loaded here from the applied state.
    pub fn new(
        raft: Raft,
        storage: S,
        network: N,
        machine: StateMachine,
        config: DriverConfig,
        directory: PeerDirectory,
    ) -> Result<(Self, DriverHandles), StorageError> {
        assert!(config.snapshot_every_entries > 0 && config.inputs_per_turn_max > 0);
        #[cfg(feature = "canaries")]
        let machine = {
            let mut machine = machine;
            match config.canary {
                Some(raft::canary::Canary::NoWriteDedup) => machine.disable_dedup(),
                Some(raft::canary::Canary::UnknownSessionApplies) => machine.apply_unknown_sessions(),
                _ => {}
            }
            machine
        };
        let metrics = Arc::new(Metrics::default());
        if let Some(snapshot) = raft.snapshot() {
            metrics
                .snapshot_image_bytes
                .store(snapshot.total_bytes, Ordering::Relaxed);
        }
        let heartbeat = Arc::new(DriverHeartbeat::default());
        heartbeat.beat();
        let mut storage = storage;
        storage.report_progress_to(Arc::new({
            let heartbeat = heartbeat.clone();
            move || heartbeat.beat()
        }));
        let snapshot_index = raft.snapshot().map_or(0, |snapshot| snapshot.meta.index);
        let initial_status = describe::node_status(&raft, SpaceStatus::default());
        let (status, status_receiver) = watch::channel(initial_status);
        let mut driver = Self {
            raft,
            storage,
            network,
            machine,
            config,
            metrics: metrics.clone(),
            heartbeat: heartbeat.clone(),
            status,
            pending_writes: BTreeMap::new(),
            pending_reads: BTreeMap::new(),
            pending_watches: Vec::new(),
            watched_revision: 0,
            next_read_context: 1,
            snapshot_index,
            applied_bytes_since_snapshot: 0,
            snapshot_build: None,
            was_leader: false,
            directory,
            pending_member_changes: BTreeMap::new(),
            members_recorded_term: 0,
            peers_conf: ConfState::default(),
            disk_guard: DiskGuard::default(),
            backups: None,
            backups_due: Vec::new(),
        };
        driver.reload_records()?;
        driver.warn_about_seeds();
        driver.peers_conf = driver.raft.conf_state().clone();
        let handles = DriverHandles {
            status: status_receiver,
            metrics,
            heartbeat,
        };
        Ok((driver, handles))
    }

    /// Runs until `shutdown` turns true (then a leader first hands its leadership to
    /// the most up-to-date follower) or storage fails.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Message>,
        mut calls: mpsc::Receiver<ClientCall>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), DriverError> {
        let raft_config = self.raft.config();
        let mut clock = TickClock::new(
            self.config.tick_interval,
            tokio::time::Instant::now(),
            raft_config.lease_reads,
            raft_config.election_timeout_ticks_max.saturating_add(1),
        );
        let tick_sleep = tokio::time::sleep_until(clock.next_tick_at());
        tokio::pin!(tick_sleep);
        let mut shutdown_ticks: Option<u32> = None;
        let result = loop {
            self.heartbeat.beat();
            let input = tokio::select! {
                changed = shutdown.changed(), if shutdown_ticks.is_none() => {
                    Input::Shutdown(changed.is_err() || *shutdown.borrow())
                }
                Some(message) = inbound.recv() => Input::Message(message),
                Some(call) = calls.recv() => Input::Call(call),
                () = &mut tick_sleep => Input::Tick,
            };
            // Due ticks before the input: with lease reads, the leader's tick count is its
            // lease clock and must not lag the read it is about to serve.
            let due = clock.take_due(tokio::time::Instant::now());
            if due > 0 {
                for _ in 0..due {
                    self.raft.tick();
                }
                self.serve_pending_watches(true);
                if let Some(ticks) = &mut shutdown_ticks {
                    *ticks = ticks.saturating_add(due);
                }
                self.publish_status();
            }
            if tick_sleep.deadline() != clock.next_tick_at() {
                tick_sleep.as_mut().reset(clock.next_tick_at());
            }
            match input {
                Input::Shutdown(true) => {
                    shutdown_ticks = Some(0);
                    self.begin_shutdown();
                }
                Input::Shutdown(false) | Input::Tick => {}
                Input::Message(message) => self.step(message),
                Input::Call(call) => self.handle_call(call),
            }
            // Take whatever else is already queued, so one Ready (one sync) covers it.
            for _ in 0..self.config.inputs_per_turn_max {
                if let Ok(message) = inbound.try_recv() {
                    self.step(message);
                } else if let Ok(call) = calls.try_recv() {
                    self.handle_call(call);
                } else {
                    break;
                }
            }
            if let Err(error) = self.process_ready().and_then(|()| self.finish_snapshot()) {
                break Err(DriverError::Storage(error));
            }
            self.heartbeat.beat();
            if let Some(ticks) = shutdown_ticks {
                let handed_over =
                    self.raft.role() != Role::Leader || self.raft.conf_state().voters.len() <= 1;
                if handed_over || ticks >= self.config.shutdown_transfer_ticks_max {
                    info!(handed_over, ticks, "driver stopping");
                    break Ok(());
                }
            }
        };
        if let Err(error) = &result {
            error!(%error, "driver stopped on a storage failure; restart to recover");
        }
        self.fail_all_pending(ErrorKind::ShuttingDown, "the node is shutting down");
        result
    }

    fn step(&mut self, message: Message) {
        let from = message.from;
        if let Err(error) = self.raft.step(message) {
            warn!(from, %error, "refused a peer message");
        }
    }

    /// SIGTERM on a leader: hand leadership to the follower with the longest log, so
    /// clients see no election gap (thesis §3.10).
    fn begin_shutdown(&mut self) {
        let status = self.raft.status();
        if status.role != Role::Leader {
            info!("shutting down (not the leader)");
            return;
        }
        let target = status
            .progress
            .iter()
            .filter(|peer| status.conf_state.voters.contains(&peer.id))
            .max_by_key(|peer| peer.match_index)
            .map(|peer| peer.id);
        match target.map(|id| (id, self.raft.transfer_leader(id))) {
            Some((id, Ok(()))) => info!(target_id = id, "shutting down: transferring leadership"),
            Some((id, Err(error))) => warn!(target_id = id, %error, "shutting down without a transfer"),
            None => info!("shutting down: no other voter to hand leadership to"),
        }
    }

    /// Handles `Ready`s until none is left (raft/src/ready.rs states the order).
    fn process_ready(&mut self) -> Result<(), StorageError> {
        while self.raft.has_ready() {
            let mut ready = self.raft.ready();
            for mut message in std::mem::take(&mut ready.messages) {
                if self.fill_snapshot_chunk(&mut message)? {
                    self.network.send(message);
                }
            }
            self.stage_snapshot_chunks(&ready.snapshot_chunks)?;
            if ready.must_persist() {
                let started = Instant::now();
                self.storage
                    .persist(ready.snapshot.as_ref(), &ready.entries, ready.hard_state)?;
                self.metrics.observe_fsync(started.elapsed());
            }
            for mut message in std::mem::take(&mut ready.persisted_messages) {
                if self.fill_snapshot_chunk(&mut message)? {
                    self.network.send(message);
                }
            }
            if let Some(snapshot) = &ready.snapshot {
                self.machine.restore_sessions(self.storage.sessions()?);
                self.metrics
                    .snapshot_image_bytes
                    .store(snapshot.total_bytes, Ordering::Relaxed);
                self.snapshot_index = snapshot.meta.index;
                info!(index = snapshot.meta.index, "installed snapshot from the leader");
                self.reload_records()?;
            }
            if let Some(last) = ready.committed_entries.last() {
                let last_index = last.index;
                let (batch, outcomes) = self.machine.apply(&self.storage, &ready.committed_entries)?;
                let applied_bytes: usize = ready.committed_entries.iter().map(raft::Entry::size_bytes).sum();
                self.applied_bytes_since_snapshot = self
                    .applied_bytes_since_snapshot
                    .saturating_add(applied_bytes as u64);
                let records_written = batch.kv_writes.iter().any(|(key, _)| is_member_key(key));
                self.storage.apply(batch)?;
                if records_written {
                    self.reload_records()?;
                }
                for entry in &ready.committed_entries {
                    if let Some(pending) = self.pending_member_changes.remove(&entry.index) {
                        let response = if pending.term == entry.term {
                            Response::Members(self.member_list())
                        } else {
                            lost_write()
                        };
                        let _ = pending.reply.send(response);
                    }
                }
                for outcome in outcomes {
                    if let Some(pending) = self.pending_writes.remove(&outcome.index) {
                        let response = if pending.term == outcome.term {
                            match outcome.result {
                                Ok(Applied::Written(result)) => Response::Written(result),
                                Ok(Applied::SessionOpened {
                                    client_id,
                                    timeout_millis,
                                }) => Response::SessionOpened {
                                    client_id,
                                    timeout_millis,
                                },
                                Err(reply) => Response::Error(reply),
                            }
                        } else {
                            lost_write()
                        };
                        let _ = pending.reply.send(response);
                    }
                }
                // A pending write whose index was applied with another entry was lost
                // with a deposed leader; the client retries with the same session.
                let applied_through: Vec<Index> = self
                    .pending_writes
                    .range(..=last_index)
                    .map(|(i, _)| *i)
                    .collect();
                for index in applied_through {
                    if let Some(pending) = self.pending_writes.remove(&index) {
                        let _ = pending.reply.send(lost_write());
                    }
                }
            }
            for read in ready.read_states {
                if let Some(pending) = self.pending_reads.remove(&read.context) {
                    if pending.request == Request::SnapshotBegin {
                        self.backups_due.push(pending.reply);
                        continue;
                    }
                    let response = self.serve_read(&pending.request);
                    let _ = pending.reply.send(response);
                }
            }
            for context in ready.dropped_reads {
                if let Some(pending) = self.pending_reads.remove(&context) {
                    let _ = pending
                        .reply
                        .send(unavailable("leadership changed during the read; retry"));
                }
            }
            self.raft.advance();
        }
        self.after_ready()
    }

    /// Leadership loss fails the writes this node proposed; a long enough applied log
    /// starts a snapshot, built off the loop (`snapshots.rs`).
    fn after_ready(&mut self) -> Result<(), StorageError> {
        let is_leader = self.raft.role() == Role::Leader;
        if self.was_leader && !is_leader {
            if !self.pending_writes.is_empty() || !self.pending_member_changes.is_empty() {
                info!(
                    pending = self.pending_writes.len() + self.pending_member_changes.len(),
                    "lost leadership; failing pending writes"
                );
            }
            for (_, pending) in std::mem::take(&mut self.pending_writes) {
                let _ = pending.reply.send(lost_write());
            }
            for (_, pending) in std::mem::take(&mut self.pending_member_changes) {
                let _ = pending.reply.send(lost_write());
            }
            // Records this leader proposed may never commit: back to the applied ones.
            self.reload_records()?;
        }
        if *self.raft.conf_state() != self.peers_conf {
            self.peers_conf = self.raft.conf_state().clone();
            self.refresh_peers();
            self.publish_status();
        }
        self.record_unrecorded_members();
        self.serve_pending_watches(false);
        if self.was_leader != is_leader {
            self.publish_status();
        }
        self.was_leader = is_leader;
        self.start_due_backups();
        self.maybe_start_snapshot()
    }

    /// The clients' data size against the quota (0 bytes if the size cannot be read:
    /// it is only ever a report or a refusal, never a reason to stop).
    pub(super) fn space(&mut self) -> SpaceStatus {
        let data_bytes = match self.machine.data_bytes(&self.storage) {
            Ok(bytes) => bytes,
            Err(error) => {
                warn!(%error, "cannot read the data size");
                0
            }
        };
        SpaceStatus {
            data_bytes,
            quota_bytes: self.config.quota_bytes.unwrap_or(0),
            disk_free_bytes: self.disk_guard.free_bytes(),
            disk_free_min_bytes: self.config.disk_free_min_bytes.unwrap_or(0),
        }
    }

    fn publish_status(&mut self) {
        self.disk_guard.refresh(&self.storage);
        let space = self.space();
        let status = describe::node_status(&self.raft, space);
        let metrics = &self.metrics;
        metrics.term.store(status.term, Ordering::Relaxed);
        metrics
            .role
            .store(describe::role_number(self.raft.role()), Ordering::Relaxed);
        metrics.commit_index.store(status.commit, Ordering::Relaxed);
        metrics.applied_index.store(status.applied, Ordering::Relaxed);
        metrics.last_index.store(status.last_index, Ordering::Relaxed);
        metrics
            .sessions_open
            .store(self.machine.sessions_open() as u64, Ordering::Relaxed);
        metrics.data_bytes.store(space.data_bytes, Ordering::Relaxed);
        metrics.quota_bytes.store(space.quota_bytes, Ordering::Relaxed);
        if let Some(free) = space.disk_free_bytes {
            metrics.disk_free_bytes.store(free, Ordering::Relaxed);
        }
        metrics
            .space_alarm
            .store(u64::from(space.alarm()), Ordering::Relaxed);
        self.status.send_replace(status);
    }

    fn fail_all_pending(&mut self, kind: ErrorKind, message: &str) {
        let reply = || {
            Response::Error(ErrorReply {
                kind,
                message: message.to_string(),
            })
        };
        for (_, pending) in std::mem::take(&mut self.pending_writes) {
            let _ = pending.reply.send(reply());
        }
        for (_, pending) in std::mem::take(&mut self.pending_reads) {
            let _ = pending.reply.send(reply());
        }
        for (_, pending) in std::mem::take(&mut self.pending_member_changes) {
            let _ = pending.reply.send(reply());
        }
        self.fail_pending_watches(reply());
    }
}

fn unavailable(message: &str) -> Response {
    Response::Error(ErrorReply {
        kind: ErrorKind::Unavailable,
        message: message.to_string(),
    })
}

/// A refusal before anything was proposed: unlike `unavailable`, it leaves no outcome
/// unknown.
fn not_now(message: &str) -> Response {
    Response::Error(ErrorReply {
        kind: ErrorKind::NotNow,
        message: message.to_string(),
    })
}

/// This leader's wall clock, stamped on the entries it proposes (`KvCommand::at_millis`).
/// Only the log's clock (the largest stamp applied) decides anything, so a clock that
/// steps back, or a new leader's that is behind, moves no session's expiry back.
fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn lost_write() -> Response {
    unavailable("leadership changed before the write committed; its outcome is unknown, retry it")
}
