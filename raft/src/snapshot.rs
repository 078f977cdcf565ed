//! Log compaction and InstallSnapshot (thesis §5.1-§5.3): the application hands in its
//! state at an applied index, the log before it is purged, and a follower that needs
//! purged entries receives the snapshot in chunks of `snapshot_chunk_bytes`, one chunk
//! in flight at a time, resumable from the last acknowledged offset.

use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::error::CompactError;
use crate::message::{AppendResponse, MessageBody, SnapshotChunk, SnapshotChunkResponse};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::types::{Index, NodeId, Snapshot, SnapshotMeta};

/// A snapshot being received, chunk by chunk.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    meta: SnapshotMeta,
    total_bytes: u64,
    data: Vec<u8>,
}

/// What `compact` did: the application persists the snapshot and drops its durable log
/// through `purged_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    pub meta: SnapshotMeta,
    pub purged_to: Index,
}

impl Raft {
    /// Takes `data`, the state machine's image after applying through `index`, as the
    /// newest snapshot and purges the log through `index`.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) -> Result<Compaction, CompactError> {
        assert!(
            self.ready_in_flight.is_none(),
            "compact between ready() and advance()"
        );
        if index > self.applied {
            return Err(CompactError::NotApplied {
                index,
                applied: self.applied,
            });
        }
        let snapshot_index = self.snapshot.as_ref().map_or(0, |snapshot| snapshot.meta.index);
        if index <= snapshot_index || index <= self.log.purged_index() {
            return Err(CompactError::AlreadyCompacted {
                index,
                snapshot_index: snapshot_index.max(self.log.purged_index()),
            });
        }
        let term = self
            .log
            .term(index)
            .expect("applied entries above the purge point are in the log");
        let meta = SnapshotMeta {
            index,
            term,
            conf_state: self.log.config_at(index),
        };
        self.snapshot = Some(Snapshot {
            meta: meta.clone(),
            data: Arc::from(data),
        });
        // Applied entries are committed and durable, so they may go.
        self.log.purge_to(index);
        info!(id = self.config.id, index, term, "compacted log");
        Ok(Compaction {
            meta,
            purged_to: index,
        })
    }

    /// Switches `to` to snapshot mode and sends the first chunk.
    pub(crate) fn start_snapshot_send(&mut self, to: NodeId) {
        let Some(snapshot_index) = self.snapshot.as_ref().map(|snapshot| snapshot.meta.index) else {
            // Purging requires a snapshot (see `compact`), so this cannot happen.
            warn!(
                id = self.config.id,
                to, "follower needs purged entries but no snapshot exists"
            );
            return;
        };
        let progress = self.leader_state_mut().progress.get_mut(&to).expect("member");
        progress.become_snapshot(snapshot_index);
        info!(id = self.config.id, to, snapshot_index, "sending snapshot");
        self.send_snapshot_chunk(to);
    }

    /// Sends the chunk after the follower's acknowledged offset. Restarts from zero if
    /// a newer snapshot replaced the one being sent.
    pub(crate) fn send_snapshot_chunk(&mut self, to: NodeId) {
        let Some(snapshot) = self.snapshot.clone() else {
            return;
        };
        let chunk_bytes = self.config.snapshot_chunk_bytes;
        let progress = self.leader_state_mut().progress.get_mut(&to).expect("member");
        let ProgressState::Snapshot {
            index, acked_bytes, ..
        } = progress.state
        else {
            return;
        };
        let offset = if index == snapshot.meta.index {
            acked_bytes
        } else {
            progress.become_snapshot(snapshot.meta.index);
            0
        };
        let total_bytes = snapshot.data.len() as u64;
        let start = offset.min(total_bytes) as usize;
        let end = start.saturating_add(chunk_bytes).min(snapshot.data.len());
        let chunk = SnapshotChunk {
            meta: snapshot.meta.clone(),
            total_bytes,
            offset: start as u64,
            data: snapshot.data[start..end].to_vec(),
        };
        self.send(to, MessageBody::InstallSnapshot(chunk));
    }

    pub(crate) fn handle_snapshot_chunk_response(&mut self, from: NodeId, response: SnapshotChunkResponse) {
        let snapshot_index = self.snapshot.as_ref().map_or(0, |snapshot| snapshot.meta.index);
        let total_bytes = self
            .snapshot
            .as_ref()
            .map_or(0, |snapshot| snapshot.data.len() as u64);
        let progress = self.leader_state_mut().progress.get_mut(&from).expect("member");
        let ProgressState::Snapshot {
            index,
            acked_bytes: previously_acked,
            ..
        } = progress.state
        else {
            return;
        };
        if response.snapshot_index != index || index != snapshot_index {
            debug!(from, "ignored response about another snapshot");
            return;
        }
        let acked_bytes = response.next_offset.min(total_bytes);
        progress.state = ProgressState::Snapshot {
            index,
            acked_bytes,
            answered: true,
        };
        // Only a response that moves the offset forward (or restarts it, after the
        // follower lost its partial copy) sends a chunk: duplicate responses must not
        // multiply the chunk streams; the heartbeat resends a lost one.
        if acked_bytes != previously_acked && acked_bytes < total_bytes {
            self.send_snapshot_chunk(from);
        }
        // Once complete, the follower answers with an AppendResponse after persisting.
    }

    /// The follower's side of InstallSnapshot.
    pub(crate) fn handle_snapshot_chunk(&mut self, from: NodeId, chunk: SnapshotChunk) {
        let meta_index = chunk.meta.index;
        let committed = self.log.committed();
        if meta_index <= committed {
            // We already hold everything the snapshot covers.
            self.incoming_snapshot = None;
            self.send(
                from,
                MessageBody::AppendResponse(AppendResponse::Accepted {
                    match_index: committed,
                }),
            );
            return;
        }
        if self.log.match_term(meta_index, chunk.meta.term) {
            // Our log contains the snapshot's last entry, hence (log matching) all before
            // it: keep the log and commit through it (thesis §5.3 receiver step 6).
            self.incoming_snapshot = None;
            self.log.commit_to(meta_index);
            self.send(
                from,
                MessageBody::AppendResponse(AppendResponse::Accepted {
                    match_index: meta_index,
                }),
            );
            return;
        }
        if chunk.offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta: chunk.meta.clone(),
                total_bytes: chunk.total_bytes,
                data: Vec::new(),
            });
        }
        let Some(incoming) = self
            .incoming_snapshot
            .as_mut()
            .filter(|incoming| incoming.meta == chunk.meta && incoming.total_bytes == chunk.total_bytes)
        else {
            // A chunk of a snapshot we are not receiving: ask for its start.
            self.reply_snapshot_offset(from, meta_index, 0);
            return;
        };
        if incoming.data.len() as u64 != chunk.offset {
            let next_offset = incoming.data.len() as u64;
            self.reply_snapshot_offset(from, meta_index, next_offset);
            return;
        }
        incoming.data.extend_from_slice(&chunk.data);
        if (incoming.data.len() as u64) < incoming.total_bytes {
            let next_offset = incoming.data.len() as u64;
            self.reply_snapshot_offset(from, meta_index, next_offset);
            return;
        }
        let incoming = self.incoming_snapshot.take().expect("checked above");
        self.install_snapshot(from, incoming);
    }

    fn reply_snapshot_offset(&mut self, to: NodeId, snapshot_index: Index, next_offset: u64) {
        let response = SnapshotChunkResponse {
            snapshot_index,
            next_offset,
        };
        self.send(to, MessageBody::InstallSnapshotResponse(response));
    }

    /// Replaces the log with a complete snapshot; the next `Ready` carries it to the
    /// application, and the acknowledgement leaves only once it is durable.
    fn install_snapshot(&mut self, from: NodeId, incoming: IncomingSnapshot) {
        let meta = incoming.meta;
        info!(
            id = self.config.id,
            index = meta.index,
            term = meta.term,
            "installing snapshot"
        );
        self.log.restore(&meta);
        let snapshot = Snapshot {
            meta,
            data: Arc::from(incoming.data),
        };
        let match_index = snapshot.meta.index;
        self.snapshot = Some(snapshot.clone());
        self.snapshot_to_install = Some(snapshot);
        self.refresh_conf();
        self.send(
            from,
            MessageBody::AppendResponse(AppendResponse::Accepted { match_index }),
        );
    }
}
