//! `raftkv-node restore`: a fresh data dir from a backup (`raftkv snapshot save`), the
//! recovery when a majority of disks (or all) are gone.
//!
//! The restored data dir is a NEW cluster, as `--force-new-cluster` makes one from a
//! survivor: a new incarnation of node `--id`, a new cluster id founded by it alone, and
//! Raft state whose only voter it is, with a snapshot at the backup's index holding the
//! backup's image (so its log starts after it). The other nodes start on empty data dirs
//! and join it as new incarnations (`crate::join`), as a wiped node does. A new cluster
//! id keeps any node of the old cluster from speaking to it.
//!
//! The backup is checked whole before anything is written (header, length, the image's
//! records and checksum); a damaged file is refused and no data dir is left behind. The
//! old cluster's member records are left out of the image: they name incarnations and
//! addresses of the old cluster, and the restored node records itself when it first leads.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use clap::Parser;
use raft::{ConfState, HardState, NodeId, Snapshot, SnapshotMeta};
use wire::backup_file::{BackupHeader, BackupHeaderError, BACKUP_HEADER_BYTES};

use crate::identity::{ClusterMembership, Founder, Identity};
use crate::kv::revisions::{RevisionState, EVENT_KEY_PREFIX, REVISION_STATE_KEY};
use crate::membership::is_member_key;
use crate::storage::fjall_store::FjallStore;
use crate::storage::image_stream::{ImageItem, ImageReader, ImageSummary, ImageWriter, IMAGE_PIECE_BYTES};
use crate::storage::{Storage, StorageError};

/// `raftkv-node restore`: build a fresh data dir from a backup file.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "raftkv-node restore",
    after_help = "Example: raftkv-node restore --from backup.raftkv --data-dir /var/lib/raftkv --id 1"
)]
pub struct RestoreArgs {
    /// The backup `raftkv snapshot save` wrote.
    #[arg(long)]
    pub from: PathBuf,
    /// The data dir to create (it must not exist, or be empty).
    #[arg(long, env = "RAFTKV_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The node that will run on this data dir: the new cluster's only voter at first.
    #[arg(long, env = "RAFTKV_ID")]
    pub id: NodeId,
    /// The cluster's name (as `raftkv-node --cluster-name`), mixed into the new cluster id.
    #[arg(long, env = "RAFTKV_CLUSTER_NAME", default_value = "raftkv")]
    pub cluster_name: String,
}

impl RestoreArgs {
    /// The example line of `--help` (without "Example: ").
    pub fn command_for_example() -> String {
        let command = <Self as clap::CommandFactory>::command();
        let help = command
            .get_after_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        help.trim_start_matches("Example: ").to_string()
    }
}

/// What was restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub header: BackupHeader,
    /// What the backup's image holds (member records of the old cluster included).
    pub image: ImageSummary,
    /// Member records of the old cluster left out.
    pub member_records_dropped: u64,
    /// The restored cluster's revisions (`RESTORE_REVISION_BUMP`).
    pub revisions: RevisionState,
    pub identity: Identity,
}

/// How far a restore moves the revision on (as etcd's `snapshot restore --bump-revision`
/// with `--mark-compacted`): every revision up to the new one counts as compacted, so a
/// watcher of the old cluster that resumes at its revision (the backup's or any later
/// one the old cluster reached) is told its revision was compacted away rather than
/// handed the new cluster's different changes under the numbers it already saw.
pub const RESTORE_REVISION_BUMP: u64 = 1_000_000_000;

