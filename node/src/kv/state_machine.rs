//! Applies committed entries to the KV data, deterministically on every replica.
//!
//! Client sessions (Raft thesis §6.3): each write carries (client id, sequence). A
//! sequence already applied returns the cached result instead of applying twice, so a
//! client may retry a write whose outcome it never learned. Only the latest result per
//! client is kept (clients have one write in flight); an older sequence is refused as
//! expired. The table is bounded: the session whose last write is oldest is evicted, a
//! choice made from log indexes only, so every replica evicts the same one.
//!
//! Known gap: clients do not register their sessions (thesis §6.3 has them do so), so a
//! retry arriving after its session was evicted, which takes `sessions_max` newer
//! clients in between, is applied again instead of refused.

use std::collections::{BTreeMap, BTreeSet};

use client::wire::{Command, ErrorKind, ErrorReply, Session, WriteResult};
use raft::{Entry, EntryPayload, Index, Term};
use tracing::warn;

use crate::kv::command::KvCommand;
use crate::membership::SYSTEM_SESSION;
use crate::storage::{ApplyBatch, SessionRecord, Storage, StorageError};

/// The outcome of one applied write, to answer the client that proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedWrite {
    pub index: Index,
    pub term: Term,
    pub result: Result<WriteResult, ErrorReply>,
}

/// Bytes of values the session table may cache in all: results carry values up to
/// 1 MiB, so a count bound alone would let the table grow without bound in bytes.
pub const SESSION_CACHED_BYTES_MAX: usize = 64 * 1024 * 1024;

fn cached_bytes(record: &SessionRecord) -> usize {
    let values = match &record.result {
        WriteResult::Done { previous } => [previous.as_ref(), None],
        WriteResult::CompareAndSwap { current, .. } => [current.as_ref(), None],
    };
    values.into_iter().flatten().map(Vec::len).sum()
}

#[derive(Debug)]
pub struct StateMachine {
    sessions: BTreeMap<u64, SessionRecord>,
    sessions_max: usize,
    /// Sum of `cached_bytes` over the table.
    sessions_bytes: usize,
    /// (index of last write, client id) of every session: eviction order.
    sessions_by_age: BTreeSet<(Index, u64)>,
    /// The `NoWriteDedup` canary (simulation self-test only).
    #[cfg(feature = "canaries")]
    dedup_disabled: bool,
}

impl StateMachine {
    pub fn new(sessions: impl IntoIterator<Item = (u64, SessionRecord)>, sessions_max: usize) -> Self {
        assert!(sessions_max > 0);
        let mut machine = Self {
            sessions: BTreeMap::new(),
            sessions_max,
            sessions_bytes: 0,
            sessions_by_age: BTreeSet::new(),
            #[cfg(feature = "canaries")]
            dedup_disabled: false,
        };
        machine.restore_sessions(sessions);
        machine
    }

    /// Injects the `NoWriteDedup` canary: retried writes are applied again.
    #[cfg(feature = "canaries")]
    pub fn disable_dedup(&mut self) {
        self.dedup_disabled = true;
    }

    /// Whether a retried write is answered from its session (always, but for a canary).
    fn dedups(&self) -> bool {
        #[cfg(feature = "canaries")]
        if self.dedup_disabled {
            return false;
        }
        true
    }

    /// Replaces the session table after a snapshot was installed.
    pub fn restore_sessions(&mut self, sessions: impl IntoIterator<Item = (u64, SessionRecord)>) {
        self.sessions = sessions.into_iter().collect();
        self.sessions_bytes = self.sessions.values().map(cached_bytes).sum();
        self.sessions_by_age = self
            .sessions
            .iter()
            .map(|(id, record)| (record.index, *id))
            .collect();
    }

    /// The cached result of `session`'s write, if that exact write was applied.
    pub fn cached_result(&self, session: Session) -> Option<&WriteResult> {
        self.sessions
            .get(&session.client_id)
            .filter(|record| self.dedups() && record.sequence == session.sequence)
            .map(|record| &record.result)
    }

