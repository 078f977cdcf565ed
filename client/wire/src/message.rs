//! The client protocol: requests a client sends to any node and the responses it gets.
//! Each request carries an id so a client may pipeline requests on one connection;
//! responses come back with the same id, possibly out of order.

use serde::{Deserialize, Serialize};

mod revisions;

pub use revisions::{
    Event, EventKind, EventPage, KeyValue, ReadValue, EVENTS_PER_PAGE_MAX, EVENT_PAGE_BYTES_MAX,
    WATCH_WAIT_MILLIS_MAX,
};

/// Version of the client protocol; a node refuses requests of another version.
/// 2: sessions are opened through the log (`Request::OpenSession`) before their writes.
/// 3: a write says whether its answer carries the key's value before it
/// (`Request::Write::return_prior`); answers carry a [`Prior`]. A `List` is paged
/// (`start`, `Listing::next`) and can count.
/// 4: revisions (etcd's model): `get` and `list` answer [`KeyValue`]s and the revision they
/// read at; `Watch` pages through the history of changes; backups (`SnapshotBegin`,
/// `SnapshotChunk`, `SnapshotRelease`).
pub const CLIENT_PROTOCOL_VERSION: u16 = 4;

/// Upper bounds a node enforces on client input.
pub const KEY_BYTES_MAX: usize = 4 * 1024;
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;
pub const LIST_LIMIT_MAX: u32 = 10_000;
/// Keys and values one `Listing` carries at most (plus the one pair that crosses it): half
/// a frame, leaving room for the encoding.
pub const LISTING_BYTES_MAX: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    pub protocol_version: u16,
    pub id: u64,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    pub id: u64,
    pub response: Response,
}

/// Identifies a client's write for exactly-once application (Raft thesis §6.3): a
/// retried write carries the same `client_id` and `sequence` and is applied once. The
/// session must have been opened (`Request::OpenSession`) and not have expired: a write
/// of an unknown session is refused with `SessionExpired`, never applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    pub client_id: u64,
    /// Starts at 1 and grows by one per new write of this client.
    pub sequence: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// ReadIndex (thesis §6.4): sees every write acknowledged before the read began.
    Linearizable,
    /// Served from the node's local state: may be stale, never blocks on the leader.
    Stale,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Registers session `client_id` through the log (thesis §6.3), answered with
    /// `SessionOpened` once applied. Opening a session that is open only keeps it alive,
    /// so a retry is safe. A client opens a new id (never a used one) after its session
    /// expired: a late copy of an old write must not find the id open again.
    OpenSession { client_id: u64 },
    Write {
        session: Session,
        command: Command,
        /// Whether the answer carries the key's value before the write (etcd's
        /// `prev_kv`). Without it the answer says only whether the key held a value and
        /// how long it was, so the session record kept to answer a retry (thesis §6.3)
        /// stays a few bytes instead of a replaced value of up to 1 MiB.
        return_prior: bool,
    },
    Get {
        key: Vec<u8>,
        consistency: ReadConsistency,
    },
    /// One page of the pairs whose key starts with `prefix`, in key order, from `start`
    /// on (empty, or below the prefix: from its first key). The answer says where the
    /// next page starts; `count_only` asks for how many keys a page's scan holds instead.
    List {
        prefix: Vec<u8>,
        start: Vec<u8>,
        limit: u32,
        count_only: bool,
        consistency: ReadConsistency,
    },
    /// The node's Raft state (id, role, term, leader, commit, applied, progress).
    Status,
    /// The node's whole Raft log and KV map, for tests and debugging.
    Dump,
    /// The cluster's members as the leader sees them (answered by the leader only).
    Members,
    /// One membership change, proposed by the leader (thesis §4.1: one server at a time).
    /// Answered with the members once the change is committed and applied.
    ChangeMembers(MemberChange),
    /// The changes under `prefix` from revision `from_revision` on (0: from the node's
    /// next revision), answered with an `EventPage`. If none is there yet, the node
    /// waits up to `wait_millis` (at most `WATCH_WAIT_MILLIS_MAX`) for one before it
    /// answers: a long poll, so a watcher follows changes as they are applied and resumes
    /// on any node from the page's `next_revision`. A revision compacted away is refused
    /// with `ErrorKind::Compacted`.
    ///
    /// With `require_leader` (etcd's `WithRequireLeader`, what `Watcher` sends) only the
    /// leader answers, others redirect: a node cut off from the leader would otherwise
    /// answer empty pages while the cluster goes on. Without it the node answers from its
    /// own history (a probe of one replica).
    Watch {
        prefix: Vec<u8>,
        from_revision: u64,
        wait_millis: u64,
        require_leader: bool,
    },
    /// Starts a backup (`raftkv snapshot save`), answered by the leader only with
    /// `SnapshotStarted`: after a ReadIndex round (so it holds every write acknowledged
    /// before the request, thesis §6.4) the leader pins a view of its state machine at its
    /// applied index and builds its image off the driver loop. Admin only.
    SnapshotBegin,
    /// `SNAPSHOT_CHUNK_BYTES_MAX` bytes of backup `id`'s image from `offset`, answered by
    /// the node that began it (`NotNow` while the image is being built). Resumable: any
    /// offset may be asked again. Each chunk keeps the image pinned a while longer.
    SnapshotChunk { id: u64, offset: u64 },
    /// The save is over: the node deletes backup `id`'s image (an unknown id is fine).
    SnapshotRelease { id: u64 },
}

