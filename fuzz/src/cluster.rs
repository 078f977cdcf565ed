//! A small cluster of real `raft::Raft` servers driven by a byte script (`script.rs`):
//! voters 1, 2 and 3 bootstrap it, node 4 starts empty and may be added. The bus
//! delivers, loses, duplicates and reorders messages; servers crash (also half way
//! through a `Ready`) and restart from exactly what they were told to make durable; and
//! forged messages are injected: any term, index, sender or body, near the servers'
//! state or far outside it.
//!
//! Checked after every input:
//! - always, whatever was injected (a peer may send anything): no panic, the raft
//!   crate's own invariants (debug assertions), and per server: entries it knew to be
//!   committed never change while it runs; its durable term never goes back nor its
//!   vote change within a term; the `Ready` contract (entries extend the durable log
//!   without a gap and never rewrite a known-committed one, committed entries handed
//!   out are durable and follow the applied index, a snapshot moves the state machine
//!   forward, reads are answered at most once and only once applied, `has_ready` false
//!   means an empty `Ready`, and vote requests and grants and a leader's messages leave
//!   only once the term they speak for is durable); a message `validate` refuses is
//!   refused by `step` and changes nothing.
//! - while only honest messages were delivered (a forged message that passes
//!   `validate` may legitimately lie its way to two leaders): honest messages are never
//!   refused, election safety, log matching, leader completeness, state machine safety
//!   (every server applies the same entry at each index, and a restored snapshot holds
//!   exactly what was applied through it), a commit is durable on a quorum when the
//!   leader advances it, acknowledgements speak for durable entries, and reads are
//!   linearizable.

use std::collections::{BTreeMap, BTreeSet};

use raft::{ConfChange, ConfState, Config, Index, Message, NodeId, Raft, RestartState, Role, Term};

use crate::checker::Checker;
use crate::disk::Disk;
use crate::forge;
use crate::machine::Machine;
use crate::script::{op, Script};

mod ready;

pub const VOTERS: [NodeId; 3] = [1, 2, 3];
pub const JOINER: NodeId = 4;
/// Inputs per script, whatever its length.
const OPS_MAX: usize = 4096;
/// Messages on the bus; beyond it new ones are lost (Raft tolerates loss).
const IN_FLIGHT_MAX: usize = 1024;
const DELIVER_ALL_MAX: usize = 256;
/// `Ready`s one server may hand out in a row before it must have nothing left.
const READY_ROUNDS_MAX: usize = 10_000;

/// What a script did, for the seed corpus's own tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The highest index applied anywhere.
    pub applied: Index,
    /// Terms that had a leader.
    pub leader_terms: usize,
    /// Whether a forged message passed `validate`.
    pub tainted: bool,
}

/// Runs one script; the first byte chooses pre-vote (bit 0 clear) and check-quorum
/// (bit 1 clear).
pub fn run(data: &[u8]) -> Outcome {
    run_traced(data, false)
}

/// `run`, printing every operation and delivered message to stderr with `trace` (to
/// read a crash: `cargo run --example replay_raft_step -- <input file>`).
pub fn run_traced(data: &[u8], trace: bool) -> Outcome {
    let mut script = Script::new(data);
    let flags = script.byte();
    let mut cluster = Cluster::new(flags & 1 == 0, flags & 2 == 0);
    cluster.trace = trace;
    let mut applied = 0;
    let mut leader_terms = BTreeSet::new();
    for _ in 0..OPS_MAX {
        if script.is_done() {
            break;
        }
        cluster.step_script(&mut script);
        for node in cluster.nodes.values() {
            applied = applied.max(node.machine.applied);
            if let Some(raft) = node.raft.as_ref().filter(|raft| raft.role() == Role::Leader) {
                leader_terms.insert(raft.term());
            }
        }
    }
    Outcome {
        applied,
        leader_terms: leader_terms.len(),
        tainted: cluster.tainted,
    }
}

/// Small limits so batching, byte bounds, flow control and chunking all happen.
fn config(id: NodeId, pre_vote: bool, check_quorum: bool) -> Config {
    Config {
        pre_vote,
        check_quorum,
        max_append_bytes_per_message: 256,
        max_inflight_appends_per_follower: 4,
        max_uncommitted_bytes: 4096,
        max_pending_reads: 64,
        snapshot_chunk_bytes: 64,
        // Servers that differ in this local setting must still agree on everything.
        snapshot_trailing_entries: (id % 3) * 2,
        max_apply_bytes_per_ready: 512,
        seed: id.wrapping_mul(0x9E37_79B9),
        ..Config::new(id)
    }
}

