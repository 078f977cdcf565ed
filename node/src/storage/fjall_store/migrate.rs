//! Upgrading a data dir of raftkv before issue 14, whose Raft log is in fjall's `log`
//! keyspace and whose hard state is the `hard_state` meta key, to the log engine.
//!
//! The copy is built in `raft-log.migrating`, synced, and renamed `raft-log` (the data dir
//! synced); only then are the old keys removed, in one synced batch. A crash before the
//! rename leaves the old keys and a partial copy, which the next open removes and builds
//! again; a crash after it leaves the old keys and a whole copy, which the next open also
//! builds again (nothing was written to the engine since: the open never finished).

use std::fs;
use std::path::Path;

use fjall::{Database, Keyspace, PersistMode, Readable};
use raft::{Entry, HardState, Index};

use super::super::fjall_codec::{decode, decode_index_key, OrIo};
use super::super::log_engine::{LogEngine, LogEngineOptions, LOG_ENGINE_FOLDER};
use super::super::StorageError;
use super::{read, HARD_STATE};

const MIGRATING_FOLDER: &str = "raft-log.migrating";
/// Entries are copied in engine groups of about this many bytes.
const MIGRATION_BATCH_BYTES: usize = 16 * 1024 * 1024;

fn io<T>(result: std::io::Result<T>, doing: &str, path: &Path) -> Result<T, StorageError> {
    result.map_err(|error| StorageError::Io(format!("{doing} {}: {error}", path.display())))
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    io(
        fs::File::open(dir).and_then(|handle| handle.sync_all()),
        "syncing",
        dir,
    )
}

/// Moves an old layout's log and hard state into the log engine of `data_dir`, if there
/// are any; returns whether it did.
pub(super) fn migrate_fjall_log(
    db: &Database,
    log: &Keyspace,
    meta: &Keyspace,
    data_dir: &Path,
    options: LogEngineOptions,
) -> Result<bool, StorageError> {
    let building = data_dir.join(MIGRATING_FOLDER);
    if io(building.try_exists(), "looking for", &building)? {
        io(fs::remove_dir_all(&building), "removing", &building)?;
    }
    let view = db.snapshot();
    let hard_state: Option<HardState> = read(&view, meta, HARD_STATE)?;
    if hard_state.is_none() && view.first_key_value(log).is_none() {
        return Ok(false);
    }
    tracing::warn!(path = %data_dir.display(), "moving the raft log from fjall into the log engine");
    let mut engine = LogEngine::open(&building, options)?;
    let mut batch: Vec<Entry> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut started = false;
    let mut expected: Option<Index> = None;
    let mut removed_keys = Vec::new();
    let flush = |engine: &mut LogEngine, batch: &mut Vec<Entry>, started: &mut bool| {
        let Some(first) = batch.first().map(|entry| entry.index) else {
            return Ok(());
        };
        if *started {
            engine.append(batch, None)?;
        } else {
            // The old log may start after a purge: the engine's log starts there too.
            engine.reset(first - 1, 0, batch, None)?;
            *started = true;
        }
        batch.clear();
        Ok::<(), StorageError>(())
    };
    for guard in view.iter(log) {
        let (key, value) = guard.into_inner().or_io("reading the old log")?;
        let index = decode_index_key("log", &key)?;
        let entry: Entry = decode("log entry", &value)?;
        if entry.index != index || expected.is_some_and(|expected| index != expected) || index == 0 {
            return Err(StorageError::Corrupt(format!(
                "old log entry {} stored at index {index} where {expected:?} was expected",
                entry.index
            )));
        }
        expected = Some(index + 1);
        removed_keys.push(key);
        batch_bytes += value.len();
        batch.push(entry);
        if batch_bytes >= MIGRATION_BATCH_BYTES {
            flush(&mut engine, &mut batch, &mut started)?;
            batch_bytes = 0;
        }
    }
    flush(&mut engine, &mut batch, &mut started)?;
    if hard_state.is_some() {
        engine.append(&[], hard_state)?;
    }
    drop(engine);
    let target = data_dir.join(LOG_ENGINE_FOLDER);
    if io(target.try_exists(), "looking for", &target)? {
        io(fs::remove_dir_all(&target), "removing", &target)?;
    }
    io(fs::rename(&building, &target), "renaming", &building)?;
    sync_dir(data_dir)?;
    // One batch: a partial removal would leave a partial old log to migrate again.
    let mut remove = db.batch().durability(Some(PersistMode::SyncData));
    for key in removed_keys {
        remove.remove(log, key);
    }
    remove.remove(meta, HARD_STATE);
    remove.commit().or_io("removing the migrated log from fjall")?;
    Ok(true)
}