    /// Applies `entries` (consecutive, committed) on top of `storage`'s data. Returns the
    /// batch to write atomically and each write's outcome. Reads see the batch's own
    /// earlier writes.
    pub fn apply(
        &mut self,
        storage: &dyn Storage,
        entries: &[Entry],
    ) -> Result<(ApplyBatch, Vec<AppliedWrite>), StorageError> {
        let mut overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut session_writes: BTreeMap<u64, Option<SessionRecord>> = BTreeMap::new();
        let mut outcomes = Vec::new();
        let mut applied_index = 0;
        for entry in entries {
            assert!(
                applied_index == 0 || entry.index == applied_index + 1,
                "entries are consecutive"
            );
            applied_index = entry.index;
            let EntryPayload::Normal(data) = &entry.payload else {
                continue;
            };
            let command = match KvCommand::decode(data) {
                Ok(command) => command,
                Err(error) => {
                    // Every replica holds the same bytes and skips them the same way.
                    warn!(index = entry.index, %error, "skipped an undecodable command");
                    continue;
                }
            };
            let result =
                self.apply_command(storage, &mut overlay, &mut session_writes, entry.index, command)?;
            outcomes.push(AppliedWrite {
                index: entry.index,
                term: entry.term,
                result,
            });
        }
        let batch = ApplyBatch {
            applied_index,
            kv_writes: overlay.into_iter().collect(),
            session_writes: session_writes.into_iter().collect(),
        };
        Ok((batch, outcomes))
    }

