//! Backup images pinned on this node while `raftkv snapshot save` reads them (issue 13).
//!
//! The driver pins a view of the state machine at its applied index
//! (`Storage::image_source`, the same view periodic snapshots are built from) and hands
//! it here; a thread of its own streams it to `<data dir>/backup-images/<id>.building`,
//! reads it back through the image reader (so a save never ships an image the node could
//! not verify), and renames it `<id>.image`. The client port then serves chunks of it by
//! offset, off the driver loop. The images live apart from the snapshots' folder, so a
//! compaction never deletes one mid-save, and a backup never becomes a Raft snapshot.
//!
//! Bounds: at most `SAVES_MAX` saves at once; a save not touched for `SAVE_IDLE_TIMEOUT`
//! (a client gone) is dropped with its file; leftovers of a crash are removed at start.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use raft::{Index, Term};
use tracing::{info, warn};
use wire::{BackupChunk, BackupInfo, SNAPSHOT_CHUNK_BYTES_MAX};

use crate::membership::is_system_key;
use crate::storage::image_stream::{ImageItem, ImageReader, IMAGE_PIECE_BYTES};
use crate::storage::{ImageSource, StorageError};

/// Saves in progress at once: each pins a view (fjall keeps the versions it sees) and a
/// file as large as the data.
pub const SAVES_MAX: usize = 2;
/// A save whose client asked nothing for this long is dropped.
pub const SAVE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const FOLDER: &str = "backup-images";

/// Why a backup request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupError {
    /// `SAVES_MAX` saves are in progress.
    Busy,
    /// No such save: never begun here, released, timed out, or the node restarted.
    Unknown { id: u64 },
    /// The image is still being written.
    Building { id: u64 },
    /// Building or reading the image failed.
    Failed(String),
}

impl std::fmt::Display for BackupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy => write!(
                f,
                "{SAVES_MAX} backups are already being saved from this node; retry later"
            ),
            Self::Unknown { id } => write!(
                f,
                "no backup {id:016x} on this node (released, idle for over {}s, or the node restarted): \
                 start the save again",
                SAVE_IDLE_TIMEOUT.as_secs()
            ),
            Self::Building { id } => write!(f, "backup {id:016x} is still being built"),
            Self::Failed(why) => write!(f, "the backup failed: {why}"),
        }
    }
}

impl std::error::Error for BackupError {}

#[derive(Debug)]
enum SaveState {
    Building,
    /// Released or timed out while its image was being built: it keeps its place (and
    /// counts against `SAVES_MAX`) until its build notices and stops, so that a client
    /// that begins and releases in a loop cannot start builds without bound.
    Cancelled,
    Ready(BackupInfo),
    Failed(String),
}

#[derive(Debug)]
struct Save {
    state: SaveState,
    last_used: Instant,
}

/// The backups this node holds for clients, by id.
#[derive(Debug)]
pub struct BackupImages {
    dir: PathBuf,
    saves: Mutex<BTreeMap<u64, Save>>,
}

/// What a save's image is of, known when it is begun.
#[derive(Debug, Clone, Copy)]
pub struct BackupPoint {
    pub index: Index,
    pub term: Term,
    pub cluster_id: u64,
}

