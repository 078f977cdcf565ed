//! `LogEngine`: the Raft log and hard state in append-only segment files of our own
//! (issue 14), as etcd's WAL and TiKV's raft-engine keep them, instead of in an LSM: an
//! entry is written once, a purge deletes whole files, nothing is compacted.
//!
//! In `<data dir>/raft-log/`:
//!
//! | file                     | what                                                      |
//! |--------------------------|-----------------------------------------------------------|
//! | `0000000000000001.seg`.. | segments, numbered without gaps, each preallocated (`fallocate`, 64 MiB by default) |
//!
//! A segment is a run of records (`record`: length, XXH3 checksum, kind, postcard
//! payload), then zeros. Records come in groups, one group per write: a reset (a snapshot
//! replaced the log), entries (entry `i` replaces every entry from `i` on), a hard state.
//! A group is one `write` and one `fdatasync`, and it is replayed all or nothing.
//! Every segment starts with a checkpoint group (the hard state, the log's start and last
//! index), so older segments can be deleted on their own: `purge` deletes the oldest
//! segments whose entries are all purged. Creating or deleting a segment syncs the
//! directory.
//!
//! Recovery (`recovery`) replays every segment in order and cuts off a torn write at the
//! tail of the last one; any other damage is `Corrupt`. After open the engine only
//! writes: Raft keeps the log since its snapshot in memory, so the engine is read again
//! only by `log_state` (at a restart).

use std::fs;
use std::path::{Path, PathBuf};

use raft::{Entry, HardState, Index, Term};

use super::fjall_codec::encode;
use super::StorageError;

pub(crate) mod record;
pub(crate) mod recovery;
mod segment;
pub(crate) mod state;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod record_tests;
#[cfg(test)]
mod tests;

use self::record::{Kind, RecordWriter};
use self::recovery::{scan, SegmentInfo};
use self::segment::{io, remove_segment, sync_dir, Segment};
use self::state::Checkpoint;
pub use self::state::LogState;

/// The engine's folder inside the data dir.
pub const LOG_ENGINE_FOLDER: &str = "raft-log";

/// How the engine lays out its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEngineOptions {
    /// Each segment is preallocated to this size; a write that does not fit in what is
    /// left of the active segment goes to a new one (a single larger write grows its
    /// segment instead).
    pub segment_bytes: u64,
}

impl Default for LogEngineOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The log engine of one node. Only the driver writes, one call at a time.
#[derive(Debug)]
pub struct LogEngine {
    dir: PathBuf,
    options: LogEngineOptions,
    /// Every segment, oldest first; the last one is `active`'s.
    segments: Vec<SegmentInfo>,
    active: Option<Segment>,
    /// What the next checkpoint records: the last reset, the last index, the hard state.
    floor: Index,
    floor_term: Term,
    last_index: Index,
    hard_state: Option<HardState>,
    /// The state replayed at open, handed out by `log_state` until the first write.
    opened_state: Option<LogState>,
    /// A write or sync failed: nothing more is written (after a failed fsync the page
    /// cache cannot be trusted); the node restarts into recovery.
    failed: bool,
}

