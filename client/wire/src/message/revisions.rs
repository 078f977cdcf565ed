//! Revisions in etcd's model (issue 13), so that a watch can resume exactly where it
//! stopped and etcd's v3 API can later be served on the same state machine.
//!
//! The cluster revision starts at 0 and every applied write that changes a key advances
//! it by one: a put (even of the same value), a delete of a present key, a swap that
//! swapped. A write that changes nothing (a delete of an absent key, a swap that did not
//! swap) leaves it. Each key carries the revision that created it, the revision that last
//! modified it and its version (1 when created, +1 per put; gone with the key). The node
//! keeps the events of the latest revisions (its history) and compacts older ones away.

use serde::{Deserialize, Serialize};

/// A pair with its revisions, as `get` and `list` answer it (etcd's `KeyValue`).
///
/// A key written before raftkv kept revisions (a data dir of an older raftkv) reads with
/// all three at 0 until it is written again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
}

impl KeyValue {
    /// A pair with no revisions known (for fakes of a node).
    pub fn unversioned(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            create_revision: 0,
            mod_revision: 0,
            version: 0,
        }
    }
}

/// A `Get`'s answer: the key as of `revision` (the node's revision when it read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadValue {
    pub revision: u64,
    pub kv: Option<KeyValue>,
}

impl ReadValue {
    /// A read of `value` at revision 0, with no revisions known (for fakes of a node).
    pub fn unversioned(value: Option<Vec<u8>>) -> Self {
        Self {
            revision: 0,
            kv: value.map(|value| KeyValue::unversioned(Vec::new(), value)),
        }
    }

    pub fn value(&self) -> Option<&[u8]> {
        self.kv.as_ref().map(|kv| kv.value.as_slice())
    }

    pub fn into_value(self) -> Option<Vec<u8>> {
        self.kv.map(|kv| kv.value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

/// One change, at the revision it made (`kv.mod_revision`). A delete carries the key with
/// an empty value, `mod_revision` the deleting revision, `version` 0 and the deleted
/// key's `create_revision`, as etcd's delete events do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
}

impl Event {
    pub fn revision(&self) -> u64 {
        self.kv.mod_revision
    }
}

/// One answer to a `Watch`: the events under its prefix from its `from_revision` on, in
/// revision order, then where the next answer starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// The revision the next `Watch` asks from: past every event this answer looked at,
    /// matching the prefix or not (so an answer may hold no event and still move on).
    pub next_revision: u64,
    /// The node's revision when it answered.
    pub revision: u64,
    /// The newest revision compacted away (events at or below it are gone).
    pub compacted_revision: u64,
}

/// Events one `EventPage` carries at most, and their keys' and values' bytes (plus the
/// one event that crosses it).
pub const EVENTS_PER_PAGE_MAX: usize = 1_000;
pub const EVENT_PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// The longest a `Watch` waits for an event before answering an empty page.
pub const WATCH_WAIT_MILLIS_MAX: u64 = 10_000;
