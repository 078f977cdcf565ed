use super::*;
use crate::identity::Founder;
use crate::kv::command::KvBody;
use crate::kv::state_machine::StateMachine;
use crate::storage::memory_store::MemoryStore;
use raft::{Entry, EntryPayload};
use std::sync::Arc;

fn record(address: &str, incarnation: Option<u64>) -> MemberRecord {
    MemberRecord {
        peer_address: address.to_string(),
        client_address: format!("{address}-client"),
        incarnation,
    }
}

#[test]
fn records_round_trip_through_the_state_machine_and_are_system_keys() {
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    let command = record_command(4, &record("d:7001", Some(44)), 1_000);
    let KvBody::Write { command: write, .. } = &command.body else {
        panic!("a record is written, not a session: {command:?}");
    };
    assert!(is_system_key(write.key()));
    assert!(
        !is_system_key(b"raftkv/members"),
        "only the \\0 prefix is reserved"
    );
    let entry = Entry {
        index: 1,
        term: 1,
        payload: EntryPayload::Normal(Arc::from(command.encode())),
    };
    let (batch, _) = machine.apply(&store, &[entry]).expect("applies");
    store.apply(batch).expect("stores");
    let records = load_records(&store).expect("loads");
    assert_eq!(records, BTreeMap::from([(4, record("d:7001", Some(44)))]));
    assert!(
        machine.cached_result(SYSTEM_SESSION).is_none(),
        "no session is kept for it"
    );
}

#[test]
fn the_directory_prefers_records_to_seeds_and_binds_founders_incarnations() {
    let seeds = BTreeMap::from([
        (1, "a:1".to_string()),
        (2, "b:1".to_string()),
        (3, "c:1".to_string()),
    ]);
    let membership = ClusterMembership::found(
        "blue",
        vec![
            Founder {
                node_id: 1,
                incarnation: 11,
            },
            Founder {
                node_id: 2,
                incarnation: 22,
            },
        ],
    );
    let mut directory = PeerDirectory::new(seeds, Some(&membership));
    directory.records.insert(2, record("b-new:1", Some(23)));
    directory.records.insert(4, record("d:1", None));
    let mut conf = ConfState::with_voters([1, 2, 3]);
    conf.learners.insert(4);
    conf.learners.insert(5);
    let peers = directory.peers(&conf, 1);
    assert_eq!(
        peers.keys().copied().collect::<Vec<_>>(),
        [2, 3, 4, 5],
        "every member but itself"
    );
    assert_eq!(peers[&2].address.as_deref(), Some("b-new:1"));
    assert_eq!(peers[&2].incarnation, Some(23), "the record replaced the founder");
    assert_eq!(peers[&3].incarnation, None, "not a founder, no record");
    assert_eq!(peers[&4].address.as_deref(), Some("d:1"));
    assert_eq!(peers[&5].address, None, "known member, no address yet");
    assert_eq!(directory.incarnation(1), Some(11), "a founder without a record");
    assert_eq!(
        directory.seed_disagreements(),
        vec![(2, "b:1".to_string(), "b-new:1".to_string())]
    );
}