fn node_id(byte: u8) -> NodeId {
    NodeId::from(byte % 4) + 1
}

#[derive(Debug)]
enum CrashPoint {
    BeforePersist,
    AfterPersist,
}

#[derive(Debug)]
struct Node {
    raft: Option<Raft>,
    disk: Disk,
    machine: Machine,
    lazy: bool,
    armed_crash: Option<CrashPoint>,
    /// Entries this process saw committed: (index -> term). Cleared on restart: commit
    /// is persisted lazily, so a restarted server may know less.
    committed_terms: BTreeMap<Index, Term>,
    recorded_through: Index,
    /// Reads this process issued and has not seen answered.
    reads_pending: BTreeSet<u64>,
}

impl Node {
    fn new(raft: Raft) -> Self {
        Self {
            raft: Some(raft),
            disk: Disk::default(),
            machine: Machine::default(),
            lazy: false,
            armed_crash: None,
            committed_terms: BTreeMap::new(),
            recorded_through: 0,
            reads_pending: BTreeSet::new(),
        }
    }
}

#[derive(Debug)]
pub struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    in_flight: Vec<Message>,
    pre_vote: bool,
    check_quorum: bool,
    /// A forged message passed `validate`: from here on only the per-server checks hold.
    tainted: bool,
    checker: Checker,
    next_value: u64,
    next_read: u64,
    trace: bool,
}

impl Cluster {
    pub fn new(pre_vote: bool, check_quorum: bool) -> Self {
        let mut cluster = Self {
            nodes: BTreeMap::new(),
            in_flight: Vec::new(),
            pre_vote,
            check_quorum,
            tainted: false,
            checker: Checker::default(),
            next_value: 1,
            next_read: 1,
            trace: false,
        };
        let voters = ConfState::with_voters(VOTERS);
        for id in VOTERS {
            let raft = Raft::bootstrap(cluster.config(id), voters.clone()).expect("valid bootstrap");
            cluster.nodes.insert(id, Node::new(raft));
        }
        let joiner = Raft::join(cluster.config(JOINER)).expect("valid config");
        cluster.nodes.insert(JOINER, Node::new(joiner));
        for id in cluster.ids() {
            cluster.process_ready(id);
        }
        cluster
    }

