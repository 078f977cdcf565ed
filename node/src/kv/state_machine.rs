//! Applies committed entries to the KV data, deterministically on every replica.
//!
//! Client sessions (Raft thesis §6.3). A client opens its session through the log
//! (`KvBody::OpenSession`); then each write carries (client id, sequence). A sequence
//! already applied is answered from the cached result instead of applying twice. A
//! write whose session is not open (never opened, expired, evicted to make room) or
//! whose sequence is older than the session's latest is refused with `SessionExpired`
//! and never applied: however late a retry arrives, it applies at most once.
//!
//! Time and limits come from the log alone: the clock is the largest `at_millis`
//! applied, the limits are the latest `OpenSession`'s. Both are kept with the applied
//! state (`MACHINE_STATE_KEY`, a system key, so snapshots carry it), so a replica that
//! restarted, restored a snapshot or runs with other flags expires and evicts exactly
//! as the others. The same record counts the bytes of the clients' keys and values, which
//! the leader holds against its space quota (`--quota-bytes`) before it proposes a write.

use std::collections::{BTreeMap, BTreeSet};

use raft::{Entry, EntryPayload, Index, Term};
use serde::{Deserialize, Serialize};
use wire::{Command, ErrorKind, ErrorReply, Prior, Session, WriteResult};

use crate::kv::command::{KvBody, KvCommand, SessionLimits};
use crate::kv::key_cache::{CachedKey, KeyCache};
use crate::kv::revisions::{self, RevisionState, REVISION_STATE_KEY};
use crate::membership::SYSTEM_SESSION;
use crate::storage::{ApplyBatch, SessionRecord, Storage, StorageError};

/// Where the machine's clock, session limits and data size are kept in the applied state.
pub const MACHINE_STATE_KEY: &[u8] = b"\0raftkv/machine";

/// What every replica derives from the log besides the KV pairs and sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineState {
    /// The largest `at_millis` applied.
    pub clock_millis: u64,
    pub limits: SessionLimits,
    /// Bytes of the clients' keys and values (raftkv's own records left out).
    pub data_bytes: u64,
}

impl MachineState {
    /// Before any entry: no time has passed, the default limits, no data.
    const INITIAL: Self = Self {
        clock_millis: 0,
        limits: SessionLimits::DEFAULT,
        data_bytes: 0,
    };

    fn load(storage: &dyn Storage) -> Result<Self, StorageError> {
        match storage.get(MACHINE_STATE_KEY)? {
            None => Ok(Self::INITIAL),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map_err(|error| StorageError::Corrupt(format!("machine state: {error}"))),
        }
    }

    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("in-memory state encodes")
    }
}

/// What an applied command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Written(WriteResult),
    SessionOpened { client_id: u64, timeout_millis: u64 },
}

/// The outcome of one applied command, to answer the client that proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedWrite {
    pub index: Index,
    pub term: Term,
    pub result: Result<Applied, ErrorReply>,
}

/// Bytes of value a record holds to answer a retry: none unless its write asked for the
/// key's value before it (`return_prior`).
fn cached_bytes(record: &SessionRecord) -> usize {
    match &record.result {
        None => 0,
        Some(WriteResult::Done { previous: prior } | WriteResult::CompareAndSwap { current: prior, .. }) => {
            prior.held_bytes()
        }
    }
}

fn session_expired(message: String) -> ErrorReply {
    ErrorReply {
        kind: ErrorKind::SessionExpired,
        message,
    }
}

#[derive(Debug)]
pub struct StateMachine {
    sessions: BTreeMap<u64, SessionRecord>,
    /// Sum of `cached_bytes` over the table.
    sessions_bytes: usize,
    /// (expires_at_millis, client id) of every session: expiry and eviction order.
    sessions_by_expiry: BTreeSet<(u64, u64)>,
    /// `None` until read from storage (at start, and after a snapshot was installed).
    state: Option<MachineState>,
    /// The cluster revision (`kv::revisions`); `None` as `state`.
    revisions: Option<RevisionState>,
    /// Keys' revisions and value lengths, and the history's event sizes, so that a put
    /// reads nothing from the store (`kv::key_cache`); cleared with `state`.
    cache: KeyCache,
    /// Whether the entry being applied is of log format 2, whose byte-bound eviction
    /// this build keeps (`evict_over`). Set for each entry by `apply`.
    applying_format_2: bool,
    /// The `NoWriteDedup` canary (simulation self-test only).
    #[cfg(feature = "canaries")]
    dedup_disabled: bool,
    /// The `UnknownSessionApplies` canary (simulation self-test only).
    #[cfg(feature = "canaries")]
    unknown_sessions_apply: bool,
}

