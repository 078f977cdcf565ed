//! Typed errors of the raft crate. Bad input from a peer is an error, never a panic.

use std::fmt;

use crate::types::{Index, NodeId};

/// A `Config` that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub reason: String,
}

impl ConfigError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid raft config: {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Why a proposal, read, transfer or membership change was refused. The caller may
/// retry elsewhere (`NotLeader`) or later (the others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalError {
    /// This server is not the leader; `leader` is the one it knows of, if any.
    NotLeader { leader: Option<NodeId> },
    /// A leadership transfer is in flight (thesis §3.10).
    TransferInProgress,
    /// Too many bytes are appended but not yet committed.
    UncommittedBytesExceeded,
    /// Too many reads are already waiting.
    TooManyPendingReads,
    /// A configuration change is still uncommitted, or this leader has not yet committed
    /// an entry of its own term (the single-server change fix, thesis §4.1 and the
    /// raft-dev post "bug in single-server membership changes", 2015).
    ConfChangeInProgress,
    /// The change makes no sense for the current configuration.
    InvalidConfChange(String),
    /// The learner has not caught up with the leader's commit index yet.
    LearnerNotCaughtUp {
        learner: NodeId,
        match_index: Index,
        commit: Index,
    },
    /// The transfer target is not a voter, or is this server.
    InvalidTransferTarget(NodeId),
}

impl fmt::Display for ProposalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader { leader: Some(id) } => write!(f, "not the leader; leader is {id}"),
            Self::NotLeader { leader: None } => write!(f, "not the leader; leader unknown"),
            Self::TransferInProgress => write!(f, "leadership transfer in progress"),
            Self::UncommittedBytesExceeded => write!(f, "too many uncommitted bytes"),
            Self::TooManyPendingReads => write!(f, "too many pending reads"),
            Self::ConfChangeInProgress => write!(f, "a configuration change is in progress"),
            Self::InvalidConfChange(why) => write!(f, "invalid configuration change: {why}"),
            Self::LearnerNotCaughtUp {
                learner,
                match_index,
                commit,
            } => write!(
                f,
                "learner {learner} has not caught up (match {match_index}, commit {commit})"
            ),
            Self::InvalidTransferTarget(id) => write!(f, "cannot transfer leadership to {id}"),
        }
    }
}

impl std::error::Error for ProposalError {}

/// A message from a peer that cannot be valid, whatever the state of this server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedMessage {
    pub from: NodeId,
    pub reason: String,
}

impl fmt::Display for MalformedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed message from {}: {}", self.from, self.reason)
    }
}

impl std::error::Error for MalformedMessage {}

/// A server could not start: bad settings, or durable state that cannot be right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    InvalidConfig(ConfigError),
    InvalidStorage(String),
}

impl StartError {
    pub fn storage(reason: impl Into<String>) -> Self {
        Self::InvalidStorage(reason.into())
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig(error) => error.fmt(f),
            Self::InvalidStorage(reason) => write!(f, "invalid durable raft state: {reason}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Why `Raft::compact` refused a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactError {
    /// The state machine has not applied that far.
    NotApplied { index: Index, applied: Index },
    /// A snapshot at or after that index already exists.
    AlreadyCompacted { index: Index, snapshot_index: Index },
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotApplied { index, applied } => {
                write!(f, "cannot snapshot at {index}: applied only through {applied}")
            }
            Self::AlreadyCompacted {
                index,
                snapshot_index,
            } => {
                write!(
                    f,
                    "cannot snapshot at {index}: a snapshot at {snapshot_index} exists"
                )
            }
        }
    }
}

impl std::error::Error for CompactError {}
