//! `Watch` inside the driver (issue 13): a page of the history (`kv::revisions`) is
//! answered at once when it holds an event; otherwise the request waits here, bounded in
//! number and time, until an apply moves the revision on or its wait runs out. The
//! client asks again from the page's `next_revision`, on this node or any other: the
//! history is the same on every replica, so a watcher that moves misses nothing and sees
//! nothing twice.

use tracing::warn;
use wire::{ErrorKind, ErrorReply, EventPage, Response, KEY_BYTES_MAX, WATCH_WAIT_MILLIS_MAX};

use super::reply::Reply;
use super::requests::invalid;
use super::{Driver, PeerNetwork};
use crate::kv::revisions::{read_events, HistoryError};
use crate::storage::Storage;

/// Watches waiting for an event at once; one more is refused with `Overloaded` (its
/// client backs off and asks again), so memory stays bounded whatever the clients do.
pub(super) const PENDING_WATCHES_MAX: usize = 4_096;

/// A watch waiting for its first event.
pub(super) struct PendingWatch {
    prefix: Vec<u8>,
    /// Where its scan goes on (the last empty page's `next_revision`).
    next_revision: u64,
    ticks_left: u64,
    /// Answered `NotLeader` if this node stops leading while it waits.
    require_leader: bool,
    reply: Reply,
}

impl<S: Storage, N: PeerNetwork> Driver<S, N> {
    pub(super) fn handle_watch(
        &mut self,
        prefix: Vec<u8>,
        (from_revision, wait_millis, require_leader): (u64, u64, bool),
        reply: Reply,
    ) {
        if prefix.len() > KEY_BYTES_MAX {
            let _ = reply.send(invalid(format!(
                "prefix of {} bytes exceeds {KEY_BYTES_MAX}",
                prefix.len()
            )));
            return;
        }
        if wait_millis > WATCH_WAIT_MILLIS_MAX {
            let _ = reply.send(invalid(format!(
                "wait of {wait_millis} ms exceeds {WATCH_WAIT_MILLIS_MAX} ms"
            )));
            return;
        }
        let page = match self.watch_page(&prefix, from_revision) {
            Ok(page) => page,
            Err(error) => {
                let _ = reply.send(Response::Error(error));
                return;
            }
        };
        let tick_millis = self.config.tick_interval.as_millis().max(1) as u64;
        let ticks_left = wait_millis.div_ceil(tick_millis);
        // Only a watch that has caught up waits: one whose page was cut short by its scan
        // bound is answered, so that waiting watches never rescan old history (review
        // finding: thousands of them could each read a page of 8 MiB every loop turn).
        let caught_up = page.next_revision > page.revision;
        if !page.events.is_empty() || ticks_left == 0 || !caught_up {
            let _ = reply.send(Response::Events(page));
            return;
        }
        if self.pending_watches.len() >= PENDING_WATCHES_MAX {
            let _ = reply.send(Response::Error(ErrorReply {
                kind: ErrorKind::Overloaded,
                message: format!("{PENDING_WATCHES_MAX} watches are waiting on this node; retry"),
            }));
            return;
        }
        self.pending_watches.push(PendingWatch {
            prefix,
            next_revision: page.next_revision,
            ticks_left,
            require_leader,
            reply,
        });
    }

    /// Answers the waiting watches that have an event now, and with an empty page those
    /// whose wait ran out (`tick`: one tick passed). Scans only when the revision moved.
    pub(super) fn serve_pending_watches(&mut self, tick: bool) {
        if self.pending_watches.is_empty() {
            return;
        }
        let revision = match self.machine.revision(&self.storage) {
            Ok(revision) => revision,
            Err(error) => {
                warn!(%error, "cannot read the revision for waiting watches");
                return;
            }
        };
        let moved = revision != self.watched_revision;
        self.watched_revision = revision;
        let leading = self.raft.role() == raft::Role::Leader;
        for mut pending in std::mem::take(&mut self.pending_watches) {
            if tick {
                pending.ticks_left = pending.ticks_left.saturating_sub(1);
            }
            if pending.reply.is_closed() {
                continue;
            }
            if pending.require_leader && !leading {
                let _ = pending.reply.send(self.not_leader());
                continue;
            }
            let scan_due = moved || pending.next_revision <= revision;
            if !scan_due && pending.ticks_left > 0 {
                self.pending_watches.push(pending);
                continue;
            }
            match self.watch_page(&pending.prefix, pending.next_revision) {
                Ok(page)
                    if page.events.is_empty()
                        && pending.ticks_left > 0
                        && page.next_revision > page.revision =>
                {
                    pending.next_revision = page.next_revision;
                    self.pending_watches.push(pending);
                }
                Ok(page) => {
                    let _ = pending.reply.send(Response::Events(page));
                }
                Err(error) => {
                    let _ = pending.reply.send(Response::Error(error));
                }
            }
        }
    }

    /// Answers every waiting watch with `response` (the node is stopping).
    pub(super) fn fail_pending_watches(&mut self, response: Response) {
        for pending in std::mem::take(&mut self.pending_watches) {
            let _ = pending.reply.send(response.clone());
        }
    }

    fn watch_page(&mut self, prefix: &[u8], from_revision: u64) -> Result<EventPage, ErrorReply> {
        match read_events(&self.storage, prefix, from_revision) {
            #[cfg(feature = "canaries")]
            Ok(mut page) if self.config.canary == Some(raft::canary::Canary::WatchResumeSkipsAnEvent) => {
                if from_revision > 1 && !prefix.is_empty() {
                    page.events.retain(|event| event.revision() != from_revision);
                }
                Ok(page)
            }
            Ok(page) => Ok(page),
            Err(HistoryError::Compacted {
                from_revision,
                compacted_revision,
            }) => Err(ErrorReply {
                kind: ErrorKind::Compacted,
                message: format!(
                    "revision {from_revision} has been compacted away: the oldest revision this node \
                     can watch from is {}",
                    compacted_revision + 1
                ),
            }),
            Err(HistoryError::Storage(error)) => Err(ErrorReply {
                kind: ErrorKind::Internal,
                message: error.to_string(),
            }),
        }
    }
}