/// Why a backup was not restored (nothing was left in the data dir).
#[derive(Debug)]
pub enum RestoreError {
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    Header(BackupHeaderError),
    /// The file does not hold the image length its header says.
    Length {
        header_bytes: u64,
        file_bytes: u64,
    },
    /// The image does not verify (a bad record, a wrong checksum, a missing end).
    Image(StorageError),
    DataDirNotEmpty(PathBuf),
    NodeIdZero,
    /// Writing the data dir failed (it was removed again).
    Write(String),
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open { path, error } => write!(f, "cannot read the backup {}: {error}", path.display()),
            Self::Header(error) => write!(f, "the backup is damaged: {error}"),
            Self::Length {
                header_bytes,
                file_bytes,
            } => write!(
                f,
                "the backup is damaged: its header says {header_bytes} bytes of image, the file holds {file_bytes} \
                 (truncated or appended to)"
            ),
            Self::Image(error) => write!(f, "the backup is damaged: {error}"),
            Self::DataDirNotEmpty(dir) => write!(
                f,
                "{} is not empty: restore builds a fresh data dir (remove it, or give another)",
                dir.display()
            ),
            Self::NodeIdZero => f.write_str("node ids start at 1"),
            Self::Write(why) => write!(f, "cannot write the data dir: {why}"),
        }
    }
}

impl std::error::Error for RestoreError {}

/// Restores `args.from` into `args.data_dir` with a new incarnation `incarnation`.
pub fn restore(args: &RestoreArgs, incarnation: u64) -> Result<Restored, RestoreError> {
    if args.id == 0 {
        return Err(RestoreError::NodeIdZero);
    }
    let (header, image) = verify(&args.from)?;
    let dir = &args.data_dir;
    let existed = dir.exists();
    let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
    if existed && !empty {
        return Err(RestoreError::DataDirNotEmpty(dir.clone()));
    }
    match write_data_dir(args, &header, incarnation) {
        Ok(written) => Ok(Restored {
            header,
            image,
            member_records_dropped: written.member_records_dropped,
            revisions: written.revisions,
            identity: written.identity,
        }),
        Err(error) => {
            // Nothing half-made may be taken for a data dir: an empty one it was given
            // stays, emptied; one it made goes.
            let cleanup = if existed {
                empty_dir(dir)
            } else {
                std::fs::remove_dir_all(dir)
            };
            if let Err(cleanup) = cleanup {
                tracing::error!(dir = %dir.display(), %cleanup, "cannot remove the half-restored data dir");
            }
            Err(RestoreError::Write(error.to_string()))
        }
    }
}

