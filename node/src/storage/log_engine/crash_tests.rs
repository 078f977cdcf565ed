//! A crash at every byte: a run of writes (appends, suffix truncations, hard states, a
//! reset, rotations across several small segments) is cut at every offset of what it
//! wrote, zeros after as preallocation leaves them, and recovered. The result must be
//! the state after some prefix of the writes, including at least every write whose
//! bytes all lie before the cut; and appending after it must work. Damage that is not a
//! torn tail must be `Corrupt`.

use std::fs;
use std::path::{Path, PathBuf};

use raft::{Entry, HardState, Index, Term};
use tempfile::TempDir;

use super::segment::segment_path;
use super::tests::{entries, entry, hard_state};
use super::{LogEngine, LogEngineOptions, LogState};
use crate::storage::StorageError;

const OPTIONS: LogEngineOptions = LogEngineOptions { segment_bytes: 700 };

#[derive(Debug, Clone)]
enum Write {
    Append(Vec<Entry>, Option<HardState>),
    Reset(Index, Term, Vec<Entry>, Option<HardState>),
}

fn script() -> Vec<Write> {
    let mut writes = vec![
        Write::Append(entries(1..=3, 1), Some(hard_state(1, 0))),
        Write::Append(entries(4..=5, 1), None),
        Write::Append(vec![], Some(hard_state(1, 3))),
        Write::Append(entries(3..=4, 2), Some(hard_state(2, 3))),
        Write::Append(entries(5..=8, 2), None),
        Write::Reset(10, 3, entries(11..=12, 3), Some(hard_state(3, 10))),
        Write::Append(entries(13..=15, 3), Some(hard_state(3, 12))),
        Write::Append(entries(14..=14, 4), Some(hard_state(4, 13))),
    ];
    for index in 15..=34 {
        writes.push(Write::Append(
            vec![entry(index, 4)],
            Some(hard_state(4, index - 1)),
        ));
    }
    writes.push(Write::Append(entries(30..=31, 5), Some(hard_state(5, 29))));
    writes
}

/// What the writes mean, as a model: the state after each prefix.
fn model_states(writes: &[Write]) -> Vec<LogState> {
    let mut state = LogState::default();
    let mut states = vec![state.clone()];
    for write in writes {
        match write {
            Write::Append(new, hard) => {
                if let Some(first) = new.first() {
                    state.entries.truncate((first.index - state.floor - 1) as usize);
                    state.entries.extend(new.iter().cloned());
                }
                if hard.is_some() {
                    state.hard_state = *hard;
                }
            }
            Write::Reset(floor, _, new, hard) => {
                state.floor = *floor;
                state.entries = new.clone();
                if hard.is_some() {
                    state.hard_state = *hard;
                }
            }
        }
        states.push(state.clone());
    }
    states
}

fn perform(engine: &mut LogEngine, write: &Write) {
    match write {
        Write::Append(new, hard) => engine.append(new, *hard).expect("append"),
        Write::Reset(floor, term, new, hard) => engine.reset(*floor, *term, new, *hard).expect("reset"),
    }
}

/// A directory on tmpfs when there is one: every recovery below syncs.
fn scratch_dir() -> TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    TempDir::new().expect("temp dir")
}

/// The run's files, and where each write ended: (segment sequence, offset).
struct Run {
    segments: Vec<(u64, Vec<u8>)>,
    ends: Vec<(u64, u64)>,
    states: Vec<LogState>,
}

fn run_script() -> Run {
    let dir = scratch_dir();
    let writes = script();
    let mut engine = LogEngine::open(dir.path(), OPTIONS).expect("open");
    let mut ends = Vec::new();
    for write in &writes {
        perform(&mut engine, write);
        let sequence = *engine.segment_sequences().last().expect("a segment");
        let offset = engine.active.as_ref().expect("active").write_offset;
        ends.push((sequence, offset));
    }
    let sequences = engine.segment_sequences();
    drop(engine);
    let segments = sequences
        .iter()
        .map(|&sequence| {
            (
                sequence,
                fs::read(segment_path(dir.path(), sequence)).expect("read"),
            )
        })
        .collect();
    Run {
        segments,
        ends,
        states: model_states(&writes),
    }
}

fn write_files(dir: &Path, files: &[(u64, Vec<u8>)]) {
    for item in fs::read_dir(dir).expect("list") {
        fs::remove_file(item.expect("item").path()).expect("remove");
    }
    for (sequence, bytes) in files {
        fs::write(segment_path(dir, *sequence), bytes).expect("write");
    }
}

