//! The state machine's revisions and history (issue 13; etcd's model, described in
//! `wire::revisions`), kept as system records beside the KV pairs so that a
//! snapshot, a backup and every replica carry them alike:
//!
//! - `REVISION_STATE_KEY`: the cluster revision, the newest revision compacted away and
//!   the bytes of history kept;
//! - `KEY_META_PREFIX` + key: the key's create revision, mod revision and version;
//! - `EVENT_KEY_PREFIX` + revision (8 bytes, big-endian, so events sort by revision):
//!   the event that revision made.
//!
//! The history is bounded by `HISTORY_REVISIONS_MAX` events and `HISTORY_BYTES_MAX`
//! bytes; the oldest events are compacted away as the apply of newer ones passes either
//! bound. Both bounds are constants of the apply function, so every replica compacts at
//! the same revision (a flag could differ between replicas and they would answer
//! watches differently).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wire::{Event, EventKind, EventPage, KeyValue, EVENTS_PER_PAGE_MAX, EVENT_PAGE_BYTES_MAX};

use super::key_cache::{CachedKey, KeyCache};
use crate::storage::{Storage, StorageError};

pub const REVISION_STATE_KEY: &[u8] = b"\0raftkv/revision";
pub const KEY_META_PREFIX: &[u8] = b"\0raftkv/keymeta/";
pub const EVENT_KEY_PREFIX: &[u8] = b"\0raftkv/events/";
/// Events kept for watchers to resume from (etcd keeps every revision until a compaction
/// is asked for; a bound that needs no operator suits a store that runs unattended).
pub const HISTORY_REVISIONS_MAX: u64 = 100_000;
/// Bytes of events kept (keys and values of 1 MiB would otherwise keep 100 GB).
pub const HISTORY_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The writes an apply batch made so far, read through before the store.
pub type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Where the cluster's revision stands (`REVISION_STATE_KEY`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionState {
    /// The revision of the latest change (0: no change since revisions were kept).
    pub revision: u64,
    /// Events at or below this revision are gone.
    pub compacted_revision: u64,
    /// Encoded bytes of the events kept.
    pub history_bytes: u64,
}

impl RevisionState {
    pub fn load(storage: &dyn Storage) -> Result<Self, StorageError> {
        match storage.get(REVISION_STATE_KEY)? {
            None => Ok(Self::default()),
            Some(bytes) => decode(&bytes, "revision state"),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("in-memory state encodes")
    }
}

/// A key's revisions (`KEY_META_PREFIX` + key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|error| StorageError::Corrupt(format!("{what}: {error}")))
}

pub fn meta_key(key: &[u8]) -> Vec<u8> {
    [KEY_META_PREFIX, key].concat()
}

pub fn event_key(revision: u64) -> Vec<u8> {
    [EVENT_KEY_PREFIX, &revision.to_be_bytes()].concat()
}

fn revision_of_event_key(key: &[u8]) -> Result<u64, StorageError> {
    key.strip_prefix(EVENT_KEY_PREFIX)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StorageError::Corrupt(format!("history key {key:?} holds no revision")))
}

fn read(storage: &dyn Storage, overlay: &Overlay, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
    match overlay.get(key) {
        Some(value) => Ok(value.clone()),
        None => storage.get(key),
    }
}

fn read_meta(storage: &dyn Storage, overlay: &Overlay, key: &[u8]) -> Result<KeyMeta, StorageError> {
    match read(storage, overlay, &meta_key(key))? {
        // A key stored before revisions were kept: all three unknown (0).
        None => Ok(KeyMeta::default()),
        Some(bytes) => decode(&bytes, "key revisions"),
    }
}

/// Records that the write being applied changed `key` from `old` (present or not) to
/// `new`: the next revision, the key's revisions and the event, in `overlay` (and in
/// `cache`, which answers for the key's revisions before the store); then compacts the
/// history back under its bounds. A write that changes nothing (a delete of an absent
/// key) makes no revision.
pub fn record_change(
    storage: &dyn Storage,
    overlay: &mut Overlay,
    (state, cache): (&mut RevisionState, &mut KeyCache),
    key: &[u8],
    existed: bool,
    new: Option<&[u8]>,
) -> Result<(), StorageError> {
    if !existed && new.is_none() {
        return Ok(());
    }
    let revision = state.revision + 1;
    let old = match (existed, cache.key(key)) {
        (false, _) => KeyMeta::default(),
        (true, Some(cached)) => cached.meta,
        (true, None) => read_meta(storage, overlay, key)?,
    };
    let event = match new {
        Some(value) => {
            let meta = KeyMeta {
                create_revision: if existed { old.create_revision } else { revision },
                mod_revision: revision,
                version: if existed { old.version + 1 } else { 1 },
            };
            overlay.insert(
                meta_key(key),
                Some(postcard::to_allocvec(&meta).expect("encodes")),
            );
            cache.set_key(key, meta, value.len() as u64);
            Event {
                kind: EventKind::Put,
                kv: key_value(key, value.to_vec(), meta),
            }
        }
        None => {
            overlay.insert(meta_key(key), None);
            cache.forget_key(key);
            let meta = KeyMeta {
                create_revision: old.create_revision,
                mod_revision: revision,
                version: 0,
            };
            Event {
                kind: EventKind::Delete,
                kv: key_value(key, Vec::new(), meta),
            }
        }
    };
    let encoded = postcard::to_allocvec(&event).expect("in-memory event encodes");
    state.history_bytes = state.history_bytes.saturating_add(encoded.len() as u64);
    cache.push_event(revision, encoded.len() as u64);
    overlay.insert(event_key(revision), Some(encoded));
    state.revision = revision;
    compact_history(storage, overlay, state, cache)
}

