//! Reading the log engine back: every segment in order, every record's checksum
//! verified, the groups replayed (`state::Replay`). A torn write at the tail of the last
//! segment is cut off; anything else that does not read back is `Corrupt`.
//!
//! A torn write: the last group of the last segment is incomplete (a record cut short,
//! failing its checksum, or the group's last record missing), and only zeros follow
//! the bad record's extent, and no intact record starts inside that extent. Every write
//! is one group synced before the next one starts, so such a group was never
//! acknowledged; a bad record followed by anything else (in the last segment or not)
//! could hide acknowledged ones, and the node stops rather than drop them.

use std::path::Path;

use raft::Index;

use super::super::StorageError;
use super::record::{intact_record_within, scan_at, Kind, Record, Scanned};
use super::segment::{list_segments, read_segment, zero_range};
use super::state::{Applied, Replay};

/// How many bytes the search for an intact record inside a torn one may hash before it
/// gives up and calls the damage corruption.
const TORN_SEARCH_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// One segment's bookkeeping: the largest entry index written in it that still counts
/// (0 once a later reset replaced the whole log). It may be deleted once that is purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub(crate) sequence: u64,
    pub(crate) max_index: Index,
}

/// What a scan of the engine's directory found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) replay: Replay,
    pub(crate) segments: Vec<SegmentInfo>,
    /// Where the records of the last segment end (0 without segments).
    pub(crate) tail_offset: u64,
}

/// Reads every segment of `dir`. `repair`: zero a torn tail on disk (at open), so the
/// next append starts on clean space.
pub(crate) fn scan(dir: &Path, repair: bool) -> Result<Scan, StorageError> {
    let sequences = list_segments(dir)?;
    if let Some(pair) = sequences.windows(2).find(|pair| pair[1] != pair[0] + 1) {
        return Err(StorageError::Corrupt(format!(
            "log segment {} follows segment {}: a segment is missing",
            pair[1], pair[0]
        )));
    }
    let mut found = Scan {
        replay: Replay::default(),
        segments: Vec::with_capacity(sequences.len()),
        tail_offset: 0,
    };
    for (position, &sequence) in sequences.iter().enumerate() {
        let is_last = position + 1 == sequences.len();
        let bytes = read_segment(dir, sequence)?;
        found.segments.push(SegmentInfo {
            sequence,
            max_index: 0,
        });
        let end = scan_segment(&bytes, sequence, is_last, &mut found)?;
        if end.torn_at.is_some() && repair {
            let dirty_end = bytes
                .iter()
                .rposition(|&byte| byte != 0)
                .map_or(0, |last| last + 1);
            zero_range(dir, sequence, end.records_end as u64, dirty_end as u64)?;
        }
        if is_last {
            found.tail_offset = end.records_end as u64;
        }
    }
    Ok(found)
}

/// Replays the bytes of one segment as the only (so the last) one, without I/O: the
/// state its records build and where they end (a torn tail cut off). The fuzz target
/// `log_engine_records` runs the recovery's own code through this.
pub(crate) fn replay_segment_bytes(bytes: &[u8]) -> Result<(super::LogState, usize), StorageError> {
    let mut found = Scan {
        replay: Replay::default(),
        segments: vec![SegmentInfo {
            sequence: 1,
            max_index: 0,
        }],
        tail_offset: 0,
    };
    let end = scan_segment(bytes, 1, true, &mut found)?;
    Ok((found.replay.state, end.records_end))
}

/// Where a segment's records end, and whether a torn write was cut off there.
struct SegmentEnd {
    records_end: usize,
    torn_at: Option<usize>,
}

fn scan_segment(
    bytes: &[u8],
    sequence: u64,
    is_last: bool,
    found: &mut Scan,
) -> Result<SegmentEnd, StorageError> {
    let corrupt = |why: String| {
        StorageError::Corrupt(format!(
            "log segment {sequence}: {why}; the data dir cannot be trusted (a torn write at the \
             end of the last segment is cut off; damage anywhere else is refused, since it could \
             hide acknowledged entries)"
        ))
    };
    let mut offset = 0usize;
    let mut group: Vec<Record<'_>> = Vec::new();
    let mut group_start = 0usize;
    let torn = |why: String, group_start: usize| {
        tracing::warn!(
            segment = sequence,
            offset = group_start,
            "cutting off a torn write at the end of the raft log: {why}"
        );
        SegmentEnd {
            records_end: group_start,
            torn_at: Some(group_start),
        }
    };
    loop {
        match scan_at(bytes, offset) {
            Scanned::Record(record) => {
                offset = record.end;
                let complete = !record.group_continues;
                group.push(record);
                if complete {
                    apply_group(&group, group_start == 0, found).map_err(|error| match error {
                        StorageError::Corrupt(why) => corrupt(why),
                        other => other,
                    })?;
                    group.clear();
                    group_start = offset;
                }
            }
            Scanned::End => {
                if !group.is_empty() {
                    if !is_last {
                        return Err(corrupt(format!("the group at {group_start} has no last record")));
                    }
                    return Ok(torn("a group without its last record".into(), group_start));
                }
                if group_start == 0 && !is_last {
                    return Err(corrupt("it holds no records".into()));
                }
                return Ok(SegmentEnd {
                    records_end: offset,
                    torn_at: None,
                });
            }
            Scanned::Bad { why, extent_end } => {
                let zeros_after = bytes[extent_end..].iter().all(|&byte| byte == 0);
                if is_last
                    && zeros_after
                    && !intact_record_within(bytes, offset + 1, extent_end, TORN_SEARCH_BUDGET_BYTES)
                {
                    return Ok(torn(why, group_start));
                }
                return Err(corrupt(format!("{why}, and bytes follow it")));
            }
        }
    }
}

/// Applies one complete group. The first of a segment must start with its checkpoint.
fn apply_group(group: &[Record<'_>], first_of_segment: bool, found: &mut Scan) -> Result<(), StorageError> {
    if first_of_segment && group.first().map(|record| record.kind) != Some(Kind::Checkpoint) {
        return Err(StorageError::Corrupt(
            "it does not start with a checkpoint".into(),
        ));
    }
    for record in group {
        match found.replay.apply(record)? {
            Applied::Entries { last } => {
                if let Some(current) = found.segments.last_mut() {
                    current.max_index = current.max_index.max(last);
                }
            }
            Applied::Reset => {
                for segment in &mut found.segments {
                    segment.max_index = 0;
                }
            }
            Applied::Other => {}
        }
    }
    Ok(())
}
