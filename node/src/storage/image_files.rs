//! Snapshot images as plain files beside fjall's (issue 12): a stream of any size needs
//! no engine, and files keep the image's bytes out of fjall's journal, so building one
//! never adds to the driver's fsyncs. In `<data dir>/snapshot-images/`:
//!
//! | file               | what                                                        |
//! |--------------------|-------------------------------------------------------------|
//! | `<index>.image`    | a complete image, synced (the current snapshot's, or one built and not yet compacted to) |
//! | `<index>.building` | an image this node is building from its state machine       |
//! | `<index>.staged`   | an image arriving from the leader, chunk by chunk            |
//!
//! A file becomes `.image` only by a rename after its bytes are synced, and the
//! directory is synced after, so a `.image` file is always whole. fjall 3 reads only its
//! own `*.jnl` journal files and `keyspaces/` in the data dir and ignores this folder.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raft::Index;

use super::StorageError;

const FOLDER: &str = "snapshot-images";

#[derive(Debug, Clone)]
pub struct ImageFiles {
    dir: PathBuf,
}

/// Maps an I/O failure onto `StorageError::Io` with what was being done.
fn io<T>(result: std::io::Result<T>, doing: &str, path: &Path) -> Result<T, StorageError> {
    result.map_err(|error| StorageError::Io(format!("{doing} {}: {error}", path.display())))
}

impl ImageFiles {
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let dir = data_dir.join(FOLDER);
        io(fs::create_dir_all(&dir), "creating", &dir)?;
        Ok(Self { dir })
    }

    fn path(&self, index: Index, kind: &str) -> PathBuf {
        self.dir.join(format!("{index:020}.{kind}"))
    }

    /// Creates `<index>.building` afresh, for a writer on any thread.
    pub fn create_building(&self, index: Index) -> Result<File, StorageError> {
        let path = self.path(index, "building");
        io(File::create(&path), "creating", &path)
    }

    /// Syncs a built image and renames it complete.
    pub fn seal_building(&self, index: Index, file: File) -> Result<(), StorageError> {
        self.seal(index, file, "building")
    }

    /// Appends a chunk to `<index>.staged` (offset 0 starts it afresh), unsynced.
    pub fn stage(&self, index: Index, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let path = self.path(index, "staged");
        let mut file = if offset == 0 {
            io(File::create(&path), "creating", &path)?
        } else {
            let file = io(OpenOptions::new().append(true).open(&path), "opening", &path)?;
            let length = io(file.metadata(), "reading the length of", &path)?.len();
            if length != offset {
                return Err(StorageError::Corrupt(format!(
                    "a chunk at {offset} of {} which holds {length} bytes",
                    path.display()
                )));
            }
            file
        };
        io(file.write_all(data), "writing", &path)
    }

    /// Syncs a completely staged image and renames it complete; checks its length.
    pub fn seal_staged(&self, index: Index, total_bytes: u64) -> Result<(), StorageError> {
        let path = self.path(index, "staged");
        let file = io(File::open(&path), "opening", &path)?;
        let length = io(file.metadata(), "reading the length of", &path)?.len();
        if length != total_bytes {
            return Err(StorageError::Corrupt(format!(
                "{} holds {length} of the snapshot's {total_bytes} bytes",
                path.display()
            )));
        }
        self.seal(index, file, "staged")
    }

    fn seal(&self, index: Index, file: File, kind: &str) -> Result<(), StorageError> {
        let from = self.path(index, kind);
        io(file.sync_all(), "syncing", &from)?;
        drop(file);
        let to = self.path(index, "image");
        io(fs::rename(&from, &to), "renaming", &from)?;
        let dir = io(File::open(&self.dir), "opening", &self.dir)?;
        io(dir.sync_all(), "syncing", &self.dir)
    }

    /// The length of the complete image of `index`, if there is one.
    pub fn image_bytes(&self, index: Index) -> Result<Option<u64>, StorageError> {
        let path = self.path(index, "image");
        match fs::metadata(&path) {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => io(Err(error), "reading the length of", &path),
        }
    }

    /// Up to `length` bytes of the complete image of `index` from `offset`; `None` if
    /// there is no such image.
    pub fn read(&self, index: Index, offset: u64, length: usize) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path(index, "image");
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return io(Err(error), "opening", &path),
        };
        let total = io(file.metadata(), "reading the length of", &path)?.len();
        let available = total.saturating_sub(offset).min(length as u64) as usize;
        let mut bytes = vec![0; available];
        io(file.read_exact_at(&mut bytes, offset), "reading", &path)?;
        Ok(Some(bytes))
    }

    /// The complete image of `index`, to read from the start.
    pub fn open_image(&self, index: Index) -> Result<impl Read, StorageError> {
        let path = self.path(index, "image");
        io(File::open(&path), "opening", &path)
    }

    /// Removes every file but the complete images of `keep` (older images after a
    /// compaction or an install; leftovers of builds and transfers a crash cut short).
    pub fn remove_all_but(&self, keep: &[Index]) -> Result<(), StorageError> {
        let kept: Vec<PathBuf> = keep.iter().map(|index| self.path(*index, "image")).collect();
        for entry in io(fs::read_dir(&self.dir), "listing", &self.dir)? {
            let path = io(entry, "listing", &self.dir)?.path();
            if !kept.contains(&path) {
                io(fs::remove_file(&path), "removing", &path)?;
            }
        }
        Ok(())
    }

    /// `remove_before` on a thread of its own: unlinking an image of a GiB takes long
    /// enough to delay the driver's heartbeats. A failure is only logged (the files are
    /// removed again at the next compaction or start).
    pub fn remove_before_in_background(&self, index: Index) {
        let files = self.clone();
        let work = move || {
            if let Err(error) = files.remove_before(index) {
                tracing::warn!(%error, "cannot remove old snapshot images");
            }
        };
        let spawned = std::thread::Builder::new()
            .name("raftkv-image-gc".into())
            .spawn(work);
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a thread to remove old snapshot images");
        }
    }

    /// Removes the images of snapshots before `index` and what was left of builds
    /// before it; staged images after it stay (one may be arriving).
    pub fn remove_before(&self, index: Index) -> Result<(), StorageError> {
        for entry in io(fs::read_dir(&self.dir), "listing", &self.dir)? {
            let path = io(entry, "listing", &self.dir)?.path();
            let file_index = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| stem.parse::<Index>().ok());
            // A file this store did not name is not touched.
            if file_index.is_some_and(|file_index| file_index < index) {
                match fs::remove_file(&path) {
                    // Another removal got there first.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    other => io(other, "removing", &path)?,
                }
            }
        }
        Ok(())
    }
}
