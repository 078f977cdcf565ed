//! The client protocol's framing and wire types, as a node reads requests and a client
//! reads responses: arbitrary bytes are a stream of frames, parsed one after another the
//! way `wire::connection::Connection::read_frame` does. Every parse ends in a frame, a
//! request for more bytes or an error, never a panic; whatever decodes re-encodes and
//! decodes to the same value; a write the node would take is checked as the driver does.
#![no_main]

use std::fmt::Debug;

use wire::frame::{encode_frame, parse_frame, FrameError, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX};
use wire::{Request, RequestEnvelope, ResponseEnvelope};
use libfuzzer_sys::fuzz_target;
use node::kv::command::{validate_command, KvBody, KvCommand, SessionLimits};
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    for (position, request) in read_stream::<RequestEnvelope>(data).into_iter().enumerate() {
        // The driver's check before a write enters the log, then the log's encoding.
        let at_millis = request.id.rotate_left(position as u32);
        let entry = match request.request {
            Request::Write {
                session,
                command,
                return_prior,
            } => {
                let _ = validate_command(&command);
                KvCommand::write(at_millis, session, command, return_prior)
            }
            Request::OpenSession { client_id } => KvCommand {
                at_millis,
                body: KvBody::OpenSession {
                    client_id,
                    limits: SessionLimits::DEFAULT,
                },
            },
            _ => continue,
        };
        let decoded = KvCommand::decode(&entry.encode()).expect("own encoding decodes");
        assert_eq!(decoded, entry);
    }
    read_stream::<ResponseEnvelope>(data);
});

/// Parses frames off `stream` until it needs more bytes or fails; returns what decoded.
fn read_stream<T: Serialize + DeserializeOwned + PartialEq + Debug>(stream: &[u8]) -> Vec<T> {
    let mut values = Vec::new();
    let mut rest = stream;
    loop {
        let announced = rest
            .get(..FRAME_HEADER_BYTES)
            .map(|header| u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize);
        match parse_frame::<T>(rest) {
            Ok(None) => {
                // Only a missing header or a payload not all there yet waits for more.
                if let Some(payload_bytes) = announced {
                    assert!(payload_bytes <= FRAME_PAYLOAD_BYTES_MAX);
                    assert!(FRAME_HEADER_BYTES + payload_bytes > rest.len());
                }
                return values;
            }
            Err(FrameError::TooLarge {
                payload_bytes,
                max_bytes,
            }) => {
                assert_eq!(Some(payload_bytes), announced);
                assert_eq!(max_bytes, FRAME_PAYLOAD_BYTES_MAX);
                assert!(payload_bytes > max_bytes);
                return values;
            }
            Err(FrameError::Decode(_)) => return values,
            Err(error @ FrameError::Encode(_)) => panic!("parsing reported {error:?}"),
            Ok(Some((value, consumed))) => {
                assert_eq!(Some(consumed - FRAME_HEADER_BYTES), announced);
                assert!(consumed <= rest.len());
                round_trip(&value);
                rest = &rest[consumed..];
                values.push(value);
            }
        }
    }
}

/// Encodes `value` as a frame and parses it back: the same value, the whole frame, and
/// every shorter prefix waits for more bytes.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let frame = encode_frame(value).expect("a decoded value encodes");
    let (again, consumed) = parse_frame::<T>(&frame)
        .expect("own frame parses")
        .expect("own frame is complete");
    assert_eq!(&again, value);
    assert_eq!(consumed, frame.len());
    for cut in [0, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES, frame.len() - 1] {
        if cut < frame.len() {
            assert_eq!(parse_frame::<T>(&frame[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }
}
