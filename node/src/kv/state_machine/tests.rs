//! The state machine against hand-built logs: sessions, expiry, eviction, clocks, data size.

use std::sync::Arc;

use super::*;
use crate::storage::memory_store::MemoryStore;

const LIMITS: SessionLimits = SessionLimits {
    timeout_millis: 1_000,
    sessions_max: 2,
    cached_bytes_max: 1024,
};

fn entry(index: Index, at_millis: u64, body: KvBody) -> Entry {
    let data = KvCommand { at_millis, body }.encode();
    Entry {
        index,
        term: 1,
        payload: EntryPayload::Normal(Arc::from(data)),
    }
}

fn open(index: Index, at_millis: u64, client_id: u64) -> Entry {
    open_with(index, at_millis, client_id, LIMITS)
}

fn open_with(index: Index, at_millis: u64, client_id: u64, limits: SessionLimits) -> Entry {
    entry(index, at_millis, KvBody::OpenSession { client_id, limits })
}

/// A write that asks for the key's value before it (`return_prior`).
fn write(index: Index, at_millis: u64, client_id: u64, sequence: u64, command: Command) -> Entry {
    write_asking(index, at_millis, (client_id, sequence), command, true)
}

fn write_asking(
    index: Index,
    at_millis: u64,
    (client_id, sequence): (u64, u64),
    command: Command,
    return_prior: bool,
) -> Entry {
    let session = Session { client_id, sequence };
    entry(
        index,
        at_millis,
        KvBody::Write {
            session,
            command,
            return_prior,
        },
    )
}

fn put(key: &str, value: &str) -> Command {
    Command::Put {
        key: key.into(),
        value: value.into(),
    }
}

fn apply(machine: &mut StateMachine, store: &mut MemoryStore, entries: &[Entry]) -> Vec<AppliedWrite> {
    let (batch, outcomes) = machine.apply(store, entries).expect("applies");
    store.apply(batch).expect("stores");
    outcomes
}

fn expired(outcome: &AppliedWrite) -> bool {
    matches!(&outcome.result, Err(reply) if reply.kind == ErrorKind::SessionExpired)
}

#[test]
fn a_retried_write_applies_once_and_returns_the_first_result() {
    // Thesis §6.3: the duplicate's result comes from the session, not a second apply.
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    apply(
        &mut machine,
        &mut store,
        &[open(1, 0, 7), write(2, 0, 7, 1, put("k", "a"))],
    );
    let cas = Command::CompareAndSwap {
        key: "k".into(),
        expected: Some("a".into()),
        new_value: Some("b".into()),
    };
    let first = apply(&mut machine, &mut store, &[write(3, 1, 7, 2, cas.clone())]);
    let retry = apply(&mut machine, &mut store, &[write(4, 2, 7, 2, cas)]);
    assert_eq!(first[0].result, retry[0].result);
    assert_eq!(
        first[0].result,
        Ok(Applied::Written(WriteResult::CompareAndSwap {
            swapped: true,
            current: Prior::Value("a".into())
        }))
    );
    assert_eq!(store.get(b"k").expect("reads"), Some(b"b".to_vec()));
    let stale = apply(&mut machine, &mut store, &[write(5, 3, 7, 1, put("k", "z"))]);
    assert!(expired(&stale[0]));
    assert_eq!(store.get(b"k").expect("reads"), Some(b"b".to_vec()));
}

#[test]
fn a_record_keeps_what_the_retry_must_answer_not_the_value_it_replaced() {
    // Two sessions overwrite 1,000-byte values, against a cache bound of 1,024 bytes.
    // Not asked for the values, their records hold none: neither is evicted, and each
    // retry is answered from its record (the value's length, never a second apply).
    // Asked for them, the records would hold 2,000 bytes and the older be evicted.
    let big = "v".repeat(1_000);
    for return_prior in [false, true] {
        let mut store = MemoryStore::default();
        let mut machine = StateMachine::new([]);
        let entries = [
            open(1, 0, 10),
            open(2, 0, 20),
            write_asking(3, 0, (10, 1), put("a", &big), false),
            write_asking(4, 0, (20, 1), put("b", &big), false),
            write_asking(5, 1, (10, 2), put("a", "x"), return_prior),
            write_asking(6, 2, (20, 2), put("b", "y"), return_prior),
            write_asking(7, 3, (20, 3), put("a", "z"), false),
            // 10's retry of its write 2, after 20 overwrote the key.
            write_asking(8, 4, (10, 2), put("a", "x"), return_prior),
        ];
        let outcomes = apply(&mut machine, &mut store, &entries);
        assert_eq!(store.get(b"a").expect("reads"), Some(b"z".to_vec()));
        if return_prior {
            assert!(expired(&outcomes[7]), "{:?}", outcomes[7]);
            assert_eq!(machine.sessions_open(), 1);
        } else {
            let answer = Ok(Applied::Written(WriteResult::Done {
                previous: Prior::Present { value_bytes: 1_000 },
            }));
            assert_eq!(outcomes[4].result, answer);
            assert_eq!(outcomes[7].result, answer);
            assert_eq!((machine.sessions_open(), machine.sessions_bytes), (2, 0));
        }
    }
}