    fn config(&self, id: NodeId) -> Config {
        config(id, self.pre_vote, self.check_quorum)
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn raft(&self, id: NodeId) -> Option<&Raft> {
        self.nodes.get(&id).and_then(|node| node.raft.as_ref())
    }

    fn raft_mut(&mut self, id: NodeId) -> Option<&mut Raft> {
        self.nodes.get_mut(&id).and_then(|node| node.raft.as_mut())
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes.get_mut(&id).expect("a node of the cluster")
    }

    /// Reads one operation off the script and performs it.
    pub fn step_script(&mut self, script: &mut Script<'_>) {
        let tag = script.byte() % op::OP_COUNT;
        if self.trace {
            eprintln!("op {tag} ({})", op::NAMES[usize::from(tag)]);
        }
        match tag {
            op::TICK => {
                let id = node_id(script.byte());
                for _ in 0..=script.byte() % 16 {
                    self.tick(id);
                }
            }
            op::TICK_ALL => {
                for id in self.ids() {
                    self.tick(id);
                }
            }
            op::DELIVER => {
                let position = usize::from(script.u16());
                if let Some(message) = self.take(position) {
                    self.deliver_honest(message);
                }
            }
            op::DELIVER_ALL => {
                for _ in 0..DELIVER_ALL_MAX {
                    if self.in_flight.is_empty() {
                        break;
                    }
                    let message = self.in_flight.remove(0);
                    self.deliver_honest(message);
                }
            }
            op::DROP => {
                let position = usize::from(script.u16());
                self.take(position);
            }
            op::DUPLICATE => {
                let position = usize::from(script.u16());
                if let Some(message) = self.take(position) {
                    self.send(message.clone());
                    self.deliver_honest(message);
                }
            }
            op::PROPOSE => {
                let id = node_id(script.byte());
                let size = usize::from(script.byte() % 24);
                self.propose(id, size);
            }
            op::READ => {
                let id = node_id(script.byte());
                self.read(id);
            }
            op::TRANSFER => {
                let id = node_id(script.byte());
                let target = node_id(script.byte());
                if let Some(raft) = self.raft_mut(id) {
                    if raft.transfer_leader(target).is_ok() {
                        self.after_input(id);
                    }
                }
            }
            op::CONF_CHANGE => {
                let id = node_id(script.byte());
                let kind = script.byte();
                let target = node_id(script.byte());
                let change = match kind % 3 {
                    0 => ConfChange::AddLearner(target),
                    1 => ConfChange::PromoteLearner(target),
                    _ => ConfChange::Remove(target),
                };
                if let Some(raft) = self.raft_mut(id) {
                    if raft.propose_conf_change(change).is_ok() {
                        self.after_input(id);
                    }
                }
            }
            op::COMPACT => {
                let id = node_id(script.byte());
                self.compact(id);
            }
            op::CRASH => {
                let id = node_id(script.byte());
                let point = script.byte() % 3;
                let node = self.node_mut(id);
                match point {
                    0 => {
                        node.raft = None;
                        node.armed_crash = None;
                    }
                    1 => node.armed_crash = Some(CrashPoint::BeforePersist),
                    _ => node.armed_crash = Some(CrashPoint::AfterPersist),
                }
            }
            op::RESTART => {
                let id = node_id(script.byte());
                self.restart(id);
            }
            op::SET_LAZY => {
                let id = node_id(script.byte());
                self.node_mut(id).lazy = script.bool();
            }
            op::READY => {
                let id = node_id(script.byte());
                self.ready_or_nothing(id);
            }
            op::FORGE => {
                let target = node_id(script.byte());
                if let Some(raft) = self.raft(target) {
                    let message = forge::message(raft, target, self.next_read, script);
                    self.deliver_forged(target, message);
                }
            }
            _ => {
                let position = usize::from(script.u16());
                let at = usize::from(script.u16());
                let byte = script.byte();
                if let Some(message) = self.take(position) {
                    let mut bytes = postcard::to_allocvec(&message).expect("messages encode");
                    let at = at % bytes.len();
                    bytes[at] = byte;
                    if let Ok(corrupted) = postcard::from_bytes::<Message>(&bytes) {
                        self.deliver_forged(message.to, corrupted);
                    }
                }
            }
        }
    }

    // ----- inputs --------------------------------------------------------------------

    fn tick(&mut self, id: NodeId) {
        if let Some(raft) = self.raft_mut(id) {
            raft.tick();
            self.after_input(id);
        }
    }

    fn take(&mut self, position: usize) -> Option<Message> {
        if self.in_flight.is_empty() {
            return None;
        }
        let position = position % self.in_flight.len();
        Some(self.in_flight.swap_remove(position))
    }

    fn send(&mut self, message: Message) {
        if self.in_flight.len() < IN_FLIGHT_MAX {
            self.in_flight.push(message);
        }
    }

    /// Delivers a message some server sent.
    fn deliver_honest(&mut self, message: Message) {
        let to = message.to;
        let tainted = self.tainted;
        if self.trace {
            eprintln!("  deliver {message:?}");
        }
        let Some(raft) = self.raft_mut(to) else {
            return;
        };
        let result = raft.step(message.clone());
        if !tainted {
            if let Err(error) = result {
                panic!("an honest message was refused: {error} in {message:?}");
            }
        }
        self.after_input(to);
    }

    /// Delivers a forged message to `target`.
    fn deliver_forged(&mut self, target: NodeId, message: Message) {
        let valid = message.validate(target);
        if self.trace {
            eprintln!("  forged to {target} ({valid:?}): {message:?}");
        }
        if valid.is_ok() && self.raft(target).is_some() {
            self.tainted = true;
        }
        let Some(raft) = self.raft_mut(target) else {
            return;
        };
        match valid {
            Err(refusal) => {
                let before = raft.status();
                let had_ready = raft.has_ready();
                assert_eq!(
                    raft.step(message),
                    Err(refusal),
                    "step refuses what validate refuses"
                );
                assert_eq!(raft.status(), before, "a refused message changed the server");
                assert_eq!(
                    raft.has_ready(),
                    had_ready,
                    "a refused message changed the server"
                );
            }
            Ok(()) => {
                let _ = raft.step(message);
                self.after_input(target);
            }
        }
    }

    fn propose(&mut self, id: NodeId, size: usize) {
        let value = self.next_value;
        let mut data = value.to_be_bytes().to_vec();
        data.resize(size.max(8), 0xAB);
        let Some(raft) = self.raft_mut(id) else {
            return;
        };
        if raft.propose(data).is_ok() {
            self.next_value += 1;
            self.after_input(id);
        }
    }

    fn read(&mut self, id: NodeId) {
        let context = self.next_read;
        let Some(raft) = self.raft_mut(id) else {
            return;
        };
        if raft.read_index(context).is_ok() {
            self.next_read += 1;
            self.checker.read_issued(id, context);
            self.node_mut(id).reads_pending.insert(context);
            self.after_input(id);
        }
    }

    fn compact(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        let Some(raft) = node.raft.as_mut() else {
            return;
        };
        let image = node.machine.encode();
        let Ok(compaction) = raft.compact(node.machine.applied, image.len() as u64) else {
            return;
        };
        let snapshot = raft.snapshot().cloned().expect("compact keeps the snapshot");
        assert_eq!(snapshot.meta, compaction.meta);
        assert!(compaction.purged_to <= compaction.meta.index);
        node.disk.snapshot = Some(snapshot);
        node.disk.image = image;
        node.disk
            .entries
            .retain(|entry| entry.index > compaction.purged_to);
        self.after_input(id);
    }

    fn restart(&mut self, id: NodeId) {
        let config = self.config(id);
        let node = self.node_mut(id);
        if node.raft.is_some() {
            return;
        }
        let machine = node.disk.snapshot.as_ref().map_or_else(Machine::default, |s| {
            Machine::decode(s.meta.index, &node.disk.image)
        });
        let state = RestartState {
            hard_state: node.disk.hard_state,
            snapshot: node.disk.snapshot.clone(),
            entries: node.disk.log_after_snapshot(),
            applied: machine.applied,
        };
        let raft = Raft::restart(config, state).expect("a disk written as the Ready contract says restarts");
        node.raft = Some(raft);
        node.machine = machine;
        node.armed_crash = None;
        node.committed_terms.clear();
        node.recorded_through = 0;
        node.reads_pending.clear();
        self.after_input(id);
    }

    /// Handles `id`'s `Ready`s; with none pending, checks that `ready` is empty.
    fn ready_or_nothing(&mut self, id: NodeId) {
        let Some(raft) = self.raft_mut(id) else {
            return;
        };
        if raft.has_ready() {
            self.process_ready(id);
        } else {
            let ready = raft.ready();
            assert!(
                ready.messages.is_empty()
                    && ready.snapshot.is_none()
                    && ready.entries.is_empty()
                    && ready.hard_state.is_none()
                    && ready.persisted_messages.is_empty()
                    && ready.committed_entries.is_empty()
                    && ready.read_states.is_empty()
                    && ready.dropped_reads.is_empty(),
                "has_ready() was false but ready() handed out {ready:?}"
            );
            raft.advance();
        }
        self.observe(id);
    }

    fn after_input(&mut self, id: NodeId) {
        if !self.nodes[&id].lazy || self.nodes[&id].armed_crash.is_some() {
            self.process_ready(id);
        }
        self.observe(id);
    }

    // ----- the checks after every input --------------------------------------------------

    /// Records newly committed entries of `id` (for the checker too, with the term `id`
    /// knew them committed in) and checks known ones never change.
    fn record_committed(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node");
        let Some(raft) = node.raft.as_ref() else {
            return;
        };
        let purged = raft.log().purged_index();
        let committed = raft.committed();
        for index in (node.recorded_through + 1).max(purged + 1)..=committed {
            let term = raft
                .log()
                .term(index)
                .expect("committed entries above the purge point are in the log");
            node.committed_terms.insert(index, term);
            if !self.tainted {
                self.checker.record_commit(id, index, term, raft.term());
            }
        }
        node.recorded_through = node.recorded_through.max(committed);
        node.committed_terms = node.committed_terms.split_off(&(purged + 1));
        for (&index, &term) in &node.committed_terms {
            assert_eq!(
                raft.log().term(index),
                Some(term),
                "{id}: committed entry {index} of term {term} changed"
            );
        }
    }

    fn observe(&mut self, id: NodeId) {
        self.record_committed(id);
        if self.tainted {
            return;
        }
        // Election safety, leader completeness and commit durability, for every leader.
        for node in self.nodes.values() {
            let Some(raft) = node.raft.as_ref() else {
                continue;
            };
            if raft.role() != Role::Leader {
                continue;
            }
            self.checker
                .check_leader(raft.id(), raft.term(), raft.log().purged_index(), |index| {
                    raft.log().term(index)
                });
            let nodes = &self.nodes;
            self.checker
                .check_commit_durable(raft, |voter| nodes.get(&voter).map(|n| &n.disk));
        }
    }
}
