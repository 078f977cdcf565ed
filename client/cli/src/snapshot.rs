//! `raftkv snapshot save FILE`: a consistent backup of the cluster (issue 13).
//!
//! The leader confirms its leadership (ReadIndex), pins an image of its state machine at
//! its applied index (so it holds every write acknowledged before the command started),
//! builds it off its driver loop, and serves it in chunks of at most 1 MiB by offset. The
//! file is `client::backup_file`'s header then the image's bytes exactly; it is written
//! to FILE.part, synced, and renamed, so FILE is either absent or whole.
//! `raftkv-node restore --from FILE` makes a new cluster's first data dir from it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use client::backup_file::{BackupHeader, BACKUP_HEADER_BYTES};
use client::client::{BackupStarted, Client};
use client::wire::BackupInfo;
use serde_json::json;

use crate::output::{self, Output};
use crate::{Failure, GlobalArgs};

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv snapshot save backup.raftkv")]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Save a consistent snapshot of the cluster to FILE: every write acknowledged before
    /// the command started is in it. --timeout-ms bounds the wait for each chunk.
    #[command(after_help = "Example: raftkv snapshot save backup.raftkv --output json")]
    Save(SaveArgs),
}

#[derive(Debug, Args)]
struct SaveArgs {
    /// Where to write the backup (through FILE.part, renamed once whole and synced).
    file: PathBuf,
}

pub async fn snapshot(global: &GlobalArgs, args: SnapshotArgs) -> Result<(), Failure> {
    let SnapshotCommand::Save(args) = args.command;
    let mut client = global.client()?;
    let started = client.backup_begin().await?;
    let part = part_path(&args.file);
    let saved = save(&mut client, &started, &part, &args.file).await;
    // The node would drop the image after its idle timeout anyway: this only frees it
    // sooner, so its failure is not the command's.
    let _ = client.backup_release(&started).await;
    let info = match saved {
        Ok(info) => info,
        Err(failure) => {
            let _ = fs::remove_file(&part);
            return Err(failure);
        }
    };
    let file_bytes = BACKUP_HEADER_BYTES as u64 + info.image_bytes;
    let file = args.file.display().to_string();
    match global.output {
        Output::Text => outln!(
            "saved {file}: index {}, term {}, {file_bytes} bytes, {} pairs, {} sessions, checksum {:016x}",
            info.index,
            info.term,
            info.pairs,
            info.sessions,
            info.checksum
        ),
        Output::Json => output::print_json(&json!({
            "file": file,
            "index": info.index,
            "term": info.term,
            "bytes": file_bytes,
            "image_bytes": info.image_bytes,
            "pairs": info.pairs,
            "sessions": info.sessions,
            "checksum": format!("{:016x}", info.checksum),
            "cluster_id": format!("{:016x}", info.cluster_id),
            "node": started.address,
        })),
    }
    Ok(())
}

/// FILE.part beside FILE.
fn part_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Fetches every chunk into `part`, syncs it and renames it `file`.
async fn save(
    client: &mut Client,
    started: &BackupStarted,
    part: &Path,
    file: &Path,
) -> Result<BackupInfo, Failure> {
    let io = |doing: &str, path: &Path, error: std::io::Error| {
        Failure::from(format!("{doing} {}: {error}", path.display()))
    };
    let first = client.backup_chunk(started, 0).await?;
    let info = first.info;
    let header = BackupHeader {
        index: info.index,
        term: info.term,
        cluster_id: info.cluster_id,
        image_bytes: info.image_bytes,
        image_checksum: info.checksum,
    };
    let mut out = File::create(part).map_err(|e| io("cannot create", part, e))?;
    out.write_all(&header.encode())
        .map_err(|e| io("cannot write", part, e))?;
    let mut chunk = first;
    let mut offset = 0u64;
    loop {
        if chunk.info != info {
            return Err(Failure::from(format!(
                "the node changed the backup's description mid-save ({:?} then {:?})",
                info, chunk.info
            )));
        }
        out.write_all(&chunk.data)
            .map_err(|e| io("cannot write", part, e))?;
        offset += chunk.data.len() as u64;
        if offset >= info.image_bytes {
            break;
        }
        if chunk.data.is_empty() {
            return Err(Failure::from(format!(
                "the node's image ended at {offset} of its {} bytes",
                info.image_bytes
            )));
        }
        chunk = client.backup_chunk(started, offset).await?;
    }
    if offset != info.image_bytes {
        return Err(Failure::from(format!(
            "received {offset} bytes of an image of {}",
            info.image_bytes
        )));
    }
    out.sync_all().map_err(|e| io("cannot sync", part, e))?;
    drop(out);
    fs::rename(part, file).map_err(|e| io("cannot rename", part, e))?;
    // The rename is durable once the directory is synced.
    let parent = file
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io("cannot sync", parent, e))?;
    Ok(info)
}
