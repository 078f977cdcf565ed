//! Client-side checks of the protocol's limits. The node enforces the same limits; checking
//! here fails fast, without spending a session sequence or a round trip.

use super::error::ClientError;
use crate::wire::{Command, KEY_BYTES_MAX, VALUE_BYTES_MAX};

pub(crate) fn check_key(key: &[u8]) -> Result<(), ClientError> {
    if key.len() > KEY_BYTES_MAX {
        return Err(ClientError::InvalidRequest {
            message: format!(
                "key of {} bytes exceeds the {KEY_BYTES_MAX}-byte limit",
                key.len()
            ),
        });
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), ClientError> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(ClientError::InvalidRequest {
            message: format!(
                "value of {} bytes exceeds the {VALUE_BYTES_MAX}-byte limit",
                value.len()
            ),
        });
    }
    Ok(())
}

pub(crate) fn check_command(command: &Command) -> Result<(), ClientError> {
    check_key(command.key())?;
    match command {
        Command::Put { value, .. } => check_value(value),
        Command::Delete { .. } => Ok(()),
        Command::CompareAndSwap {
            expected, new_value, ..
        } => {
            for value in [expected, new_value].into_iter().flatten() {
                check_value(value)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive_and_cover_every_value_of_a_command() {
        assert!(check_key(&vec![0; KEY_BYTES_MAX]).is_ok());
        assert!(check_key(&vec![0; KEY_BYTES_MAX + 1]).is_err());
        let too_long = Some(vec![0; VALUE_BYTES_MAX + 1]);
        let swap = |expected, new_value| Command::CompareAndSwap {
            key: b"k".to_vec(),
            expected,
            new_value,
        };
        assert!(check_command(&swap(too_long.clone(), None)).is_err());
        assert!(check_command(&swap(None, too_long)).is_err());
        assert!(check_command(&swap(None, None)).is_ok());
    }
}