/// Bytes of image one `SnapshotChunk` answer carries at most: well inside a frame.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// What a backup holds, as the node that built its image counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The log index the image is the state machine of (every entry through it applied).
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// The cluster the backup comes from.
    pub cluster_id: u64,
    /// The image's length in bytes.
    pub image_bytes: u64,
    /// The clients' key/value pairs in the image (raftkv's own records, which the image
    /// also holds, are not counted).
    pub pairs: u64,
    /// Client sessions in the image.
    pub sessions: u64,
    /// The XXH3-64 in the image's end record, over every byte before that record.
    pub checksum: u64,
}

/// One piece of a backup's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupChunk {
    pub info: BackupInfo,
    pub offset: u64,
    /// The image's bytes from `offset`; empty at its end.
    pub data: Vec<u8>,
}

/// A membership change a client (an operator, or a node joining by itself) asks for.
/// Each is idempotent, so a retry after an unknown outcome is safe: adding a member
/// that is already there with the same incarnation, removing one that is gone, or
/// promoting a voter answers with the members as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add `id` as a learner (thesis §4.2.1): it receives the log but does not vote
    /// until promoted. `incarnation` binds the member to one data dir (a node started on
    /// an empty one presents another incarnation and is refused); `None` lets the first
    /// node that connects with this id be the member.
    AddLearner {
        id: u64,
        peer_address: String,
        client_address: String,
        incarnation: Option<u64>,
    },
    /// Make learner `id` a voter; refused until it has caught up with the commit index.
    Promote { id: u64 },
    /// Remove `id`. With `incarnation`, only if the member is still that incarnation (a
    /// node replacing its own old incarnation must not remove a newer one).
    Remove { id: u64, incarnation: Option<u64> },
}

impl MemberChange {
    /// The member this change is about.
    pub fn id(&self) -> u64 {
        match self {
            Self::AddLearner { id, .. } | Self::Promote { id } | Self::Remove { id, .. } => *id,
        }
    }
}

/// Whether a member votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRole {
    Voter,
    Learner,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voter => "voter",
            Self::Learner => "learner",
        }
    }
}

/// One member of the configuration, as the leader knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    pub role: MemberRole,
    /// Where peers reach it; `None` if the leader knows no address for it.
    pub peer_address: Option<String>,
    pub client_address: Option<String>,
    /// The data dir incarnation that is the member; `None` if not bound yet.
    pub incarnation: Option<u64>,
    /// The highest log index known to be on its disk (the leader's own last index for
    /// the leader itself).
    pub match_index: u64,
}

/// The configuration in the leader's log, with what it knows of each member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    pub cluster_id: u64,
    pub leader: u64,
    pub term: u64,
    pub commit: u64,
    pub members: Vec<MemberInfo>,
}

