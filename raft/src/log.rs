//! The in-memory Raft log: entries after the purged prefix, the commit index, and what
//! has been handed to the application for persistence. The application keeps the
//! durable copy; this log is bounded by compaction (`Raft::compact`).

use std::collections::VecDeque;

use crate::types::{ConfState, Entry, EntryPayload, Index, SnapshotMeta, Term};

#[derive(Debug, Clone)]
pub struct RaftLog {
    /// Index and term of the last purged entry (or of the snapshot the log starts after).
    offset_index: Index,
    offset_term: Term,
    /// The configuration in force at `offset_index`.
    offset_conf: ConfState,
    /// `entries[i].index == offset_index + 1 + i`.
    entries: VecDeque<Entry>,
    committed: Index,
    /// Entries through this index are durable (the application acknowledged them).
    persisted: Index,
    /// Entries from this index on have not been handed out in a `Ready` yet.
    unstable_from: Index,
}

/// What `append_after` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The index of the last entry of the append (paper §5.3, "index of last new entry").
    pub last_new: Index,
    /// The first index whose entry was replaced, if any was.
    pub truncated_from: Option<Index>,
}

/// An append that contradicts committed entries: only a broken or malicious peer sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedConflict {
    pub index: Index,
}

impl RaftLog {
    /// A log that starts after `offset` and holds `entries`, all of them durable.
    pub fn new(offset: &SnapshotMeta, entries: Vec<Entry>, committed: Index) -> Self {
        let log = Self {
            offset_index: offset.index,
            offset_term: offset.term,
            offset_conf: offset.conf_state.clone(),
            entries: entries.into(),
            committed,
            persisted: 0,
            unstable_from: 0,
        };
        let last = log.last_index();
        let log = Self {
            persisted: last,
            unstable_from: last + 1,
            ..log
        };
        log.assert_contiguous();
        assert!(log.committed >= log.offset_index && log.committed <= last);
        log
    }

    fn assert_contiguous(&self) {
        for (position, entry) in self.entries.iter().enumerate() {
            assert_eq!(entry.index, self.offset_index + 1 + position as u64);
        }
    }

    pub fn first_index(&self) -> Index {
        self.offset_index + 1
    }

    /// The index of the last purged entry, 0 if nothing was purged.
    pub fn purged_index(&self) -> Index {
        self.offset_index
    }