    fn apply_command(
        &mut self,
        storage: &dyn Storage,
        overlay: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        session_writes: &mut BTreeMap<u64, Option<SessionRecord>>,
        index: Index,
        KvCommand { session, command }: KvCommand,
    ) -> Result<Result<WriteResult, ErrorReply>, StorageError> {
        if session == SYSTEM_SESSION {
            // raftkv's own records (`crate::membership`), proposed only by a leader's
            // driver: applied as they are, with no session to deduplicate them.
            let key = command.key().to_vec();
            let value = match command {
                Command::Put { value, .. } => Some(value),
                Command::Delete { .. } | Command::CompareAndSwap { .. } => None,
            };
            overlay.insert(key, value);
            return Ok(Ok(WriteResult::Done { previous: None }));
        }
        if let Some(record) = self.sessions.get(&session.client_id).filter(|_| self.dedups()) {
            if session.sequence == record.sequence {
                return Ok(Ok(record.result.clone()));
            }
            if session.sequence < record.sequence {
                return Ok(Err(ErrorReply {
                    kind: ErrorKind::SessionExpired,
                    message: format!(
                        "write {} of client {} is older than its latest write {}",
                        session.sequence, session.client_id, record.sequence
                    ),
                }));
            }
        }
        let key = command.key().to_vec();
        let current = match overlay.get(&key) {
            Some(value) => value.clone(),
            None => storage.get(&key)?,
        };
        let (new_value, result) = match command {
            Command::Put { value, .. } => (Some(value), WriteResult::Done { previous: current }),
            Command::Delete { .. } => (None, WriteResult::Done { previous: current }),
            Command::CompareAndSwap {
                expected, new_value, ..
            } => {
                let swapped = expected == current;
                let stored = if swapped { new_value } else { current.clone() };
                (stored, WriteResult::CompareAndSwap { swapped, current })
            }
        };
        overlay.insert(key, new_value);
        let record = SessionRecord {
            sequence: session.sequence,
            result: result.clone(),
            index,
        };
        self.sessions_bytes += cached_bytes(&record);
        self.sessions_by_age.insert((record.index, session.client_id));
        if let Some(replaced) = self.sessions.insert(session.client_id, record.clone()) {
            self.sessions_bytes -= cached_bytes(&replaced);
            self.sessions_by_age.remove(&(replaced.index, session.client_id));
        }
        session_writes.insert(session.client_id, Some(record));
        // Evict in log order, so every replica evicts the same sessions. The newest one
        // stays even if it alone is over the byte bound.
        while self.sessions.len() > 1
            && (self.sessions.len() > self.sessions_max || self.sessions_bytes > SESSION_CACHED_BYTES_MAX)
        {
            let (_, oldest) = self.sessions_by_age.pop_first().expect("one entry per session");
            if let Some(evicted) = self.sessions.remove(&oldest) {
                self.sessions_bytes -= cached_bytes(&evicted);
            }
            session_writes.insert(oldest, None);
        }
        Ok(Ok(result))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::memory_store::MemoryStore;

    fn entry(index: Index, client_id: u64, sequence: u64, command: Command) -> Entry {
        let data = KvCommand {
            session: Session { client_id, sequence },
            command,
        }
        .encode();
        Entry {
            index,
            term: 1,
            payload: EntryPayload::Normal(Arc::from(data)),
        }
    }

    fn put(key: &str, value: &str) -> Command {
        Command::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn apply(machine: &mut StateMachine, store: &mut MemoryStore, entries: &[Entry]) -> Vec<AppliedWrite> {
        let (batch, outcomes) = machine.apply(store, entries).expect("applies");
        store.apply(batch).expect("stores");
        outcomes
    }

    #[test]
    fn a_retried_write_applies_once_and_returns_the_first_result() {
        // Thesis §6.3: the duplicate's result comes from the session, not a second apply.
        let mut store = MemoryStore::default();
        let mut machine = StateMachine::new([], 16);
        apply(&mut machine, &mut store, &[entry(1, 7, 1, put("k", "a"))]);
        let cas = Command::CompareAndSwap {
            key: "k".into(),
            expected: Some("a".into()),
            new_value: Some("b".into()),
        };
        let first = apply(&mut machine, &mut store, &[entry(2, 7, 2, cas.clone())]);
        let retry = apply(&mut machine, &mut store, &[entry(3, 7, 2, cas)]);
        assert_eq!(first[0].result, retry[0].result);
        assert_eq!(
            first[0].result,
            Ok(WriteResult::CompareAndSwap {
                swapped: true,
                current: Some("a".into())
            })
        );
        assert_eq!(store.get(b"k").expect("reads"), Some(b"b".to_vec()));
        let stale = apply(&mut machine, &mut store, &[entry(4, 7, 1, put("k", "z"))]);
        assert!(matches!(&stale[0].result, Err(reply) if reply.kind == ErrorKind::SessionExpired));
        assert_eq!(store.get(b"k").expect("reads"), Some(b"b".to_vec()));
    }

    #[test]
    fn writes_in_one_batch_see_each_other_and_cas_compares_exactly() {
        let mut store = MemoryStore::default();
        let mut machine = StateMachine::new([], 16);
        let outcomes = apply(
            &mut machine,
            &mut store,
            &[
                entry(1, 1, 1, put("k", "a")),
                entry(
                    2,
                    2,
                    1,
                    Command::CompareAndSwap {
                        key: "k".into(),
                        expected: None,
                        new_value: Some("x".into()),
                    },
                ),
                entry(3, 3, 1, Command::Delete { key: "k".into() }),
            ],
        );
        assert_eq!(
            outcomes[1].result,
            Ok(WriteResult::CompareAndSwap {
                swapped: false,
                current: Some("a".into())
            })
        );
        assert_eq!(
            outcomes[2].result,
            Ok(WriteResult::Done {
                previous: Some("a".into())
            })
        );
        assert_eq!(store.get(b"k").expect("reads"), None);
    }

    #[test]
    fn the_session_table_evicts_the_oldest_session_deterministically() {
        let mut store = MemoryStore::default();
        let mut machine = StateMachine::new([], 2);
        let outcomes = apply(
            &mut machine,
            &mut store,
            &[
                entry(1, 10, 1, put("a", "1")),
                entry(2, 20, 1, put("b", "1")),
                entry(3, 30, 1, put("c", "1")),
            ],
        );
        assert_eq!(outcomes.len(), 3);
        assert!(machine
            .cached_result(Session {
                client_id: 10,
                sequence: 1
            })
            .is_none());
        assert!(machine
            .cached_result(Session {
                client_id: 30,
                sequence: 1
            })
            .is_some());
        let image = store.snapshot_image().expect("image");
        assert_eq!(
            image.sessions.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [20, 30]
        );
    }
}