impl StateMachine {
    pub fn new(sessions: impl IntoIterator<Item = (u64, SessionRecord)>) -> Self {
        let mut machine = Self {
            sessions: BTreeMap::new(),
            sessions_bytes: 0,
            sessions_by_expiry: BTreeSet::new(),
            state: None,
            revisions: None,
            cache: KeyCache::default(),
            applying_format_2: false,
            #[cfg(feature = "canaries")]
            dedup_disabled: false,
            #[cfg(feature = "canaries")]
            unknown_sessions_apply: false,
        };
        machine.restore_sessions(sessions);
        machine
    }

    /// Injects the `NoWriteDedup` canary: retried writes are applied again.
    #[cfg(feature = "canaries")]
    pub fn disable_dedup(&mut self) {
        self.dedup_disabled = true;
    }

    /// Injects the `UnknownSessionApplies` canary: a write of a session that is not open
    /// opens it and applies (raftkv before issue 12), so a retry whose session expired
    /// or was evicted applies a second time.
    #[cfg(feature = "canaries")]
    pub fn apply_unknown_sessions(&mut self) {
        self.unknown_sessions_apply = true;
    }

    /// Whether a retried write is answered from its session (always, but for a canary).
    fn dedups(&self) -> bool {
        #[cfg(feature = "canaries")]
        if self.dedup_disabled {
            return false;
        }
        true
    }

    fn unknown_sessions_apply(&self) -> bool {
        #[cfg(feature = "canaries")]
        if self.unknown_sessions_apply {
            return true;
        }
        false
    }

    /// Replaces the session table after a snapshot was installed; the clock and limits
    /// are read again from the installed state.
    pub fn restore_sessions(&mut self, sessions: impl IntoIterator<Item = (u64, SessionRecord)>) {
        self.sessions = sessions.into_iter().collect();
        self.sessions_bytes = self.sessions.values().map(cached_bytes).sum();
        self.sessions_by_expiry = self
            .sessions
            .iter()
            .map(|(id, record)| (record.expires_at_millis, *id))
            .collect();
        self.state = None;
        self.revisions = None;
        self.cache.clear();
    }

    /// Open sessions, for metrics and tests.
    pub fn sessions_open(&self) -> usize {
        self.sessions.len()
    }

    /// Bytes of the clients' keys and values as of the last apply (read from `storage`
    /// if nothing was applied since the start or a snapshot).
    pub fn data_bytes(&mut self, storage: &dyn Storage) -> Result<u64, StorageError> {
        let state = match self.state {
            Some(state) => state,
            None => MachineState::load(storage)?,
        };
        self.state = Some(state);
        Ok(state.data_bytes)
    }

    /// The cluster revision as of the last apply (read from `storage` if nothing was
    /// applied since the start or a snapshot).
    pub fn revision(&mut self, storage: &dyn Storage) -> Result<u64, StorageError> {
        let revisions = match self.revisions {
            Some(revisions) => revisions,
            None => RevisionState::load(storage)?,
        };
        self.revisions = Some(revisions);
        Ok(revisions.revision)
    }

    /// What the apply path's cache knows of `key` (it holds a value, with these
    /// revisions), if anything: it equals the store between applies.
    pub fn cached_key(&self, key: &[u8]) -> Option<CachedKey> {
        self.cache.key(key)
    }

    /// The cached result of `session`'s write, if that exact write was applied.
    pub fn cached_result(&self, session: Session) -> Option<&WriteResult> {
        self.sessions
            .get(&session.client_id)
            .filter(|record| self.dedups() && record.sequence == session.sequence)
            .and_then(|record| record.result.as_ref())
    }

