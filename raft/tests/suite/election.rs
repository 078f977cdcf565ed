//! Leader election: paper §5.2, §5.4.1; pre-vote thesis §9.6; check-quorum thesis §6.2.

use std::collections::BTreeSet;

use raft::{
    AppendRequest, AppendResponse, ConfState, Config, Entry, EntryPayload, HardState, Index, Message,
    MessageBody, NodeId, ProposalError, Raft, ReadState, Ready, RestartState, Role, Snapshot, Term,
    VoteRequest, VoteResponse,
};

use crate::harness::single::{
    bootstrapped, config_entry, data_entry, handle, heartbeat, is_vote_request, message, restarted, step,
};
use crate::harness::{test_config, Cluster, Disk};

// ----- local helpers -----------------------------------------------------------------

fn vote_request(last_log_index: Index, last_log_term: Term) -> VoteRequest {
    VoteRequest {
        last_log_index,
        last_log_term,
        leadership_transfer: false,
    }
}

/// Ticks until the server starts an election (sends vote requests); returns how many
/// ticks that took and the `Ready` that carries the requests.
fn tick_until_campaign(raft: &mut Raft) -> (u32, Ready) {
    for ticks in 1..=1000 {
        raft.tick();
        let ready = handle(raft);
        if ready
            .messages
            .iter()
            .chain(&ready.persisted_messages)
            .any(is_vote_request)
        {
            return (ticks, ready);
        }
    }
    panic!("server {} never campaigned", raft.id());
}

// ----- tests -----------------------------------------------------------------------------

#[test]
fn a_single_leader_is_elected_and_commits_its_no_op() {
    // Paper §5.2 and §5.4.2: the winner appends an entry of its term and commits it.
    let mut cluster = Cluster::new(&[1, 2, 3], 1);
    cluster.elect(1);
    let leader = cluster.server(1);
    assert_eq!(leader.role(), Role::Leader);
    let term = leader.term();
    assert_eq!(leader.log().term(leader.committed()), Some(term));
    for id in [2, 3] {
        assert_eq!(cluster.server(id).leader(), Some(1));
        assert_eq!(cluster.server(id).term(), term);
    }
}

/// Paper §5.2: "election timeouts are chosen randomly from a fixed interval". Every
/// timeout, the first and each one after the timer resets, lies in
/// `[election_timeout_ticks_min, election_timeout_ticks_max]`, and the draws cover the
/// whole interval rather than sticking to one value.
#[test]
fn election_timeouts_are_drawn_at_random_from_the_configured_interval() {
    let (min, max) = (10, 20);
    let mut observed = BTreeSet::new();
    for seed in 0..64 {
        let config = Config {
            seed,
            election_timeout_ticks_min: min,
            election_timeout_ticks_max: max,
            ..Config::new(1)
        };
        let mut raft = bootstrapped(config, &[1, 2, 3]);
        for _ in 0..3 {
            let (ticks, _) = tick_until_campaign(&mut raft);
            assert!(
                (min..=max).contains(&ticks),
                "seed {seed}: timed out after {ticks} ticks"
            );
            observed.insert(ticks);
        }
        // Pre-vote: campaigning again and again never changes the term (thesis §9.6).
        assert_eq!(raft.role(), Role::PreCandidate);
        assert_eq!(raft.term(), 1);
    }
    assert_eq!(
        observed,
        (min..=max).collect::<BTreeSet<_>>(),
        "timeouts do not cover the interval"
    );
}

/// Everything a `Ready` holds, comparable.
#[derive(Debug, PartialEq, Eq)]
struct Output {
    messages: Vec<Message>,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
    persisted_messages: Vec<Message>,
    committed_entries: Vec<Entry>,
    read_states: Vec<ReadState>,
    dropped_reads: Vec<u64>,
}