    pub fn last_index(&self) -> Index {
        self.offset_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.offset_term, |entry| entry.term)
    }

    pub fn committed(&self) -> Index {
        self.committed
    }

    pub fn persisted(&self) -> Index {
        self.persisted
    }

    pub fn unstable_from(&self) -> Index {
        self.unstable_from
    }

    /// The term of the entry at `index`, or `None` if it is purged or beyond the end.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.offset_index {
            return Some(self.offset_term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let position = index.checked_sub(self.first_index())?;
        self.entries.get(usize::try_from(position).ok()?)
    }

    pub fn match_term(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// The election restriction (paper §5.4.1): a candidate's log is at least as
    /// up-to-date as ours if its last term is greater, or equal with an index as large.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term() || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries in `[low, high]`, stopping once `max_bytes` is reached but always
    /// returning at least one entry if `low <= high`. `low` must not be purged.
    pub fn entries(&self, low: Index, high: Index, max_bytes: usize) -> Vec<Entry> {
        assert!(low >= self.first_index(), "entries({low}) below first index");
        let high = high.min(self.last_index());
        let mut result = Vec::new();
        let mut bytes = 0;
        for index in low..=high {
            let Some(entry) = self.entry(index) else { break };
            bytes += entry.size_bytes();
            if !result.is_empty() && bytes > max_bytes {
                break;
            }
            result.push(entry.clone());
        }
        result
    }

    /// The largest index at or below `index` whose term is at most `term`, with its term;
    /// the conflict hint of the fast back-off (paper §5.3). Purged indexes answer with
    /// the offset.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> (Index, Term) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Some(found) if found <= term => return (index, found),
                Some(_) if index > self.offset_index => index -= 1,
                _ => return (self.offset_index, self.offset_term),
            }
        }
    }

    /// Appends a leader's entries after `prev_index` (paper §5.3 receiver steps 3-4):
    /// entries already present with the same term are skipped, the first conflicting
    /// one truncates the log from there. The caller has checked
    /// `match_term(prev_index, prev_term)`.
    pub fn append_after(
        &mut self,
        prev_index: Index,
        entries: &[Entry],
    ) -> Result<AppendOutcome, CommittedConflict> {
        let last_new = prev_index + entries.len() as u64;
        let first_conflict = entries
            .iter()
            .find(|entry| entry.index > self.offset_index && !self.match_term(entry.index, entry.term));
        let Some(conflict) = first_conflict else {
            return Ok(AppendOutcome {
                last_new,
                truncated_from: None,
            });
        };
        if conflict.index <= self.committed {
            return Err(CommittedConflict {
                index: conflict.index,
            });
        }
        let truncated_from = (conflict.index <= self.last_index()).then_some(conflict.index);
        let start = usize::try_from(conflict.index - prev_index - 1).unwrap_or(usize::MAX);
        self.truncate_and_append(&entries[start..]);
        Ok(AppendOutcome {
            last_new,
            truncated_from,
        })
    }

    /// Removes every entry at or after `entries[0].index` and appends `entries`.
    fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(
            first.index > self.committed,
            "truncating committed entry {}",
            first.index
        );
        assert!(
            first.index <= self.last_index() + 1,
            "gap before entry {}",
            first.index
        );
        let keep = (first.index - self.first_index()) as usize;
        self.entries.truncate(keep);
        // The kept prefix was contiguous and `first` follows it; only the new entries
        // need checking. (Checking the whole log here made every follower append cost
        // O(log length): with 100,000 entries between snapshots it took about 29% of a
        // follower's driver under a put load, issue 14's profile.)
        for (offset, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.index,
                first.index + offset as u64,
                "appended entries are contiguous"
            );
        }
        self.entries.extend(entries.iter().cloned());
        self.unstable_from = self.unstable_from.min(first.index);
        self.persisted = self.persisted.min(first.index - 1);
        assert_eq!(
            self.entries.back().map(|entry| entry.index),
            Some(self.last_index()),
            "the log ends at its last index"
        );
    }

    /// A leader appends to its own log (it never truncates, paper §5.3).
    pub fn append(&mut self, term: Term, payload: EntryPayload) -> Index {
        assert!(term >= self.last_term(), "leader appends below its last term");
        let index = self.last_index() + 1;
        self.entries.push_back(Entry { term, index, payload });
        index
    }

    pub fn commit_to(&mut self, index: Index) {
        assert!(index <= self.last_index(), "commit {index} beyond last index");
        if index > self.committed {
            self.committed = index;
        }
    }

    /// The application made everything through `index` durable.
    pub fn persisted_to(&mut self, index: Index, term: Term) {
        // A truncation since the Ready was handed out would have lowered `unstable_from`;
        // the contract forbids steps between `ready` and `advance`, so this holds.
        assert!(self.match_term(index, term), "persisted entry {index} changed");
        self.persisted = self.persisted.max(index);
        self.unstable_from = self.unstable_from.max(index + 1);
    }

    /// Purges entries through `index` (at most the applied index: the caller checks).
    pub fn purge_to(&mut self, index: Index) {
        if index <= self.offset_index {
            return;
        }
        assert!(index <= self.committed && index <= self.persisted);
        let conf = self.config_at(index);
        let term = self.term(index).expect("purge index within the log");
        let count = (index - self.offset_index) as usize;
        self.entries.drain(..count);
        self.offset_index = index;
        self.offset_term = term;
        self.offset_conf = conf;
    }

    /// Replaces the whole log with the snapshot's point (thesis §5.3 receiver step 8).
    pub fn restore(&mut self, meta: &SnapshotMeta) {
        assert!(meta.index > self.committed, "restoring an older snapshot");
        self.entries.clear();
        self.offset_index = meta.index;
        self.offset_term = meta.term;
        self.offset_conf = meta.conf_state.clone();
        self.committed = meta.index;
        self.persisted = self.persisted.min(meta.index);
        self.unstable_from = meta.index + 1;
    }

    /// The configuration in force at `index`: the last `Config` entry at or before it.
    pub fn config_at(&self, index: Index) -> ConfState {
        self.config_entry_at(index).1
    }

    /// The latest configuration in the log (thesis §4.1: in force as soon as appended),
    /// with the index it came from.
    pub fn latest_config(&self) -> (Index, ConfState) {
        self.config_entry_at(self.last_index())
    }

    fn config_entry_at(&self, index: Index) -> (Index, ConfState) {
        let upto = index.min(self.last_index());
        let mut current = upto;
        while current > self.offset_index {
            if let Some(Entry {
                payload: EntryPayload::Config(conf),
                ..
            }) = self.entry(current)
            {
                return (current, conf.clone());
            }
            current -= 1;
        }
        (self.offset_index, self.offset_conf.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: EntryPayload::Empty,
        }
    }

    fn log_with_terms(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(position, &term)| entry(position as u64 + 1, term))
            .collect();
        RaftLog::new(&SnapshotMeta::default(), entries, 0)
    }

    #[test]
    fn append_after_skips_matching_entries_and_truncates_at_first_conflict() {
        // Paper §5.3 receiver step 3: delete the existing entry and all that follow it.
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        let outcome = log.append_after(1, &[entry(2, 1), entry(3, 3)]);
        assert_eq!(
            outcome,
            Ok(AppendOutcome {
                last_new: 3,
                truncated_from: Some(3)
            })
        );
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Some(3));
        assert_eq!(log.unstable_from(), 3);
        assert_eq!(log.persisted(), 2);
        // A stale, shorter append must not truncate the newer suffix.
        assert_eq!(log.append_after(0, &[entry(1, 1)]).map(|o| o.last_new), Ok(1));
        assert_eq!(log.last_index(), 3);
    }

    #[test]
    fn conflicting_with_committed_entry_is_refused() {
        let mut log = log_with_terms(&[1, 1, 2]);
        log.commit_to(2);
        assert_eq!(
            log.append_after(1, &[entry(2, 5)]),
            Err(CommittedConflict { index: 2 })
        );
        assert_eq!(log.term(2), Some(1));
    }

    #[test]
    fn find_conflict_by_term_skips_whole_terms() {
        let log = log_with_terms(&[1, 1, 4, 4, 4, 5, 5]);
        assert_eq!(log.find_conflict_by_term(7, 4), (5, 4));
        assert_eq!(log.find_conflict_by_term(7, 3), (2, 1));
        assert_eq!(log.find_conflict_by_term(100, 9), (7, 5));
        assert_eq!(log.find_conflict_by_term(7, 0), (0, 0));
    }

    #[test]
    fn purge_keeps_term_and_configuration_of_the_new_offset() {
        let mut log = log_with_terms(&[1, 2, 3]);
        let conf = ConfState::with_voters([1, 2, 3]);
        log.append(3, EntryPayload::Config(conf.clone()));
        log.append(3, EntryPayload::Empty);
        log.commit_to(5);
        log.persisted_to(5, 3);
        log.purge_to(4);
        assert_eq!(log.first_index(), 5);
        assert_eq!(log.term(4), Some(3));
        assert_eq!(log.term(3), None);
        assert_eq!(log.latest_config(), (4, conf));
    }

    #[test]
    fn entries_respects_byte_budget_but_returns_one() {
        let log = log_with_terms(&[1, 1, 1]);
        assert_eq!(log.entries(1, 3, 1).len(), 1);
        assert_eq!(log.entries(1, 3, 2 * crate::types::ENTRY_OVERHEAD_BYTES).len(), 2);
        assert_eq!(log.entries(2, 9, usize::MAX).len(), 2);
    }
}
