//! The checker against hand-written histories; generated ones are in `generated`.
use super::{check, check_with_budget, CheckResult, DEFAULT_STEP_BUDGET};
use crate::history::{History, Op, OpResult, Operation, Outcome};

/// Generated histories: random sequential executions, corrupted ones, a brute-force
/// cross-check and timings.
mod generated;

const KEY: &[u8] = b"k";

fn value(text: Option<&str>) -> Option<Vec<u8>> {
    text.map(|text| text.as_bytes().to_vec())
}

fn put(client: u64, invoked: u64, returned: u64, new: &str, previous: Option<&str>) -> Operation {
    Operation::completed(
        client,
        Op::Put {
            key: KEY.to_vec(),
            value: new.as_bytes().to_vec(),
        },
        invoked,
        returned,
        OpResult::Put {
            previous: value(previous),
        },
    )
}

fn get(client: u64, invoked: u64, returned: u64, read: Option<&str>) -> Operation {
    Operation::completed(
        client,
        Op::Get { key: KEY.to_vec() },
        invoked,
        returned,
        OpResult::Get { value: value(read) },
    )
}

fn delete(client: u64, invoked: u64, returned: u64, previous: Option<&str>) -> Operation {
    Operation::completed(
        client,
        Op::Delete { key: KEY.to_vec() },
        invoked,
        returned,
        OpResult::Delete {
            previous: value(previous),
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn cas(
    client: u64,
    invoked: u64,
    returned: u64,
    expected: Option<&str>,
    new: Option<&str>,
    swapped: bool,
    current: Option<&str>,
) -> Operation {
    Operation::completed(
        client,
        Op::Cas {
            key: KEY.to_vec(),
            expected: value(expected),
            new: value(new),
        },
        invoked,
        returned,
        OpResult::Cas {
            swapped,
            current: value(current),
        },
    )
}

fn lost_put(client: u64, invoked: u64, new: &str) -> Operation {
    Operation::indeterminate(
        client,
        Op::Put {
            key: KEY.to_vec(),
            value: new.as_bytes().to_vec(),
        },
        invoked,
    )
}

fn assert_linearizable(history: &[Operation]) {
    let result = check(history);
    assert_eq!(result, CheckResult::Linearizable, "{}", explanation(&result));
}

fn assert_not_linearizable(history: &[Operation]) -> String {
    match check(history) {
        CheckResult::NotLinearizable { key, explanation } => {
            assert_eq!(key, KEY);
            println!("{explanation}");
            explanation
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

fn explanation(result: &CheckResult) -> &str {
    match result {
        CheckResult::NotLinearizable { explanation, .. } => explanation,
        _ => "",
    }
}

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&[]);
}

#[test]
fn sequential_history_is_linearizable() {
    assert_linearizable(&[
        get(1, 0, 1, None),
        put(1, 2, 3, "a", None),
        get(2, 4, 5, Some("a")),
        put(2, 6, 7, "b", Some("a")),
        get(1, 8, 9, Some("b")),
    ]);
}

#[test]
fn concurrent_put_and_get_linearize_in_either_order() {
    // The get overlaps the put: it may see the old value or the new one.
    assert_linearizable(&[put(1, 0, 10, "a", None), get(2, 5, 15, None)]);
    assert_linearizable(&[put(1, 0, 10, "a", None), get(2, 5, 15, Some("a"))]);
    // Two overlapping puts in either order, as their answers say.
    assert_linearizable(&[
        put(1, 0, 10, "a", Some("b")),
        put(2, 0, 10, "b", None),
        get(3, 11, 12, Some("a")),
    ]);
}

#[test]
fn stale_read_after_a_completed_write_is_not_linearizable() {
    let explanation = assert_not_linearizable(&[
        put(1, 0, 10, "a", None),
        put(1, 20, 30, "b", Some("a")),
        get(2, 40, 50, Some("a")),
    ]);
    // The prefix is the two puts, the blocked op the stale get.
    assert!(explanation.contains("has 2 operations"), "{explanation}");
    assert!(
        explanation.contains("#2 client 2: get \"k\" -> \"a\""),
        "{explanation}"
    );
    assert!(explanation.contains("the model answers: \"b\""), "{explanation}");
}

#[test]
fn equal_times_are_concurrent() {
    // The put returns when the get is invoked: either order is allowed.
    assert_linearizable(&[put(1, 0, 10, "a", None), get(2, 10, 20, None)]);
}

#[test]
fn read_of_a_value_never_written_is_not_linearizable() {
    assert_not_linearizable(&[put(1, 0, 10, "a", None), get(2, 0, 10, Some("z"))]);
}

#[test]
fn reads_in_an_order_inconsistent_with_the_writes_are_not_linearizable() {
    // a then b were written (b saw a); one client reads b, then later a.
    assert_not_linearizable(&[
        put(1, 0, 100, "a", None),
        put(2, 0, 100, "b", Some("a")),
        get(3, 10, 20, Some("b")),
        get(3, 30, 40, Some("a")),
    ]);
    // The same reads in the other order are fine.
    assert_linearizable(&[
        put(1, 0, 100, "a", None),
        put(2, 0, 100, "b", Some("a")),
        get(3, 10, 20, Some("a")),
        get(3, 30, 40, Some("b")),
    ]);
}

#[test]
fn successful_cas_must_precede_what_saw_its_value() {
    assert_linearizable(&[
        put(1, 0, 10, "a", None),
        // Concurrent: the put of c saw b, so the cas went first.
        cas(2, 20, 40, Some("a"), Some("b"), true, Some("a")),
        put(3, 20, 40, "c", Some("b")),
        get(1, 50, 60, Some("c")),
    ]);
    // A cas that claims success but found another value is impossible.
    assert_not_linearizable(&[
        put(1, 0, 10, "a", None),
        cas(2, 20, 40, Some("x"), Some("b"), true, Some("a")),
    ]);
    // A failed cas changes nothing.
    assert_linearizable(&[
        put(1, 0, 10, "a", None),
        cas(2, 20, 40, Some("x"), Some("b"), false, Some("a")),
        get(1, 50, 60, Some("a")),
    ]);
    // The cas swapped a to b, yet a later read sees a.
    assert_not_linearizable(&[
        put(1, 0, 10, "a", None),
        cas(2, 20, 40, Some("a"), Some("b"), true, Some("a")),
        get(1, 50, 60, Some("a")),
    ]);
    // Cas on an absent key, and a cas that deletes.
    assert_linearizable(&[
        cas(1, 0, 10, None, Some("a"), true, None),
        cas(2, 20, 30, Some("a"), None, true, Some("a")),
        get(1, 40, 50, None),
    ]);
}

#[test]
fn indeterminate_write_may_have_happened() {
    assert_linearizable(&[
        put(1, 0, 10, "a", None),
        lost_put(2, 20, "b"),
        get(1, 100, 110, Some("b")),
        get(1, 120, 130, Some("b")),
    ]);
    // Even long after its client gave up, and as the previous value of a later put.
    assert_linearizable(&[
        lost_put(2, 0, "b"),
        get(1, 100, 110, None),
        put(1, 120, 130, "c", Some("b")),
    ]);
}

#[test]
fn indeterminate_write_may_never_have_happened() {
    assert_linearizable(&[
        put(1, 0, 10, "a", None),
        lost_put(2, 20, "b"),
        get(1, 100, 110, Some("a")),
    ]);
}

#[test]
fn indeterminate_write_cannot_be_undone() {
    let explanation = assert_not_linearizable(&[
        put(1, 0, 10, "a", None),
        lost_put(2, 20, "b"),
        get(1, 100, 110, Some("b")),
        get(1, 120, 130, Some("a")),
    ]);
    assert!(explanation.contains("never returned"), "{explanation}");
}

#[test]
fn indeterminate_write_cannot_take_effect_before_its_invocation() {
    assert_not_linearizable(&[get(1, 0, 10, Some("b")), lost_put(2, 20, "b")]);
}

#[test]
fn delete_semantics() {
    assert_linearizable(&[
        put(1, 0, 10, "a", None),
        delete(1, 20, 30, Some("a")),
        get(2, 40, 50, None),
        delete(2, 60, 70, None),
        put(1, 80, 90, "b", None),
    ]);
    // A read after a completed delete sees nothing.
    assert_not_linearizable(&[
        put(1, 0, 10, "a", None),
        delete(1, 20, 30, Some("a")),
        get(2, 40, 50, Some("a")),
    ]);
    // Delete returns the previous value.
    assert_not_linearizable(&[put(1, 0, 10, "a", None), delete(1, 20, 30, None)]);
    // An indeterminate delete may have happened.
    assert_linearizable(&[
        put(1, 0, 10, "a", None),
        Operation::indeterminate(2, Op::Delete { key: KEY.to_vec() }, 20),
        get(1, 100, 110, None),
    ]);
}

#[test]
fn result_of_the_wrong_kind_is_not_linearizable() {
    let mut wrong = get(1, 0, 10, None);
    wrong.outcome = Outcome::Completed {
        returned: 10,
        result: OpResult::Put { previous: None },
    };
    assert_not_linearizable(&[wrong]);
}

#[test]
fn keys_are_checked_separately() {
    let other = |mut operation: Operation| {
        match &mut operation.op {
            Op::Put { key, .. } | Op::Get { key } | Op::Delete { key } | Op::Cas { key, .. } => {
                *key = b"other".to_vec()
            }
        }
        operation
    };
    // The same value names on two keys do not interfere.
    assert_linearizable(&[
        put(1, 0, 10, "a", None),
        other(put(2, 0, 10, "a", None)),
        other(get(2, 20, 30, Some("a"))),
        get(1, 20, 30, Some("a")),
    ]);
    match check(&[put(1, 0, 10, "a", None), other(get(2, 20, 30, Some("a")))]) {
        CheckResult::NotLinearizable { key, .. } => assert_eq!(key, b"other"),
        other => panic!("expected a violation on key other, got {other:?}"),
    }
}

#[test]
fn history_recorder_feeds_the_checker() {
    let mut history = History::new();
    let first = history.invoke(
        1,
        Op::Put {
            key: KEY.to_vec(),
            value: b"a".to_vec(),
        },
        0,
    );
    let lost = history.invoke(
        2,
        Op::Put {
            key: KEY.to_vec(),
            value: b"b".to_vec(),
        },
        1,
    );
    history.complete(first, 5, OpResult::Put { previous: None });
    let read = history.invoke(1, Op::Get { key: KEY.to_vec() }, 10);
    history.complete(
        read,
        11,
        OpResult::Get {
            value: value(Some("b")),
        },
    );
    assert_eq!(history.operations()[lost.0].outcome, Outcome::Indeterminate);
    assert_linearizable(history.operations());
}

/// Many concurrent reads that all succeed in any order: 2^n configurations to rule
/// out before the impossible read at the end is known to be impossible.
fn pathological(readers: u64) -> Vec<Operation> {
    let mut history: Vec<Operation> = (0..readers).map(|client| get(client, 0, 100, None)).collect();
    history.push(get(readers, 200, 300, Some("never written")));
    history
}

#[test]
fn tiny_budget_gives_unknown() {
    assert_eq!(
        check_with_budget(&pathological(14), 100),
        CheckResult::Unknown { key: KEY.to_vec() }
    );
    // With room to search, the same history is refuted.
    assert!(matches!(
        check_with_budget(&pathological(14), DEFAULT_STEP_BUDGET),
        CheckResult::NotLinearizable { .. }
    ));
}

fn put_done(client: u64, invoked: u64, returned: u64, new: &str) -> Operation {
    Operation::completed(
        client,
        Op::Put {
            key: KEY.to_vec(),
            value: new.as_bytes().to_vec(),
        },
        invoked,
        returned,
        OpResult::PutDone,
    )
}

#[test]
fn a_put_that_saw_nothing_is_placed_in_time_and_later_reads_must_see_it() {
    // It fits whatever it found, but not anywhere in time.
    assert_linearizable(&[
        put(1, 0, 1, "a", None),
        put_done(2, 2, 3, "b"),
        get(1, 4, 5, Some("b")),
    ]);
    assert_not_linearizable(&[
        put(1, 0, 1, "a", None),
        put_done(2, 2, 3, "b"),
        get(1, 4, 5, Some("a")),
    ]);
    // An indeterminate write before it may still be dropped.
    assert_linearizable(&[
        lost_put(3, 0, "x"),
        put_done(2, 1, 2, "b"),
        get(1, 3, 4, Some("b")),
    ]);
}