impl From<Ready> for Output {
    fn from(ready: Ready) -> Self {
        Self {
            messages: ready.messages,
            snapshot: ready.snapshot,
            entries: ready.entries,
            hard_state: ready.hard_state,
            persisted_messages: ready.persisted_messages,
            committed_entries: ready.committed_entries,
            read_states: ready.read_states,
            dropped_reads: ready.dropped_reads,
        }
    }
}

/// Runs one scripted life of server 1 (follower, pre-candidate, candidate, leader with
/// proposals and a read, deposed, campaigning again) and records every `Ready`.
fn scripted_transcript(config: Config) -> Vec<Output> {
    let mut transcript = Vec::new();
    let mut raft = Raft::bootstrap(config, ConfState::with_voters([1, 2, 3])).expect("bootstrap");
    let mut record = |raft: &mut Raft| {
        let output = Output::from(handle(raft));
        transcript.push(output);
        transcript.last().expect("just pushed").messages.clone()
    };
    record(&mut raft);
    for _ in 0..25 {
        raft.tick();
        record(&mut raft);
    }
    let pre_vote_term = raft.term() + 1;
    let granted = MessageBody::PreVoteResponse(VoteResponse { granted: true });
    raft.step(message(2, 1, pre_vote_term, granted)).expect("valid");
    record(&mut raft);
    let vote = MessageBody::VoteResponse(VoteResponse { granted: true });
    raft.step(message(3, 1, raft.term(), vote)).expect("valid");
    record(&mut raft);
    assert_eq!(raft.role(), Role::Leader, "the script elects server 1");
    for value in 0..3u64 {
        raft.propose(value.to_be_bytes().to_vec())
            .expect("leader accepts");
    }
    raft.read_index(9).expect("read accepted");
    record(&mut raft);
    let last = raft.log().last_index();
    let accepted = MessageBody::AppendResponse(AppendResponse::Accepted { match_index: last });
    raft.step(message(2, 1, raft.term(), accepted)).expect("valid");
    let mut read_round = 0;
    for _ in 0..5 {
        for sent in record(&mut raft) {
            if let MessageBody::Heartbeat(heartbeat) = sent.body {
                read_round = read_round.max(heartbeat.read_round);
            }
        }
        raft.tick();
    }
    let ack = MessageBody::HeartbeatResponse(raft::HeartbeatResponse {
        read_round,
        last_log_index: last,
    });
    raft.step(message(3, 1, raft.term(), ack)).expect("valid");
    record(&mut raft);
    raft.step(message(2, 1, raft.term() + 1, heartbeat(0)))
        .expect("valid");
    record(&mut raft);
    for _ in 0..45 {
        raft.tick();
        record(&mut raft);
    }
    transcript
}

/// Lib contract and thesis §10.2 (deterministic core): two servers with the same
/// `Config` fed the same inputs produce identical `Ready`s, so a seed replays a run.
#[test]
fn identical_servers_fed_identical_inputs_produce_identical_readies() {
    let config = test_config(1);
    let first = scripted_transcript(config.clone());
    let second = scripted_transcript(config.clone());
    assert_eq!(first, second);
    // The script exercised every kind of output, so the comparison means something.
    assert!(first
        .iter()
        .any(|output| output.read_states == [ReadState { context: 9, index: 5 }]));
    assert!(first.iter().any(|output| output.committed_entries.len() == 4));
    assert!(first
        .iter()
        .flat_map(|output| &output.messages)
        .any(|m| matches!(m.body, MessageBody::Append(_))));
    assert!(first
        .iter()
        .flat_map(|output| &output.persisted_messages)
        .any(is_vote_request));
    // The seed is what the timeouts come from: another seed times out differently.
    let other = scripted_transcript(Config {
        seed: config.seed + 1,
        ..config
    });
    assert_ne!(first, other);
}

