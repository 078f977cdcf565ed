//! `--force-new-cluster`: the disaster path. A survivor of a cluster that lost its quorum
//! for good (most members' disks gone) becomes the only voter of the same cluster, with
//! everything in its log, so the cluster can serve again and the others can rejoin as new
//! incarnations (`crate::join`) once their data dirs are wiped.
//!
//! How (etcd's `--force-new-cluster` does the same to its WAL): before Raft starts, a
//! configuration entry naming this node as the only voter is appended after the last
//! entry, under a term above every term the node has seen, and the commit index is set to
//! it. Everything in the survivor's log becomes committed, including entries that were
//! never committed before: that is the price of the disaster path, and why it is never
//! automatic. The members left out must not come back with their old data (their logs may
//! conflict): wipe them, and they join as new incarnations.

use raft::{ConfState, Entry, EntryPayload, HardState, NodeId};
use tracing::{error, warn};

use crate::bootstrap::StartupError;
use crate::storage::{Recovered, Storage, StorageError};

/// Rewrites `recovered` (and makes it durable in `storage`) so that `own_id` is the only
/// voter, every entry of its log committed. Refuses a node without Raft state: there is
/// nothing to recover a cluster from.
pub fn force_new_cluster<S: Storage>(
    storage: &mut S,
    own_id: NodeId,
    recovered: Option<Recovered>,
) -> Result<Recovered, StartupError> {
    let Some(mut recovered) = recovered else {
        return Err(StartupError::Storage(StorageError::Corrupt(
            "--force-new-cluster needs a survivor's data dir (this one holds no Raft state)".to_string(),
        )));
    };
    let state = &mut recovered.raft;
    if latest_conf(state).is_some_and(|conf| conf == ConfState::with_voters([own_id])) {
        // A restart with the flag still set: forcing again would only bump the term.
        warn!(
            id = own_id,
            "--force-new-cluster: already the only voter; nothing to force (remove the flag)"
        );
        return Ok(recovered);
    }
    let (last_index, last_term) = match (state.entries.last(), &state.snapshot) {
        (Some(entry), _) => (entry.index, entry.term),
        (None, Some(snapshot)) => (snapshot.meta.index, snapshot.meta.term),
        (None, None) => (0, 0),
    };
    let term = state.hard_state.term.max(last_term) + 1;
    let entry = Entry {
        term,
        index: last_index + 1,
        payload: EntryPayload::Config(ConfState::with_voters([own_id])),
    };
    let hard_state = HardState {
        term,
        vote: Some(own_id),
        commit: entry.index,
    };
    // Durable before Raft starts: a crash now restarts into the same forced state.
    storage.persist(None, std::slice::from_ref(&entry), Some(hard_state))?;
    error!(
        id = own_id,
        term,
        index = entry.index,
        previous_commit = state.hard_state.commit,
        "--force-new-cluster: this node is now the only voter of its cluster, and every entry of its \
         log through {last_index} is committed; wipe the other members' data dirs before they start \
         again (they rejoin as new incarnations)"
    );
    state.entries.push(entry);
    state.hard_state = hard_state;
    Ok(recovered)
}

/// The configuration in force at the end of the recovered log.
fn latest_conf(state: &raft::RestartState) -> Option<ConfState> {
    let from_log = state.entries.iter().rev().find_map(|entry| match &entry.payload {
        EntryPayload::Config(conf) => Some(conf.clone()),
        _ => None,
    });
    from_log.or_else(|| {
        state
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.meta.conf_state.clone())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use raft::{Config, Raft, RestartState, Role};

    use super::*;
    use crate::storage::memory_store::MemoryStore;

    #[test]
    fn a_survivor_becomes_the_only_voter_with_its_whole_log_committed() {
        let entries: Vec<Entry> = (1..=3)
            .map(|index| Entry {
                term: 2,
                index,
                payload: if index == 1 {
                    EntryPayload::Config(ConfState::with_voters([1, 2, 3]))
                } else {
                    EntryPayload::Normal(Arc::from(vec![index as u8]))
                },
            })
            .collect();
        let recovered = Recovered {
            raft: RestartState {
                hard_state: HardState {
                    term: 4,
                    vote: Some(3),
                    commit: 2,
                },
                snapshot: None,
                entries: entries.clone(),
                applied: 2,
            },
            sessions: Vec::new(),
        };
        let mut storage = MemoryStore::default();
        storage
            .persist(None, &entries, Some(recovered.raft.hard_state))
            .expect("persists");
        let forced = force_new_cluster(&mut storage, 2, Some(recovered)).expect("forced");
        assert_eq!(forced.raft.hard_state.term, 5, "above every term seen");
        assert_eq!(forced.raft.hard_state.commit, 4);
        let durable = storage.recover().expect("recovers").expect("has state");
        assert_eq!(
            durable.raft.entries.len(),
            4,
            "the configuration entry is durable"
        );
        assert_eq!(durable.raft.hard_state, forced.raft.hard_state);
        let again = force_new_cluster(&mut storage, 2, Some(forced.clone())).expect("forced again");
        assert_eq!(
            again.raft.hard_state, forced.raft.hard_state,
            "a second force changes nothing"
        );
        let mut raft = Raft::restart(Config::new(2), forced.raft).expect("restarts");
        assert_eq!(raft.conf_state().voters.iter().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(raft.committed(), 4, "the whole log is committed");
        for _ in 0..100 {
            raft.tick();
            if raft.has_ready() {
                let _ = raft.ready();
                raft.advance();
            }
            if raft.role() == Role::Leader {
                return;
            }
        }
        panic!("the only voter never led");
    }

    #[test]
    fn a_node_without_state_cannot_force_a_cluster() {
        let error = force_new_cluster(&mut MemoryStore::default(), 1, None).expect_err("nothing to force");
        assert!(error.to_string().contains("survivor"), "{error}");
    }
}
