//! The Raft state machine of one server: its state, how it starts, how time and
//! messages enter it, and the only places where its role changes.
//!
//! Handlers live in files per concern (`election`, `replication`, `read_index`,
//! `transfer`, `snapshot`, `membership`); outputs leave through `ready`.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{debug, info};

use crate::config::Config;
use crate::error::{MalformedMessage, StartError};
use crate::forwarded_reads::ForwardedReads;
use crate::leader::LeaderState;
use crate::log::RaftLog;
use crate::message::{HeartbeatResponse, Message, MessageBody, VoteResponse};
use crate::prng::Prng;
use crate::progress::Progress;
use crate::ready::ReadyMark;
use crate::snapshot::IncomingSnapshot;
use crate::types::{
    ConfState, Entry, EntryPayload, HardState, Index, NodeId, ReadState, Role, Snapshot, SnapshotMeta, Term,
};

/// Votes collected by a (pre-)candidate.
#[derive(Debug, Default)]
pub(crate) struct VoteTally {
    pub granted: BTreeSet<NodeId>,
    pub rejected: BTreeSet<NodeId>,
}

/// The role together with the state only that role has.
#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    PreCandidate(VoteTally),
    Candidate(VoteTally),
    Leader(Box<LeaderState>),
}

/// What a restarting server read back from its durable storage.
#[derive(Debug, Clone, Default)]
pub struct RestartState {
    pub hard_state: HardState,
    /// The latest durable snapshot, if the log was ever compacted or a snapshot installed.
    pub snapshot: Option<Snapshot>,
    /// The durable log after the snapshot, in index order.
    pub entries: Vec<Entry>,
    /// The index the application's state machine has applied through.
    pub applied: Index,
}

/// One Raft server. Feed it `tick`, `step` and requests; collect `ready`; call
/// `advance` once the `Ready` is handled. Deterministic: the same config and inputs give
/// the same outputs.
#[derive(Debug)]
pub struct Raft {
    pub(crate) config: Config,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) leader: Option<NodeId>,
    pub(crate) role: RoleState,
    pub(crate) log: RaftLog,
    /// The latest configuration in the log and the index it came from (thesis §4.1).
    pub(crate) conf: ConfState,
    pub(crate) conf_index: Index,
    pub(crate) applied: Index,
    /// The newest snapshot this server has, to send to followers that fell behind.
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// Chunks accepted from the leader, for the application to stage in the next Ready.
    pub(crate) snapshot_chunks: Vec<crate::message::SnapshotChunk>,
    /// A snapshot received from the leader, to hand to the application in the next Ready.
    pub(crate) snapshot_to_install: Option<Snapshot>,
    pub(crate) election_elapsed_ticks: u32,
    pub(crate) randomized_election_timeout_ticks: u32,
    /// With lease reads: ticks left in which this server, just started, ignores vote
    /// requests as if it had just heard a leader. It may have acknowledged a leader's
    /// heartbeat right before it crashed, and that leader's lease counts on it.
    pub(crate) vote_quiet_ticks_left: u32,
    pub(crate) rng: Prng,
    /// Messages that may leave at once.
    pub(crate) messages: Vec<Message>,
    /// Messages that may leave only once the next Ready's state is durable.
    pub(crate) persisted_messages: Vec<Message>,
    /// Confirmed reads waiting until `applied` reaches their index.
    pub(crate) reads_awaiting_apply: Vec<ReadState>,
    /// Reads forwarded to the leader (or about to be) and not yet answered.
    pub(crate) forwarded_reads: ForwardedReads,
    /// Reads that failed (leadership lost, leader changed); the application retries.
    pub(crate) dropped_reads: Vec<u64>,
    /// The hard state last handed to the application.
    pub(crate) handed_out_hard_state: HardState,
    pub(crate) ready_in_flight: Option<ReadyMark>,
    /// For `check_invariants`: commit never moves back, one leader per term.
    pub(crate) highest_commit_seen: Index,
    pub(crate) leader_seen: (Term, Option<NodeId>),
    /// The node whose leader messages this server took in term `.0` (itself, if it won
    /// it). Unlike `leader`, which stepping down or a pre-vote clears without a new term,
    /// this is kept for the whole term: a second node claiming the same term's
    /// leadership is refused (§5.2, one leader per term; found by the raft_step fuzz
    /// target with a forged heartbeat).
    pub(crate) term_leader: (Term, Option<NodeId>),
}