/// Thesis §9.6 (pre-vote): a server cut off from the cluster keeps timing out, but its
/// pre-votes win nothing, so its term never grows; when it rejoins, its pre-vote is
/// ignored by servers that hear the leader and it falls back in line: same leader,
/// same term everywhere.
#[test]
fn pre_vote_keeps_a_rejoining_server_from_raising_its_term_or_deposing_the_leader() {
    let mut cluster = Cluster::new(&[1, 2, 3], 11);
    cluster.elect(1);
    let term = cluster.server(1).term();
    cluster.isolate(3);
    for _ in 0..100 {
        cluster.run_rounds(1);
        assert_eq!(
            cluster.server(3).term(),
            term,
            "an isolated pre-candidate raised its term"
        );
    }
    assert_eq!(
        cluster.server(3).role(),
        Role::PreCandidate,
        "the isolated server did campaign"
    );
    assert_eq!(cluster.server(1).role(), Role::Leader);

    cluster.heal();
    // Its next pre-vote reaches the others before any heartbeat reaches it.
    let mut pre_votes_delivered = 0;
    while pre_votes_delivered == 0 {
        cluster.tick(3);
        pre_votes_delivered = cluster
            .in_flight
            .iter()
            .filter(|m| matches!(m.body, MessageBody::PreVote(_)))
            .count();
        cluster.deliver_all();
    }
    assert_eq!(pre_votes_delivered, 2);
    cluster.run_rounds(50);
    for id in [1, 2, 3] {
        let server = cluster.server(id);
        assert_eq!(server.term(), term, "server {id} changed term");
        assert_eq!(server.leader(), Some(1), "server {id} lost the leader");
    }
    assert_eq!(cluster.server(1).role(), Role::Leader);
}

fn without_pre_vote_or_check_quorum(id: NodeId) -> Config {
    Config {
        pre_vote: false,
        check_quorum: false,
        ..test_config(id)
    }
}

/// Thesis §9.6, the problem pre-vote solves: without it (and without the lease), the
/// same rejoin raises the isolated server's term while it is away and deposes the
/// healthy leader when it returns. This control shows the scenario above bites.
#[test]
fn without_pre_vote_a_rejoining_server_disrupts_the_leader() {
    let mut cluster = Cluster::with_config(&[1, 2, 3], 11, without_pre_vote_or_check_quorum);
    cluster.elect(1);
    let term = cluster.server(1).term();
    cluster.isolate(3);
    cluster.run_rounds(100);
    assert!(
        cluster.server(3).term() > term + 2,
        "the isolated candidate kept raising its term"
    );
    cluster.heal();
    cluster.run_rounds(100);
    assert!(
        cluster.server(1).term() > term,
        "the old leader was deposed by the higher term"
    );
}

