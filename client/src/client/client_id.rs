//! Client ids for write sessions (Raft thesis §6.3). The cluster keeps one session per
//! client id, so two clients sharing an id would see each other's writes as duplicates:
//! ids must differ across processes and across clients of one process. No RNG crate is
//! used (the library must stay deterministic under madsim, where the clock is simulated),
//! so the id hashes the wall clock, the process id and a per-process counter.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Distinguishes clients created by one process within one clock tick.
static CLIENTS_CREATED: AtomicU64 = AtomicU64::new(0);

/// A fresh, non-zero client id.
pub(crate) fn generate_client_id() -> u64 {
    // A clock before 1970 only weakens uniqueness; the counter and pid still differ.
    let since_epoch_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    let created = CLIENTS_CREATED.fetch_add(1, Ordering::Relaxed);
    // `DefaultHasher::new()` has fixed keys: the same inputs give the same id, which
    // keeps simulations replayable; the inputs themselves make ids differ.
    let mut hasher = DefaultHasher::new();
    since_epoch_nanos.hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    created.hash(&mut hasher);
    // Zero is kept free so that a node may use it to mean "no session".
    hasher.finish().max(1)
}

/// The id a client takes after its session `previous` expired: derived from it (so a
/// simulation stays replayable), non-zero, and never `previous` itself.
pub(crate) fn next_client_id(previous: u64) -> u64 {
    let mut hasher = DefaultHasher::new();
    previous.hash(&mut hasher);
    "renewed".hash(&mut hasher);
    let next = hasher.finish().max(1);
    if next == previous {
        previous.wrapping_add(1).max(1)
    } else {
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_one_process_differ_and_are_not_zero() {
        let ids: std::collections::BTreeSet<u64> = (0..1000).map(|_| generate_client_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&0));
    }
}
