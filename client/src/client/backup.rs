//! Backups through the client protocol: the leader pins an image of its state machine
//! (`Request::SnapshotBegin`), and the client reads it in chunks from that node by
//! offset, resuming after a lost answer, then releases it.

use std::time::Duration;

use tokio::time::{self, Instant};

use super::{Client, ClientError};
use crate::wire::{BackupChunk, ErrorKind, Request, Response};

/// Pause before asking again for a chunk of an image still being built.
const BUILDING_PAUSE: Duration = Duration::from_millis(50);

/// A backup begun on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStarted {
    /// The node holding the image: chunks are asked of it, whoever leads meanwhile.
    pub address: String,
    pub id: u64,
    /// The applied index the image was pinned at.
    pub index: u64,
}

impl Client {
    /// Asks the leader to pin an image of its state machine at (at least) the index of
    /// every write acknowledged before this call. Retried like any request until the
    /// deadline; a retry after a lost answer pins another image, which the node drops
    /// after its idle timeout.
    pub async fn backup_begin(&mut self) -> Result<BackupStarted, ClientError> {
        match self.call(&Request::SnapshotBegin).await? {
            (address, Response::SnapshotStarted { id, index }) => Ok(BackupStarted { address, id, index }),
            (address, other) => Err(ClientError::unexpected_response(address, other)),
        }
    }

    /// The chunk of `started`'s image at `offset`. Waits while the node is still building
    /// the image or busy, and asks again after a timeout or a broken connection (a chunk is
    /// read-only, so asking twice is harmless), until the deadline passes with no chunk.
    pub async fn backup_chunk(
        &mut self,
        started: &BackupStarted,
        offset: u64,
    ) -> Result<BackupChunk, ClientError> {
        let deadline_at = Instant::now() + self.options.deadline;
        let mut attempts = 0;
        loop {
            let remaining = deadline_at.saturating_duration_since(Instant::now());
            let timeout = self.options.request_timeout.min(remaining);
            attempts += 1;
            let request = Request::SnapshotChunk {
                id: started.id,
                offset,
            };
            let error = match self.call_once(&started.address, request, timeout).await {
                Ok(Response::SnapshotChunk(chunk)) if chunk.offset == offset => return Ok(chunk),
                Ok(Response::Error(reply))
                    if matches!(reply.kind, ErrorKind::NotNow | ErrorKind::Overloaded) =>
                {
                    ClientError::Server {
                        endpoint: started.address.clone(),
                        kind: reply.kind,
                        message: reply.message,
                    }
                }
                Ok(Response::Error(reply)) if reply.kind == ErrorKind::PermissionDenied => {
                    return Err(ClientError::PermissionDenied {
                        message: reply.message,
                    })
                }
                Ok(other) => return Err(ClientError::unexpected_response(started.address.clone(), other)),
                Err(error @ (ClientError::Timeout { .. } | ClientError::Connection { .. })) => error,
                Err(error) => return Err(error),
            };
            if Instant::now() + BUILDING_PAUSE >= deadline_at {
                return Err(ClientError::DeadlineExceeded {
                    deadline: self.options.deadline,
                    attempts,
                    last_error: Box::new(error),
                    unreachable: Vec::new(),
                    endpoints: 1,
                    outcome_unknown: false,
                });
            }
            time::sleep(BUILDING_PAUSE).await;
        }
    }

    /// Tells the node the save is over, so it deletes the image now rather than after its
    /// idle timeout. One attempt: a failure only delays the deletion.
    pub async fn backup_release(&mut self, started: &BackupStarted) -> Result<(), ClientError> {
        let request = Request::SnapshotRelease { id: started.id };
        match self
            .call_once(&started.address, request, self.options.request_timeout)
            .await?
        {
            Response::SnapshotReleased => Ok(()),
            other => Err(ClientError::unexpected_response(started.address.clone(), other)),
        }
    }
}
