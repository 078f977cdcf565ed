//! The log engine on real files: replay after reopen, suffix truncation, resets,
//! rotation, purges that delete whole segments, and damage that must be refused.

use std::sync::Arc;

use raft::{Entry, EntryPayload, HardState, Index, Term};
use tempfile::TempDir;

use super::segment::segment_path;
use super::{LogEngine, LogEngineOptions, LogState};
use crate::storage::StorageError;

pub(super) fn entry(index: Index, term: Term) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Normal(Arc::from(format!("entry {index} of term {term}").as_bytes())),
    }
}

pub(super) fn entries(indexes: std::ops::RangeInclusive<Index>, term: Term) -> Vec<Entry> {
    indexes.map(|index| entry(index, term)).collect()
}

pub(super) fn hard_state(term: Term, commit: Index) -> HardState {
    HardState {
        term,
        vote: Some(1),
        commit,
    }
}

fn small() -> LogEngineOptions {
    LogEngineOptions { segment_bytes: 1024 }
}

fn open(dir: &TempDir, options: LogEngineOptions) -> LogEngine {
    LogEngine::open(dir.path(), options).expect("open")
}

fn indexes(state: &LogState) -> Vec<(Index, Term)> {
    state
        .entries
        .iter()
        .map(|entry| (entry.index, entry.term))
        .collect()
}

#[test]
fn appends_truncations_and_hard_states_survive_a_reopen() {
    let dir = TempDir::new().expect("temp dir");
    let mut engine = open(&dir, LogEngineOptions::default());
    assert_eq!(engine.log_state().expect("state"), LogState::default());
    engine
        .append(&entries(1..=5, 1), Some(hard_state(1, 2)))
        .expect("append");
    engine
        .append(&entries(4..=6, 2), None)
        .expect("overwrite a suffix");
    engine
        .append(&[], Some(hard_state(2, 5)))
        .expect("hard state alone");
    for reopened in [false, true] {
        if reopened {
            drop(engine);
            engine = open(&dir, LogEngineOptions::default());
        }
        let state = engine.log_state().expect("state");
        assert_eq!(
            indexes(&state),
            [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)],
            "reopened: {reopened}"
        );
        assert_eq!(state.hard_state, Some(hard_state(2, 5)));
        assert_eq!(state.entries[3], entry(4, 2));
    }
    // One preallocated segment.
    let length = std::fs::metadata(segment_path(dir.path(), 1))
        .expect("segment")
        .len();
    assert_eq!(length, LogEngineOptions::default().segment_bytes);
}

#[test]
fn a_reset_replaces_the_whole_log() {
    let dir = TempDir::new().expect("temp dir");
    let mut engine = open(&dir, small());
    engine
        .append(&entries(1..=5, 1), Some(hard_state(1, 5)))
        .expect("append");
    engine
        .reset(20, 3, &entries(21..=22, 3), Some(hard_state(3, 20)))
        .expect("reset");
    drop(engine);
    let engine = open(&dir, small());
    let state = engine.log_state().expect("state");
    assert_eq!((state.floor, indexes(&state)), (20, vec![(21, 3), (22, 3)]));
    assert_eq!(state.hard_state, Some(hard_state(3, 20)));
    assert_eq!(engine.reset_floor(), 20);
}

