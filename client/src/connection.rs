//! A framed connection over any async byte stream: reads and writes whole frames.
//! Under madsim a simulated `TcpStream` works unchanged (written bytes are delivered on
//! `flush`, which `write_frame` does).

use std::io;

use bytes::{Buf, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{encode_frame, parse_frame, FrameError};

/// Why a connection ended or failed.
#[derive(Debug)]
pub enum ConnectionError {
    Io(io::Error),
    Frame(FrameError),
    /// The peer closed the connection in the middle of a frame.
    TruncatedFrame,
}

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "i/o error: {error}"),
            Self::Frame(error) => error.fmt(f),
            Self::TruncatedFrame => write!(f, "connection closed in the middle of a frame"),
        }
    }
}

impl std::error::Error for ConnectionError {}

impl From<io::Error> for ConnectionError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

impl From<FrameError> for ConnectionError {
    fn from(error: FrameError) -> Self {
        Self::Frame(error)
    }
}

#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    buffer: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buffer: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Reads one frame. `Ok(None)` when the peer closed the connection cleanly.
    pub async fn read_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ConnectionError> {
        loop {
            if let Some((value, consumed)) = parse_frame::<T>(&self.buffer)? {
                self.buffer.advance(consumed);
                return Ok(Some(value));
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnectionError::TruncatedFrame)
                };
            }
        }
    }

    /// Writes one frame and flushes it.
    pub async fn write_frame<T: Serialize>(&mut self, value: &T) -> Result<(), ConnectionError> {
        let frame = encode_frame(value)?;
        self.write_encoded(&frame).await
    }

    /// Writes an already encoded frame (encode once, send to many).
    pub async fn write_encoded(&mut self, frame: &[u8]) -> Result<(), ConnectionError> {
        self.stream.write_all(frame).await?;
        self.stream.flush().await?;
        Ok(())
    }

    pub fn into_inner(self) -> S {
        self.stream
    }
}
