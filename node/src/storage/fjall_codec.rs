//! Byte layouts of `FjallStore` and the mapping of failures onto `StorageError`: fjall
//! errors are `Io` (fatal to the node), bytes that do not decode are `Corrupt`. Nothing
//! read from disk is unwrapped: a bad byte on disk is an error value, never a panic.

use raft::Index;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StorageError;

/// Big-endian, so fjall's lexicographic key order is numeric order: the log replays and
/// range-scans by index, and the session table lists by client id.
pub(crate) fn index_key(index: Index) -> [u8; 8] {
    index.to_be_bytes()
}

/// Reads back an `index_key`; any other length cannot have been written by this store.
pub(crate) fn decode_index_key(what: &str, key: &[u8]) -> Result<Index, StorageError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("{what}: key of {} bytes, expected 8", key.len())))?;
    Ok(Index::from_be_bytes(bytes))
}

/// Encodes an in-memory value. Postcard fails only on types serde cannot describe
/// without a schema (`serialize_any`), which none of the stored types are: a failure here
/// is a programmer error, hence the panic.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("stored types encode with postcard")
}

/// Decodes a value read from disk. Trailing bytes are rejected too: postcard alone would
/// ignore them, and a value longer than its encoding was not written by this store.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StorageError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(StorageError::Corrupt(format!(
            "{what}: {} trailing bytes",
            rest.len()
        ))),
        Err(error) => Err(StorageError::Corrupt(format!("{what}: {error}"))),
    }
}

/// Attaches what the store was doing to a fjall failure. Every fjall error is `Io`: after
/// a failed write or fsync fjall poisons itself and refuses further writes, and the
/// driver stops the node, which restarts into `recover`.
pub(crate) trait OrIo<T> {
    fn or_io(self, doing: &str) -> Result<T, StorageError>;
}

impl<T> OrIo<T> for Result<T, fjall::Error> {
    fn or_io(self, doing: &str) -> Result<T, StorageError> {
        self.map_err(|error| StorageError::Io(format!("{doing}: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_sort_numerically() {
        assert!(index_key(255) < index_key(256));
        assert!(index_key(1) < index_key(u64::MAX));
        assert_eq!(decode_index_key("log", &index_key(42)), Ok(42));
    }

    #[test]
    fn bad_bytes_are_corrupt_not_panics() {
        assert!(matches!(
            decode_index_key("log", &[1, 2, 3]),
            Err(StorageError::Corrupt(_))
        ));
        let mut bytes = encode(&7_u64);
        assert_eq!(decode::<u64>("applied", &bytes), Ok(7));
        bytes.push(0);
        assert!(matches!(
            decode::<u64>("applied", &bytes),
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<u64>("applied", &[0xff]),
            Err(StorageError::Corrupt(_))
        ));
    }
}
