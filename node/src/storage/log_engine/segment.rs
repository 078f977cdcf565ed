//! One segment file of the log engine: `<dir>/<sequence, 16 digits>.seg`, preallocated,
//! written only by appending at the end of its records, each write followed by one
//! `fdatasync`.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::super::StorageError;

const SUFFIX: &str = ".seg";
const SEQUENCE_DIGITS: usize = 16;

/// Maps an I/O failure onto `StorageError::Io` with what was being done, and where.
pub(crate) fn io<T>(result: std::io::Result<T>, doing: &str, path: &Path) -> Result<T, StorageError> {
    result.map_err(|error| StorageError::Io(format!("{doing} {}: {error}", path.display())))
}

pub(crate) fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:0width$}{SUFFIX}", width = SEQUENCE_DIGITS))
}

/// The sequence numbers of the segments in `dir`, in order. Other files are left alone.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut sequences = Vec::new();
    for item in io(fs::read_dir(dir), "listing", dir)? {
        let item = io(item, "listing", dir)?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if digits.len() != SEQUENCE_DIGITS || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        if let Ok(sequence) = digits.parse::<u64>() {
            sequences.push(sequence);
        }
    }
    sequences.sort_unstable();
    Ok(sequences)
}

/// Makes the creation, rename or removal of a file in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let handle = io(File::open(dir), "opening", dir)?;
    io(handle.sync_all(), "syncing the directory", dir)
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct Segment {
    path: PathBuf,
    file: File,
    /// Where the next record goes (the end of the records).
    pub(crate) write_offset: u64,
    /// The file's length (preallocated): a write that goes past it grows the file.
    pub(crate) capacity_bytes: u64,
}

impl Segment {
    /// Creates segment `sequence` in `dir`, `bytes` long and allocated, then syncs the
    /// file and the directory, so that later `fdatasync`s need not change its size.
    pub(crate) fn create(dir: &Path, sequence: u64, bytes: u64) -> Result<Self, StorageError> {
        let path = segment_path(dir, sequence);
        let file = io(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path),
            "creating",
            &path,
        )?;
        // A real allocation (blocks reserved, no bytes written): a filesystem without
        // `fallocate` gets a sparse file instead, whose later syncs also update metadata.
        if rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes).is_err() {
            io(file.set_len(bytes), "sizing", &path)?;
        }
        io(file.sync_all(), "syncing", &path)?;
        sync_dir(dir)?;
        Ok(Self {
            path,
            file,
            write_offset: 0,
            capacity_bytes: bytes,
        })
    }

    /// Opens an existing segment to append at `write_offset` (recovery found its records
    /// end there).
    pub(crate) fn open(dir: &Path, sequence: u64, write_offset: u64) -> Result<Self, StorageError> {
        let path = segment_path(dir, sequence);
        let file = io(
            OpenOptions::new().read(true).write(true).open(&path),
            "opening",
            &path,
        )?;
        let capacity_bytes = io(file.metadata(), "reading the length of", &path)?.len();
        Ok(Self {
            path,
            file,
            write_offset,
            capacity_bytes,
        })
    }

    /// Writes `bytes` at the end of the records with one `write` and one `fdatasync`.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        io(
            self.file.write_all_at(bytes, self.write_offset),
            "writing to",
            &self.path,
        )?;
        io(self.file.sync_data(), "syncing", &self.path)?;
        self.write_offset += bytes.len() as u64;
        self.capacity_bytes = self.capacity_bytes.max(self.write_offset);
        Ok(())
    }

    pub(crate) fn remaining_bytes(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.write_offset)
    }
}

/// Reads a whole segment.
pub(crate) fn read_segment(dir: &Path, sequence: u64) -> Result<Vec<u8>, StorageError> {
    let path = segment_path(dir, sequence);
    io(fs::read(&path), "reading", &path)
}

/// Overwrites `from..to` of segment `sequence` with zeros and syncs it: what a torn write
/// left there is gone, and the next append starts on clean space.
pub(crate) fn zero_range(dir: &Path, sequence: u64, from: u64, to: u64) -> Result<(), StorageError> {
    let path = segment_path(dir, sequence);
    let file = io(OpenOptions::new().write(true).open(&path), "opening", &path)?;
    let zeros = vec![0u8; usize::try_from(to.saturating_sub(from)).unwrap_or(0)];
    io(file.write_all_at(&zeros, from), "zeroing the torn tail of", &path)?;
    io(file.sync_data(), "syncing", &path)
}

pub(crate) fn remove_segment(dir: &Path, sequence: u64) -> Result<(), StorageError> {
    let path = segment_path(dir, sequence);
    io(fs::remove_file(&path), "removing", &path)
}