    /// Applies `entries` (consecutive, committed) on top of `storage`'s data. Returns the
    /// batch to write atomically and each command's outcome. Reads see the batch's own
    /// earlier writes. An entry that is not a command of this log format is an error: it
    /// was written by an older raftkv or damaged, and skipping it would lose a write.
    pub fn apply(
        &mut self,
        storage: &dyn Storage,
        entries: &[Entry],
    ) -> Result<(ApplyBatch, Vec<AppliedWrite>), StorageError> {
        let mut state = match self.state {
            Some(state) => state,
            None => MachineState::load(storage)?,
        };
        let state_before = state;
        let mut revisions = match self.revisions {
            Some(revisions) => revisions,
            None => RevisionState::load(storage)?,
        };
        let revisions_before = revisions;
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
            self.applying_format_2 = KvCommand::is_format_2(data);
            let command = KvCommand::decode(data)
                .map_err(|error| StorageError::Corrupt(format!("log entry {}: {error}", entry.index)))?;
            state.clock_millis = state.clock_millis.max(command.at_millis);
            self.expire(state.clock_millis, &mut session_writes);
            let result = match command.body {
                KvBody::OpenSession { client_id, limits } => {
                    state.limits = limits;
                    Ok(self.open(client_id, state, &mut session_writes))
                }
                KvBody::Write {
                    session,
                    command,
                    return_prior,
                } => self.apply_write(
                    storage,
                    &mut overlay,
                    &mut session_writes,
                    (&mut state, &mut revisions),
                    session,
                    (command, return_prior),
                )?,
            };
            outcomes.push(AppliedWrite {
                index: entry.index,
                term: entry.term,
                result,
            });
        }
        if state != state_before {
            overlay.insert(MACHINE_STATE_KEY.to_vec(), Some(state.encode()));
        }
        self.state = Some(state);
        if revisions != revisions_before {
            overlay.insert(REVISION_STATE_KEY.to_vec(), Some(revisions.encode()));
        }
        self.revisions = Some(revisions);
        let batch = ApplyBatch {
            applied_index,
            kv_writes: overlay.into_iter().collect(),
            session_writes: session_writes.into_iter().collect(),
        };
        Ok((batch, outcomes))
    }

    /// Removes every session whose time ran out by `clock_millis`.
    fn expire(&mut self, clock_millis: u64, session_writes: &mut BTreeMap<u64, Option<SessionRecord>>) {
        while let Some(&(expires_at, client_id)) = self.sessions_by_expiry.first() {
            if expires_at >= clock_millis {
                break;
            }
            self.remove(client_id, session_writes);
        }
    }

    fn remove(&mut self, client_id: u64, session_writes: &mut BTreeMap<u64, Option<SessionRecord>>) {
        if let Some(record) = self.sessions.remove(&client_id) {
            self.sessions_bytes -= cached_bytes(&record);
            self.sessions_by_expiry
                .remove(&(record.expires_at_millis, client_id));
            session_writes.insert(client_id, None);
        }
    }

    fn insert(
        &mut self,
        client_id: u64,
        record: SessionRecord,
        session_writes: &mut BTreeMap<u64, Option<SessionRecord>>,
    ) {
        if let Some(replaced) = self.sessions.remove(&client_id) {
            self.sessions_bytes -= cached_bytes(&replaced);
            self.sessions_by_expiry
                .remove(&(replaced.expires_at_millis, client_id));
        }
        self.sessions_bytes += cached_bytes(&record);
        self.sessions_by_expiry
            .insert((record.expires_at_millis, client_id));
        self.sessions.insert(client_id, record.clone());
        session_writes.insert(client_id, Some(record));
    }

    /// Evicts sessions while over `limits`, never `keep` (the session just opened or
    /// written: it alone may exceed the byte bound). Over the count, the session closest
    /// to expiry goes; over the bytes, the one closest to expiry among those that cache
    /// bytes, since evicting one that holds none frees nothing. (Entries of log format 2
    /// evict by expiry alone for both, as the raftkv that wrote them does, so that a
    /// replica still running it in a rolling upgrade decides alike.)
    fn evict_over(
        &mut self,
        limits: SessionLimits,
        keep: u64,
        session_writes: &mut BTreeMap<u64, Option<SessionRecord>>,
    ) {
        let over_count = |machine: &Self| machine.sessions.len() as u64 > limits.sessions_max.max(1);
        let over_bytes = |machine: &Self| machine.sessions_bytes as u64 > limits.cached_bytes_max;
        while over_count(self) || over_bytes(self) {
            let bytes_only = !over_count(self) && !self.applying_format_2;
            let victim = self.sessions_by_expiry.iter().find(|(_, id)| {
                *id != keep
                    && (!bytes_only
                        || self
                            .sessions
                            .get(id)
                            .is_some_and(|record| cached_bytes(record) > 0))
            });
            let Some(&(_, victim)) = victim else {
                break;
            };
            self.remove(victim, session_writes);
        }
    }

    fn open(
        &mut self,
        client_id: u64,
        state: MachineState,
        session_writes: &mut BTreeMap<u64, Option<SessionRecord>>,
    ) -> Applied {
        let timeout_millis = state.limits.timeout_millis;
        let expires_at_millis = state.clock_millis.saturating_add(timeout_millis);
        let record = match self.sessions.get(&client_id) {
            // Opened again (a retry of the open): kept alive, its latest write kept.
            Some(record) => SessionRecord {
                expires_at_millis,
                timeout_millis,
                ..record.clone()
            },
            None => SessionRecord {
                sequence: 0,
                result: None,
                expires_at_millis,
                timeout_millis,
            },
        };
        self.insert(client_id, record, session_writes);
        self.evict_over(state.limits, client_id, session_writes);
        Applied::SessionOpened {
            client_id,
            timeout_millis,
        }
    }

    fn apply_write(
        &mut self,
        storage: &dyn Storage,
        overlay: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        session_writes: &mut BTreeMap<u64, Option<SessionRecord>>,
        (state, revisions): (&mut MachineState, &mut RevisionState),
        session: Session,
        (command, return_prior): (Command, bool),
    ) -> Result<Result<Applied, ErrorReply>, StorageError> {
        if session == SYSTEM_SESSION {
            // raftkv's own records (`crate::membership`), proposed only by a leader's
            // driver: applied as they are, with no session to deduplicate them.
            let key = command.key().to_vec();
            let value = match command {
                Command::Put { value, .. } => Some(value),
                Command::Delete { .. } | Command::CompareAndSwap { .. } => None,
            };
            overlay.insert(key, value);
            return Ok(Ok(Applied::Written(WriteResult::Done {
                previous: Prior::Absent,
            })));
        }
        let timeout_millis = match self.sessions.get(&session.client_id) {
            None if self.unknown_sessions_apply() => state.limits.timeout_millis,
            None => {
                return Ok(Err(session_expired(format!(
                    "session {} is not open (never opened, expired or evicted): write {} was not applied now",
                    session.client_id, session.sequence
                ))))
            }
            Some(record) if self.dedups() && session.sequence == record.sequence => {
                if let Some(result) = &record.result {
                    return Ok(Ok(Applied::Written(result.clone())));
                }
                record.timeout_millis
            }
            Some(record) if self.dedups() && session.sequence < record.sequence => {
                return Ok(Err(session_expired(format!(
                    "write {} of session {} is older than its latest write {}: not applied now",
                    session.sequence, session.client_id, record.sequence
                ))));
            }
            Some(record) => record.timeout_millis,
        };
        let key = command.key().to_vec();
        // A put or delete that did not ask for the replaced value needs only whether the
        // key held one and its length, which the cache may know; a swap compares values.
        let needs_value = return_prior || matches!(command, Command::CompareAndSwap { .. });
        let cached = if needs_value { None } else { self.cache.key(&key) };
        let (current, prior, before) = match cached {
            Some(cached) => (
                None,
                Prior::Present {
                    value_bytes: u32::try_from(cached.value_bytes).unwrap_or(u32::MAX),
                },
                key.len() as u64 + cached.value_bytes,
            ),
            None => {
                let current = match overlay.get(&key) {
                    Some(value) => value.clone(),
                    None => storage.get(&key)?,
                };
                // The answer, and so the record kept for a retry, holds the value only if asked.
                let prior = Prior::of(current.as_deref(), return_prior);
                let before = current
                    .as_ref()
                    .map_or(0, |value| (key.len() + value.len()) as u64);
                (current, prior, before)
            }
        };
        let existed = prior.existed();
        let (new_value, changed, result) = match command {
            Command::Put { value, .. } => (Some(value), true, WriteResult::Done { previous: prior }),
            Command::Delete { .. } => (None, true, WriteResult::Done { previous: prior }),
            Command::CompareAndSwap {
                expected, new_value, ..
            } => {
                let swapped = expected == current;
                let stored = if swapped { new_value } else { current };
                (
                    stored,
                    swapped,
                    WriteResult::CompareAndSwap {
                        swapped,
                        current: prior,
                    },
                )
            }
        };
        if changed {
            // A delete of an absent key makes no revision (`record_change` skips it).
            revisions::record_change(
                storage,
                overlay,
                (revisions, &mut self.cache),
                &key,
                existed,
                new_value.as_deref(),
            )?;
        }
        let after = new_value
            .as_ref()
            .map_or(0, |value| (key.len() + value.len()) as u64);
        // Every stored pair was counted when written; saturating so that a count read
        // back damaged can only under-count, never stop apply.
        state.data_bytes = state.data_bytes.saturating_sub(before).saturating_add(after);
        overlay.insert(key, new_value);
        let record = SessionRecord {
            sequence: session.sequence,
            result: Some(result.clone()),
            expires_at_millis: state.clock_millis.saturating_add(timeout_millis),
            timeout_millis,
        };
        self.insert(session.client_id, record, session_writes);
        self.evict_over(state.limits, session.client_id, session_writes);
        Ok(Ok(Applied::Written(result)))
    }
}

#[cfg(test)]
mod tests;