#[test]
fn a_crash_at_every_byte_recovers_a_prefix_of_the_writes() {
    let run = run_script();
    assert!(
        run.segments.len() >= 3,
        "the script spans {} segments",
        run.segments.len()
    );
    let scratch = scratch_dir();
    let dir: PathBuf = scratch.path().to_path_buf();
    let mut checked = 0usize;
    for (position, (sequence, bytes)) in run.segments.iter().enumerate() {
        let written_end = run
            .ends
            .iter()
            .filter(|(at, _)| at == sequence)
            .map(|(_, offset)| *offset)
            .max()
            .unwrap_or(0) as usize;
        for cut in 0..=written_end {
            let mut files: Vec<(u64, Vec<u8>)> = run.segments[..position].to_vec();
            let mut cut_bytes = bytes[..cut].to_vec();
            cut_bytes.resize(bytes.len(), 0);
            files.push((*sequence, cut_bytes));
            // A crash just after a rotation created the next segment, before writing it.
            let rotated = cut == written_end && position + 1 < run.segments.len();
            if rotated {
                files.push((
                    run.segments[position + 1].0,
                    vec![0; OPTIONS.segment_bytes as usize],
                ));
            }
            write_files(&dir, &files);
            let durable = run
                .ends
                .iter()
                .filter(|(at, offset)| *at < *sequence || (*at == *sequence && *offset as usize <= cut))
                .count();
            let mut engine = LogEngine::open(&dir, OPTIONS)
                .unwrap_or_else(|error| panic!("segment {sequence} cut at {cut}: {error}"));
            let state = engine.log_state().expect("state");
            let prefix = run
                .states
                .iter()
                .rposition(|candidate| *candidate == state)
                .unwrap_or_else(|| panic!("segment {sequence} cut at {cut}: {state:?} is no prefix's state"));
            assert!(
                prefix >= durable,
                "segment {sequence} cut at {cut}: the state of {prefix} writes, {durable} were durable"
            );
            // Appending goes on from the recovered state, and reads back after a reopen.
            if cut % 5 == 0 || rotated {
                let next = state.entries.last().map_or(state.floor, |entry| entry.index) + 1;
                engine
                    .append(&[entry(next, 9)], Some(hard_state(9, 0)))
                    .expect("append");
                drop(engine);
                let again = LogEngine::open(&dir, OPTIONS)
                    .expect("reopen")
                    .log_state()
                    .expect("state");
                assert_eq!(
                    again.entries.last(),
                    Some(&entry(next, 9)),
                    "segment {sequence} cut at {cut}"
                );
                assert_eq!(again.entries.len(), state.entries.len() + 1);
                assert_eq!(again.hard_state, Some(hard_state(9, 0)));
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked} cuts");
}

/// A bit flip in a record that other records follow is corruption, in any segment.
#[test]
fn a_bit_flip_before_the_tail_is_corrupt() {
    let run = run_script();
    let scratch = scratch_dir();
    let last = run.segments.len() - 1;
    for position in [0, last] {
        let (sequence, bytes) = &run.segments[position];
        // The first write after the segment's checkpoint: records follow it.
        let target = run
            .ends
            .iter()
            .find(|(at, _)| at == sequence)
            .map(|(_, offset)| *offset as usize - 3)
            .expect("a write in the segment");
        for flip in [target, 20] {
            let mut files = run.segments.clone();
            let mut damaged = bytes.clone();
            damaged[flip] ^= 0x10;
            files[position] = (*sequence, damaged);
            write_files(scratch.path(), &files);
            let outcome = LogEngine::open(scratch.path(), OPTIONS);
            assert!(
                matches!(outcome, Err(StorageError::Corrupt(_))),
                "segment {sequence}, byte {flip}: {outcome:?}"
            );
        }
    }
}

/// Garbage after a torn record in the last segment is not a torn write.
#[test]
fn a_bad_tail_record_with_bytes_after_it_is_corrupt() {
    let run = run_script();
    let scratch = scratch_dir();
    let mut files = run.segments.clone();
    let last = files.len() - 1;
    let sequence = files[last].0;
    let end = run.ends.last().expect("writes").1 as usize;
    files[last].1[end - 2] ^= 0x01;
    files[last].1[end + 40] = 0x55;
    write_files(scratch.path(), &files);
    let outcome = LogEngine::open(scratch.path(), OPTIONS);
    assert!(
        matches!(outcome, Err(StorageError::Corrupt(_))),
        "{sequence}: {outcome:?}"
    );
    // Without the stray byte it is a torn write, cut off.
    files[last].1[end + 40] = 0;
    write_files(scratch.path(), &files);
    let state = LogEngine::open(scratch.path(), OPTIONS)
        .expect("open")
        .log_state()
        .expect("state");
    assert_eq!(state, run.states[run.states.len() - 2]);
}
