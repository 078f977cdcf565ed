//! An emergency reserve of disk space in the data dir (as CockroachDB's ballast file).
//!
//! The quota and the leader's disk guard keep a disk from filling in the normal course, but
//! something outside raftkv can still fill it, and a node whose disk is full cannot even
//! start (fjall writes its journal before anything else). So the data dir holds a file of
//! `--disk-ballast-bytes` reserved with `fallocate` (blocks taken, none written). A node
//! that starts with less free than that removes the file first, which gives it room to
//! recover, serve reads and take the deletes that make room; the leader's disk guard
//! refuses writes meanwhile. Once the disk has plenty of room again (four times the
//! ballast) a start reserves it anew.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// The ballast's name inside the data dir.
pub const BALLAST_FILE: &str = "space-ballast";

/// A ballast is reserved again only with this many times its size free, so a start just
/// after an operator freed a little room does not take it back.
const RESERVE_AGAIN_FACTOR: u64 = 4;

/// What a start did with the ballast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BallastAction {
    /// None is wanted (`--disk-ballast-bytes 0`) and none is there.
    None,
    Kept,
    /// Reserved now.
    Created,
    /// Removed: the disk had `free_bytes` free, less than the ballast (or none is wanted).
    Removed {
        free_bytes: u64,
    },
    /// Not reserved: `free_bytes` is too little room to take more.
    Skipped {
        free_bytes: u64,
    },
}

/// Bytes free for an unprivileged writer on the filesystem of `path` (`f_bavail`, as
/// `df` reports it).
pub fn disk_free_bytes(path: &Path) -> io::Result<u64> {
    let stats = rustix::fs::statvfs(path)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Keeps, reserves or removes the ballast of `data_dir` (which exists) at start, before
/// the store opens. `free_bytes` reads the disk (`disk_free_bytes`, or a test's).
pub fn tend_ballast(
    data_dir: &Path,
    ballast_bytes: u64,
    free_bytes: impl Fn(&Path) -> io::Result<u64>,
) -> io::Result<BallastAction> {
    let path = data_dir.join(BALLAST_FILE);
    let exists = path.try_exists()?;
    let free_bytes = free_bytes(data_dir)?;
    match (exists, ballast_bytes) {
        (false, 0) => Ok(BallastAction::None),
        (true, _) if ballast_bytes == 0 || free_bytes < ballast_bytes => {
            fs::remove_file(&path)?;
            sync_dir(data_dir)?;
            Ok(BallastAction::Removed { free_bytes })
        }
        (true, _) => Ok(BallastAction::Kept),
        (false, _) if free_bytes < ballast_bytes.saturating_mul(RESERVE_AGAIN_FACTOR) => {
            Ok(BallastAction::Skipped { free_bytes })
        }
        (false, _) => {
            reserve(&path, ballast_bytes)?;
            sync_dir(data_dir)?;
            Ok(BallastAction::Created)
        }
    }
}

/// Reserves `bytes` for a new file at `path` without writing them. A filesystem that
/// cannot (no `fallocate`) gets no ballast: writing zeros instead would cost a start the
/// whole size in I/O.
fn reserve(path: &Path, bytes: u64) -> io::Result<()> {
    let building: PathBuf = path.with_extension("building");
    let file = File::create(&building)?;
    let reserved = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes)
        .map_err(io::Error::from)
        .and_then(|()| file.sync_all());
    if let Err(error) = reserved {
        drop(file);
        let _ = fs::remove_file(&building);
        return Err(error);
    }
    fs::rename(&building, path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    const BALLAST: u64 = 8 * 1024 * 1024;

    fn free(bytes: u64) -> impl Fn(&Path) -> io::Result<u64> {
        move |_| Ok(bytes)
    }

    #[test]
    fn a_ballast_is_reserved_with_room_and_removed_when_the_disk_is_short() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(BALLAST_FILE);
        // Little room: nothing taken.
        assert_eq!(
            tend_ballast(dir.path(), BALLAST, free(2 * BALLAST)).expect("tends"),
            BallastAction::Skipped {
                free_bytes: 2 * BALLAST
            }
        );
        assert!(!path.exists());
        // Room: reserved, its blocks allocated (not a sparse file).
        assert_eq!(
            tend_ballast(dir.path(), BALLAST, free(100 * BALLAST)).expect("tends"),
            BallastAction::Created
        );
        let metadata = fs::metadata(&path).expect("the ballast exists");
        assert_eq!(metadata.len(), BALLAST);
        assert!(metadata.blocks() * 512 >= BALLAST, "{} blocks", metadata.blocks());
        assert_eq!(
            tend_ballast(dir.path(), BALLAST, free(BALLAST)).expect("tends"),
            BallastAction::Kept
        );
        // The disk filled: the start frees the reserve.
        assert_eq!(
            tend_ballast(dir.path(), BALLAST, free(BALLAST - 1)).expect("tends"),
            BallastAction::Removed {
                free_bytes: BALLAST - 1
            }
        );
        assert!(!path.exists());
        // Room again, but not plenty: not taken back yet.
        assert!(matches!(
            tend_ballast(dir.path(), BALLAST, free(3 * BALLAST)).expect("tends"),
            BallastAction::Skipped { .. }
        ));
    }

    #[test]
    fn no_ballast_wanted_removes_one_left_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            tend_ballast(dir.path(), BALLAST, free(u64::MAX)).expect("tends"),
            BallastAction::Created
        );
        assert_eq!(
            tend_ballast(dir.path(), 0, free(u64::MAX)).expect("tends"),
            BallastAction::Removed { free_bytes: u64::MAX }
        );
        assert_eq!(
            tend_ballast(dir.path(), 0, free(u64::MAX)).expect("tends"),
            BallastAction::None
        );
    }

    #[test]
    fn the_free_bytes_of_a_real_disk_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(disk_free_bytes(dir.path()).expect("statvfs") > 0);
    }
}
