//! The state machine image as a stream (issue 12: snapshots of any size, never whole in
//! memory). An image is the magic `raftkv-image-v1`, then records, each a 4-byte
//! big-endian length and a postcard `ImageRecord`: every KV pair and every session, then
//! one `End` that counts them and carries the XXH3-64 of every byte before it. A writer
//! cuts the stream into pieces of any size; a reader takes them back in pieces of any
//! size (chunks from a peer, values from disk) and yields the records as they complete,
//! holding at most one record in memory. Bytes from a peer or a disk are checked: a
//! record over `RECORD_BYTES_MAX`, a wrong magic, a missing or wrong `End`, or bytes after
//! it are `Corrupt`, never a panic.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::{SessionRecord, SnapshotImage, StorageError};

const MAGIC: &[u8; 15] = b"raftkv-image-v1";
/// A key is at most 64 KiB and a value at most a client frame (16 MiB); anything longer
/// was not written by a writer.
const RECORD_BYTES_MAX: usize = 17 * 1024 * 1024;
/// Pieces of a built image: the chunk size peers send (raft's `snapshot_chunk_bytes`).
pub const IMAGE_PIECE_BYTES: usize = 1024 * 1024;

/// One record as written (borrowing what it encodes).
#[derive(Serialize)]
enum RecordOut<'a> {
    Pair {
        key: &'a [u8],
        value: &'a [u8],
    },
    Session {
        client_id: u64,
        record: &'a SessionRecord,
    },
    End {
        pairs: u64,
        sessions: u64,
        checksum: u64,
    },
}

/// One record as read: the same layout as `RecordOut`.
#[derive(Debug, Deserialize)]
enum RecordIn {
    Pair {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Session {
        client_id: u64,
        record: SessionRecord,
    },
    End {
        pairs: u64,
        sessions: u64,
        checksum: u64,
    },
}

/// What a reader yields, in the order the image holds it.
#[derive(Debug, PartialEq, Eq)]
pub enum ImageItem {
    Pair(Vec<u8>, Vec<u8>),
    Session(u64, SessionRecord),
}

/// Writes an image in pieces of `piece_bytes` through `sink(offset, piece)`.
pub struct ImageWriter<F: FnMut(u64, &[u8]) -> Result<(), StorageError>> {
    piece: Vec<u8>,
    piece_bytes: usize,
    flushed_bytes: u64,
    hasher: Xxh3,
    pairs: u64,
    sessions: u64,
    sink: F,
}

impl<F: FnMut(u64, &[u8]) -> Result<(), StorageError>> std::fmt::Debug for ImageWriter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageWriter")
            .field("flushed_bytes", &self.flushed_bytes)
            .field("pairs", &self.pairs)
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(u64, &[u8]) -> Result<(), StorageError>> ImageWriter<F> {
    pub fn new(piece_bytes: usize, sink: F) -> Self {
        assert!(piece_bytes > 0, "pieces hold bytes");
        let mut writer = Self {
            piece: Vec::with_capacity(piece_bytes.min(IMAGE_PIECE_BYTES)),
            piece_bytes,
            flushed_bytes: 0,
            hasher: Xxh3::new(),
            pairs: 0,
            sessions: 0,
            sink,
        };
        writer.hasher.update(MAGIC);
        writer.piece.extend_from_slice(MAGIC);
        writer
    }

    pub fn pair(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.pairs += 1;
        self.record(&RecordOut::Pair { key, value }, true)
    }

    pub fn session(&mut self, client_id: u64, record: &SessionRecord) -> Result<(), StorageError> {
        self.sessions += 1;
        self.record(&RecordOut::Session { client_id, record }, true)
    }

    /// Writes the `End` record and the last piece; returns the image's length in bytes.
    pub fn finish(mut self) -> Result<u64, StorageError> {
        let end = RecordOut::End {
            pairs: self.pairs,
            sessions: self.sessions,
            checksum: self.hasher.digest(),
        };
        self.record(&end, false)?;
        if !self.piece.is_empty() {
            let piece = std::mem::take(&mut self.piece);
            (self.sink)(self.flushed_bytes, &piece)?;
            self.flushed_bytes += piece.len() as u64;
        }
        Ok(self.flushed_bytes)
    }

    fn record(&mut self, record: &RecordOut<'_>, hashed: bool) -> Result<(), StorageError> {
        let body = postcard::to_allocvec(record).expect("image records encode with postcard");
        assert!(body.len() <= RECORD_BYTES_MAX, "stored pairs are bounded");
        let length = (body.len() as u32).to_be_bytes();
        if hashed {
            self.hasher.update(&length);
            self.hasher.update(&body);
        }
        self.piece.extend_from_slice(&length);
        self.piece.extend_from_slice(&body);
        while self.piece.len() >= self.piece_bytes {
            let rest = self.piece.split_off(self.piece_bytes);
            let piece = std::mem::replace(&mut self.piece, rest);
            (self.sink)(self.flushed_bytes, &piece)?;
            self.flushed_bytes += piece.len() as u64;
        }
        Ok(())
    }
}

/// Reads an image fed in pieces of any size.
pub struct ImageReader {
    buffer: Vec<u8>,
    magic_seen: bool,
    hasher: Xxh3,
    pairs: u64,
    sessions: u64,
    /// The end record's checksum, once it was read (and matched).
    checksum: u64,
    ended: bool,
}

/// What a whole, verified image holds (its end record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSummary {
    pub pairs: u64,
    pub sessions: u64,
    pub checksum: u64,
}

