//! The client library's error type: one enum, so a caller can tell "retrying will not
//! help" (invalid request, expired session) from "the cluster did not answer in time".

use std::fmt;
use std::time::Duration;

use crate::wire::{ErrorKind, Response};
use crate::EndpointError;

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The endpoint list could not be parsed or was empty.
    Endpoints(EndpointError),
    /// The request breaks a protocol limit (checked before sending) or the node refused
    /// it as malformed. Retrying the same request will not help.
    InvalidRequest { message: String },
    /// The write's session was not open when it reached the log (expired after the
    /// cluster's session timeout, evicted to make room, or the write is older than the
    /// session's latest): that copy was not applied. `outcome_unknown`: an earlier
    /// attempt of the same write may have been (it timed out or its leader changed), so
    /// whether the write happened cannot be told. The client opens a new session for its
    /// next write.
    SessionExpired { message: String, outcome_unknown: bool },
    /// The node refused the request: this client's identity lacks the role for it.
    PermissionDenied { message: String },
    /// The cluster's data is at its space quota; the write was not applied. Deleting keys
    /// frees room (reads and deletes go on).
    NoSpace { message: String },
    /// A watch asked for a revision the node's history no longer holds; the message
    /// names the oldest revision it can watch from.
    Compacted { message: String },
    /// The node reported an error of `kind`. Returned at once only for kinds that retrying
    /// cannot fix (`Internal`); retryable kinds appear here as a `last_error`.
    Server {
        endpoint: String,
        kind: ErrorKind,
        message: String,
    },
    /// A node that is not the leader refused the request (appears as a `last_error`).
    NotLeader {
        endpoint: String,
        leader_id: Option<u64>,
    },
    /// Connecting (TCP or TLS) failed: nothing was sent.
    Unreachable { endpoint: String, reason: String },
    /// Sending or receiving failed after connecting: the request may have arrived.
    Connection { endpoint: String, reason: String },
    /// No response within the per-request timeout.
    Timeout { endpoint: String, after: Duration },
    /// The node answered with a response of the wrong kind: a protocol mismatch.
    UnexpectedResponse { endpoint: String, response: String },
    /// Retries went on until the call's deadline; `last_error` is why the last one failed.
    /// `unreachable`: the endpoints (with why) whose latest attempt could not connect, of
    /// `endpoints` in all. `outcome_unknown`: the request is a write and an attempt may
    /// have reached a leader (it timed out, its connection broke, or its leader changed),
    /// so it may or may not have been applied.
    DeadlineExceeded {
        deadline: Duration,
        attempts: u32,
        last_error: Box<ClientError>,
        unreachable: Vec<(String, String)>,
        endpoints: usize,
        outcome_unknown: bool,
    },
}

impl ClientError {
    pub(crate) fn connection(endpoint: &str, error: impl fmt::Display) -> Self {
        Self::Connection {
            endpoint: endpoint.to_string(),
            reason: error.to_string(),
        }
    }

    pub(crate) fn unreachable(endpoint: &str, error: impl fmt::Display) -> Self {
        Self::Unreachable {
            endpoint: endpoint.to_string(),
            reason: error.to_string(),
        }
    }

    /// Whether a write that failed with this error may still have been applied.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::SessionExpired { outcome_unknown, .. } | Self::DeadlineExceeded { outcome_unknown, .. } => {
                *outcome_unknown
            }
            _ => false,
        }
    }

    /// Whether the cluster could not be reached or had no leader for the call: nothing
    /// answered it (for a write, see `outcome_unknown` too).
    pub fn unavailable(&self) -> bool {
        matches!(
            self,
            Self::DeadlineExceeded { .. }
                | Self::Unreachable { .. }
                | Self::Connection { .. }
                | Self::Timeout { .. }
                | Self::NotLeader { .. }
        )
    }

    /// A response that does not answer the request: an error reply or a refusal becomes its
    /// typed error, anything else is a protocol mismatch.
    pub(crate) fn unexpected_response(endpoint: String, response: Response) -> Self {
        match response {
            Response::Error(reply) => Self::Server {
                endpoint,
                kind: reply.kind,
                message: reply.message,
            },
            Response::NotLeader { leader } => Self::NotLeader {
                endpoint,
                leader_id: leader.map(|hint| hint.id),
            },
            other => Self::unexpected(endpoint, &other),
        }
    }

    pub(crate) fn unexpected(endpoint: String, response: &impl fmt::Debug) -> Self {
        let mut response = format!("{response:?}");
        // A whole dump in an error line helps no one.
        if response.len() > 200 {
            let mut cut = 200;
            while !response.is_char_boundary(cut) {
                cut -= 1;
            }
            response.truncate(cut);
            response.push('…');
        }
        Self::UnexpectedResponse { endpoint, response }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoints(error) => error.fmt(f),
            Self::InvalidRequest { message } => write!(f, "invalid request: {message}"),
            Self::SessionExpired {
                message,
                outcome_unknown: true,
            } => write!(
                f,
                "client session expired: {message}; an earlier attempt may have been applied: the outcome is unknown"
            ),
            Self::SessionExpired {
                message,
                outcome_unknown: false,
            } => write!(f, "client session expired: {message}"),
            Self::PermissionDenied { message } => write!(f, "permission denied: {message}"),
            Self::NoSpace { message } => write!(f, "no space: {message}"),
            Self::Compacted { message } => write!(f, "compacted: {message}"),
            Self::Server {
                endpoint,
                kind,
                message,
            } => write!(f, "{endpoint} answered {kind:?}: {message}"),
            Self::NotLeader { endpoint, leader_id } => match leader_id {
                Some(id) => write!(f, "{endpoint} is not the leader (leader is node {id})"),
                None => write!(f, "{endpoint} is not the leader and knows no leader"),
            },
            Self::Unreachable { endpoint, reason } | Self::Connection { endpoint, reason } => {
                write!(f, "{endpoint}: {reason}")
            }
            Self::Timeout { endpoint, after } => {
                write!(f, "{endpoint} did not answer within {} ms", after.as_millis())
            }
            Self::UnexpectedResponse { endpoint, response } => {
                write!(f, "{endpoint} sent an unexpected response: {response}")
            }
            Self::DeadlineExceeded {
                deadline,
                attempts,
                last_error,
                unreachable,
                endpoints,
                outcome_unknown,
            } => {
                if *outcome_unknown {
                    write!(f, "outcome unknown: the write may have been applied; ")?;
                }
                let no_leader = matches!(
                    last_error.as_ref(),
                    Self::NotLeader { .. } | Self::Unreachable { .. } | Self::Connection { .. } | Self::Timeout { .. }
                );
                if no_leader {
                    write!(f, "no leader reachable within {} ms", deadline.as_millis())?;
                } else {
                    write!(f, "no success within {} ms", deadline.as_millis())?;
                }
                write!(f, " ({attempts} attempt(s))")?;
                if !unreachable.is_empty() {
                    let which: Vec<String> = unreachable
                        .iter()
                        .map(|(endpoint, reason)| format!("{endpoint}: {reason}"))
                        .collect();
                    write!(
                        f,
                        ": {} of {endpoints} endpoint(s) unreachable ({})",
                        unreachable.len(),
                        which.join("; ")
                    )?;
                }
                write!(f, "; last error: {last_error}")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Endpoints(error) => Some(error),
            Self::DeadlineExceeded { last_error, .. } => Some(last_error.as_ref()),
            _ => None,
        }
    }
}

impl From<EndpointError> for ClientError {
    fn from(error: EndpointError) -> Self {
        Self::Endpoints(error)
    }
}