impl Raft {
    /// A member of a brand-new cluster. Every member bootstraps with the same `voters`:
    /// the log starts with one committed configuration entry at index 1, term 1 (as etcd
    /// raft's bootstrap does), so all logs match from the start and a server added later
    /// learns the initial membership from the log.
    pub fn bootstrap(config: Config, voters: ConfState) -> Result<Self, StartError> {
        if !voters.is_voter(config.id) {
            return Err(StartError::storage("bootstrap voters must include this server"));
        }
        if !voters.is_well_formed() {
            return Err(StartError::storage("a server is both voter and learner"));
        }
        let mut raft = Self::with_log(config, RaftLog::new(&SnapshotMeta::default(), vec![], 0))?;
        raft.term = 1;
        raft.log.append(1, EntryPayload::Config(voters));
        raft.log.commit_to(1);
        raft.refresh_conf();
        raft.become_follower(1, None);
        Ok(raft)
    }

    /// A server that will join an existing cluster: empty log, no configuration. It
    /// never campaigns until a leader's log makes it a voter.
    pub fn join(config: Config) -> Result<Self, StartError> {
        let raft = Self::with_log(config, RaftLog::new(&SnapshotMeta::default(), vec![], 0))?;
        Ok(raft)
    }

    /// A server coming back from a crash with what it had made durable.
    pub fn restart(config: Config, state: RestartState) -> Result<Self, StartError> {
        let offset = state
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.meta.clone())
            .unwrap_or_default();
        let mut expected = offset.index + 1;
        let mut previous_term = offset.term;
        for entry in &state.entries {
            if entry.index != expected || entry.term < previous_term {
                return Err(StartError::storage(format!(
                    "log entry {} (term {}) does not follow index {} term {previous_term}",
                    entry.index,
                    entry.term,
                    expected - 1
                )));
            }
            expected += 1;
            previous_term = entry.term;
        }
        let last_index = expected - 1;
        if state.applied < offset.index || state.applied > last_index {
            return Err(StartError::storage(format!(
                "applied index {} outside the log [{}, {last_index}]",
                state.applied, offset.index
            )));
        }
        if state.hard_state.term < previous_term {
            return Err(StartError::storage("hard state term older than the log"));
        }
        // Commit is persisted lazily; what was applied was certainly committed.
        let commit = state.hard_state.commit.clamp(state.applied, last_index);
        let log = RaftLog::new(&offset, state.entries, commit);
        let mut raft = Self::with_log(config, log)?;
        raft.term = state.hard_state.term;
        raft.vote = state.hard_state.vote;
        raft.applied = state.applied;
        raft.snapshot = state.snapshot;
        raft.refresh_conf();
        raft.become_follower(raft.term, None);
        assert_eq!(
            raft.vote, state.hard_state.vote,
            "a restart keeps its vote (paper §5.2)"
        );
        raft.handed_out_hard_state = raft.hard_state();
        info!(
            id = raft.config.id,
            term = raft.term,
            last_index,
            commit,
            applied = raft.applied,
            "restarted"
        );
        Ok(raft)
    }

    fn with_log(config: Config, log: RaftLog) -> Result<Self, StartError> {
        config.validate().map_err(StartError::InvalidConfig)?;
        let rng = Prng::new(config.seed);
        let vote_quiet_ticks_left = if config.lease_reads {
            config.election_timeout_ticks_min
        } else {
            0
        };
        let mut raft = Self {
            term: 0,
            vote: None,
            leader: None,
            role: RoleState::Follower,
            conf: ConfState::default(),
            conf_index: 0,
            applied: log.purged_index(),
            log,
            snapshot: None,
            incoming_snapshot: None,
            snapshot_chunks: Vec::new(),
            snapshot_to_install: None,
            election_elapsed_ticks: 0,
            randomized_election_timeout_ticks: config.election_timeout_ticks_min,
            vote_quiet_ticks_left,
            rng,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            reads_awaiting_apply: Vec::new(),
            forwarded_reads: ForwardedReads::default(),
            dropped_reads: Vec::new(),
            handed_out_hard_state: HardState::default(),
            ready_in_flight: None,
            highest_commit_seen: 0,
            leader_seen: (0, None),
            term_leader: (0, None),
            config,
        };
        raft.reset_election_timer();
        Ok(raft)
    }

    // ----- inputs -------------------------------------------------------------------

    /// Advances logical time by one tick: elections, heartbeats, check-quorum,
    /// transfer timeouts and snapshot chunk retries are all driven from here.
    pub fn tick(&mut self) {
        self.assert_no_ready_in_flight();
        self.vote_quiet_ticks_left = self.vote_quiet_ticks_left.saturating_sub(1);
        if matches!(self.role, RoleState::Leader(_)) {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.check_invariants();
    }

    /// Handles one message from a peer. A message that cannot be valid is refused with
    /// an error and changes nothing.
    pub fn step(&mut self, message: Message) -> Result<(), MalformedMessage> {
        self.assert_no_ready_in_flight();
        message.validate(self.config.id)?;
        if message.term > self.term {
            if self.ignore_higher_term(&message) {
                return Ok(());
            }
        } else if message.term < self.term {
            self.handle_lower_term(&message);
            return Ok(());
        }
        let result = self.step_current_term(message);
        self.check_invariants();
        result
    }

    /// Normalises the term (paper §5.1: a higher term makes any server a follower).
    /// Returns true when the message is to be ignored instead.
    fn ignore_higher_term(&mut self, message: &Message) -> bool {
        let vote_request = match &message.body {
            MessageBody::PreVote(request) | MessageBody::Vote(request) => Some(request),
            _ => None,
        };
        if let Some(request) = vote_request {
            // While a leader is heard from, a vote request is disregarded (thesis §4.2.3,
            // §9.6): a server that was partitioned away cannot depose a healthy leader.
            let hears_leader = (self.config.check_quorum || self.config.pre_vote)
                && self.leader.is_some()
                && self.election_elapsed_ticks < self.config.election_timeout_ticks_min;
            let in_lease = hears_leader || self.vote_quiet_ticks_left > 0;
            if in_lease && !request.leadership_transfer {
                debug!(
                    id = self.config.id,
                    from = message.from,
                    term = message.term,
                    "ignored vote request: still hearing from leader {:?}",
                    self.leader
                );
                return true;
            }
        }
        match &message.body {
            // A pre-vote asks about a term nobody is in yet: no term change.
            MessageBody::PreVote(_) => {}
            // A granted pre-vote carries the term we would campaign in.
            MessageBody::PreVoteResponse(VoteResponse { granted: true }) => {}
            MessageBody::Append(_) | MessageBody::Heartbeat(_) | MessageBody::InstallSnapshot(_) => {
                self.become_follower(message.term, Some(message.from));
            }
            _ => self.become_follower(message.term, None),
        }
        false
    }

    /// A message from an older term. A stale leader is told the current term so it
    /// steps down; without it, a server isolated by check-quorum or pre-vote could never
    /// learn the new term (etcd raft, raft.go "ignored a message with lower term").
    fn handle_lower_term(&mut self, message: &Message) {
        match message.body {
            MessageBody::Append(_) | MessageBody::Heartbeat(_) | MessageBody::InstallSnapshot(_)
                if self.config.check_quorum || self.config.pre_vote =>
            {
                let response = MessageBody::HeartbeatResponse(HeartbeatResponse {
                    read_round: 0,
                    last_log_index: self.log.last_index(),
                });
                self.send(message.from, response);
            }
            MessageBody::PreVote(_) => {
                self.send(
                    message.from,
                    MessageBody::PreVoteResponse(VoteResponse { granted: false }),
                );
            }
            _ => debug!(
                id = self.config.id,
                from = message.from,
                term = message.term,
                current_term = self.term,
                "ignored message from an older term"
            ),
        }
    }

    fn step_current_term(&mut self, message: Message) -> Result<(), MalformedMessage> {
        if matches!(
            message.body,
            MessageBody::Append(_) | MessageBody::Heartbeat(_) | MessageBody::InstallSnapshot(_)
        ) {
            match self.term_leader {
                (term, Some(leader)) if term == self.term && leader != message.from => {
                    return Err(MalformedMessage {
                        from: message.from,
                        reason: format!(
                            "node {} claims to lead term {term}, which node {leader} leads (one leader per term)",
                            message.from
                        ),
                    });
                }
                _ => self.term_leader = (self.term, Some(message.from)),
            }
        }
        match message.body {
            MessageBody::PreVote(request) | MessageBody::Vote(request) => {
                let pre_vote = matches!(message.body, MessageBody::PreVote(_));
                self.handle_vote_request(message.from, message.term, request, pre_vote);
                Ok(())
            }
            _ => match self.role {
                RoleState::Leader(_) => self.step_leader(message),
                RoleState::PreCandidate(_) | RoleState::Candidate(_) => self.step_candidate(message),
                RoleState::Follower => self.step_follower(message),
            },
        }
    }

    fn step_leader(&mut self, message: Message) -> Result<(), MalformedMessage> {
        let from = message.from;
        if let Some(progress) = self.leader_state_mut().progress.get_mut(&from) {
            progress.recent_active = true;
        } else if !matches!(message.body, MessageBody::ReadIndex(_)) {
            debug!(id = self.config.id, from, "ignored message from a non-member");
            return Ok(());
        }
        match message.body {
            MessageBody::AppendResponse(response) => self.handle_append_response(from, response),
            MessageBody::HeartbeatResponse(response) => self.handle_heartbeat_response(from, response),
            MessageBody::InstallSnapshotResponse(response) => {
                self.handle_snapshot_chunk_response(from, response)
            }
            MessageBody::ReadIndex(request) => self.handle_forwarded_read(from, request.context),
            MessageBody::Append(_) | MessageBody::Heartbeat(_) | MessageBody::InstallSnapshot(_) => {
                // Two leaders in one term would break election safety (paper §5.2).
                return Err(MalformedMessage {
                    from,
                    reason: format!("claims leadership of term {}, which this server leads", self.term),
                });
            }
            _ => debug!(id = self.config.id, from, "leader ignored {:?}", message.body),
        }
        Ok(())
    }

    fn step_candidate(&mut self, message: Message) -> Result<(), MalformedMessage> {
        match message.body {
            MessageBody::PreVoteResponse(response) if matches!(self.role, RoleState::PreCandidate(_)) => {
                self.handle_vote_response(message.from, response.granted);
            }
            MessageBody::VoteResponse(response) if matches!(self.role, RoleState::Candidate(_)) => {
                self.handle_vote_response(message.from, response.granted);
            }
            MessageBody::Append(_) | MessageBody::Heartbeat(_) | MessageBody::InstallSnapshot(_) => {
                // A leader of our term exists: it won (paper §5.2).
                self.become_follower(self.term, Some(message.from));
                return self.step_follower(message);
            }
            MessageBody::ReadIndex(request) => self.refuse_forwarded_read(message.from, request.context),
            _ => debug!(
                id = self.config.id,
                from = message.from,
                "candidate ignored {:?}",
                message.body
            ),
        }
        Ok(())
    }

    fn step_follower(&mut self, message: Message) -> Result<(), MalformedMessage> {
        let from = message.from;
        let from_leader = matches!(
            message.body,
            MessageBody::Append(_) | MessageBody::Heartbeat(_) | MessageBody::InstallSnapshot(_)
        );
        if from_leader && self.leader.is_some_and(|leader| leader != from) {
            // Election safety (paper §5.2): this term already has another leader.
            return Err(MalformedMessage {
                from,
                reason: format!(
                    "claims leadership of term {}, led by {:?}",
                    self.term, self.leader
                ),
            });
        }
        match message.body {
            MessageBody::Append(request) => {
                self.heard_from_leader(from);
                return self.handle_append(from, request);
            }
            MessageBody::Heartbeat(heartbeat) => {
                self.heard_from_leader(from);
                self.handle_heartbeat(from, heartbeat);
            }
            MessageBody::InstallSnapshot(chunk) => {
                self.heard_from_leader(from);
                self.handle_snapshot_chunk(from, chunk);
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::ReadIndexResponse(response) => self.handle_read_index_response(response),
            MessageBody::ReadIndex(request) => self.refuse_forwarded_read(from, request.context),
            _ => debug!(id = self.config.id, from, "follower ignored {:?}", message.body),
        }
        Ok(())
    }

    fn heard_from_leader(&mut self, from: NodeId) {
        self.election_elapsed_ticks = 0;
        if self.leader != Some(from) {
            self.set_leader(Some(from));
        }
    }

    // ----- role changes: the only places the role is assigned ---------------------

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "term moves back from {} to {term}", self.term);
        if term > self.term {
            self.term = term;
            self.vote = None;
            // A leader of an older term ignores the forwarded reads it has not answered.
            self.dropped_reads.extend(self.forwarded_reads.drain_all());
        }
        self.end_leadership();
        self.role = RoleState::Follower;
        self.set_leader(leader);
        self.reset_election_timer();
        info!(
            id = self.config.id,
            term, leader, "became follower at term {term}"
        );
    }

    pub(crate) fn become_pre_candidate(&mut self) {
        assert!(
            !matches!(self.role, RoleState::Leader(_)),
            "leader cannot pre-campaign"
        );
        // The term does not change: a pre-vote only asks whether we could win (§9.6).
        self.role = RoleState::PreCandidate(VoteTally::default());
        self.set_leader(None);
        self.reset_election_timer();
        info!(
            id = self.config.id,
            term = self.term,
            "became pre-candidate at term {}",
            self.term
        );
    }

    pub(crate) fn become_candidate(&mut self) {
        assert!(
            !matches!(self.role, RoleState::Leader(_)),
            "leader cannot campaign"
        );
        self.term += 1;
        self.vote = Some(self.config.id);
        self.role = RoleState::Candidate(VoteTally::default());
        self.set_leader(None);
        self.reset_election_timer();
        info!(
            id = self.config.id,
            term = self.term,
            "became candidate at term {}",
            self.term
        );
    }

    pub(crate) fn become_leader(&mut self) {
        assert!(
            matches!(self.role, RoleState::Candidate(_)),
            "only a candidate can win"
        );
        assert_eq!(self.vote, Some(self.config.id));
        self.term_leader = (self.term, Some(self.config.id));
        let next_index = self.log.last_index() + 1;
        let max_inflight = self.config.max_inflight_appends_per_follower;
        let progress: BTreeMap<NodeId, Progress> = self
            .conf
            .members()
            .filter(|&id| id != self.config.id)
            .map(|id| (id, Progress::new(next_index, max_inflight)))
            .collect();
        let mut leader_state = LeaderState::new(
            progress,
            self.config.max_pending_reads,
            self.config.read_lease_ticks(),
        );
        // A configuration entry not yet committed must commit before another change.
        leader_state.pending_conf_index = self.conf_index;
        self.role = RoleState::Leader(Box::new(leader_state));
        self.set_leader(Some(self.config.id));
        self.election_elapsed_ticks = 0;
        // The no-op lets this leader commit an entry of its term, and with it every
        // earlier entry (paper §5.4.2, §8; thesis §6.4).
        let index = self.log.append(self.term, EntryPayload::Empty);
        self.leader_state_mut().uncommitted_bytes = crate::types::ENTRY_OVERHEAD_BYTES;
        info!(
            id = self.config.id,
            term = self.term,
            index,
            "became leader at term {}",
            self.term
        );
        // A single voter commits on its own once the entry is durable (see `advance`).
    }

    /// Tears down leader-only state; pending reads fail so clients retry elsewhere.
    fn end_leadership(&mut self) {
        let RoleState::Leader(leader_state) = &mut self.role else {
            return;
        };
        let pending = leader_state.reads.drain_all();
        for (context, origin) in pending {
            self.fail_read(context, origin);
        }
    }

    pub(crate) fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            // Reads sent to the old leader may never be answered.
            self.dropped_reads.extend(self.forwarded_reads.drain_all());
            // Chunks from different leaders must not be spliced: their snapshots at one
            // index hold the same state but need not be the same bytes.
            self.incoming_snapshot = None;
        }
        self.leader = leader;
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed_ticks = 0;
        self.randomized_election_timeout_ticks = self.rng.range_inclusive(
            u64::from(self.config.election_timeout_ticks_min),
            u64::from(self.config.election_timeout_ticks_max),
        ) as u32;
    }

    // ----- shared helpers -----------------------------------------------------------

    /// Queues a message, in the list its ordering rule demands (see `Ready`). Vote
    /// requests and grants and append responses speak for durable state (thesis §3.8);
    /// everything else may leave before this round's state is durable, including the
    /// leader's appends (thesis §10.2.1: the leader writes its log in parallel).
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    /// `send` with an explicit term: pre-votes carry the term they ask about (§9.6).
    pub(crate) fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        // A leader's messages claim its term: none may leave before the term is durable,
        // or after a crash it could win the same term again and send other entries under
        // it. A single voter elects itself without asking anyone, so nothing else forces
        // that write first.
        let claims_leadership = matches!(
            body,
            MessageBody::Append(_) | MessageBody::Heartbeat(_) | MessageBody::InstallSnapshot(_)
        );
        let needs_durable_state = (claims_leadership && term > self.handed_out_hard_state.term)
            || matches!(
                body,
                MessageBody::Vote(_) | MessageBody::VoteResponse(_) | MessageBody::AppendResponse(_)
            );
        #[cfg(feature = "canaries")]
        let needs_durable_state = needs_durable_state
            && !(self.config.canary == Some(crate::canary::Canary::VoteBeforePersist)
                && matches!(body, MessageBody::VoteResponse(_)));
        let message = Message {
            from: self.config.id,
            to,
            term,
            body,
        };
        if needs_durable_state {
            self.persisted_messages.push(message);
        } else {
            self.messages.push(message);
        }
    }

    /// Recomputes the configuration from the log (thesis §4.1: the latest one in the
    /// log is in force, committed or not) after the log gained or lost entries.
    pub(crate) fn refresh_conf(&mut self) {
        let (conf_index, conf) = self.log.latest_config();
        if conf_index == self.conf_index && conf == self.conf {
            return;
        }
        self.conf_index = conf_index;
        self.conf = conf;
        self.on_conf_changed();
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    pub(crate) fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    /// The leader's own state. Only called on paths that established leadership.
    pub(crate) fn leader_state_mut(&mut self) -> &mut LeaderState {
        match &mut self.role {
            RoleState::Leader(state) => state,
            _ => unreachable!("leader state of a non-leader"),
        }
    }

    pub(crate) fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            RoleState::Leader(state) => Some(state),
            _ => None,
        }
    }

    /// Can this server campaign? Only voters can (thesis §4.2.1: learners never vote).
    pub(crate) fn is_promotable(&self) -> bool {
        self.conf.is_voter(self.config.id)
    }

    fn assert_no_ready_in_flight(&self) {
        assert!(
            self.ready_in_flight.is_none(),
            "input between ready() and advance(): the Ready contract forbids it"
        );
    }

    // ----- read-only views -----------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf
    }

    pub fn applied(&self) -> Index {
        self.applied
    }

    pub fn committed(&self) -> Index {
        self.log.committed()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The newest snapshot this server holds (its own or one it installed).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
}