#[test]
fn over_the_byte_bound_only_a_session_that_caches_bytes_is_evicted() {
    let limits = SessionLimits {
        sessions_max: 10,
        ..LIMITS
    };
    let big = "v".repeat(1_000);
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    let outcomes = apply(
        &mut machine,
        &mut store,
        &[
            // 5 is closest to expiry and caches nothing: evicting it frees no byte.
            open_with(1, 0, 5, limits),
            open_with(2, 1, 10, limits),
            open_with(3, 1, 20, limits),
            write(4, 1, 10, 1, put("a", &big)),
            write(5, 2, 10, 2, put("a", "x")),
            write(6, 3, 20, 1, put("b", &big)),
            write(7, 4, 20, 2, put("b", "y")),
            write(8, 5, 5, 1, put("c", "z")),
            write(9, 6, 10, 2, put("a", "x")),
        ],
    );
    assert!(outcomes[7].result.is_ok(), "{:?}", outcomes[7]);
    assert!(expired(&outcomes[8]), "{:?}", outcomes[8]);
    assert_eq!(store.get(b"a").expect("reads"), Some(b"x".to_vec()));
    assert_eq!(machine.sessions_open(), 2);
}

#[test]
fn a_write_of_a_session_never_opened_is_refused_not_applied() {
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    let outcomes = apply(&mut machine, &mut store, &[write(1, 0, 7, 1, put("k", "a"))]);
    assert!(expired(&outcomes[0]));
    assert_eq!(store.get(b"k").expect("reads"), None);
}

#[test]
fn a_retry_after_its_session_expired_is_refused_not_applied_again() {
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    apply(
        &mut machine,
        &mut store,
        &[open(1, 0, 7), write(2, 500, 7, 1, put("k", "a"))],
    );
    // Another client's writes move the log's clock past 500 + 1000; 7's retry of
    // its write comes after one of them overwrote the key.
    let outcomes = apply(
        &mut machine,
        &mut store,
        &[
            open(3, 1_400, 8),
            write(4, 1_400, 8, 1, put("k", "b")),
            write(5, 1_501, 8, 2, put("other", "x")),
            write(6, 1_600, 7, 1, put("k", "a")),
        ],
    );
    assert!(expired(&outcomes[3]), "{:?}", outcomes[3]);
    assert_eq!(store.get(b"k").expect("reads"), Some(b"b".to_vec()));
    assert_eq!(machine.sessions_open(), 1);
}

#[test]
fn a_retry_after_its_session_was_evicted_is_refused_not_applied_again() {
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    let outcomes = apply(
        &mut machine,
        &mut store,
        &[
            open(1, 0, 10),
            write(2, 0, 10, 1, put("k", "a")),
            open(3, 1, 20),
            write(4, 1, 20, 1, put("k", "b")),
            // A third session makes room by evicting the one closest to expiry: 10.
            open(5, 2, 30),
            write(6, 3, 10, 1, put("k", "a")),
        ],
    );
    assert!(expired(&outcomes[5]));
    assert_eq!(store.get(b"k").expect("reads"), Some(b"b".to_vec()));
    let image = store.snapshot_image().expect("image");
    assert_eq!(
        image.sessions.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [20, 30]
    );
}

#[test]
fn the_clock_never_goes_back_and_a_restarted_replica_decides_as_the_others() {
    // Replica A applies everything at once; replica B restarts half way (its
    // machine rebuilt from what it stored). The second leader's clock is behind the
    // first one's (800 after 900): the log's clock stays at 900, so session 7's
    // write at "800" keeps it until 1,900 and it is alive at 1,850 on both. Were the
    // clock taken as it comes, or not kept across the restart, 7 would expire at
    // 1,800 on B and its write 6 be refused there but applied on A.
    let entries = [
        open(1, 0, 7),
        write(2, 900, 7, 1, put("k", "a")),
        open(3, 800, 8),
        write(4, 800, 7, 2, put("k", "b")),
        write(5, 1_850, 8, 1, put("x", "1")),
        write(6, 1_850, 7, 3, put("k", "c")),
        write(7, 2_900, 8, 2, put("x", "2")),
    ];
    let mut store_a = MemoryStore::default();
    let mut machine_a = StateMachine::new([]);
    let outcomes_a = apply(&mut machine_a, &mut store_a, &entries);
    let mut store_b = MemoryStore::default();
    let mut machine_b = StateMachine::new([]);
    let mut outcomes_b = apply(&mut machine_b, &mut store_b, &entries[..3]);
    let mut machine_b = StateMachine::new(store_b.snapshot_image().expect("image").sessions);
    outcomes_b.extend(apply(&mut machine_b, &mut store_b, &entries[3..]));
    assert_eq!(outcomes_a, outcomes_b);
    assert!(outcomes_a[5].result.is_ok(), "{:?}", outcomes_a[5]);
    assert!(expired(&outcomes_a[6]), "{:?}", outcomes_a[6]);
    assert_eq!(store_a.get(b"k").expect("reads"), Some(b"c".to_vec()));
    assert_eq!(
        store_a.snapshot_image().expect("image"),
        store_b.snapshot_image().expect("image")
    );
}

