//! The log engine's record framing, without I/O: how one record is laid out in a segment,
//! how a batch of records is encoded into one buffer, and how the bytes of a segment are
//! read back one record at a time.
//!
//! ```text
//! [len u32 LE][checksum u64 LE][kind u8][payload: len - 1 bytes]
//! ```
//!
//! `len` counts the kind byte and the payload; the checksum is XXH3-64 of the kind byte
//! and the payload. A `len` of 0 is never written, so preallocated space (zeros) reads as
//! the end of the records. The kind's high bit (`GROUP_CONTINUES`) says that the next
//! record belongs to the same group: a group is one `persist` (reset, entries, hard
//! state), applied all or nothing on replay.

use xxhash_rust::xxh3::xxh3_64;

/// `len` and the checksum.
pub const HEADER_BYTES: usize = 12;

/// The longest `len` a record may have (kind and payload). A leader holds at most
/// `max_uncommitted_bytes` (64 MiB by default) of entries in flight, so one `Ready` is far
/// below this; a larger length read from disk is corruption, never an allocation.
pub const RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;

/// The kind's flag: the group goes on with the next record.
pub const GROUP_CONTINUES: u8 = 0x80;

/// What a record holds (the kind byte without `GROUP_CONTINUES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// postcard `Vec<raft::Entry>`, contiguous: entry `i` replaces every entry `>= i`.
    Entries = 1,
    /// postcard `raft::HardState`: the last one wins.
    HardState = 2,
    /// postcard `(Index, Term)`: the log now starts after this point (a snapshot replaced
    /// the whole log).
    Reset = 3,
    /// postcard `Checkpoint`: the first record of every segment, so that older segments
    /// can be deleted without losing the hard state or where the log starts.
    Checkpoint = 4,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte & !GROUP_CONTINUES {
            1 => Some(Self::Entries),
            2 => Some(Self::HardState),
            3 => Some(Self::Reset),
            4 => Some(Self::Checkpoint),
            _ => None,
        }
    }
}

/// One record read back: its kind, whether its group goes on, its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: Kind,
    pub group_continues: bool,
    pub payload: &'a [u8],
    /// The offset just after the record.
    pub end: usize,
}

/// What the bytes at one offset of a segment hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned<'a> {
    Record(Record<'a>),
    /// Only zeros from here to the end: the end of the records (preallocated space).
    End,
    /// Not a whole, intact record. `extent_end` is where the record claims to end (its
    /// header's length, clamped to the bytes there are), or just after its header when the
    /// length itself cannot be right: what lies beyond is not part of it.
    Bad {
        why: String,
        extent_end: usize,
    },
}

/// Appends records to one buffer, so a whole batch is one `write`.
#[derive(Debug, Default)]
pub struct RecordWriter {
    buffer: Vec<u8>,
}

impl RecordWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one record whose payload `fill` writes. `group_continues`: the next
    /// record belongs to the same group.
    pub fn push(&mut self, kind: Kind, group_continues: bool, fill: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&[0; HEADER_BYTES]);
        let kind_byte = kind as u8 | if group_continues { GROUP_CONTINUES } else { 0 };
        self.buffer.push(kind_byte);
        fill(&mut self.buffer);
        let body = &self.buffer[start + HEADER_BYTES..];
        let len = body.len();
        assert!(
            len <= RECORD_BYTES_MAX,
            "a record of {len} bytes is beyond the maximum"
        );
        let checksum = xxh3_64(body);
        let len = u32::try_from(len).expect("RECORD_BYTES_MAX fits a u32");
        self.buffer[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buffer[start + 4..start + HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    }

    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buffer
    }
}

/// Reads the record at `offset` of `bytes` (a whole segment).
pub fn scan_at(bytes: &[u8], offset: usize) -> Scanned<'_> {
    let rest = bytes.get(offset..).unwrap_or_default();
    if rest.iter().all(|&byte| byte == 0) {
        return Scanned::End;
    }
    let after_header = offset.saturating_add(HEADER_BYTES);
    let bad = |why: String, extent_end: usize| Scanned::Bad {
        why,
        extent_end: extent_end.min(bytes.len()),
    };
    let Some(header) = rest.get(..HEADER_BYTES) else {
        return bad(format!("a header cut short at {offset}"), bytes.len());
    };
    let mut len_bytes = [0; 4];
    len_bytes.copy_from_slice(&header[..4]);
    let mut checksum_bytes = [0; 8];
    checksum_bytes.copy_from_slice(&header[4..]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > RECORD_BYTES_MAX {
        return bad(format!("a record length of {len} at {offset}"), after_header);
    }
    let end = after_header.saturating_add(len);
    let Some(body) = bytes.get(after_header..end) else {
        return bad(
            format!("a record of {len} bytes at {offset} cut short by the end of the segment"),
            end,
        );
    };
    if xxh3_64(body) != u64::from_le_bytes(checksum_bytes) {
        return bad(format!("a record at {offset} fails its checksum"), end);
    }
    let Some(kind) = Kind::from_byte(body[0]) else {
        return bad(format!("a record of unknown kind {} at {offset}", body[0]), end);
    };
    Scanned::Record(Record {
        kind,
        group_continues: body[0] & GROUP_CONTINUES != 0,
        payload: &body[1..],
        end,
    })
}

/// Whether any whole, intact record starts in `from..to` of `bytes` and ends by `to`,
/// hashing at most `budget_bytes` (past it: `true`, the cautious answer, since the caller
/// then refuses to call what is there a torn write).
pub fn intact_record_within(bytes: &[u8], from: usize, to: usize, budget_bytes: usize) -> bool {
    let to = to.min(bytes.len());
    let mut hashed = 0usize;
    for offset in from..to {
        let Some(header) = bytes.get(offset..offset + HEADER_BYTES) else {
            return false;
        };
        let mut len_bytes = [0; 4];
        len_bytes.copy_from_slice(&header[..4]);
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len == 0 || offset + HEADER_BYTES + len > to {
            continue;
        }
        hashed += len;
        if hashed > budget_bytes {
            return true;
        }
        if matches!(scan_at(bytes, offset), Scanned::Record(_)) {
            return true;
        }
    }
    false
}
