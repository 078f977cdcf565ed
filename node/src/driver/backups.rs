//! `raftkv snapshot save` in the driver (issue 13): a backup must hold every write
//! acknowledged before the save began, so the leader first confirms it still leads with a
//! ReadIndex round (thesis §6.4: a deposed leader's applied state may miss writes the new
//! one acknowledged), then, once applied has reached the read's index, pins a view of the
//! state machine at its applied index (`Storage::image_source`, as periodic snapshots do)
//! and hands it to `BackupImages`, which builds the image off the loop. Chunks are served
//! by the client port from that file, never by the driver.

use std::sync::Arc;

use raft::{ProposalError, Role};
use wire::{ErrorKind, ErrorReply, Request, Response};

use super::reply::Reply;
use super::{Driver, PeerNetwork, PendingRead};
use crate::backup_images::{BackupError, BackupImages, BackupPoint};
use crate::storage::Storage;

impl<S: Storage, N: PeerNetwork> Driver<S, N> {
    /// Lets this driver begin backups, kept in `images` (a node with a data dir).
    pub fn serve_backups(&mut self, images: Arc<BackupImages>) {
        self.backups = Some(images);
    }

    /// `Request::SnapshotBegin`: a leader-only ReadIndex, answered in `start_due_backups`.
    pub(super) fn handle_backup_begin(&mut self, reply: Reply) {
        if self.backups.is_none() {
            let _ = reply.send(super::requests::invalid("this node keeps no backups".to_string()));
            return;
        }
        if self.raft.role() != Role::Leader {
            let refusal = self.refusal(ProposalError::NotLeader {
                leader: self.raft.leader(),
            });
            let _ = reply.send(refusal);
            return;
        }
        let context = self.next_read_context;
        self.next_read_context += 1;
        match self.raft.read_index(context) {
            Ok(()) => {
                let request = Request::SnapshotBegin;
                self.pending_reads.insert(context, PendingRead { request, reply });
            }
            Err(error) => {
                let _ = reply.send(self.refusal(error));
            }
        }
    }

    /// Pins the views of the backups whose ReadIndex completed in the `Ready`s just
    /// handled. Called after `advance`, like `maybe_start_snapshot`: storage then holds
    /// exactly `applied`, which is at least each read's index.
    pub(super) fn start_due_backups(&mut self) {
        for reply in std::mem::take(&mut self.backups_due) {
            let _ = reply.send(self.begin_backup());
        }
    }

    fn begin_backup(&self) -> Response {
        let Some(images) = &self.backups else {
            return super::requests::invalid("this node keeps no backups".to_string());
        };
        let index = self.raft.applied();
        let point = BackupPoint {
            index,
            // The entry at `applied` is in the log or is the snapshot's last one.
            term: self.raft.log().term(index).unwrap_or_else(|| self.raft.term()),
            cluster_id: self.config.cluster_id,
        };
        let source = match self.storage.image_source(index) {
            Ok(source) => source,
            Err(error) => return error_reply(ErrorKind::Internal, error.to_string()),
        };
        match images.begin(point, source) {
            Ok(id) => Response::SnapshotStarted { id, index },
            Err(error @ BackupError::Busy) => error_reply(ErrorKind::Overloaded, error.to_string()),
            Err(error) => error_reply(ErrorKind::Internal, error.to_string()),
        }
    }
}

fn error_reply(kind: ErrorKind, message: String) -> Response {
    Response::Error(ErrorReply { kind, message })
}