/// Drops the oldest events while the history is over a bound (never the newest).
fn compact_history(
    storage: &dyn Storage,
    overlay: &mut Overlay,
    state: &mut RevisionState,
    cache: &mut KeyCache,
) -> Result<(), StorageError> {
    loop {
        let kept = state.revision - state.compacted_revision;
        let over = kept > HISTORY_REVISIONS_MAX || (state.history_bytes > HISTORY_BYTES_MAX && kept > 1);
        if !over {
            return Ok(());
        }
        let oldest = state.compacted_revision + 1;
        let key = event_key(oldest);
        let bytes = match cache.take_oldest_event(oldest) {
            Some(bytes) => bytes,
            // An event missing here was compacted by an older build; it holds no bytes.
            None => read(storage, overlay, &key)?.map_or(0, |event| event.len() as u64),
        };
        state.history_bytes = state.history_bytes.saturating_sub(bytes);
        overlay.insert(key, None);
        state.compacted_revision = oldest;
    }
}

fn key_value(key: &[u8], value: Vec<u8>, meta: KeyMeta) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value,
        create_revision: meta.create_revision,
        mod_revision: meta.mod_revision,
        version: meta.version,
    }
}

/// `key`'s pair with its revisions, as applied in `storage`. `cached`: what the apply
/// path's `KeyCache` knows of the key, if anything, which spares the read of its
/// revisions (issue 14: one point read of the LSM per get instead of two).
pub fn read_key_value(
    storage: &dyn Storage,
    key: &[u8],
    cached: Option<CachedKey>,
) -> Result<Option<KeyValue>, StorageError> {
    let Some(value) = storage.get(key)? else {
        debug_assert!(cached.is_none(), "the key cache holds a key the store does not");
        return Ok(None);
    };
    let meta = match cached {
        Some(cached) => {
            debug_assert_eq!(
                cached.value_bytes,
                value.len() as u64,
                "the key cache parted from the store"
            );
            cached.meta
        }
        None => read_meta(storage, &Overlay::new(), key)?,
    };
    Ok(Some(key_value(key, value, meta)))
}

/// A stored pair with its revisions.
pub fn with_revisions(storage: &dyn Storage, key: Vec<u8>, value: Vec<u8>) -> Result<KeyValue, StorageError> {
    let meta = read_meta(storage, &Overlay::new(), &key)?;
    Ok(KeyValue {
        key,
        value,
        create_revision: meta.create_revision,
        mod_revision: meta.mod_revision,
        version: meta.version,
    })
}

/// Why a watch cannot be answered from the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryError {
    /// `from_revision` is at or below the compacted revision.
    Compacted {
        from_revision: u64,
        compacted_revision: u64,
    },
    Storage(StorageError),
}

impl From<StorageError> for HistoryError {
    fn from(error: StorageError) -> Self {
        Self::Storage(error)
    }
}

/// The events under `prefix` from `from_revision` on (0: after the current revision),
/// one bounded page of the history's scan.
pub fn read_events(
    storage: &dyn Storage,
    prefix: &[u8],
    from_revision: u64,
) -> Result<EventPage, HistoryError> {
    let state = RevisionState::load(storage)?;
    let from = if from_revision == 0 {
        state.revision + 1
    } else {
        from_revision
    };
    if from <= state.compacted_revision {
        return Err(HistoryError::Compacted {
            from_revision: from,
            compacted_revision: state.compacted_revision,
        });
    }
    let mut page = EventPage {
        events: Vec::new(),
        next_revision: from,
        revision: state.revision,
        compacted_revision: state.compacted_revision,
    };
    if from > state.revision {
        return Ok(page);
    }
    let scanned = storage.list_page(
        EVENT_KEY_PREFIX,
        &event_key(from),
        EVENTS_PER_PAGE_MAX,
        EVENT_PAGE_BYTES_MAX,
    )?;
    let mut last = from - 1;
    for (key, bytes) in scanned.pairs {
        let revision = revision_of_event_key(&key)?;
        if revision > state.revision {
            // Written after the state was read (not under the driver; defensive).
            break;
        }
        let event: Event = decode(&bytes, "history event")?;
        if event.revision() != revision {
            return Err(StorageError::Corrupt(format!(
                "history event at revision {revision} says revision {}",
                event.revision()
            ))
            .into());
        }
        last = revision;
        if event.kv.key.starts_with(prefix) {
            page.events.push(event);
        }
    }
    page.next_revision = match scanned.next {
        Some(next) => revision_of_event_key(&next)?
            .min(state.revision + 1)
            .max(last + 1),
        None => state.revision + 1,
    };
    Ok(page)
}

#[cfg(test)]
mod tests;