impl LogEngine {
    /// Opens the engine in `dir` (created if missing), replaying every segment and
    /// cutting off a torn write at the tail.
    pub fn open(dir: &Path, options: LogEngineOptions) -> Result<Self, StorageError> {
        assert!(options.segment_bytes > 0, "segments have room");
        if !io(dir.try_exists(), "looking for", dir)? {
            io(fs::create_dir_all(dir), "creating", dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let found = scan(dir, true)?;
        let active = match found.segments.last() {
            Some(last) => Some(Segment::open(dir, last.sequence, found.tail_offset)?),
            None => None,
        };
        let replay = found.replay;
        tracing::info!(
            path = %dir.display(),
            segments = found.segments.len(),
            entries = replay.state.entries.len(),
            "opened the raft log engine"
        );
        Ok(Self {
            dir: dir.to_path_buf(),
            options,
            segments: found.segments,
            active,
            floor: replay.reset_floor,
            floor_term: replay.reset_floor_term,
            last_index: replay.last_index(),
            hard_state: replay.state.hard_state,
            opened_state: Some(replay.state),
            failed: false,
        })
    }

    /// The durable log and hard state: as replayed at open if nothing was written since,
    /// else read again from the segments.
    pub fn log_state(&self) -> Result<LogState, StorageError> {
        if let Some(state) = &self.opened_state {
            return Ok(state.clone());
        }
        Ok(scan(&self.dir, false)?.replay.state)
    }

    /// Where the last reset (or the checkpoint of the oldest segment) says the log starts.
    pub fn reset_floor(&self) -> Index {
        self.floor
    }

    /// The sequence numbers of the segments on disk, oldest first.
    pub fn segment_sequences(&self) -> Vec<u64> {
        self.segments.iter().map(|segment| segment.sequence).collect()
    }

    /// Appends `entries` (each replacing any stored entry at its index and after it) and
    /// the hard state, durably: one write, one `fdatasync`.
    pub fn append(&mut self, entries: &[Entry], hard_state: Option<HardState>) -> Result<(), StorageError> {
        self.write_group(None, entries, hard_state)
    }

    /// Replaces the whole log: it now starts after `floor` (a snapshot's index and term),
    /// with `entries` after it, and the hard state, in one durable group.
    pub fn reset(
        &mut self,
        floor: Index,
        floor_term: Term,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        assert!(
            entries.first().is_none_or(|entry| entry.index == floor + 1),
            "the entries after a reset start just after it"
        );
        self.write_group(Some((floor, floor_term)), entries, hard_state)
    }

    /// Deletes the oldest segments whose entries are all at or below `purged_to` (never
    /// the active one) and returns how many. The caller must have made durable whatever
    /// replaces them (the snapshot, and the applied index at least `purged_to`).
    pub fn purge(&mut self, purged_to: Index) -> Result<usize, StorageError> {
        self.check_usable()?;
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[0].max_index <= purged_to {
            let oldest = self.segments.remove(0);
            if let Err(error) = remove_segment(&self.dir, oldest.sequence) {
                self.failed = true;
                return Err(error);
            }
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir).inspect_err(|_| self.failed = true)?;
            tracing::debug!(removed, purged_to, "deleted purged raft log segments");
        }
        Ok(removed)
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Io(
                "the raft log engine failed a write earlier and takes no more".into(),
            ));
        }
        Ok(())
    }

    fn write_group(
        &mut self,
        reset: Option<(Index, Term)>,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        self.check_usable()?;
        assert!(
            entries.windows(2).all(|pair| pair[1].index == pair[0].index + 1),
            "entries to append are contiguous"
        );
        let mut kinds = Vec::with_capacity(3);
        if reset.is_some() {
            kinds.push(Kind::Reset);
        }
        if !entries.is_empty() {
            kinds.push(Kind::Entries);
        }
        if hard_state.is_some() {
            kinds.push(Kind::HardState);
        }
        let reset_record = reset.map(|floor| encode(&floor));
        let hard_state_record = hard_state.map(|hard_state| encode(&hard_state));
        let mut group = RecordWriter::new();
        for (position, kind) in kinds.iter().enumerate() {
            let continues = position + 1 < kinds.len();
            group.push(*kind, continues, |buffer| match kind {
                Kind::Reset => buffer.extend_from_slice(reset_record.as_deref().unwrap_or_default()),
                Kind::Entries => {
                    let taken = std::mem::take(buffer);
                    *buffer = postcard::to_extend(entries, taken).expect("entries encode with postcard");
                }
                Kind::HardState => buffer.extend_from_slice(hard_state_record.as_deref().unwrap_or_default()),
                Kind::Checkpoint => unreachable!("a checkpoint is written only on its own"),
            });
        }
        if group.is_empty() {
            return Ok(());
        }
        let written = self.write_to_segment(group.bytes());
        if written.is_err() {
            self.failed = true;
        }
        written?;
        self.opened_state = None;
        if let Some((floor, floor_term)) = reset {
            self.floor = floor;
            self.floor_term = floor_term;
            self.last_index = floor;
            for segment in &mut self.segments {
                segment.max_index = 0;
            }
        }
        if let Some(last) = entries.last() {
            self.last_index = last.index;
            if let Some(active) = self.segments.last_mut() {
                active.max_index = active.max_index.max(last.index);
            }
        }
        if hard_state.is_some() {
            self.hard_state = hard_state;
        }
        Ok(())
    }

    /// Writes one group to the active segment, first moving to a new segment if it would
    /// overflow, and starting any new segment with its checkpoint, in the same write.
    fn write_to_segment(&mut self, group: &[u8]) -> Result<(), StorageError> {
        let rotate = match &self.active {
            None => true,
            Some(active) => active.write_offset > 0 && group.len() as u64 > active.remaining_bytes(),
        };
        if rotate {
            let sequence = self.segments.last().map_or(1, |last| last.sequence + 1);
            let segment = Segment::create(&self.dir, sequence, self.options.segment_bytes)?;
            self.segments.push(SegmentInfo {
                sequence,
                max_index: 0,
            });
            self.active = Some(segment);
        }
        let checkpoint = Checkpoint {
            floor: self.floor,
            floor_term: self.floor_term,
            last_index: self.last_index,
            hard_state: self.hard_state,
        };
        let active = self.active.as_mut().expect("a segment to write to");
        if active.write_offset > 0 {
            return active.append(group);
        }
        let mut with_checkpoint = RecordWriter::new();
        with_checkpoint.push(Kind::Checkpoint, false, |buffer| {
            buffer.extend_from_slice(&encode(&checkpoint));
        });
        let mut bytes = Vec::with_capacity(with_checkpoint.len() + group.len());
        bytes.extend_from_slice(with_checkpoint.bytes());
        bytes.extend_from_slice(group);
        active.append(&bytes)
    }
}