/// Thesis §6.2 (check-quorum): a leader that hears from a majority keeps leading, but a
/// leader that does not hear from a majority for an election timeout steps down, stays
/// in its term, and refuses proposals. Marks of activity are checked each election
/// timeout, so the step-down comes at most two election timeouts after the last contact.
#[test]
fn check_quorum_makes_an_isolated_leader_step_down_within_two_election_timeouts() {
    let mut cluster = Cluster::new(&[1, 2, 3], 5);
    cluster.elect(1);
    let term = cluster.server(1).term();
    let timeout = cluster.server(1).config().election_timeout_ticks_min;
    // One follower lost: a majority (1 and 2) remains, leadership is kept.
    cluster.isolate(3);
    cluster.run_rounds(10 * timeout as usize);
    assert_eq!(cluster.server(1).role(), Role::Leader);
    assert_eq!(cluster.server(1).term(), term);

    cluster.heal();
    cluster.run_rounds(5);
    cluster.isolate(1);
    let mut ticks = 0;
    while cluster.server(1).role() == Role::Leader {
        ticks += 1;
        assert!(
            ticks <= 2 * timeout,
            "isolated leader still leads after {ticks} ticks"
        );
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert!(
        ticks > timeout,
        "stepped down after {ticks} ticks while it had just heard a majority"
    );
    let deposed = cluster.server_mut(1);
    assert_eq!(deposed.role(), Role::Follower);
    assert_eq!(deposed.term(), term, "stepping down does not need a new term");
    assert_eq!(deposed.leader(), None);
    assert_eq!(
        deposed.propose(vec![0; 8]),
        Err(ProposalError::NotLeader { leader: None })
    );
}

/// Thesis §4.2.3 (and §6.2): a server that heard from a leader within the minimum
/// election timeout neither updates its term nor grants a vote or pre-vote, and does not
/// even answer; once that time passed it votes normally. A leadership transfer's vote
/// request (thesis §3.10) is exempt.
#[test]
fn voters_ignore_vote_requests_while_they_hear_a_leader() {
    let mut follower = bootstrapped(test_config(2), &[1, 2, 3]);
    step(&mut follower, message(1, 2, 2, heartbeat(1)));
    assert_eq!((follower.term(), follower.leader()), (2, Some(1)));

    let min = follower.config().election_timeout_ticks_min;
    for elapsed in 0..min {
        if elapsed > 0 {
            follower.tick();
            handle(&mut follower);
        }
        for body in [
            MessageBody::Vote(vote_request(1, 1)),
            MessageBody::PreVote(vote_request(1, 1)),
        ] {
            let ready = step(&mut follower, message(3, 2, 3, body));
            assert_eq!(
                follower.term(),
                2,
                "{elapsed} ticks after the leader: a vote request moved the term"
            );
            assert_eq!((follower.vote(), follower.leader()), (None, Some(1)));
            assert!(ready.messages.is_empty() && ready.persisted_messages.is_empty());
            assert_eq!(ready.hard_state, None);
        }
    }
    // One more tick: the minimum election timeout has passed without the leader.
    follower.tick();
    handle(&mut follower);
    let ready = step(
        &mut follower,
        message(3, 2, 3, MessageBody::Vote(vote_request(1, 1))),
    );
    assert_eq!((follower.term(), follower.vote()), (3, Some(3)));
    let grant = message(2, 3, 3, MessageBody::VoteResponse(VoteResponse { granted: true }));
    assert_eq!(ready.persisted_messages, std::slice::from_ref(&grant));

    // A leadership transfer's request is not ignored, even within the lease.
    let mut follower = bootstrapped(test_config(2), &[1, 2, 3]);
    step(&mut follower, message(1, 2, 2, heartbeat(1)));
    let transfer = VoteRequest {
        leadership_transfer: true,
        ..vote_request(1, 1)
    };
    let ready = step(&mut follower, message(3, 2, 3, MessageBody::Vote(transfer)));
    assert_eq!((follower.term(), follower.vote()), (3, Some(3)));
    assert_eq!(ready.persisted_messages, [grant]);
}

/// Paper §5.4.1 (the election restriction): a vote goes only to a candidate whose log is
/// at least as up-to-date: a later last term wins, and with equal last terms the longer
/// log wins. Shorter logs and longer logs of an older term are refused; pre-votes obey
/// the same rule (thesis §9.6).
#[test]
fn votes_are_refused_to_candidates_with_less_up_to_date_logs() {
    // Server 2's log: index 1 (term 1), 2 and 3 (term 2); no leader known.
    let voters = [1, 2, 3, 4, 5];
    let log = vec![config_entry(&voters), data_entry(2, 2), data_entry(3, 2)];
    let mut voter = restarted(test_config(2), 2, log, 1);

    let refused = MessageBody::VoteResponse(VoteResponse { granted: false });
    let granted = MessageBody::VoteResponse(VoteResponse { granted: true });
    // Same last term, shorter log.
    let ready = step(
        &mut voter,
        message(1, 2, 3, MessageBody::Vote(vote_request(2, 2))),
    );
    assert_eq!(ready.persisted_messages, [message(2, 1, 3, refused.clone())]);
    // Longer log, older last term.
    let ready = step(
        &mut voter,
        message(3, 2, 3, MessageBody::Vote(vote_request(9, 1))),
    );
    assert_eq!(ready.persisted_messages, [message(2, 3, 3, refused.clone())]);
    assert_eq!((voter.term(), voter.vote()), (3, None));
    // As up-to-date: granted.
    let ready = step(
        &mut voter,
        message(4, 2, 3, MessageBody::Vote(vote_request(3, 2))),
    );
    assert_eq!(ready.persisted_messages, [message(2, 4, 3, granted.clone())]);
    assert_eq!(voter.vote(), Some(4));
    // A later last term beats a longer log.
    let ready = step(
        &mut voter,
        message(5, 2, 4, MessageBody::Vote(vote_request(1, 3))),
    );
    assert_eq!(ready.persisted_messages, [message(2, 5, 4, granted)]);
    assert_eq!((voter.term(), voter.vote()), (4, Some(5)));

    // A pre-vote from a stale log is refused at the voter's own term, which stays.
    let ready = step(
        &mut voter,
        message(1, 2, 5, MessageBody::PreVote(vote_request(2, 2))),
    );
    let refused_pre_vote = MessageBody::PreVoteResponse(VoteResponse { granted: false });
    assert_eq!(ready.messages, [message(2, 1, 4, refused_pre_vote)]);
    assert_eq!(voter.term(), 4);
}

/// Thesis §3.8 and paper Figure 2: a vote grant, a candidate's own vote request and an
/// append acknowledgement speak for state that must be durable first, so they come in
/// `persisted_messages` next to the hard state or entries to persist, never in
/// `messages`. A leader's appends may leave before its own write (thesis §10.2.1), so
/// they are in `messages`; pre-votes bind nothing and are in `messages` too.
#[test]
fn votes_and_acknowledgements_wait_for_persistence_but_leader_appends_do_not() {
    let no_pre_vote = Config {
        pre_vote: false,
        ..test_config(1)
    };
    // A candidate: its term and self-vote are persisted before its requests leave.
    let mut candidate = bootstrapped(no_pre_vote.clone(), &[1, 2, 3]);
    let (_, ready) = tick_until_campaign(&mut candidate);
    assert_eq!(candidate.role(), Role::Candidate);
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            term: 2,
            vote: Some(1),
            commit: 1
        })
    );
    assert!(ready.messages.is_empty());
    let request = MessageBody::Vote(vote_request(1, 1));
    assert_eq!(
        ready.persisted_messages,
        [message(1, 2, 2, request.clone()), message(1, 3, 2, request)]
    );

    // A pre-candidate asks without persisting anything.
    let mut pre_candidate = bootstrapped(test_config(1), &[1, 2, 3]);
    let (_, ready) = tick_until_campaign(&mut pre_candidate);
    assert_eq!(pre_candidate.role(), Role::PreCandidate);
    assert_eq!(ready.hard_state, None);
    assert!(ready.persisted_messages.is_empty());
    let request = MessageBody::PreVote(vote_request(1, 1));
    assert_eq!(
        ready.messages,
        [message(1, 2, 2, request.clone()), message(1, 3, 2, request)]
    );

    // A voter: the grant waits for the vote to be durable.
    let mut voter = bootstrapped(test_config(2), &[1, 2, 3]);
    let ready = step(
        &mut voter,
        message(1, 2, 2, MessageBody::Vote(vote_request(1, 1))),
    );
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            term: 2,
            vote: Some(1),
            commit: 1
        })
    );
    assert!(ready.messages.is_empty());
    let grant = MessageBody::VoteResponse(VoteResponse { granted: true });
    assert_eq!(ready.persisted_messages, [message(2, 1, 2, grant)]);

    // A follower: the acknowledgement waits for the entries to be durable.
    let append = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![data_entry(2, 2)],
        leader_commit: 1,
    };
    let ready = step(&mut voter, message(1, 2, 2, MessageBody::Append(append)));
    assert_eq!(ready.entries, [data_entry(2, 2)]);
    assert!(ready.messages.is_empty());
    let ack = MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 2 });
    assert_eq!(ready.persisted_messages, [message(2, 1, 2, ack)]);

    // A leader: appends go out in `messages` along with the entries to persist.
    let mut leader = bootstrapped(no_pre_vote, &[1, 2, 3]);
    tick_until_campaign(&mut leader);
    let ready = step(
        &mut leader,
        message(2, 1, 2, MessageBody::VoteResponse(VoteResponse { granted: true })),
    );
    assert_eq!(leader.role(), Role::Leader);
    assert_eq!(ready.entries.len(), 1, "the no-op is persisted");
    assert!(ready.persisted_messages.is_empty());
    let appends: Vec<(NodeId, usize)> = ready
        .messages
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::Append(append) => Some((m.to, append.entries.len())),
            _ => None,
        })
        .collect();
    assert_eq!(appends, [(2, 1), (3, 1)]);
    let ack = MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 2 });
    step(&mut leader, message(2, 1, 2, ack));
    let proposal = leader.propose(vec![7; 8]).expect("leader accepts");
    let ready = handle(&mut leader);
    assert_eq!(
        ready.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        [proposal.index]
    );
    assert!(ready.persisted_messages.is_empty());
    let carried = ready.messages.iter().any(|m| match &m.body {
        MessageBody::Append(append) => m.to == 2 && append.entries == ready.entries,
        _ => false,
    });
    assert!(
        carried,
        "the new entry went out before the leader persisted it: {:?}",
        ready.messages
    );
}

