//! The watch checker finds each way a stream or the history can be wrong, and passes a
//! right one.

use std::collections::BTreeMap;

use wire::{Event, EventKind, KeyValue};

use super::*;
use crate::history::{Op, OpResult, Operation};

fn put(revision: u64, key: &str, value: &str) -> Event {
    Event {
        kind: EventKind::Put,
        kv: KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        },
    }
}

fn delete(revision: u64, key: &str) -> Event {
    Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.into(),
            value: Vec::new(),
            create_revision: 1,
            mod_revision: revision,
            version: 0,
        },
    }
}

fn history() -> Vec<Event> {
    vec![
        put(1, "k1", "a"),
        put(2, "k2", "b"),
        delete(3, "k1"),
        put(4, "k1", "c"),
    ]
}

fn final_kv() -> BTreeMap<Vec<u8>, Vec<u8>> {
    BTreeMap::from([(b"k1".to_vec(), b"c".to_vec()), (b"k2".to_vec(), b"b".to_vec())])
}

fn watcher(prefix: &str, events: Vec<Event>, next_revision: u64) -> WatchRecord {
    WatchRecord {
        prefix: prefix.into(),
        from_revision: 1,
        events,
        next_revision,
        errors: Vec::new(),
    }
}

fn acknowledged_put(key: &str, value: &str) -> Operation {
    Operation::completed(
        1,
        Op::Put {
            key: key.into(),
            value: value.into(),
        },
        0,
        1,
        OpResult::PutDone,
    )
}

#[test]
fn a_complete_stream_of_a_consistent_history_passes() {
    let k1 = watcher(
        "k1",
        vec![put(1, "k1", "a"), delete(3, "k1"), put(4, "k1", "c")],
        5,
    );
    let all = watcher("", history(), 5);
    // A watcher that stopped early is checked up to where it was answered.
    let partial = watcher("", history()[..2].to_vec(), 3);
    let findings = check(
        &history(),
        Ok(()),
        &final_kv(),
        &[k1, all, partial],
        &[acknowledged_put("k2", "b")],
    );
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn a_gap_a_repeat_or_a_reordering_in_a_stream_is_found() {
    let gap = watcher("k1", vec![put(1, "k1", "a"), put(4, "k1", "c")], 5);
    let repeat = watcher(
        "k1",
        vec![
            put(1, "k1", "a"),
            put(1, "k1", "a"),
            delete(3, "k1"),
            put(4, "k1", "c"),
        ],
        5,
    );
    let reordered = watcher(
        "k1",
        vec![delete(3, "k1"), put(1, "k1", "a"), put(4, "k1", "c")],
        5,
    );
    let outside_prefix = watcher(
        "k1",
        vec![
            put(1, "k1", "a"),
            put(2, "k2", "b"),
            delete(3, "k1"),
            put(4, "k1", "c"),
        ],
        5,
    );
    for stream in [gap, repeat, reordered, outside_prefix] {
        let findings = check(
            &history(),
            Ok(()),
            &final_kv(),
            std::slice::from_ref(&stream),
            &[],
        );
        assert_eq!(findings.len(), 1, "{stream:?}: {findings:?}");
    }
}

#[test]
fn a_history_with_a_gap_a_double_apply_or_a_lost_write_is_found() {
    let mut gapped = history();
    gapped.remove(1);
    assert!(!check(&gapped, Ok(()), &final_kv(), &[], &[]).is_empty());

    let twice = vec![put(1, "k1", "a"), put(2, "k1", "a")];
    let kv = BTreeMap::from([(b"k1".to_vec(), b"a".to_vec())]);
    let findings = check(&twice, Ok(()), &kv, &[], &[]);
    assert!(
        findings.iter().any(|finding| finding.contains("applied twice")),
        "{findings:?}"
    );

    let lost = check(
        &history(),
        Ok(()),
        &final_kv(),
        &[],
        &[acknowledged_put("k2", "z")],
    );
    assert!(
        lost.iter().any(|finding| finding.contains("not in the history")),
        "{lost:?}"
    );

    let mut other_map = final_kv();
    other_map.remove(b"k2".as_slice());
    assert!(!check(&history(), Ok(()), &other_map, &[], &[]).is_empty());

    let disagree = check(
        &history(),
        Err("node 2 differs at 3".into()),
        &final_kv(),
        &[],
        &[],
    );
    assert_eq!(disagree.len(), 1, "{disagree:?}");
}
