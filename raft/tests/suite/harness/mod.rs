//! A seeded, deterministic cluster of real `Raft` servers on a simulated message bus.
#![allow(dead_code, reason = "shared by every test module; not each uses all of it")]
//!
//! The bus can drop, duplicate, reorder (messages are delivered in any order) and cut
//! links one way. A crash throws the server away, keeping only its `Disk`: what it had
//! been told to make durable, never more. Every `Ready` is handled exactly as the
//! contract says, and the `SafetyChecker` watches every step.

pub mod checker;
pub mod disk;
pub mod prng;
pub mod single;
pub mod state_machine;

use std::collections::{BTreeMap, BTreeSet};

use raft::{ConfState, Config, Message, NodeId, Raft, RestartState, Role};

pub use checker::SafetyChecker;
pub use disk::Disk;
pub use prng::TestRng;
pub use state_machine::StateMachine;

/// Where a crash may strike while a node handles a `Ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Messages sent, nothing persisted.
    BeforePersist,
    /// Persisted, but `persisted_messages` not sent and nothing applied.
    AfterPersist,
}

pub struct Cluster {
    pub servers: BTreeMap<NodeId, Option<Raft>>,
    pub disks: BTreeMap<NodeId, Disk>,
    pub machines: BTreeMap<NodeId, StateMachine>,
    pub in_flight: Vec<Message>,
    /// Directed links that lose every message: (from, to).
    pub cut_links: BTreeSet<(NodeId, NodeId)>,
    pub checker: SafetyChecker,
    pub rng: TestRng,
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    /// A node leaves its `Ready` for later after this share of inputs, so several inputs
    /// (a proposal, then an acknowledgement) reach it before one `Ready`, as a batching
    /// driver does.
    pub lazy_ready_per_mille: u64,
    /// Per leader and term, the commit index already checked to be durable on a quorum.
    durable_commit_checked: BTreeMap<(NodeId, u64), u64>,
    /// Per-node crash armed for the next `Ready` that node handles.
    pub armed_crash: BTreeMap<NodeId, CrashPoint>,
    /// Configurations are built by this, so tests can tune limits.
    pub make_config: fn(NodeId) -> Config,
    next_proposal_id: u64,
    /// Proposals that reached a leader's log, by id: (index, term).
    pub proposed: BTreeMap<u64, (u64, u64)>,
    /// Read contexts issued, with the highest index acknowledged anywhere at issue time.
    pub reads_issued: BTreeMap<(NodeId, u64), u64>,
    pub reads_served: Vec<(NodeId, u64, u64)>,
    pub reads_dropped: Vec<(NodeId, u64)>,
}

/// Small limits so batching, byte bounds, windows and chunking all happen in tests.
pub fn test_config(id: NodeId) -> Config {
    Config {
        max_append_bytes_per_message: 256,
        max_inflight_appends_per_follower: 4,
        max_uncommitted_bytes: 4096,
        max_pending_reads: 64,
        snapshot_chunk_bytes: 64,
        max_apply_bytes_per_ready: 512,
        seed: id.wrapping_mul(0x9E37_79B9),
        ..Config::new(id)
    }
}

impl Cluster {
    /// `voters` bootstrap a new cluster; ids in `spares` may join later as learners.
    pub fn new(voters: &[NodeId], seed: u64) -> Self {
        Self::with_config(voters, seed, test_config)
    }

    pub fn with_config(voters: &[NodeId], seed: u64, make_config: fn(NodeId) -> Config) -> Self {
        let mut cluster = Self {
            servers: BTreeMap::new(),
            disks: BTreeMap::new(),
            machines: BTreeMap::new(),
            in_flight: Vec::new(),
            cut_links: BTreeSet::new(),
            checker: SafetyChecker::default(),
            rng: TestRng::new(seed),
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            lazy_ready_per_mille: 0,
            durable_commit_checked: BTreeMap::new(),
            armed_crash: BTreeMap::new(),
            make_config,
            next_proposal_id: 1,
            proposed: BTreeMap::new(),
            reads_issued: BTreeMap::new(),
            reads_served: Vec::new(),
            reads_dropped: Vec::new(),
        };
        let conf = ConfState::with_voters(voters.iter().copied());
        for &id in voters {
            let mut config = make_config(id);
            config.seed ^= seed;
            let raft = Raft::bootstrap(config, conf.clone()).expect("valid bootstrap");
            cluster.add_server(id, raft);
        }
        cluster
    }

    /// Starts a server with an empty log that waits to be added by the leader.
    pub fn start_joining(&mut self, id: NodeId) {
        let raft = Raft::join((self.make_config)(id)).expect("valid config");
        self.add_server(id, raft);
    }