/// Paper §5.2 and Figure 2 (votedFor is persistent): a server votes at most once per
/// term, and the vote survives a crash because it is in the hard state; after a
/// restart it refuses another candidate of that term but may repeat its grant.
#[test]
fn one_vote_per_term_survives_a_restart() {
    let mut disk = Disk::default();
    let persist = |disk: &mut Disk, ready: &Ready| {
        disk.persist(ready.snapshot.as_ref(), &ready.entries, ready.hard_state);
    };
    let mut voter = Raft::bootstrap(test_config(2), ConfState::with_voters([1, 2, 3])).expect("bootstrap");
    let ready = handle(&mut voter);
    persist(&mut disk, &ready);
    let ready = step(
        &mut voter,
        message(3, 2, 5, MessageBody::Vote(vote_request(1, 1))),
    );
    persist(&mut disk, &ready);
    assert_eq!(voter.vote(), Some(3));
    drop(voter);

    let state = RestartState {
        hard_state: disk.hard_state,
        snapshot: None,
        entries: disk.entries.clone(),
        applied: 1,
    };
    let mut voter = Raft::restart(test_config(2), state).expect("restart");
    handle(&mut voter);
    assert_eq!((voter.term(), voter.vote()), (5, Some(3)));
    // Another candidate of term 5, with as good a log: refused.
    let ready = step(
        &mut voter,
        message(1, 2, 5, MessageBody::Vote(vote_request(1, 1))),
    );
    let refused = MessageBody::VoteResponse(VoteResponse { granted: false });
    assert_eq!(ready.persisted_messages, [message(2, 1, 5, refused)]);
    assert_eq!(voter.vote(), Some(3));
    // The same candidate again (its request was retried): granted again.
    let ready = step(
        &mut voter,
        message(3, 2, 5, MessageBody::Vote(vote_request(1, 1))),
    );
    let granted = MessageBody::VoteResponse(VoteResponse { granted: true });
    assert_eq!(ready.persisted_messages, [message(2, 3, 5, granted)]);
}

