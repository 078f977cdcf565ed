//! `KeyCache`: what the apply path needs to know of a key and of the history, kept in
//! memory so that a put reads nothing from the store (issue 14: before it, each put read
//! the key's value and its revisions, and the compaction of the oldest event read that
//! event back, three point reads of the LSM per put; the profile of a 64-client put
//! load put a quarter of the driver's time in them).
//!
//! It is a write-through cache of the applied state, never a source of truth: a key it
//! does not hold is read from the store as before, so it may forget anything at any
//! time (it is bounded, and cleared when a snapshot replaces the state). What it holds
//! must equal the store plus the apply batch being built; the apply function updates it
//! as it writes each key, in the same order, and `StateMachine` clears it whenever the
//! store's state changes by another path (a snapshot installed). Apply is the only
//! writer of client keys, and a failed apply stops the node, so the two cannot part.
//!
//! Every replica answers the same whether or not its cache holds a key: the cache only
//! saves reads of values the apply would have read anyway.

use std::collections::{HashMap, VecDeque};

use super::revisions::KeyMeta;

/// Keys held at most (about 100 bytes each plus the key: ~150 MiB at this bound with
/// 50-byte keys). Past it, an arbitrary key is forgotten for each new one.
pub const KEYS_CACHED_MAX: usize = 1 << 20;

/// A key that holds a value: its revisions and the value's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedKey {
    pub meta: KeyMeta,
    pub value_bytes: u64,
}

#[derive(Debug, Default)]
pub struct KeyCache {
    keys: HashMap<Vec<u8>, CachedKey>,
    /// Encoded bytes of the events of revisions `first_event_revision..`, as recorded by
    /// this process (so at most the history's `HISTORY_REVISIONS_MAX` events: the
    /// compaction takes them from the front).
    event_bytes: VecDeque<u64>,
    first_event_revision: u64,
}

impl KeyCache {
    /// What is known of `key`, if it holds a value and the cache remembers it.
    pub fn key(&self, key: &[u8]) -> Option<CachedKey> {
        self.keys.get(key).copied()
    }

    /// `key` now holds a value of `value_bytes` bytes with revisions `meta`.
    pub fn set_key(&mut self, key: &[u8], meta: KeyMeta, value_bytes: u64) {
        let cached = CachedKey { meta, value_bytes };
        if let Some(slot) = self.keys.get_mut(key) {
            *slot = cached;
            return;
        }
        if self.keys.len() >= KEYS_CACHED_MAX {
            let forgotten = self.keys.keys().next().cloned();
            if let Some(forgotten) = forgotten {
                self.keys.remove(&forgotten);
            }
        }
        self.keys.insert(key.to_vec(), cached);
    }

    /// `key` holds no value any more.
    pub fn forget_key(&mut self, key: &[u8]) {
        self.keys.remove(key);
    }

    /// The event of `revision` (the one after the last recorded, or the first since
    /// the cache was cleared) was written with `bytes` encoded bytes.
    pub fn push_event(&mut self, revision: u64, bytes: u64) {
        let next = self.first_event_revision + self.event_bytes.len() as u64;
        if self.event_bytes.is_empty() || revision != next {
            // The first event this cache sees, or (defensively) one that does not follow
            // the last: start over from it; older events are read from the store.
            self.event_bytes.clear();
            self.first_event_revision = revision;
        }
        self.event_bytes.push_back(bytes);
    }

    /// The encoded bytes of the event of `revision`, which the compaction is removing
    /// (the oldest kept), if this cache recorded it.
    pub fn take_oldest_event(&mut self, revision: u64) -> Option<u64> {
        if self.event_bytes.is_empty() || revision < self.first_event_revision {
            return None;
        }
        if revision != self.first_event_revision {
            // Compaction runs in revision order, so this cannot be; forget rather than
            // answer for another revision.
            self.event_bytes.clear();
            return None;
        }
        self.first_event_revision += 1;
        self.event_bytes.pop_front()
    }

    /// Forgets everything (the store's state was replaced).
    pub fn clear(&mut self) {
        self.keys.clear();
        self.event_bytes.clear();
    }

    pub fn keys_cached(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(revision: u64) -> KeyMeta {
        KeyMeta {
            create_revision: 1,
            mod_revision: revision,
            version: revision,
        }
    }

    #[test]
    fn keys_are_written_through_and_forgotten() {
        let mut cache = KeyCache::default();
        assert_eq!(cache.key(b"a"), None);
        cache.set_key(b"a", meta(1), 3);
        cache.set_key(b"a", meta(2), 5);
        assert_eq!(
            cache.key(b"a"),
            Some(CachedKey {
                meta: meta(2),
                value_bytes: 5
            })
        );
        cache.forget_key(b"a");
        assert_eq!(cache.key(b"a"), None);
    }

    #[test]
    fn events_are_taken_in_revision_order_only() {
        let mut cache = KeyCache::default();
        for revision in 10..15 {
            cache.push_event(revision, revision * 100);
        }
        // Older than the cache: read from the store.
        assert_eq!(cache.take_oldest_event(9), None);
        assert_eq!(cache.take_oldest_event(10), Some(1000));
        assert_eq!(cache.take_oldest_event(11), Some(1100));
        // Out of order: the cache forgets rather than answer for another revision.
        assert_eq!(cache.take_oldest_event(13), None);
        assert_eq!(cache.take_oldest_event(12), None);
        // A revision that does not follow starts over.
        cache.push_event(20, 7);
        cache.push_event(22, 9);
        assert_eq!(cache.take_oldest_event(20), None);
        assert_eq!(cache.take_oldest_event(22), Some(9));
    }

    #[test]
    fn the_key_bound_holds() {
        let mut cache = KeyCache::default();
        for index in 0..(KEYS_CACHED_MAX + 10) {
            cache.set_key(&index.to_be_bytes(), meta(1), 1);
        }
        assert_eq!(cache.keys_cached(), KEYS_CACHED_MAX);
    }
}
