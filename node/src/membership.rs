//! Who the members are and how to reach them: the records the configuration's members
//! carry in the replicated state, and the peer directory the transport is given.
//!
//! Raft's configuration (`raft::ConfState`) says which ids vote and which learn. What a
//! node needs beyond that (a member's peer and client addresses, and the data dir
//! incarnation that *is* the member) travels in the log too, as a [`MemberRecord`] under
//! a reserved key of the KV state (`\0raftkv/members/<id>`), written by the leader in the
//! same proposal round as the configuration change that adds the member. So every
//! replica, and every snapshot, knows how to reach every member, and a node's `--peers`
//! only seeds a first start (CockroachDB keeps its system data in reserved key ranges in
//! the same way). Clients can neither write nor read reserved keys.
//!
//! A record's incarnation is what keeps a wiped data dir out: a handshake from node 2
//! under another incarnation than the member's carries no vote or acknowledgement
//! (`transport::handshake`), so
//! the blank disk never votes nor acknowledges until it has been made a member again.

use std::collections::BTreeMap;

use raft::{ConfState, NodeId};
use serde::{Deserialize, Serialize};
use wire::{Command, Session};

use crate::identity::ClusterMembership;
use crate::kv::command::KvCommand;
use crate::storage::{Storage, StorageError};

/// Every key under this prefix belongs to raftkv itself, not to clients.
pub const SYSTEM_KEY_PREFIX: &[u8] = b"\0raftkv/";
/// The first key after every key under `SYSTEM_KEY_PREFIX` ('0' follows '/').
pub const SYSTEM_KEY_RANGE_END: &[u8] = b"\0raftkv0";
/// Member records live under this prefix, followed by the id in 8 big-endian bytes.
pub const MEMBER_KEY_PREFIX: &[u8] = b"\0raftkv/members/";
/// The session of system commands: client id 0 is never handed to a client
/// (`client::client_id`), and a system command is applied without a session.
pub const SYSTEM_SESSION: Session = Session {
    client_id: 0,
    sequence: 0,
};
/// Records read in one go: far more members than any cluster has.
const MEMBER_RECORDS_MAX: usize = 4096;
/// Bytes of records read in one go.
const MEMBER_RECORDS_BYTES_MAX: usize = 4 * 1024 * 1024;

/// What the cluster knows of one member beyond its id and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub peer_address: String,
    pub client_address: String,
    /// The data dir incarnation that is this member; `None` while unbound (an operator's
    /// `member add` without one): the first node to connect with this id is accepted.
    pub incarnation: Option<u64>,
}

/// Whether `key` is reserved for raftkv's own records.
pub fn is_system_key(key: &[u8]) -> bool {
    key.starts_with(SYSTEM_KEY_PREFIX)
}

/// Whether `key` is a member record's (writing one reloads the peer directory).
pub fn is_member_key(key: &[u8]) -> bool {
    key.starts_with(MEMBER_KEY_PREFIX)
}

/// The reserved key of member `id`'s record.
pub fn member_key(id: NodeId) -> Vec<u8> {
    let mut key = MEMBER_KEY_PREFIX.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The command that writes member `id`'s record, proposed by the leader only, whose
/// clock reads `at_millis`.
pub fn record_command(id: NodeId, record: &MemberRecord, at_millis: u64) -> KvCommand {
    let command = Command::Put {
        key: member_key(id),
        value: postcard::to_allocvec(record).expect("in-memory record encodes"),
    };
    KvCommand::write(at_millis, SYSTEM_SESSION, command, false)
}

/// Every member record in `storage`'s applied state. A record that does not decode is
/// an error: it was written by a leader of this very code, so it means damage.
pub fn load_records(storage: &dyn Storage) -> Result<BTreeMap<NodeId, MemberRecord>, StorageError> {
    let pairs = storage.list(MEMBER_KEY_PREFIX, MEMBER_RECORDS_MAX, MEMBER_RECORDS_BYTES_MAX)?;
    let mut records = BTreeMap::new();
    for (key, value) in pairs {
        let id_bytes: [u8; 8] = key[MEMBER_KEY_PREFIX.len()..]
            .try_into()
            .map_err(|_| StorageError::Corrupt(format!("member record key {key:?}")))?;
        let record: MemberRecord = postcard::from_bytes(&value)
            .map_err(|error| StorageError::Corrupt(format!("member record of {id_bytes:?}: {error}")))?;
        records.insert(NodeId::from_be_bytes(id_bytes), record);
    }
    Ok(records)
}

/// How to reach, and whom to accept as, one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// `None`: nobody told us its address yet. Its connections are accepted; we cannot
    /// dial it (a follower has nothing to send a learner anyway).
    pub address: Option<String>,
    /// The incarnation its handshakes must carry; `None` accepts any.
    pub incarnation: Option<u64>,
}

/// What a node knows about reaching its peers, from the flags, the founders and the
/// records; `peers` turns it into the transport's peer set for a configuration.
#[derive(Debug, Clone, Default)]
pub struct PeerDirectory {
    /// `--peers`: used for members that have no record (the founders, until the first
    /// leader records them).
    pub seeds: BTreeMap<NodeId, String>,
    /// The founders' incarnations (from the data dir's cluster membership).
    pub founders: BTreeMap<NodeId, u64>,
    pub records: BTreeMap<NodeId, MemberRecord>,
}

impl PeerDirectory {
    pub fn new(seeds: BTreeMap<NodeId, String>, membership: Option<&ClusterMembership>) -> Self {
        let founders = membership
            .map(|membership| {
                membership
                    .founders
                    .iter()
                    .map(|founder| (founder.node_id, founder.incarnation))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            seeds,
            founders,
            records: BTreeMap::new(),
        }
    }

    /// The peer address of `id`: its record's, else the seed's.
    pub fn address(&self, id: NodeId) -> Option<String> {
        self.records
            .get(&id)
            .map(|record| record.peer_address.clone())
            .or_else(|| self.seeds.get(&id).cloned())
    }

    /// The incarnation that is member `id`: its record's, else the founder's.
    pub fn incarnation(&self, id: NodeId) -> Option<u64> {
        match self.records.get(&id) {
            Some(record) => record.incarnation,
            None => self.founders.get(&id).copied(),
        }
    }

    /// The transport's peers for configuration `conf`: every member but `own_id`, and
    /// every other node it has an address for (a node replaying the log may hold a
    /// configuration older than the current leader, and must still answer it).
    pub fn peers(&self, conf: &ConfState, own_id: NodeId) -> BTreeMap<NodeId, PeerEntry> {
        let known: std::collections::BTreeSet<NodeId> = conf
            .members()
            .chain(self.records.keys().copied())
            .chain(self.seeds.keys().copied())
            .collect();
        known
            .into_iter()
            .filter(|&id| id != own_id)
            .map(|id| {
                let entry = PeerEntry {
                    address: self.address(id),
                    incarnation: self.incarnation(id),
                };
                (id, entry)
            })
            .collect()
    }

    /// Where `--peers` disagrees with the records in the log: (id, flag, log). The log
    /// wins; the node says so at start.
    pub fn seed_disagreements(&self) -> Vec<(NodeId, String, String)> {
        self.seeds
            .iter()
            .filter_map(|(&id, seed)| {
                let record = self.records.get(&id)?;
                (record.peer_address != *seed).then(|| (id, seed.clone(), record.peer_address.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