/// Paper §5.2: "If the AppendEntries RPC is from a leader whose term is at least as
/// large as the candidate's current term, then the candidate recognizes the leader as
/// legitimate and returns to follower state." A leader of an older term is not.
#[test]
fn a_candidate_that_hears_a_leader_of_its_term_becomes_its_follower() {
    let no_pre_vote = Config {
        pre_vote: false,
        ..test_config(2)
    };
    let mut candidate = bootstrapped(no_pre_vote, &[1, 2, 3]);
    tick_until_campaign(&mut candidate);
    assert_eq!((candidate.role(), candidate.term()), (Role::Candidate, 2));

    // A stale leader of term 1: not followed, and told the current term.
    let ready = step(&mut candidate, message(1, 2, 1, heartbeat(1)));
    assert_eq!(candidate.role(), Role::Candidate);
    assert_eq!(ready.messages.len(), 1);
    assert_eq!((ready.messages[0].to, ready.messages[0].term), (1, 2));

    // The leader of term 2.
    let append = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![data_entry(2, 2)],
        leader_commit: 1,
    };
    let ready = step(&mut candidate, message(3, 2, 2, MessageBody::Append(append)));
    assert_eq!(candidate.role(), Role::Follower);
    assert_eq!(
        (candidate.term(), candidate.leader(), candidate.vote()),
        (2, Some(3), Some(2))
    );
    let ack = MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 2 });
    assert_eq!(ready.persisted_messages, [message(2, 3, 2, ack)]);

    // A pre-candidate hearing a heartbeat of its term does the same.
    let mut pre_candidate = bootstrapped(test_config(2), &[1, 2, 3]);
    tick_until_campaign(&mut pre_candidate);
    assert_eq!(
        (pre_candidate.role(), pre_candidate.term()),
        (Role::PreCandidate, 1)
    );
    step(&mut pre_candidate, message(1, 2, 1, heartbeat(1)));
    assert_eq!(
        (pre_candidate.role(), pre_candidate.leader()),
        (Role::Follower, Some(1))
    );
}