impl MemberList {
    pub fn member(&self, id: u64) -> Option<&MemberInfo> {
        self.members.iter().find(|member| member.id == id)
    }
}

/// A write, replicated through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Writes `new_value` (or deletes, if `None`) only if the current value equals
    /// `expected` (`None`: the key is absent).
    CompareAndSwap {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new_value: Option<Vec<u8>>,
    },
}

impl Command {
    pub fn key(&self) -> &[u8] {
        match self {
            Self::Put { key, .. } | Self::Delete { key } | Self::CompareAndSwap { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The session is open; it expires `timeout_millis` (cluster time, carried in the
    /// log) after its latest write, or earlier if the cluster must make room.
    /// `client_id` is the session's id in the log: for a client with a certificate, the
    /// one its id is bound to (the client keeps sending its own).
    SessionOpened {
        client_id: u64,
        timeout_millis: u64,
    },
    Written(WriteResult),
    Value(ReadValue),
    Listing(Listing),
    Status(NodeStatus),
    Dump(NodeDump),
    Members(MemberList),
    /// This node cannot serve the request; try the leader.
    NotLeader {
        leader: Option<LeaderHint>,
    },
    Error(ErrorReply),
    Events(EventPage),
    /// A backup was begun on this node (`Request::SnapshotBegin`): fetch its chunks here.
    SnapshotStarted {
        id: u64,
        index: u64,
    },
    SnapshotChunk(BackupChunk),
    SnapshotReleased,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    /// Put and Delete: what the key held before the write.
    Done { previous: Prior },
    /// CompareAndSwap: whether it swapped, and what it found.
    CompareAndSwap { swapped: bool, current: Prior },
}

/// What a key held before a write, as much of it as the write asked for
/// (`Request::Write::return_prior`).
///
/// The variants' order keeps the encoding of `Option<Vec<u8>>` (0: absent, 1: a value),
/// which session records of log format 2 hold, so they read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prior {
    /// The key held no value.
    Absent,
    /// The key held this value (the write asked for it).
    Value(Vec<u8>),
    /// The key held a value of this many bytes; the write did not ask for it.
    Present { value_bytes: u32 },
}

impl Prior {
    /// What `value` makes the answer of a write that asked for it (`return_value`) or not.
    pub fn of(value: Option<&[u8]>, return_value: bool) -> Self {
        match value {
            None => Self::Absent,
            Some(value) if return_value => Self::Value(value.to_vec()),
            Some(value) => Self::Present {
                value_bytes: u32::try_from(value.len()).unwrap_or(u32::MAX),
            },
        }
    }

    /// Whether the key held a value.
    pub fn existed(&self) -> bool {
        !matches!(self, Self::Absent)
    }

    /// The value, if the key held one and the write asked for it.
    pub fn value(&self) -> Option<&[u8]> {
        match self {
            Self::Value(value) => Some(value),
            Self::Absent | Self::Present { .. } => None,
        }
    }

    /// The value's length, if the key held one.
    pub fn value_bytes(&self) -> Option<u64> {
        match self {
            Self::Absent => None,
            Self::Value(value) => Some(value.len() as u64),
            Self::Present { value_bytes } => Some(u64::from(*value_bytes)),
        }
    }

    /// Bytes of value this answer holds (what a session record caches for it).
    pub fn held_bytes(&self) -> usize {
        self.value().map_or(0, <[u8]>::len)
    }
}

/// One page of a `List`: at most its limit of pairs and about `LISTING_BYTES_MAX` of
/// keys and values (at least one pair if any is left).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub pairs: Vec<KeyValue>,
    /// The node's revision when it read this page.
    pub revision: u64,
    /// The key the next page starts at (`List::start`); `None`: the listing is complete.
    pub next: Option<Vec<u8>>,
    /// With `count_only`: how many keys this answer counted from `start` on (no pairs);
    /// counting goes on from `next` (a count is paged so that no answer scans everything).
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    pub id: u64,
    /// Where the leader listens for clients, if this node has heard it.
    pub client_address: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Malformed or over-limit request; retrying will not help.
    InvalidRequest,
    /// The node is busy (bounded queues full); retry later.
    Overloaded,
    /// The leader cannot take the request now (a leadership transfer or a membership
    /// change under way, a learner still catching up): it was not proposed. Retry later.
    NotNow,
    /// Leadership changed or the request timed out inside the cluster: the outcome of a
    /// write is unknown, retry with the same session.
    Unavailable,
    /// The node is shutting down.
    ShuttingDown,
    /// The write's session is unknown: never opened, expired after `timeout_millis`
    /// without a write, evicted to make room, or the write's sequence is older than the
    /// session's latest. The write was not applied now; a retry's earlier copy may have
    /// been. Open a new session for new writes.
    SessionExpired,
    Internal,
    /// The client's certificate name has no role that allows this request (issue 11).
    PermissionDenied,
    /// The cluster's data is at its space quota (`--quota-bytes`): the write was not
    /// proposed. Reads, deletes and compaction go on; deleting keys frees room.
    NoSpace,
    /// A `Watch` asked for a revision the node's history no longer holds (compacted
    /// away); the message names the oldest revision it can still answer from.
    Compacted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub peers: Vec<PeerStatus>,
    pub space: SpaceStatus,
}

/// The node's data size against its space quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceStatus {
    /// Bytes of the keys and values clients stored, as of the applied index.
    pub data_bytes: u64,
    /// `--quota-bytes`; 0 when the node has none (or has not said).
    pub quota_bytes: u64,
    /// Bytes free (for an unprivileged writer) on the filesystem of the node's data dir,
    /// if it could be read.
    pub disk_free_bytes: Option<u64>,
    /// `--disk-free-min-bytes`: as leader, the node refuses writes that store data while
    /// its disk has less free; 0 when it has no such bound.
    pub disk_free_min_bytes: u64,
}

impl SpaceStatus {
    /// Raised while the largest write could be refused for space: near the quota, or
    /// with the disk under its free-space bound.
    pub fn alarm(&self) -> bool {
        self.quota_alarm() || self.disk_alarm()
    }

