//! The `Ready` contract as raft_step's servers follow it, and the checks on what leaves
//! them: each `Ready` handled in the contract's order (raft/src/ready.rs), with a crash
//! possibly armed before or after its persist.

use raft::{AppendResponse, Message, MessageBody, NodeId, VoteResponse};

use super::{Cluster, CrashPoint, Machine, READY_ROUNDS_MAX};

impl Cluster {
    /// `messages` with their snapshot chunks filled from `id`'s image; a chunk of an image
    /// `id` no longer holds is dropped.
    fn filled(&self, id: NodeId, messages: Vec<Message>) -> Vec<Message> {
        let disk = &self.nodes[&id].disk;
        messages
            .into_iter()
            .filter_map(|mut message| disk.fill(&mut message).then_some(message))
            .collect()
    }

    /// Handles `Ready`s of `id` until it has none, in the contract's order, checking it.
    pub(super) fn process_ready(&mut self, id: NodeId) {
        for _ in 0..READY_ROUNDS_MAX {
            let node = self.nodes.get_mut(&id).expect("node");
            let Some(raft) = node.raft.as_mut() else {
                return;
            };
            if !raft.has_ready() {
                return;
            }
            let mut ready = raft.ready();

            // 1. Messages that may leave at once, snapshot chunks filled from the image.
            let messages = self.filled(id, std::mem::take(&mut ready.messages));
            for message in &messages {
                self.check_departure(id, message);
            }
            for message in messages {
                self.send(message);
            }
            let node = self.nodes.get_mut(&id).expect("node");
            if matches!(node.armed_crash, Some(CrashPoint::BeforePersist)) {
                node.raft = None;
                node.armed_crash = None;
                return;
            }

            // 2. Stage accepted chunks, then persist: snapshot, entries, hard state, in one
            // write.
            let disk = &mut node.disk;
            for chunk in &ready.snapshot_chunks {
                disk.stage(id, chunk);
            }
            if let Some(snapshot) = &ready.snapshot {
                assert!(
                    snapshot.meta.index > node.machine.applied,
                    "{id}: a snapshot at {} behind applied {}",
                    snapshot.meta.index,
                    node.machine.applied
                );
                disk.install(id, snapshot);
                disk.snapshot = Some(snapshot.clone());
                disk.entries.clear();
            }
            if let Some(first) = ready.entries.first() {
                for pair in ready.entries.windows(2) {
                    assert_eq!(
                        pair[1].index,
                        pair[0].index + 1,
                        "{id}: entries to persist have a gap"
                    );
                }
                assert!(
                    first.index > disk.snapshot_index() && first.index <= disk.last_index() + 1,
                    "{id}: entries from {} do not extend the durable log (snapshot {}, last {})",
                    first.index,
                    disk.snapshot_index(),
                    disk.last_index()
                );
                // An entry this process saw committed is never written with another term
                // (an uncommitted durable one may be, by a later leader).
                for entry in &ready.entries {
                    if let Some(&term) = node.committed_terms.get(&entry.index) {
                        assert_eq!(term, entry.term, "{id}: rewrites committed entry {}", entry.index);
                    }
                }
                disk.entries.retain(|entry| entry.index < first.index);
                disk.entries.extend(ready.entries.iter().cloned());
            }
            if let Some(hard_state) = ready.hard_state {
                let before = disk.hard_state;
                assert!(hard_state.term >= before.term, "{id}: durable term goes back");
                if hard_state.term == before.term && before.vote.is_some() {
                    assert_eq!(
                        hard_state.vote, before.vote,
                        "{id}: changed its vote in term {}",
                        before.term
                    );
                }
                disk.hard_state = hard_state;
            }
            if !self.tainted {
                let raft = node.raft.as_ref().expect("up");
                let previous_term = ready.entries.first().map(|first| {
                    raft.log()
                        .term(first.index - 1)
                        .expect("the entry before new ones")
                });
                self.checker
                    .check_persisted(id, previous_term.unwrap_or(0), &ready.entries);
            }
            if matches!(node.armed_crash, Some(CrashPoint::AfterPersist)) {
                node.raft = None;
                node.armed_crash = None;
                return;
            }

            // 3. Messages that speak for durable state.
            let persisted_messages = self.filled(id, std::mem::take(&mut ready.persisted_messages));
            for message in &persisted_messages {
                self.check_departure(id, message);
            }
            for message in persisted_messages {
                self.send(message);
            }

            // 4. Apply.
            let node = self.nodes.get_mut(&id).expect("node");
            if let Some(snapshot) = &ready.snapshot {
                node.machine = Machine::decode(snapshot.meta.index, &node.disk.image);
                if !self.tainted {
                    self.checker
                        .check_restored(id, snapshot.meta.index, node.machine.digest);
                }
            }
            for entry in &ready.committed_entries {
                assert!(
                    entry.index <= node.disk.hard_state.commit.max(node.recorded_through),
                    "{id}: applies {} beyond its commit",
                    entry.index
                );
                assert_eq!(
                    node.disk.entry(entry.index),
                    Some(entry),
                    "{id}: applies entry {} that is not durable as handed out",
                    entry.index
                );
                node.machine.apply(entry);
                if !self.tainted {
                    self.checker.check_applied(id, entry, node.machine.digest);
                }
            }

            // 5. Reads.
            for read in &ready.read_states {
                assert!(
                    read.index <= node.machine.applied,
                    "{id}: read {} released at {} before it was applied ({})",
                    read.context,
                    read.index,
                    node.machine.applied
                );
                assert!(
                    node.reads_pending.remove(&read.context) || self.tainted,
                    "{id}: read {} answered but not pending",
                    read.context
                );
                if !self.tainted {
                    self.checker.check_read(id, read);
                }
            }
            for context in &ready.dropped_reads {
                assert!(
                    node.reads_pending.remove(context) || self.tainted,
                    "{id}: read {context} dropped but not pending"
                );
            }

            // 6. Advance.
            node.raft.as_mut().expect("up").advance();
            self.record_committed(id);
        }
        panic!("{id}: has_ready() stays true after {READY_ROUNDS_MAX} Readys");
    }

    /// The rules for a message leaving `id` now, given what its disk holds.
    fn check_departure(&self, id: NodeId, message: &Message) {
        let disk = &self.nodes[&id].disk;
        assert_eq!(message.from, id, "{id} sends as {}", message.from);
        let durable_term = disk.hard_state.term;
        match &message.body {
            MessageBody::Vote(_)
            | MessageBody::Append(_)
            | MessageBody::Heartbeat(_)
            | MessageBody::InstallSnapshot(_) => {
                assert!(
                    durable_term >= message.term,
                    "{id} speaks for term {} before it is durable ({durable_term}): {message:?}",
                    message.term
                );
            }
            MessageBody::VoteResponse(VoteResponse { granted: true }) => {
                assert!(
                    durable_term > message.term
                        || (durable_term == message.term && disk.hard_state.vote == Some(message.to)),
                    "{id} grants its term-{} vote to {} before it is durable ({:?})",
                    message.term,
                    message.to,
                    disk.hard_state
                );
            }
            MessageBody::AppendResponse(AppendResponse::Accepted { match_index }) if !self.tainted => {
                assert!(
                    durable_term > message.term || disk.holds(*match_index),
                    "{id} acknowledges {match_index} in term {} but its disk ends at {}",
                    message.term,
                    disk.last_index()
                );
            }
            _ => {}
        }
    }
}