    fn add_server(&mut self, id: NodeId, raft: Raft) {
        self.servers.insert(id, Some(raft));
        self.disks.insert(id, Disk::default());
        self.machines.insert(id, StateMachine::default());
        self.process_ready(id);
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.servers.keys().copied().collect()
    }

    pub fn server(&self, id: NodeId) -> &Raft {
        self.servers[&id].as_ref().expect("server is up")
    }

    pub fn server_mut(&mut self, id: NodeId) -> &mut Raft {
        self.servers
            .get_mut(&id)
            .and_then(Option::as_mut)
            .expect("server is up")
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.servers.get(&id).is_some_and(Option::is_some)
    }

    pub fn up_ids(&self) -> Vec<NodeId> {
        self.servers
            .iter()
            .filter(|(_, s)| s.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// The leader of the highest term among live servers, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.servers
            .values()
            .flatten()
            .filter(|raft| raft.role() == Role::Leader)
            .max_by_key(|raft| raft.term())
            .map(Raft::id)
    }

    /// The match index `leader` keeps for `peer`.
    pub fn match_index_of(&self, leader: NodeId, peer: NodeId) -> u64 {
        let status = self.server(leader).status();
        status
            .progress
            .iter()
            .find(|p| p.id == peer)
            .expect("peer is tracked")
            .match_index
    }

    // ----- driving ---------------------------------------------------------------

    pub fn tick(&mut self, id: NodeId) {
        let Some(raft) = self.servers.get_mut(&id).and_then(Option::as_mut) else {
            return;
        };
        raft.tick();
        self.after_input(id);
    }

    pub fn tick_all(&mut self) {
        for id in self.ids() {
            self.tick(id);
        }
    }

    /// Delivers the in-flight message at `position` (reordering: any message may go
    /// first). Drops it if the link is cut, the target is down, or by chance.
    pub fn deliver(&mut self, position: usize) {
        if self.in_flight.is_empty() {
            return;
        }
        let message = self.in_flight.swap_remove(position % self.in_flight.len());
        self.deliver_message(message);
    }

    /// Delivers one message taken off the bus, unless the network loses it.
    fn deliver_message(&mut self, message: Message) {
        if self.cut_links.contains(&(message.from, message.to)) || !self.is_up(message.to) {
            return;
        }
        if self.drop_per_mille > 0 && self.rng.chance_per_mille(self.drop_per_mille) {
            return;
        }
        if self.duplicate_per_mille > 0 && self.rng.chance_per_mille(self.duplicate_per_mille) {
            self.in_flight.push(message.clone());
        }
        let to = message.to;
        let raft = self.server_mut(to);
        if let Err(error) = raft.step(message.clone()) {
            panic!("honest peers never send a malformed message: {error} in {message:?}");
        }
        self.after_input(to);
    }

    /// Delivers the messages in flight now, in order; the ones they cause wait for the
    /// next hop. Returns what was taken off the bus (delivered or lost).
    pub fn deliver_hop(&mut self) -> Vec<Message> {
        let hop = std::mem::take(&mut self.in_flight);
        for message in &hop {
            self.deliver_message(message.clone());
        }
        hop
    }

    /// Delivers in-flight messages until none is left, always taking the one at position
    /// 0 with [`Cluster::deliver`]. That swap-removes, so the newest message moves to the
    /// front: not the order they were sent (that is `deliver_all`). Returns each message
    /// taken off the bus, delivered or lost.
    pub fn deliver_recording(&mut self) -> Vec<Message> {
        let mut seen = Vec::new();
        let mut budget = 100_000;
        while let Some(next) = self.in_flight.first().cloned() {
            budget -= 1;
            assert!(budget > 0, "messages never stop");
            seen.push(next);
            self.deliver(0);
        }
        seen
    }

    /// Delivers in-flight messages in the order they were sent until none is left.
    pub fn deliver_all(&mut self) {
        let mut budget = 100_000;
        while !self.in_flight.is_empty() {
            budget -= 1;
            assert!(budget > 0, "messages never stop: livelock");
            let message = self.in_flight.remove(0);
            self.deliver_message(message);
        }
    }

    /// Ticks everyone and delivers everything, `rounds` times.
    pub fn run_rounds(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Makes `id` campaign by ticking only it, then lets the election finish.
    pub fn elect(&mut self, id: NodeId) {
        for _ in 0..1000 {
            if self.server(id).role() == Role::Leader {
                self.deliver_all();
                return;
            }
            self.tick(id);
            self.deliver_all();
        }
        panic!("{id} could not become leader");
    }

    /// Proposes a fresh unique value on `id`; returns its id if `id` accepted it.
    pub fn propose(&mut self, id: NodeId) -> Option<u64> {
        let value = self.next_proposal_id;
        let raft = self.servers.get_mut(&id).and_then(Option::as_mut)?;
        let proposal = raft.propose(value.to_be_bytes().to_vec()).ok()?;
        self.next_proposal_id += 1;
        self.proposed.insert(value, (proposal.index, proposal.term));
        self.after_input(id);
        Some(value)
    }

    pub fn read(&mut self, id: NodeId, context: u64) -> bool {
        let acknowledged = self.checker.highest_applied_anywhere();
        let Some(raft) = self.servers.get_mut(&id).and_then(Option::as_mut) else {
            return false;
        };
        if raft.read_index(context).is_err() {
            return false;
        }
        self.reads_issued.insert((id, context), acknowledged);
        self.after_input(id);
        true
    }

    /// Snapshots `id`'s state machine at its applied index and compacts its log.
    pub fn compact(&mut self, id: NodeId) -> bool {
        let Some(raft) = self.servers.get_mut(&id).and_then(Option::as_mut) else {
            return false;
        };
        let machine = &self.machines[&id];
        let image = machine.encode();
        let Ok(compaction) = raft.compact(machine.applied, image.len() as u64) else {
            return false;
        };
        let snapshot = raft.snapshot().cloned().expect("compact keeps the snapshot");
        self.disks
            .get_mut(&id)
            .expect("disk")
            .compact(snapshot, image, compaction.purged_to);
        true
    }

    pub fn crash(&mut self, id: NodeId) {
        self.servers.insert(id, None);
        self.armed_crash.remove(&id);
    }

    /// Restarts `id` from its disk: hard state, snapshot and log; the state machine is
    /// rebuilt from the snapshot and the log is re-applied from there.
    pub fn restart(&mut self, id: NodeId) {
        if self.is_up(id) {
            return;
        }
        let disk = &self.disks[&id];
        let machine = disk
            .snapshot
            .as_ref()
            .map_or_else(StateMachine::default, |snapshot| {
                StateMachine::decode(snapshot.meta.index, &disk.image)
            });
        let state = RestartState {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries.clone(),
            applied: machine.applied,
        };
        let raft = Raft::restart((self.make_config)(id), state).expect("a disk we wrote restarts");
        self.servers.insert(id, Some(raft));
        self.machines.insert(id, machine);
        self.process_ready(id);
    }

    /// Cuts every link between `group` and the rest, both ways.
    pub fn partition(&mut self, group: &[NodeId]) {
        for a in self.ids() {
            for b in self.ids() {
                if group.contains(&a) != group.contains(&b) {
                    self.cut_links.insert((a, b));
                }
            }
        }
    }

    pub fn isolate(&mut self, id: NodeId) {
        self.partition(&[id]);
    }

    pub fn heal(&mut self) {
        self.cut_links.clear();
    }

    fn after_input(&mut self, id: NodeId) {
        if self.lazy_ready_per_mille == 0 || !self.rng.chance_per_mille(self.lazy_ready_per_mille) {
            self.process_ready(id);
        }
        self.checker.observe(&self.servers);
        self.check_commit_durable();
    }

    /// Paper §5.3: an entry is committed once it is *stored* on a majority. Whenever a
    /// leader's commit index moves, the entry there is on a quorum of its voters' disks.
    fn check_commit_durable(&mut self) {
        for raft in self.servers.values().flatten() {
            if raft.role() != Role::Leader {
                continue;
            }
            let (id, term, commit) = (raft.id(), raft.term(), raft.committed());
            let checked = self.durable_commit_checked.entry((id, term)).or_insert(commit);
            if commit <= *checked {
                continue;
            }
            *checked = commit;
            let Some(commit_term) = raft.log().term(commit) else {
                continue;
            };
            let voters = &raft.conf_state().voters;
            let durable = voters
                .iter()
                .filter(|voter| {
                    self.disks.get(voter).is_some_and(|disk| {
                        disk.snapshot.as_ref().is_some_and(|s| s.meta.index >= commit)
                            || disk
                                .entries
                                .iter()
                                .any(|e| e.index == commit && e.term == commit_term)
                    })
                })
                .count();
            assert!(
                durable > voters.len() / 2,
                "commit durability: leader {id} of term {term} committed {commit} but only {durable} of {} voters hold it on disk",
                voters.len()
            );
        }
    }

    /// Handles `Ready`s of `id` until it has none, in the contract's order.
    pub fn process_ready(&mut self, id: NodeId) {
        loop {
            let Some(raft) = self.servers.get_mut(&id).and_then(Option::as_mut) else {
                return;
            };
            if !raft.has_ready() {
                return;
            }
            let mut ready = raft.ready();
            let disk = self.disks.get_mut(&id).expect("disk");
            self.in_flight.extend(
                std::mem::take(&mut ready.messages)
                    .into_iter()
                    .filter_map(|mut message| disk.fill(&mut message).then_some(message)),
            );
            if self.armed_crash.get(&id) == Some(&CrashPoint::BeforePersist) {
                self.crash(id);
                return;
            }
            let disk = self.disks.get_mut(&id).expect("disk");
            let raft = self.servers.get(&id).and_then(Option::as_ref).expect("up");
            self.checker.on_persist(id, raft, &ready.entries);
            for chunk in &ready.snapshot_chunks {
                disk.stage(chunk);
            }
            disk.persist(ready.snapshot.as_ref(), &ready.entries, ready.hard_state);
            if self.armed_crash.get(&id) == Some(&CrashPoint::AfterPersist) {
                self.crash(id);
                return;
            }
            let disk = self.disks.get_mut(&id).expect("disk");
            self.in_flight.extend(
                std::mem::take(&mut ready.persisted_messages)
                    .into_iter()
                    .filter_map(|mut message| disk.fill(&mut message).then_some(message)),
            );
            let machine = self.machines.get_mut(&id).expect("machine");
            if let Some(snapshot) = &ready.snapshot {
                *machine = StateMachine::decode(snapshot.meta.index, &self.disks[&id].image);
                self.checker.on_restore(id, machine);
            }
            for entry in &ready.committed_entries {
                machine.apply(entry);
                self.checker.on_apply(id, entry, machine);
            }
            for read in &ready.read_states {
                assert!(
                    read.index <= machine.applied,
                    "read released before its index applied"
                );
                let acknowledged = self.reads_issued.get(&(id, read.context)).copied().unwrap_or(0);
                // Linearizability of ReadIndex: the read sees every write acknowledged
                // before it was issued.
                assert!(
                    read.index >= acknowledged,
                    "stale read on {id}: read index {} < {acknowledged} acknowledged before it",
                    read.index
                );
                self.reads_served.push((id, read.context, read.index));
            }
            self.reads_dropped
                .extend(ready.dropped_reads.iter().map(|&context| (id, context)));
            self.servers
                .get_mut(&id)
                .and_then(Option::as_mut)
                .expect("up")
                .advance();
        }
    }

    /// Heals everything, restarts every server and runs until a leader commits a new
    /// entry and every member has applied the same log. Panics after `max_rounds`.
    pub fn converge(&mut self, max_rounds: usize) -> NodeId {
        self.heal();
        self.drop_per_mille = 0;
        self.duplicate_per_mille = 0;
        self.lazy_ready_per_mille = 0;
        self.armed_crash.clear();
        for id in self.ids() {
            self.restart(id);
        }
        let mut marker = None;
        for _round in 0..max_rounds {
            self.tick_all();
            self.deliver_all();
            let Some(leader) = self.leader() else { continue };
            if marker.is_none() {
                marker = self.propose(leader);
                continue;
            }
            let leader_raft = self.server(leader);
            let commit = leader_raft.committed();
            let members: Vec<NodeId> = leader_raft.conf_state().members().collect();
            let marker_committed =
                marker
                    .and_then(|value| self.proposed.get(&value))
                    .is_some_and(|&(index, term)| {
                        commit >= index && leader_raft.log().term(index).is_none_or(|t| t == term)
                    });
            let all_applied = members
                .iter()
                .all(|id| self.machines[id].applied == commit && self.server(*id).committed() == commit);
            if marker_committed && all_applied && commit == leader_raft.log().last_index() {
                return leader;
            }
            if let Some(value) = marker {
                // The marker may have been lost with a deposed leader: propose anew.
                let (index, term) = self.proposed[&value];
                if leader_raft.log().term(index).is_some_and(|t| t != term) || leader_raft.term() > term {
                    marker = self.propose(leader);
                }
            }
        }
        panic!("no convergence within {max_rounds} rounds: {}", self.describe());
    }

    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, raft) in &self.servers {
            match raft {
                Some(raft) => {
                    let status = raft.status();
                    out.push_str(&format!(
                        "\n  {id}: {:?} term {} leader {:?} commit {} applied {} last {} conf {:?} progress {:?}",
                        status.role, status.term, status.leader, status.commit, status.applied, status.last_index,
                        status.conf_state.voters, status.progress
                    ));
                }
                None => out.push_str(&format!("\n  {id}: down")),
            }
        }
        out
    }
}
