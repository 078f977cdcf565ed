//! How a command fails: a message and an exit code that says what kind of failure it was,
//! so a script can tell "absent" from "the cluster is down" from "the write may have
//! happened" without reading the text. The codes are documented in the README.

use std::fmt;

use client::client::ClientError;

/// The exit codes of `raftkv`, each for one kind of outcome (0 is success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything not named below (a server's internal error, a file that cannot be read).
    Failure = 1,
    /// 2: bad usage: arguments clap refuses, or a request the cluster refuses as malformed.
    Usage = 2,
    /// 3: `get` of a key that is absent.
    NotFound = 3,
    /// 4: `cas` whose comparison failed: nothing was written.
    NotSwapped = 4,
    /// 5: the cluster could not be reached or had no leader in time (nothing was applied
    /// by this command), or `status`/`endpoint health` found an endpoint down.
    Unavailable = 5,
    /// 6: a write's outcome is unknown: it may or may not have been applied.
    OutcomeUnknown = 6,
    /// 7: this client's identity lacks the role for the request.
    PermissionDenied = 7,
    /// 8: the cluster refused a write for space (its quota, or the leader's disk guard).
    NoSpace = 8,
    /// 9: `watch` asked for a revision the cluster's history no longer holds.
    Compacted = 9,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name in JSON errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::Usage => "usage",
            Self::NotFound => "not_found",
            Self::NotSwapped => "not_swapped",
            Self::Unavailable => "unavailable",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::PermissionDenied => "permission_denied",
            Self::NoSpace => "no_space",
            Self::Compacted => "compacted",
        }
    }

    fn of(error: &ClientError) -> Self {
        match error {
            _ if error.outcome_unknown() => Self::OutcomeUnknown,
            _ if error.unavailable() => Self::Unavailable,
            ClientError::InvalidRequest { .. } | ClientError::Endpoints(_) => Self::Usage,
            ClientError::PermissionDenied { .. } => Self::PermissionDenied,
            ClientError::NoSpace { .. } => Self::NoSpace,
            ClientError::Compacted { .. } => Self::Compacted,
            _ => Self::Failure,
        }
    }
}

/// A run-time failure: one line on stderr (or one JSON document with `--output json`) and
/// its exit code. A quiet one (`message` empty) has printed its answer already.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit: Exit,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exit,
        }
    }

    /// An exit code whose answer was printed as output (a failed compare, an endpoint down).
    pub fn quiet(exit: Exit) -> Self {
        Self::new(exit, String::new())
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::new(Exit::Failure, message)
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self::new(Exit::of(&error), error.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn client_errors_map_to_distinct_exit_codes() {
        let unreachable = ClientError::Unreachable {
            endpoint: "127.0.0.1:1".into(),
            reason: "cannot connect".into(),
        };
        let deadline = |outcome_unknown| ClientError::DeadlineExceeded {
            deadline: Duration::from_secs(5),
            attempts: 3,
            last_error: Box::new(ClientError::Unreachable {
                endpoint: "127.0.0.1:1".into(),
                reason: "cannot connect".into(),
            }),
            unreachable: vec![("127.0.0.1:1".into(), "cannot connect".into())],
            endpoints: 3,
            outcome_unknown,
        };
        assert_eq!(Failure::from(unreachable).exit, Exit::Unavailable);
        assert_eq!(Failure::from(deadline(false)).exit, Exit::Unavailable);
        let unknown = Failure::from(deadline(true));
        assert_eq!(unknown.exit, Exit::OutcomeUnknown);
        assert!(unknown
            .message
            .starts_with("outcome unknown: the write may have been applied"));
        assert!(
            unknown.message.contains("no leader reachable"),
            "{}",
            unknown.message
        );
        assert!(
            unknown.message.contains("1 of 3 endpoint(s) unreachable"),
            "{}",
            unknown.message
        );
        let no_space = ClientError::NoSpace {
            message: "quota".into(),
        };
        assert_eq!(Failure::from(no_space).exit, Exit::NoSpace);
        let codes = [
            Exit::Failure,
            Exit::Usage,
            Exit::NotFound,
            Exit::NotSwapped,
            Exit::Unavailable,
            Exit::OutcomeUnknown,
            Exit::PermissionDenied,
            Exit::NoSpace,
        ]
        .map(Exit::code);
        assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
