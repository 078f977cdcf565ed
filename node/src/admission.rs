//! Admission of connections that have not yet authenticated: any number may arrive, but
//! at most `pending_max` are held at once, and when one more arrives the oldest is
//! evicted. A stranger who opens thousands of idle sockets therefore only ever evicts his
//! own (a real peer or client finishes its handshake in milliseconds, so it is never the
//! oldest), and what he can make us hold is `pending_max` handshakes' worth of memory.
//! Connections that authenticate leave the pending set and count against their port's
//! own cap instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// The pending (not yet authenticated) connections of one port.
#[derive(Debug)]
pub struct Admission {
    pending_max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_ticket: u64,
    /// Oldest first: ticket number -> how to tell that connection it was evicted.
    pending: BTreeMap<u64, Arc<Notify>>,
    evicted_total: u64,
}

/// One pending connection's place; dropping it (authenticated, refused or closed) frees it.
#[derive(Debug)]
pub struct PendingTicket {
    admission: Arc<Admission>,
    number: u64,
    evicted: Arc<Notify>,
}

impl Admission {
    pub fn new(pending_max: usize) -> Arc<Self> {
        assert!(
            pending_max > 0,
            "a port must admit at least one pending connection"
        );
        Arc::new(Self {
            pending_max,
            state: Mutex::new(State::default()),
        })
    }

    /// Admits a new connection, evicting the oldest pending one if the set is full.
    pub fn admit(self: &Arc<Self>) -> PendingTicket {
        let evicted = Arc::new(Notify::new());
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.pending.len() >= self.pending_max {
            let Some((_, oldest)) = state.pending.pop_first() else {
                break;
            };
            // `notify_one` keeps a permit if the task is not waiting yet: never missed.
            oldest.notify_one();
            state.evicted_total += 1;
        }
        let number = state.next_ticket;
        state.next_ticket += 1;
        state.pending.insert(number, evicted.clone());
        debug_assert!(state.pending.len() <= self.pending_max);
        PendingTicket {
            admission: self.clone(),
            number,
            evicted,
        }
    }

    /// Connections now pending.
    pub fn pending(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pending
            .len()
    }

    /// Connections evicted since start.
    pub fn evicted_total(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .evicted_total
    }
}

impl PendingTicket {
    /// Completes when a newer connection evicted this one: close it.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for PendingTicket {
    fn drop(&mut self) {
        let mut state = self
            .admission
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.pending.remove(&self.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_pending_connection_is_evicted_and_a_finished_one_frees_its_place() {
        let admission = Admission::new(2);
        let first = admission.admit();
        let second = admission.admit();
        assert_eq!(admission.pending(), 2);
        let third = admission.admit();
        assert_eq!(admission.pending(), 2);
        assert_eq!(admission.evicted_total(), 1);
        // The first was told (even though it was not waiting yet); the others were not.
        tokio::time::timeout(std::time::Duration::from_secs(1), first.evicted())
            .await
            .expect("the oldest is evicted");
        drop(first);
        assert_eq!(
            admission.pending(),
            2,
            "an evicted ticket's drop frees nothing twice"
        );
        drop(second);
        assert_eq!(admission.pending(), 1);
        let _fourth = admission.admit();
        assert_eq!(admission.evicted_total(), 1, "room was free: nobody evicted");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), third.evicted())
                .await
                .is_err(),
            "the third was never evicted"
        );
    }
}