#[test]
fn rotation_spreads_segments_and_purge_deletes_whole_ones() {
    let dir = TempDir::new().expect("temp dir");
    let mut engine = open(&dir, small());
    for index in 1..=60 {
        engine
            .append(&[entry(index, 1)], Some(hard_state(1, index)))
            .expect("append");
    }
    let before = engine.segment_sequences();
    assert!(before.len() >= 4, "{before:?}");
    // Nothing purged: nothing deleted.
    assert_eq!(engine.purge(0).expect("purge"), 0);
    assert_eq!(
        engine.purge(30).expect("purge"),
        before.len() - engine.segment_sequences().len()
    );
    let after = engine.segment_sequences();
    assert!(
        after.len() < before.len() && after.len() > 1,
        "{before:?} -> {after:?}"
    );
    assert!(!segment_path(dir.path(), before[0]).exists());
    assert!(segment_path(dir.path(), after[0]).exists());
    drop(engine);
    let mut engine = open(&dir, small());
    let state = engine.log_state().expect("state");
    // The log goes on from wherever the first kept segment starts, at or below 31.
    assert!(state.floor <= 30, "floor {}", state.floor);
    assert_eq!(state.entries.last().map(|entry| entry.index), Some(60));
    assert_eq!(
        state.entries.first().map(|entry| entry.index),
        Some(state.floor + 1)
    );
    assert_eq!(state.hard_state, Some(hard_state(1, 60)));
    // Everything purged: only the active segment is left, and appends go on.
    engine.purge(60).expect("purge");
    assert_eq!(engine.segment_sequences().len(), 1);
    engine.append(&[entry(61, 1)], None).expect("append");
    drop(engine);
    let engine = open(&dir, small());
    let state = engine.log_state().expect("state");
    assert_eq!(state.entries.last().map(|entry| entry.index), Some(61));
    assert!(state.floor < 61 && state.floor >= 30);
}

#[test]
fn a_reset_makes_older_segments_deletable() {
    let dir = TempDir::new().expect("temp dir");
    let mut engine = open(&dir, small());
    for index in 1..=40 {
        engine
            .append(&[entry(index, 1)], Some(hard_state(1, index)))
            .expect("append");
    }
    engine
        .reset(100, 2, &[], Some(hard_state(2, 100)))
        .expect("reset");
    engine.append(&entries(101..=102, 2), None).expect("append");
    let older = engine_segments_before_active(&engine);
    assert!(older > 0);
    assert_eq!(engine.purge(0).expect("purge"), older);
    drop(engine);
    let state = open(&dir, small()).log_state().expect("state");
    assert_eq!((state.floor, indexes(&state)), (100, vec![(101, 2), (102, 2)]));
}

fn engine_segments_before_active(engine: &LogEngine) -> usize {
    engine.segment_sequences().len().saturating_sub(1)
}

#[test]
fn a_gap_in_the_log_is_corrupt() {
    let dir = TempDir::new().expect("temp dir");
    let mut engine = open(&dir, small());
    engine
        .append(&entries(1..=3, 1), Some(hard_state(1, 0)))
        .expect("append");
    engine
        .append(&[entry(5, 1)], None)
        .expect("the engine writes what it is given");
    drop(engine);
    let outcome = LogEngine::open(dir.path(), small());
    assert!(matches!(outcome, Err(StorageError::Corrupt(_))), "{outcome:?}");
}

#[test]
fn a_missing_middle_segment_is_corrupt() {
    let dir = TempDir::new().expect("temp dir");
    let mut engine = open(&dir, small());
    for index in 1..=100 {
        engine.append(&[entry(index, 1)], None).expect("append");
    }
    let sequences = engine.segment_sequences();
    assert!(sequences.len() >= 3);
    drop(engine);
    std::fs::remove_file(segment_path(dir.path(), sequences[1])).expect("remove");
    let outcome = LogEngine::open(dir.path(), small());
    assert!(matches!(outcome, Err(StorageError::Corrupt(_))), "{outcome:?}");
}

#[test]
fn a_write_larger_than_a_segment_grows_its_own() {
    let dir = TempDir::new().expect("temp dir");
    let mut engine = open(&dir, small());
    engine.append(&entries(1..=2, 1), None).expect("append");
    engine
        .append(&entries(3..=200, 1), Some(hard_state(1, 1)))
        .expect("a large append");
    engine.append(&entries(201..=201, 1), None).expect("append");
    drop(engine);
    let state = open(&dir, small()).log_state().expect("state");
    assert_eq!(state.entries.len(), 201);
}