/// Reads the header and the whole image, checking the length and the image's records and
/// checksum; writes nothing.
pub fn verify(path: &Path) -> Result<(BackupHeader, ImageSummary), RestoreError> {
    let open_error = |error| RestoreError::Open {
        path: path.to_path_buf(),
        error,
    };
    let mut file = File::open(path).map_err(open_error)?;
    let file_bytes = file.metadata().map_err(open_error)?.len();
    let mut head = Vec::with_capacity(BACKUP_HEADER_BYTES);
    (&mut file)
        .take(BACKUP_HEADER_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(open_error)?;
    let header = BackupHeader::decode(&head).map_err(RestoreError::Header)?;
    // The header was read whole (decode checks), so the file is at least that long
    // unless its length is not what its metadata says (a pipe): then it is short.
    let image_bytes = file_bytes.saturating_sub(BACKUP_HEADER_BYTES as u64);
    if image_bytes != header.image_bytes {
        return Err(RestoreError::Length {
            header_bytes: header.image_bytes,
            file_bytes: image_bytes,
        });
    }
    let summary = read_image(&mut file, |_| Ok(())).map_err(|error| match error {
        ReadError::Io(error) => open_error(error),
        ReadError::Image(error) => RestoreError::Image(error),
    })?;
    if summary.checksum != header.image_checksum {
        return Err(RestoreError::Image(StorageError::Corrupt(format!(
            "the image's checksum {:016x} is not the {:016x} its header names",
            summary.checksum, header.image_checksum
        ))));
    }
    Ok((header, summary))
}

enum ReadError {
    Io(std::io::Error),
    Image(StorageError),
}

/// Feeds the rest of `file` (an image) through the image reader.
fn read_image(
    file: &mut File,
    mut item: impl FnMut(ImageItem) -> Result<(), StorageError>,
) -> Result<ImageSummary, ReadError> {
    let mut reader = ImageReader::new();
    let mut buffer = vec![0; IMAGE_PIECE_BYTES];
    loop {
        let read = file.read(&mut buffer).map_err(ReadError::Io)?;
        if read == 0 {
            break;
        }
        reader
            .feed(&buffer[..read], &mut item)
            .map_err(ReadError::Image)?;
    }
    reader.finish().map_err(ReadError::Image)
}

/// What `write_data_dir` wrote.
struct Written {
    identity: Identity,
    member_records_dropped: u64,
    revisions: RevisionState,
}

/// Stages the image without the old member records and with its revisions moved on,
/// installs it as the snapshot of a configuration of this node alone, and writes the
/// identity last: a restore killed before the end leaves Raft state without an
/// identity, which a node refuses to start on, never an identity without the data (which
/// a node would take for a new cluster and serve empty).
fn write_data_dir(
    args: &RestoreArgs,
    header: &BackupHeader,
    incarnation: u64,
) -> Result<Written, StorageError> {
    let io = |error: std::io::Error| StorageError::Io(format!("{}: {error}", args.data_dir.display()));
    std::fs::create_dir_all(&args.data_dir).map_err(io)?;
    let mut store = FjallStore::open(&args.data_dir)?;
    let founder = Founder {
        node_id: args.id,
        incarnation,
    };
    let identity = Identity {
        node_id: args.id,
        incarnation,
        cluster: Some(ClusterMembership::found(&args.cluster_name, vec![founder])),
    };
    let mut file = File::open(&args.from).map_err(io)?;
    file.seek(SeekFrom::Start(BACKUP_HEADER_BYTES as u64))
        .map_err(io)?;
    let index = header.index;
    let mut dropped = 0;
    let mut revisions = None;
    let total_bytes = {
        let mut writer = ImageWriter::new(IMAGE_PIECE_BYTES, |offset, piece| {
            store.stage_image_chunk(index, offset, piece)
        });
        let read = read_image(&mut file, |item| match item {
            ImageItem::Pair(key, _) if is_member_key(&key) => {
                dropped += 1;
                Ok(())
            }
            // The history is compacted away with every revision up to the new one.
            ImageItem::Pair(key, _) if key.starts_with(EVENT_KEY_PREFIX) => Ok(()),
            ImageItem::Pair(key, value) if key == REVISION_STATE_KEY => {
                let old: RevisionState = postcard::from_bytes(&value).map_err(|error| {
                    StorageError::Corrupt(format!("the backup's revision state: {error}"))
                })?;
                let bumped = bump(old);
                revisions = Some(bumped);
                writer.pair(&key, &bumped.encode())
            }
            ImageItem::Pair(key, value) => writer.pair(&key, &value),
            ImageItem::Session(client_id, record) => writer.session(client_id, &record),
        });
        match read {
            Ok(_) => {}
            Err(ReadError::Io(error)) => return Err(io(error)),
            Err(ReadError::Image(error)) => return Err(error),
        }
        if revisions.is_none() {
            // A backup with no revision yet (or of a raftkv from before revisions).
            let bumped = bump(RevisionState::default());
            revisions = Some(bumped);
            writer.pair(REVISION_STATE_KEY, &bumped.encode())?;
        }
        writer.finish()?
    };
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index,
            term: header.term,
            conf_state: ConfState::with_voters([args.id]),
        },
        total_bytes,
    };
    let hard_state = HardState {
        term: header.term,
        vote: None,
        commit: index,
    };
    // One synced install: the store's own path for a snapshot from a leader (it verifies
    // the staged image again before it replaces anything).
    store.persist(Some(&snapshot), &[], Some(hard_state))?;
    store.save_identity(&identity)?;
    Ok(Written {
        identity,
        member_records_dropped: dropped,
        revisions: revisions.unwrap_or_default(),
    })
}

/// The revisions of a restored cluster: `RESTORE_REVISION_BUMP` on, all compacted.
fn bump(old: RevisionState) -> RevisionState {
    let revision = old.revision.saturating_add(RESTORE_REVISION_BUMP);
    RevisionState {
        revision,
        compacted_revision: revision,
        history_bytes: 0,
    }
}

fn empty_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