#[test]
fn the_data_size_counts_every_stored_pair_and_survives_a_restart() {
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    let cas = |expected: &str, new_value: Option<&str>| Command::CompareAndSwap {
        key: "k".into(),
        expected: Some(expected.into()),
        new_value: new_value.map(Into::into),
    };
    apply(
        &mut machine,
        &mut store,
        &[
            open(1, 0, 7),
            write(2, 0, 7, 1, put("k", "aaaa")),
            write(3, 0, 7, 2, put("kk", "b")),
        ],
    );
    assert_eq!(machine.data_bytes(&store).expect("size"), 5 + 3);
    apply(
        &mut machine,
        &mut store,
        &[
            write(4, 0, 7, 3, put("k", "a")),
            write(5, 0, 7, 4, cas("nope", Some("zzzzzz"))),
            write(6, 0, 7, 5, Command::Delete { key: "kk".into() }),
        ],
    );
    assert_eq!(machine.data_bytes(&store).expect("size"), 2);
    let mut restarted = StateMachine::new(store.snapshot_image().expect("image").sessions);
    assert_eq!(restarted.data_bytes(&store).expect("size"), 2);
    apply(&mut restarted, &mut store, &[write(7, 0, 7, 6, cas("a", None))]);
    assert_eq!(restarted.data_bytes(&store).expect("size"), 0);
}

#[test]
fn an_entry_of_another_log_format_stops_apply() {
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    let old = Entry {
        index: 1,
        term: 1,
        payload: EntryPayload::Normal(Arc::from(vec![0x87, 0x01, 0x01, 0x00, 0x01, b'k', 0x01, b'v'])),
    };
    let error = machine.apply(&store, &[old]).expect_err("refused");
    assert!(error.to_string().contains("log format 135"), "{error}");
    assert_eq!(store.get(b"k").expect("reads"), None);
    let _ = &mut store;
}

#[test]
fn the_key_cache_changes_no_outcome_and_no_stored_byte() {
    // Two replicas apply the same random log, one with its key cache, one that forgets
    // the cache before every batch (so it reads everything from the store, as before
    // the cache). Every batch, every answer and the final stores must be identical:
    // puts, deletes and swaps, with and without the replaced value, over a few keys,
    // with values of up to 1 MB so that the history passes its byte bound and the
    // compaction takes event sizes from the cache.
    let mut rng = raft::Prng::new(0x5eed_cace);
    let (mut cached_store, mut plain_store) = (MemoryStore::default(), MemoryStore::default());
    let (mut cached, mut plain) = (StateMachine::new([]), StateMachine::new([]));
    let limits = SessionLimits {
        sessions_max: 100,
        cached_bytes_max: 64 * 1024 * 1024,
        timeout_millis: 1_000_000,
    };
    let mut log = vec![open_with(1, 0, 7, limits)];
    let mut index = 1;
    for sequence in 1..=600u64 {
        index += 1;
        let key = format!("k{}", rng.below(6));
        let value_bytes = if rng.below(4) == 0 {
            1_000_000
        } else {
            rng.below(64) as usize
        };
        let value = vec![b'a' + (sequence % 26) as u8; value_bytes];
        let command = match rng.below(4) {
            0 => Command::Delete { key: key.into() },
            1 => Command::CompareAndSwap {
                key: key.into(),
                expected: if rng.below(2) == 0 {
                    None
                } else {
                    Some(value.clone())
                },
                new_value: Some(value),
            },
            _ => Command::Put {
                key: key.into(),
                value,
            },
        };
        log.push(write_asking(
            index,
            sequence,
            (7, sequence),
            command,
            rng.below(3) == 0,
        ));
    }
    let mut start = 0;
    let mut compacted_any = false;
    while start < log.len() {
        let end = (start + 1 + rng.below(5) as usize).min(log.len());
        plain.cache.clear();
        let (cached_batch, cached_outcomes) = cached.apply(&cached_store, &log[start..end]).expect("applies");
        let (plain_batch, plain_outcomes) = plain.apply(&plain_store, &log[start..end]).expect("applies");
        assert_eq!(cached_outcomes, plain_outcomes, "entries {start}..{end}");
        assert_eq!(cached_batch, plain_batch, "entries {start}..{end}");
        compacted_any |= cached_batch
            .kv_writes
            .iter()
            .any(|(key, value)| key.starts_with(revisions::EVENT_KEY_PREFIX) && value.is_none());
        cached_store.apply(cached_batch).expect("stores");
        plain_store.apply(plain_batch).expect("stores");
        start = end;
    }
    assert!(compacted_any, "the history never passed its byte bound");
    assert!(cached.cache.keys_cached() > 0, "the cache was never used");
    assert_eq!(
        cached_store.snapshot_image().expect("reads"),
        plain_store.snapshot_image().expect("reads")
    );
}
