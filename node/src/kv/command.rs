//! What a `Normal` Raft entry carries: one client write with its session.

use client::wire::{Command, Session, KEY_BYTES_MAX, VALUE_BYTES_MAX};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCommand {
    pub session: Session,
    pub command: Command,
}

impl KvCommand {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("in-memory command encodes")
    }

    pub fn decode(data: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(data)
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
