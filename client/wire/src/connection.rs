//! A framed connection over any async byte stream: reads and writes whole frames.
//! Under madsim a simulated `TcpStream` works unchanged (written bytes are delivered on
//! `flush`, which `write_frame` does).

use std::io;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::frame::{
    announced_payload_bytes, encode_frame, parse_frame_limited, FrameError, FRAME_HEADER_BYTES,
    FRAME_PAYLOAD_BYTES_MAX,
};

/// Why a connection ended or failed.
#[derive(Debug)]
pub enum ConnectionError {
    Io(io::Error),
    Frame(FrameError),
    /// The peer closed the connection in the middle of a frame.
    TruncatedFrame,
    /// A frame, once started, did not arrive whole within the connection's frame timeout
    /// (a stalled or deliberately slow sender).
    FrameTimeout(std::time::Duration),
}

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "i/o error: {error}"),
            Self::Frame(error) => error.fmt(f),
            Self::TruncatedFrame => write!(f, "connection closed in the middle of a frame"),
            Self::FrameTimeout(limit) => write!(f, "a frame did not arrive whole within {limit:?}"),
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

/// Buffer a connection starts with: enough for every small request and response; a large
/// frame grows it to its announced size once (see `read_frame`), so an idle or
/// half-open connection costs a few kilobytes, not a frame's worth.
const BUFFER_BYTES_INITIAL: usize = 8 * 1024;

#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    buffer: BytesMut,
    /// Largest payload this side accepts from the other.
    payload_bytes_max: usize,
    /// When the first byte of the frame being read arrived (`None` between frames): a
    /// server gives a started frame a deadline, so a slow sender cannot pin its memory.
    frame_started_at: Option<Instant>,
    /// Bound on one frame's arrival from its first byte (`None`: unbounded).
    frame_timeout: Option<std::time::Duration>,
    /// Budget taken for the frame being read (`read_frame_budgeted`), kept across a
    /// cancelled read so the next call does not take it twice.
    frame_budget: Option<OwnedSemaphorePermit>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buffer: BytesMut::with_capacity(BUFFER_BYTES_INITIAL),
            payload_bytes_max: FRAME_PAYLOAD_BYTES_MAX,
            frame_started_at: None,
            frame_timeout: None,
            frame_budget: None,
        }
    }

    /// A frame must arrive whole within `limit` of its first byte, budget wait included;
    /// past it, reads fail with `FrameTimeout` (a server's defence against slow senders).
    pub fn with_frame_timeout(mut self, limit: std::time::Duration) -> Self {
        self.frame_timeout = Some(limit);
        self
    }

    /// When the frame being read must be whole, if it has started and is bounded.
    fn frame_deadline(&self) -> Option<Instant> {
        Some(self.frame_started_at? + self.frame_timeout?)
    }

    /// Accepts payloads of at most `payload_bytes_max` from the other side.
    pub fn with_payload_limit(mut self, payload_bytes_max: usize) -> Self {
        self.payload_bytes_max = payload_bytes_max.min(FRAME_PAYLOAD_BYTES_MAX);
        self
    }

    /// Changes the payload limit (a peer link takes a small handshake, then full frames).
    pub fn set_payload_limit(&mut self, payload_bytes_max: usize) {
        self.payload_bytes_max = payload_bytes_max.min(FRAME_PAYLOAD_BYTES_MAX);
    }

    /// When the frame being read started arriving, if one has.
    pub fn frame_started_at(&self) -> Option<Instant> {
        self.frame_started_at
    }

    /// The stream under the framing (its TLS peer certificate, say).
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Reads one frame. `Ok(None)` when the peer closed the connection cleanly.
    /// Cancel-safe: a partly read frame stays in the buffer.
    pub async fn read_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ConnectionError> {
        loop {
            if let Some(value) = self.take_frame::<T>()? {
                return Ok(Some(value));
            }
            if !self.fill().await? {
                return self.closed();
            }
        }
    }

    /// Reads one frame, first taking its size in bytes from `budget` (shared by every
    /// connection of a port): the frame's bytes are only buffered once the budget has
    /// room, and the permit returned holds them until the caller drops it (when the
    /// request has been answered). A full budget stops this connection reading, which is
    /// TCP backpressure on its sender, instead of memory growth. Cancel-safe.
    pub async fn read_frame_budgeted<T: DeserializeOwned>(
        &mut self,
        budget: &Arc<Semaphore>,
    ) -> Result<Option<(T, OwnedSemaphorePermit)>, ConnectionError> {
        loop {
            if self.frame_budget.is_none() {
                if let Some(payload_bytes) = announced_payload_bytes(&self.buffer, self.payload_bytes_max)? {
                    let frame_bytes = u32::try_from(FRAME_HEADER_BYTES + payload_bytes).unwrap_or(u32::MAX);
                    let acquire = budget.clone().acquire_many_owned(frame_bytes);
                    let acquired = match self.frame_deadline() {
                        None => acquire.await,
                        // `timeout`, not `timeout_at`: madsim's time module has only the former.
                        Some(deadline) => {
                            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), acquire)
                                .await
                                .map_err(|_| self.frame_timed_out())?
                        }
                    };
                    let permit = acquired.map_err(|_| io::Error::other("the connection budget is closed"))?;
                    self.frame_budget = Some(permit);
                }
            }
            if self.frame_budget.is_some() {
                if let Some(value) = self.take_frame::<T>()? {
                    let permit = self.frame_budget.take().expect("taken above");
                    return Ok(Some((value, permit)));
                }
            }
            if !self.fill().await? {
                return self.closed();
            }
        }
    }

    /// Decodes the frame at the start of the buffer, if it is all there.
    fn take_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ConnectionError> {
        let Some((value, consumed)) = parse_frame_limited::<T>(&self.buffer, self.payload_bytes_max)? else {
            return Ok(None);
        };
        self.buffer.advance(consumed);
        // Bytes left over are the next frame's beginning.
        self.frame_started_at = (!self.buffer.is_empty()).then(Instant::now);
        Ok(Some(value))
    }

    /// Reads more bytes; `false` at end of stream. Once a frame's header is in, room for
    /// the whole frame is reserved at once (it was checked against the limit).
    async fn fill(&mut self) -> Result<bool, ConnectionError> {
        if let Some(payload_bytes) = announced_payload_bytes(&self.buffer, self.payload_bytes_max)? {
            let frame_bytes = FRAME_HEADER_BYTES + payload_bytes;
            self.buffer.reserve(frame_bytes.saturating_sub(self.buffer.len()));
        } else if self.buffer.capacity() == self.buffer.len() {
            self.buffer.reserve(BUFFER_BYTES_INITIAL);
        }
        let was_empty = self.buffer.is_empty();
        let read = match self.frame_deadline() {
            None => self.stream.read_buf(&mut self.buffer).await?,
            Some(deadline) => {
                match tokio::time::timeout(
                    deadline.saturating_duration_since(Instant::now()),
                    self.stream.read_buf(&mut self.buffer),
                )
                .await
                {
                    Ok(read) => read?,
                    Err(_elapsed) => return Err(self.frame_timed_out()),
                }
            }
        };
        if read == 0 {
            return Ok(false);
        }
        if was_empty {
            self.frame_started_at = Some(Instant::now());
        }
        Ok(true)
    }

    fn frame_timed_out(&self) -> ConnectionError {
        ConnectionError::FrameTimeout(self.frame_timeout.unwrap_or_default())
    }

    fn closed<T>(&self) -> Result<Option<T>, ConnectionError> {
        if self.buffer.is_empty() {
            Ok(None)
        } else {
            Err(ConnectionError::TruncatedFrame)
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
