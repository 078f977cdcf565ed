//! Length-prefixed postcard frames, parsed from byte slices with no I/O (mini-redis
//! style), so the same code serves the client protocol and the peer transport and can
//! be fuzzed directly.
//!
//! A frame is a 4-byte big-endian payload length followed by the postcard payload.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes of the length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;
/// Upper bound of one frame's payload. Raft appends and snapshot chunks are bounded far
/// below this (1 MiB each by default).
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than the maximum: the peer is broken or hostile.
    TooLarge { payload_bytes: usize, max_bytes: usize },
    /// The payload is not a valid encoding of the expected type.
    Decode(String),
    /// The value could not be encoded (never for our own types).
    Encode(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge {
                payload_bytes,
                max_bytes,
            } => {
                write!(
                    f,
                    "frame of {payload_bytes} bytes exceeds the {max_bytes}-byte limit"
                )
            }
            Self::Decode(why) => write!(f, "undecodable frame: {why}"),
            Self::Encode(why) => write!(f, "unencodable value: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes `value` as one frame (header and payload).
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    // The header's room is reserved first so the payload is written in place, once.
    let mut frame = postcard::to_extend(value, vec![0u8; FRAME_HEADER_BYTES])
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let payload_bytes = frame.len() - FRAME_HEADER_BYTES;
    if payload_bytes > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::TooLarge {
            payload_bytes,
            max_bytes: FRAME_PAYLOAD_BYTES_MAX,
        });
    }
    let header = u32::try_from(payload_bytes).expect("bounded above").to_be_bytes();
    frame[..FRAME_HEADER_BYTES].copy_from_slice(&header);
    Ok(frame)
}

/// Looks for one complete frame at the start of `buffer`. `Ok(None)` means more bytes
/// are needed; `Ok(Some((value, consumed)))` a decoded frame of `consumed` bytes.
pub fn parse_frame<T: DeserializeOwned>(buffer: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    parse_frame_limited(buffer, FRAME_PAYLOAD_BYTES_MAX)
}

/// The payload length a frame at the start of `buffer` announces, once its header is
/// there, checked against `payload_bytes_max` before anything is buffered for it.
pub fn announced_payload_bytes(buffer: &[u8], payload_bytes_max: usize) -> Result<Option<usize>, FrameError> {
    let Some(header) = buffer.get(..FRAME_HEADER_BYTES) else {
        return Ok(None);
    };
    let payload_bytes = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
    if payload_bytes > payload_bytes_max {
        return Err(FrameError::TooLarge {
            payload_bytes,
            max_bytes: payload_bytes_max,
        });
    }
    Ok(Some(payload_bytes))
}

/// [`parse_frame`] with a smaller payload bound (a node's client port takes far less
/// than a peer link).
pub fn parse_frame_limited<T: DeserializeOwned>(
    buffer: &[u8],
    payload_bytes_max: usize,
) -> Result<Option<(T, usize)>, FrameError> {
    let Some(payload_bytes) = announced_payload_bytes(buffer, payload_bytes_max)? else {
        return Ok(None);
    };
    let end = FRAME_HEADER_BYTES + payload_bytes;
    let Some(payload) = buffer.get(FRAME_HEADER_BYTES..end) else {
        return Ok(None);
    };
    let value = postcard::from_bytes(payload).map_err(|e| FrameError::Decode(e.to_string()))?;
    Ok(Some((value, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_missing_bytes() {
        let frame = encode_frame(&(7u64, String::from("raft"))).expect("encodes");
        for cut in 0..frame.len() {
            assert_eq!(
                parse_frame::<(u64, String)>(&frame[..cut]),
                Ok(None),
                "cut at {cut}"
            );
        }
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        let (value, consumed) = parse_frame::<(u64, String)>(&two)
            .expect("valid")
            .expect("complete");
        assert_eq!(value, (7, "raft".to_string()));
        assert_eq!(consumed, frame.len());
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors_not_panics() {
        let huge = [0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(
            parse_frame::<u64>(&huge),
            Err(FrameError::TooLarge { .. })
        ));
        let garbage = [0, 0, 0, 2, 0xFF, 0xFF];
        assert!(matches!(
            parse_frame::<String>(&garbage),
            Err(FrameError::Decode(_))
        ));
    }
}