    /// The data is within the largest write of the quota.
    pub fn quota_alarm(&self) -> bool {
        self.quota_bytes > 0
            && self
                .data_bytes
                .saturating_add((KEY_BYTES_MAX + VALUE_BYTES_MAX) as u64)
                > self.quota_bytes
    }

    /// The disk has less free than `disk_free_min_bytes`.
    pub fn disk_alarm(&self) -> bool {
        self.disk_free_bytes
            .is_some_and(|free| free < self.disk_free_min_bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: u64,
    pub match_index: u64,
    pub next_index: u64,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDump {
    pub status: NodeStatus,
    /// Every entry in the log: (index, term, a readable description).
    pub log: Vec<(u64, u64, String)>,
    pub kv: Vec<(Vec<u8>, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Session records of log format 2 cached `Option<Vec<u8>>` where `Prior` is now:
    /// they must read back as the same answer.
    #[test]
    fn a_prior_reads_the_encoding_of_an_optional_value() {
        for (old, new) in [
            (None, Prior::Absent),
            (Some(b"value".to_vec()), Prior::Value(b"value".to_vec())),
            (Some(Vec::new()), Prior::Value(Vec::new())),
        ] {
            let bytes = postcard::to_allocvec(&old).expect("encodes");
            assert_eq!(postcard::from_bytes::<Prior>(&bytes).expect("decodes"), new);
            assert_eq!(postcard::to_allocvec(&new).expect("encodes"), bytes);
        }
    }

    #[test]
    fn a_prior_holds_a_value_only_when_asked() {
        assert_eq!(Prior::of(None, true), Prior::Absent);
        assert_eq!(Prior::of(Some(b"abc"), true), Prior::Value(b"abc".to_vec()));
        let unasked = Prior::of(Some(b"abc"), false);
        assert_eq!(unasked, Prior::Present { value_bytes: 3 });
        assert!(unasked.existed() && unasked.value().is_none());
        assert_eq!((unasked.value_bytes(), unasked.held_bytes()), (Some(3), 0));
        assert_eq!(Prior::Value(vec![0; 9]).held_bytes(), 9);
        assert!(!Prior::Absent.existed());
    }
}