/// Thesis §4.2.1: learners (non-voting members) receive the log but never campaign,
/// not on timeouts and not on TimeoutNow; candidates neither ask them for votes nor
/// count their votes. A server that joined with no configuration never campaigns.
#[test]
fn learners_never_campaign_and_their_votes_do_not_count() {
    let conf = ConfState {
        voters: [1, 2, 3].into(),
        learners: [4].into(),
    };
    let mut learner = Raft::join(test_config(4)).expect("join");
    handle(&mut learner);
    let append = AppendRequest {
        prev_log_index: 0,
        prev_log_term: 0,
        entries: vec![Entry {
            index: 1,
            term: 1,
            payload: EntryPayload::Config(conf.clone()),
        }],
        leader_commit: 1,
    };
    step(&mut learner, message(1, 4, 2, MessageBody::Append(append)));
    assert_eq!(learner.conf_state(), &conf);
    let max = learner.config().election_timeout_ticks_max;
    for _ in 0..10 * max {
        learner.tick();
        let ready = handle(&mut learner);
        assert!(!ready
            .messages
            .iter()
            .chain(&ready.persisted_messages)
            .any(is_vote_request));
    }
    let ready = step(&mut learner, message(1, 4, 2, MessageBody::TimeoutNow));
    assert!(!ready
        .messages
        .iter()
        .chain(&ready.persisted_messages)
        .any(is_vote_request));
    assert_eq!(
        (learner.role(), learner.term(), learner.vote()),
        (Role::Follower, 2, None)
    );

    let mut newcomer = Raft::join(test_config(5)).expect("join");
    for _ in 0..10 * max {
        newcomer.tick();
        assert!(handle(&mut newcomer).messages.is_empty());
    }
    assert_eq!((newcomer.role(), newcomer.term()), (Role::Follower, 0));

    // A candidate in that configuration.
    let no_pre_vote = Config {
        pre_vote: false,
        ..test_config(1)
    };
    let mut candidate = Raft::bootstrap(no_pre_vote, conf).expect("bootstrap");
    handle(&mut candidate);
    let (_, ready) = tick_until_campaign(&mut candidate);
    let asked: Vec<NodeId> = ready.persisted_messages.iter().map(|m| m.to).collect();
    assert_eq!(asked, [2, 3], "only voters are asked to vote");
    let term = candidate.term();
    let granted = MessageBody::VoteResponse(VoteResponse { granted: true });
    step(&mut candidate, message(4, 1, term, granted.clone()));
    assert_eq!(candidate.role(), Role::Candidate, "a learner's vote was counted");
    step(&mut candidate, message(2, 1, term, granted));
    assert_eq!(candidate.role(), Role::Leader);
}
