//! What a `Normal` Raft entry carries: one client command, stamped with the proposing
//! leader's clock.
//!
//! Log format 3 (the first byte): every entry carries `at_millis`, and sessions are
//! opened through the log (Raft thesis §6.3), so that every replica decides alike when a
//! session expires and which one makes room; a write says whether its answer (and so its
//! session record) holds the key's value before it (`return_prior`).
//!
//! Entries of format 2 (before `return_prior`) are read as writes that asked for the value,
//! which is what they answered: a log or data dir of that format applies exactly as it did.
//! Entries of format 1 (raftkv before sessions were registered) are refused as such:
//! applying them under the new rules, or skipping them, would change what they did.

use std::fmt;

use serde::{Deserialize, Serialize};
use wire::{Command, Session, KEY_BYTES_MAX, VALUE_BYTES_MAX};

/// The first byte of every entry this build writes.
pub const LOG_FORMAT: u8 = 3;

/// The earlier format this build still reads (`format2`).
const LOG_FORMAT_2: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCommand {
    /// The proposing leader's wall clock, in milliseconds since the Unix epoch. The state
    /// machine's clock is the largest value applied so far, so it never goes back even
    /// when a new leader's clock is behind the old one's.
    pub at_millis: u64,
    pub body: KvBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvBody {
    /// Registers (or keeps alive) session `client_id`, under the proposing leader's
    /// limits: the limits are in the log, so replicas configured differently (a rolling
    /// upgrade, a changed flag) still expire and evict alike.
    OpenSession { client_id: u64, limits: SessionLimits },
    /// A client write of an open session, or a system record (`SYSTEM_SESSION`).
    /// `return_prior`: the answer holds the key's value before the write
    /// (`wire::Request::Write`).
    Write {
        session: Session,
        command: Command,
        return_prior: bool,
    },
}

/// How long sessions live and how many the cluster keeps, as the latest `OpenSession`
/// entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    /// A session expires this long (cluster clock) after its latest write or opening.
    pub timeout_millis: u64,
    /// Open sessions at most; past it, the one closest to expiry is evicted.
    pub sessions_max: u64,
    /// Bytes of cached results (values a retry is answered with) at most, over all
    /// sessions; past it, sessions closest to expiry are evicted.
    pub cached_bytes_max: u64,
}

impl SessionLimits {
    pub const DEFAULT: Self = Self {
        timeout_millis: 60 * 60 * 1000,
        sessions_max: 100_000,
        cached_bytes_max: 64 * 1024 * 1024,
    };
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why an entry's bytes are not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The entry is of another log format (1: raftkv before sessions were registered).
    Format {
        found: Option<u8>,
    },
    Decode(postcard::Error),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format { found: None } => write!(f, "empty command"),
            Self::Format { found: Some(found) } => write!(
                f,
                "command of log format {found} (first byte), this build reads formats {LOG_FORMAT_2} \
                 and {LOG_FORMAT}: a log written by another raftkv"
            ),
            Self::Decode(error) => write!(f, "undecodable command: {error}"),
        }
    }
}

impl std::error::Error for CommandError {}

impl KvCommand {
    pub fn write(at_millis: u64, session: Session, command: Command, return_prior: bool) -> Self {
        Self {
            at_millis,
            body: KvBody::Write {
                session,
                command,
                return_prior,
            },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let data = vec![LOG_FORMAT];
        postcard::to_extend(self, data).expect("in-memory command encodes")
    }

    /// Whether `data` is an entry of log format 2, which the state machine applies by that
    /// format's rules (`StateMachine::evict_over`).
    pub fn is_format_2(data: &[u8]) -> bool {
        data.first() == Some(&LOG_FORMAT_2)
    }

    pub fn decode(data: &[u8]) -> Result<Self, CommandError> {
        match data.split_first() {
            Some((&LOG_FORMAT, rest)) => postcard::from_bytes(rest).map_err(CommandError::Decode),
            Some((&LOG_FORMAT_2, rest)) => postcard::from_bytes::<format2::KvCommand>(rest)
                .map(Self::from)
                .map_err(CommandError::Decode),
            other => Err(CommandError::Format {
                found: other.map(|(first, _)| *first),
            }),
        }
    }
}

/// Log format 2: as format 3 without `return_prior`. Its writes answered with the value
/// the key held, so they are read as asking for it.
mod format2 {
    use serde::{Deserialize, Serialize};
    use wire::{Command, Session};

    use super::SessionLimits;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct KvCommand {
        pub at_millis: u64,
        pub body: KvBody,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum KvBody {
        OpenSession { client_id: u64, limits: SessionLimits },
        Write { session: Session, command: Command },
    }

    impl From<KvCommand> for super::KvCommand {
        fn from(old: KvCommand) -> Self {
            let body = match old.body {
                KvBody::OpenSession { client_id, limits } => super::KvBody::OpenSession { client_id, limits },
                KvBody::Write { session, command } => super::KvBody::Write {
                    session,
                    command,
                    return_prior: true,
                },
            };
            Self {
                at_millis: old.at_millis,
                body,
            }
        }
    }
}

/// Checks a client's write against the protocol's bounds before it enters the log, so
/// every replica applies only well-formed commands.
pub fn validate_command(command: &Command) -> Result<(), String> {
    let key = command.key();
    if key.is_empty() {
        return Err("empty key".into());
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(format!("key of {} bytes exceeds {KEY_BYTES_MAX}", key.len()));
    }
    let values: [Option<&Vec<u8>>; 2] = match command {
        Command::Put { value, .. } => [Some(value), None],
        Command::Delete { .. } => [None, None],
        Command::CompareAndSwap {
            expected, new_value, ..
        } => [expected.as_ref(), new_value.as_ref()],
    };
    for value in values.into_iter().flatten() {
        if value.len() > VALUE_BYTES_MAX {
            return Err(format!(
                "value of {} bytes exceeds {VALUE_BYTES_MAX}",
                value.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_round_trips_and_another_format_is_named() {
        let command = KvCommand::write(
            1_700_000_000_000,
            Session {
                client_id: 9,
                sequence: 3,
            },
            Command::Delete { key: b"k".to_vec() },
            false,
        );
        let data = command.encode();
        assert_eq!(data[0], LOG_FORMAT);
        assert_eq!(KvCommand::decode(&data), Ok(command));
        // Format 2 had no `return_prior`: its writes answered with the value.
        let format2 = format2::KvCommand {
            at_millis: 5,
            body: format2::KvBody::Write {
                session: Session {
                    client_id: 9,
                    sequence: 4,
                },
                command: Command::Put {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                },
            },
        };
        let data = postcard::to_extend(&format2, vec![LOG_FORMAT_2]).expect("encodes");
        let decoded = KvCommand::decode(&data).expect("format 2 is read");
        assert_eq!(decoded, KvCommand::from(format2));
        assert!(matches!(
            decoded.body,
            KvBody::Write {
                return_prior: true,
                ..
            }
        ));
        // Format 1 began with the client id's varint: 0 for system records, >= 0x80 for
        // the random ids clients took.
        assert_eq!(
            KvCommand::decode(&[0x00, 0x00, 0x00]),
            Err(CommandError::Format { found: Some(0) })
        );
        assert_eq!(KvCommand::decode(&[]), Err(CommandError::Format { found: None }));
        assert!(matches!(
            KvCommand::decode(&[LOG_FORMAT, 0xFF]),
            Err(CommandError::Decode(_))
        ));
    }
}