impl std::fmt::Debug for ImageReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageReader")
            .field("buffered_bytes", &self.buffer.len())
            .field("pairs", &self.pairs)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Default for ImageReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageReader {
    pub fn new() -> Self {
        Self {
            buffer: Vec::new(),
            magic_seen: false,
            hasher: Xxh3::new(),
            pairs: 0,
            sessions: 0,
            checksum: 0,
            ended: false,
        }
    }

    /// Takes the next bytes of the image and hands every record they complete to `item`.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut item: impl FnMut(ImageItem) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        if self.ended && !bytes.is_empty() {
            return Err(corrupt("bytes after the end record"));
        }
        self.buffer.extend_from_slice(bytes);
        let mut consumed = 0;
        if !self.magic_seen {
            if self.buffer.len() < MAGIC.len() {
                return Ok(());
            }
            if &self.buffer[..MAGIC.len()] != MAGIC {
                return Err(corrupt("not a raftkv image (bad magic)"));
            }
            self.hasher.update(MAGIC);
            self.magic_seen = true;
            consumed = MAGIC.len();
        }
        loop {
            let rest = &self.buffer[consumed..];
            let Some(length) = rest.get(..4) else { break };
            let length = u32::from_be_bytes(length.try_into().expect("four bytes")) as usize;
            if length > RECORD_BYTES_MAX {
                return Err(corrupt(&format!("a record of {length} bytes")));
            }
            let Some(body) = rest.get(4..4 + length) else {
                break;
            };
            let record: RecordIn = match postcard::take_from_bytes(body) {
                Ok((record, [])) => record,
                Ok(_) => return Err(corrupt("a record with trailing bytes")),
                Err(error) => return Err(corrupt(&format!("a record does not decode: {error}"))),
            };
            if self.ended {
                return Err(corrupt("a record after the end record"));
            }
            match record {
                RecordIn::Pair { key, value } => {
                    self.hasher.update(&rest[..4 + length]);
                    self.pairs += 1;
                    item(ImageItem::Pair(key, value))?;
                }
                RecordIn::Session { client_id, record } => {
                    self.hasher.update(&rest[..4 + length]);
                    self.sessions += 1;
                    item(ImageItem::Session(client_id, record))?;
                }
                RecordIn::End {
                    pairs,
                    sessions,
                    checksum,
                } => {
                    if (pairs, sessions) != (self.pairs, self.sessions) {
                        return Err(corrupt(&format!(
                            "the end record counts {pairs} pairs and {sessions} sessions, the image holds {} and {}",
                            self.pairs, self.sessions
                        )));
                    }
                    if checksum != self.hasher.digest() {
                        return Err(corrupt("checksum mismatch"));
                    }
                    self.checksum = checksum;
                    self.ended = true;
                }
            }
            consumed += 4 + length;
        }
        self.buffer.drain(..consumed);
        if self.ended && !self.buffer.is_empty() {
            return Err(corrupt("bytes after the end record"));
        }
        Ok(())
    }

    /// Checks that the image ended where its bytes did; returns what its end record said.
    pub fn finish(self) -> Result<ImageSummary, StorageError> {
        if !self.ended {
            return Err(corrupt("the image ends before its end record"));
        }
        Ok(ImageSummary {
            pairs: self.pairs,
            sessions: self.sessions,
            checksum: self.checksum,
        })
    }
}

fn corrupt(why: &str) -> StorageError {
    StorageError::Corrupt(format!("snapshot image: {why}"))
}

impl SnapshotImage {
    /// The whole image as one buffer (stores that keep it in memory, and tests).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = ImageWriter::new(IMAGE_PIECE_BYTES, |_, piece| {
            bytes.extend_from_slice(piece);
            Ok(())
        });
        for (key, value) in &self.kv {
            writer.pair(key, value).expect("writing to memory");
        }
        for (client_id, record) in &self.sessions {
            writer.session(*client_id, record).expect("writing to memory");
        }
        writer.finish().expect("writing to memory");
        bytes
    }

    /// Reads a whole image held in one buffer.
    pub fn decode(data: &[u8]) -> Result<Self, StorageError> {
        let mut image = Self::default();
        let mut reader = ImageReader::new();
        reader.feed(data, |item| {
            match item {
                ImageItem::Pair(key, value) => image.kv.push((key, value)),
                ImageItem::Session(client_id, record) => image.sessions.push((client_id, record)),
            }
            Ok(())
        })?;
        reader.finish()?;
        Ok(image)
    }
}

#[cfg(test)]
mod tests;