impl BackupImages {
    /// The backups folder of `data_dir`, emptied: no save survives a restart (its
    /// client's next chunk gets `Unknown` and starts again).
    pub fn open(data_dir: &Path) -> Result<Arc<Self>, StorageError> {
        let dir = data_dir.join(FOLDER);
        let io = |doing: &str, error: std::io::Error| {
            StorageError::Io(format!("{doing} {}: {error}", dir.display()))
        };
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|error| io("removing", error))?;
        }
        fs::create_dir_all(&dir).map_err(|error| io("creating", error))?;
        Ok(Arc::new(Self {
            dir,
            saves: Mutex::new(BTreeMap::new()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Save>> {
        self.saves.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, id: u64, kind: &str) -> PathBuf {
        self.dir.join(format!("{id:016x}.{kind}"))
    }

    /// Starts building the image of `source` (the state machine at `point`) on a thread
    /// of its own; returns the save's id at once.
    pub fn begin(
        self: &Arc<Self>,
        point: BackupPoint,
        source: Box<dyn ImageSource>,
    ) -> Result<u64, BackupError> {
        let id = {
            let mut saves = self.lock();
            self.reap_locked(&mut saves);
            if saves.len() >= SAVES_MAX {
                return Err(BackupError::Busy);
            }
            // From the clock, so that a client resuming against a restarted node never
            // reads another save's image under its id (the clock has moved on since).
            let id = unique_id(&saves);
            saves.insert(
                id,
                Save {
                    state: SaveState::Building,
                    last_used: Instant::now(),
                },
            );
            id
        };
        info!(
            id = format_args!("{id:016x}"),
            index = point.index,
            "building a backup image"
        );
        let images = self.clone();
        let work = move || images.build(id, point, source);
        #[cfg(madsim)]
        work();
        #[cfg(not(madsim))]
        if let Err(error) = std::thread::Builder::new()
            .name("raftkv-backup".into())
            .spawn(work)
        {
            self.lock().remove(&id);
            return Err(BackupError::Failed(format!("cannot start a thread: {error}")));
        }
        Ok(id)
    }

    fn build(&self, id: u64, point: BackupPoint, source: Box<dyn ImageSource>) {
        let result = self.write_image(id, point, source);
        let mut saves = self.lock();
        let cancelled = saves
            .get(&id)
            .is_none_or(|save| matches!(save.state, SaveState::Cancelled));
        if cancelled {
            // Released or timed out while it was being built: its place is free now.
            saves.remove(&id);
            drop(saves);
            self.remove_files(id);
            return;
        }
        let Some(save) = saves.get_mut(&id) else {
            return;
        };
        save.state = match result {
            Ok(info) => {
                info!(
                    id = format_args!("{id:016x}"),
                    index = info.index,
                    image_bytes = info.image_bytes,
                    pairs = info.pairs,
                    "backup image ready"
                );
                SaveState::Ready(info)
            }
            Err(error) => {
                warn!(id = format_args!("{id:016x}"), %error, "building a backup image failed");
                self.remove_files(id);
                SaveState::Failed(error.to_string())
            }
        };
    }

    /// Writes the image, reads it back whole through the image reader, and seals it.
    /// No sync: the file is scratch, deleted at the next start anyway.
    fn write_image(
        &self,
        id: u64,
        point: BackupPoint,
        source: Box<dyn ImageSource>,
    ) -> Result<BackupInfo, StorageError> {
        let building = self.path(id, "building");
        let failed = |doing: &str, error: std::io::Error| {
            StorageError::Io(format!("{doing} {}: {error}", building.display()))
        };
        let file = File::create(&building).map_err(|error| failed("creating", error))?;
        let mut out = std::io::BufWriter::with_capacity(IMAGE_PIECE_BYTES, file);
        let image_bytes = source.write_to(&mut |piece| {
            // A save released meanwhile stops here rather than write a whole image.
            if self.is_cancelled(id) {
                return Err(StorageError::Io(format!(
                    "backup {id:016x} was released while being built"
                )));
            }
            out.write_all(piece).map_err(|error| failed("writing", error))
        })?;
        out.flush().map_err(|error| failed("writing", error))?;
        drop(out);
        let mut reader = ImageReader::new();
        let mut system_pairs = 0;
        let mut file = File::open(&building).map_err(|error| failed("opening", error))?;
        let mut buffer = vec![0; IMAGE_PIECE_BYTES];
        loop {
            let read =
                std::io::Read::read(&mut file, &mut buffer).map_err(|error| failed("reading", error))?;
            if read == 0 {
                break;
            }
            reader.feed(&buffer[..read], |item| {
                if matches!(&item, ImageItem::Pair(key, _) if is_system_key(key)) {
                    system_pairs += 1;
                }
                Ok(())
            })?;
        }
        let summary = reader.finish()?;
        fs::rename(&building, self.path(id, "image")).map_err(|error| failed("renaming", error))?;
        Ok(BackupInfo {
            index: point.index,
            term: point.term,
            cluster_id: point.cluster_id,
            image_bytes,
            pairs: summary.pairs - system_pairs,
            sessions: summary.sessions,
            checksum: summary.checksum,
        })
    }

    /// Up to `SNAPSHOT_CHUNK_BYTES_MAX` bytes of save `id`'s image from `offset` (empty
    /// at or past its end). Keeps the save alive.
    pub fn chunk(&self, id: u64, offset: u64) -> Result<BackupChunk, BackupError> {
        let info = {
            let mut saves = self.lock();
            self.reap_locked(&mut saves);
            let save = saves.get_mut(&id).ok_or(BackupError::Unknown { id })?;
            save.last_used = Instant::now();
            match &save.state {
                SaveState::Building => return Err(BackupError::Building { id }),
                SaveState::Cancelled => return Err(BackupError::Unknown { id }),
                SaveState::Failed(why) => return Err(BackupError::Failed(why.clone())),
                SaveState::Ready(info) => *info,
            }
        };
        // Read outside the lock: other saves' chunks go on meanwhile.
        let length = info
            .image_bytes
            .saturating_sub(offset)
            .min(SNAPSHOT_CHUNK_BYTES_MAX as u64) as usize;
        let mut data = vec![0; length];
        let path = self.path(id, "image");
        let read = File::open(&path).and_then(|file| file.read_exact_at(&mut data, offset));
        match read {
            Ok(()) => Ok(BackupChunk { info, offset, data }),
            // Released or timed out between the lookup and the read.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(BackupError::Unknown { id }),
            Err(error) => Err(BackupError::Failed(format!(
                "reading {}: {error}",
                path.display()
            ))),
        }
    }

    /// Ends save `id`: its image is deleted (a build under way stops and deletes it).
    pub fn release(&self, id: u64) {
        let mut saves = self.lock();
        self.end_locked(&mut saves, id);
    }

    /// Removes save `id`, or marks it cancelled if its build is under way.
    fn end_locked(&self, saves: &mut BTreeMap<u64, Save>, id: u64) {
        match saves.get_mut(&id) {
            Some(save) if matches!(save.state, SaveState::Building | SaveState::Cancelled) => {
                save.state = SaveState::Cancelled;
            }
            Some(_) => {
                saves.remove(&id);
                self.remove_files(id);
            }
            None => {}
        }
    }

    fn is_cancelled(&self, id: u64) -> bool {
        self.lock()
            .get(&id)
            .is_none_or(|save| matches!(save.state, SaveState::Cancelled))
    }

    /// Drops the saves idle for over `SAVE_IDLE_TIMEOUT` (run now and then by the server,
    /// and on every request).
    pub fn reap(&self) {
        let mut saves = self.lock();
        self.reap_locked(&mut saves);
    }

    fn reap_locked(&self, saves: &mut BTreeMap<u64, Save>) {
        let expired: Vec<u64> = saves
            .iter()
            .filter(|(_, save)| {
                save.last_used.elapsed() > SAVE_IDLE_TIMEOUT && !matches!(save.state, SaveState::Cancelled)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            info!(id = format_args!("{id:016x}"), "dropped an idle backup");
            self.end_locked(saves, id);
        }
    }

    /// Saves in progress (tests, metrics).
    pub fn saves(&self) -> usize {
        self.lock().len()
    }

    fn remove_files(&self, id: u64) {
        for kind in ["building", "image"] {
            let path = self.path(id, kind);
            match fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    warn!(path = %path.display(), %error, "cannot remove a backup image");
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// A save id not in `saves`: the wall clock's nanoseconds (a restarted node's clock has
/// moved past every id it handed out before), bumped past any id in use.
fn unique_id<T>(saves: &BTreeMap<u64, T>) -> u64 {
    let mut id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| since.as_nanos() as u64);
    while saves.contains_key(&id) {
        id = id.wrapping_add(1);
    }
    id
}
