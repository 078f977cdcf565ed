//! Stopping the transport's tasks and knowing when they have stopped, with only
//! `tokio::sync` (real tokio under madsim too, which is fine on its single thread).
//!
//! Every task holds a [`Shutdown`] and a [`TaskGuard`]. `Transport::shutdown` (or dropping
//! the last `Transport` handle) flips the watch channel; each task notices at its next
//! await point, drops its sockets and its guard. When the last guard is gone the tracker's
//! channel closes, which is how `Transport::stopped` knows the listening port is free again.

use tokio::sync::{mpsc, watch};

/// A task's view of the shutdown flag.
#[derive(Debug, Clone)]
pub(super) struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    pub(super) fn new(receiver: watch::Receiver<bool>) -> Self {
        Self { receiver }
    }

    /// Resolves once shutdown is requested or the transport handle is gone. Cancel-safe, so
    /// it can sit in any `select!`.
    pub(super) async fn requested(&mut self) {
        // `wait_for` returns an error only when the sender is dropped: the handle is gone,
        // which means shutdown as well.
        let _ = self.receiver.wait_for(|&stop| stop).await;
    }
}

/// Held by every task for as long as it runs.
#[derive(Debug, Clone)]
pub(super) struct TaskGuard {
    _alive: mpsc::Sender<()>,
}

impl TaskGuard {
    /// A handle that can make new guards while some task still runs, without keeping
    /// the tracker waiting itself (the transport spawns a task per peer added later).
    pub(super) fn downgrade(&self) -> WeakTaskGuard {
        WeakTaskGuard {
            alive: self._alive.downgrade(),
        }
    }
}

/// See [`TaskGuard::downgrade`].
#[derive(Debug, Clone)]
pub(super) struct WeakTaskGuard {
    alive: mpsc::WeakSender<()>,
}

impl WeakTaskGuard {
    /// A new guard, or `None` once every task has stopped (the transport is shut down).
    pub(super) fn upgrade(&self) -> Option<TaskGuard> {
        self.alive.upgrade().map(|alive| TaskGuard { _alive: alive })
    }
}

/// Waits for every [`TaskGuard`] to be dropped.
#[derive(Debug)]
pub(super) struct TaskTracker {
    all_stopped: mpsc::Receiver<()>,
}

impl TaskTracker {
    /// A tracker and the first guard, which the caller clones into each task it spawns.
    pub(super) fn new() -> (Self, TaskGuard) {
        // Nothing is ever sent: the channel only reports that all senders are gone.
        let (alive, all_stopped) = mpsc::channel(1);
        (Self { all_stopped }, TaskGuard { _alive: alive })
    }

    /// Resolves when all guards are dropped; at once on later calls.
    pub(super) async fn wait(&mut self) {
        while self.all_stopped.recv().await.is_some() {}
    }
}
