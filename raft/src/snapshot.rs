//! Log compaction and InstallSnapshot (thesis §5.1-§5.3): the application saves an image
//! of its state at an applied index and hands in its size, the log before it is purged
//! (all but `snapshot_trailing_entries`), and a follower that needs purged entries
//! receives the snapshot in chunks of `snapshot_chunk_bytes`, one chunk in flight at a
//! time, resumable from the last acknowledged offset.
//!
//! Raft never holds the image (issue 12: no size cap, no image in memory). A chunk the
//! leader emits carries no data: the application fills it from its image
//! (`SnapshotChunk::range_to_fill`) as it sends it. A chunk the follower accepts goes to
//! the application in `Ready::snapshot_chunks`, to be written to its staged image; the
//! last one makes `Ready::snapshot` ask it to install that staged image.

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
    /// Bytes accepted so far, in order, and handed to the application.
    received_bytes: u64,
}

/// What `compact` did: the application persists the snapshot and drops its durable log
/// through `purged_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    pub meta: SnapshotMeta,
    pub purged_to: Index,
}

impl Raft {
    /// Takes the application's image of its state after applying through `index`
    /// (`total_bytes` long, saved where the application can read chunks of it) as the
    /// newest snapshot, and purges the log through `index` less the configured
    /// `snapshot_trailing_entries`: a follower a little behind then catches up from the
    /// log rather than with a whole snapshot (etcd keeps such a window as well).
    pub fn compact(&mut self, index: Index, total_bytes: u64) -> Result<Compaction, CompactError> {
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
            total_bytes,
        });
        // Applied entries are committed and durable, so they may go.
        let purged_to = self.trailing_window_start(index);
        self.log.purge_to(purged_to);
        info!(id = self.config.id, index, term, purged_to, "compacted log");
        Ok(Compaction { meta, purged_to })
    }

    /// Where a compaction at `index` purges to: `snapshot_trailing_entries` entries before
    /// it are kept, fewer if they would pass `snapshot_trailing_bytes_max`.
    fn trailing_window_start(&self, index: Index) -> Index {
        let floor = self.log.purged_index();
        let mut purged_to = index
            .saturating_sub(self.config.snapshot_trailing_entries)
            .max(floor);
        let mut kept_bytes = 0usize;
        // Walk back from the snapshot's index; the first entry that does not fit ends it.
        for kept in (purged_to + 1..=index).rev() {
            let size = self.log.entry(kept).map_or(0, crate::types::Entry::size_bytes);
            kept_bytes = kept_bytes.saturating_add(size);
            if kept_bytes > self.config.snapshot_trailing_bytes_max {
                purged_to = kept;
                break;
            }
        }
        purged_to
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

    /// Sends the chunk after the follower's acknowledged offset, without its data (the
    /// application fills it). Restarts from zero if a newer snapshot replaced the one
    /// being sent.
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
        let chunk = SnapshotChunk {
            meta: snapshot.meta,
            total_bytes: snapshot.total_bytes,
            offset: offset.min(snapshot.total_bytes),
            data_bytes_max: u32::try_from(chunk_bytes).unwrap_or(u32::MAX),
            data: Vec::new(),
        };
        self.send(to, MessageBody::InstallSnapshot(chunk));
    }

    pub(crate) fn handle_snapshot_chunk_response(&mut self, from: NodeId, response: SnapshotChunkResponse) {
        let snapshot_index = self.snapshot.as_ref().map_or(0, |snapshot| snapshot.meta.index);
        let total_bytes = self.snapshot.as_ref().map_or(0, |snapshot| snapshot.total_bytes);
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
        if self.snapshot_to_install.is_some() {
            // The next Ready installs the image staged so far; a chunk of another snapshot
            // now would restage it before that. The leader resends it on its heartbeat.
            debug!(
                id = self.config.id,
                from, "chunk ignored while a snapshot awaits install"
            );
            return;
        }
        if chunk.offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta: chunk.meta.clone(),
                total_bytes: chunk.total_bytes,
                received_bytes: 0,
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
        #[cfg(feature = "canaries")]
        let any_offset = self.config.canary == Some(crate::canary::Canary::SnapshotChunkAtAnyOffset);
        #[cfg(not(feature = "canaries"))]
        let any_offset = false;
        if incoming.received_bytes != chunk.offset && !any_offset {
            let next_offset = incoming.received_bytes;
            self.reply_snapshot_offset(from, meta_index, next_offset);
            return;
        }
        // `validate` bounds the chunk by `total_bytes`, so this cannot overflow it.
        incoming.received_bytes += chunk.data.len() as u64;
        if any_offset {
            // The canary's follower counts what it appended, whatever the offsets.
            incoming.received_bytes = incoming.received_bytes.min(incoming.total_bytes);
        }
        let (received_bytes, total_bytes) = (incoming.received_bytes, incoming.total_bytes);
        assert!(
            received_bytes <= total_bytes,
            "a validated chunk stays within its image"
        );
        // The application writes the chunk to its staged image in this `Ready`, before
        // anything that follows: chunks leave in the order they were accepted.
        self.snapshot_chunks.push(chunk);
        if received_bytes < total_bytes {
            self.reply_snapshot_offset(from, meta_index, received_bytes);
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

    /// Replaces the log with a complete snapshot; the next `Ready` asks the application to
    /// install its staged image, and the acknowledgement leaves only once it is durable.
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
            total_bytes: incoming.total_bytes,
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
