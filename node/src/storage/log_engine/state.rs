//! What the log engine's records mean: the log state they build, record by record, and
//! the rules a replay checks (no gap, no entry at or below the log's start, checkpoints
//! that agree with what came before them).

use raft::{Entry, HardState, Index, Term};
use serde::{Deserialize, Serialize};

use super::super::fjall_codec::decode;
use super::super::StorageError;
use super::record::{Kind, Record};

/// The first record of every segment: the state a replay starting at this segment needs
/// (older segments may have been deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The log started after this index when the segment was opened (the last reset).
    pub floor: Index,
    pub floor_term: Term,
    /// The log's last index then. Entries from `floor + 1` through it are in older
    /// segments, which are deleted only once every entry in them is purged: a replay that
    /// starts here may find the log going on from anywhere up to `last_index + 1`.
    pub last_index: Index,
    pub hard_state: Option<HardState>,
}

/// The durable Raft log and hard state as the engine's records build them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogState {
    /// The log starts after this index: a reset's (snapshot) index, or the last purged
    /// index when older segments were deleted.
    pub floor: Index,
    /// Contiguous from `floor + 1`.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
}

/// What applying a record did, for the segments' bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Entries through `last` were written.
    Entries {
        last: Index,
    },
    /// The whole log was replaced: nothing before this record is needed any more.
    Reset,
    Other,
}

/// A replay in progress: the state so far plus what only a replay needs.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub(crate) state: LogState,
    /// The floor and its term as the records set them (resets and checkpoints): what the
    /// next checkpoint records.
    pub(crate) reset_floor: Index,
    pub(crate) reset_floor_term: Term,
    /// Set by the first checkpoint of a replay: entries through this index may be in
    /// segments deleted by compaction, until the first entries are read.
    hole_through: Option<Index>,
    started: bool,
}

impl Replay {
    /// The log's last index (the floor when it has no entries).
    pub(crate) fn last_index(&self) -> Index {
        match self.state.entries.last() {
            Some(entry) => entry.index,
            None => self.state.floor.max(self.hole_through.unwrap_or(0)),
        }
    }

    /// Applies one record read back; says what it did that segment bookkeeping needs.
    pub(crate) fn apply(&mut self, record: &Record<'_>) -> Result<Applied, StorageError> {
        match record.kind {
            Kind::Entries => {
                let entries: Vec<Entry> = decode("log engine entries", record.payload)?;
                let last = entries.last().map_or(0, |entry| entry.index);
                self.append(entries)?;
                Ok(Applied::Entries { last })
            }
            Kind::HardState => {
                self.state.hard_state = Some(decode("log engine hard state", record.payload)?);
                Ok(Applied::Other)
            }
            Kind::Reset => {
                let (index, term): (Index, Term) = decode("log engine reset", record.payload)?;
                self.reset(index, term);
                Ok(Applied::Reset)
            }
            Kind::Checkpoint => {
                let checkpoint: Checkpoint = decode("log engine checkpoint", record.payload)?;
                self.checkpoint(checkpoint)?;
                Ok(Applied::Other)
            }
        }
    }

    pub(crate) fn reset(&mut self, index: Index, term: Term) {
        self.state.floor = index;
        self.state.entries.clear();
        self.reset_floor = index;
        self.reset_floor_term = term;
        self.hole_through = None;
        self.started = true;
    }

    fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), StorageError> {
        if !self.started {
            self.started = true;
            self.state.floor = checkpoint.floor;
            self.reset_floor = checkpoint.floor;
            self.reset_floor_term = checkpoint.floor_term;
            self.hole_through = Some(checkpoint.last_index);
            self.state.hard_state = checkpoint.hard_state;
            return Ok(());
        }
        let here = (self.reset_floor, self.last_index(), self.state.hard_state);
        let recorded = (checkpoint.floor, checkpoint.last_index, checkpoint.hard_state);
        if here != recorded {
            return Err(StorageError::Corrupt(format!(
                "a log segment's checkpoint (floor, last index, hard state) {recorded:?} disagrees \
                 with the segments before it, {here:?}"
            )));
        }
        Ok(())
    }

    /// Entry `i` replaces every entry from `i` on.
    pub(crate) fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        self.started = true;
        let Some(first) = entries.first().map(|entry| entry.index) else {
            return Ok(());
        };
        if entries
            .windows(2)
            .any(|pair| pair[1].index != pair[0].index.saturating_add(1))
        {
            return Err(StorageError::Corrupt(
                "a log engine record holds entries that are not contiguous".into(),
            ));
        }
        let floor = self.state.floor;
        if first <= floor {
            return Err(StorageError::Corrupt(format!(
                "log entry {first} at or below the log's start after {floor}"
            )));
        }
        let last = self.last_index();
        if first > last.saturating_add(1) || (self.state.entries.is_empty() && first > floor + 1) {
            match self.hole_through {
                // Older segments were deleted: the entries before `first` were purged.
                Some(hole) if self.state.entries.is_empty() && first <= hole.saturating_add(1) => {
                    self.state.floor = first - 1;
                }
                _ => {
                    return Err(StorageError::Corrupt(format!(
                        "a gap in the log: entry {first} follows entry {last}"
                    )))
                }
            }
        }
        self.hole_through = None;
        let keep = usize::try_from(first - self.state.floor - 1).unwrap_or(usize::MAX);
        self.state.entries.truncate(keep);
        self.state.entries.extend(entries);
        Ok(())
    }
}
