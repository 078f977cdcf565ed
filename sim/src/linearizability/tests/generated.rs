//! The checker on generated histories: linearizable by construction, or with exactly
//! one read corrupted; a brute-force cross-check on small ones; timings on large ones.

use std::collections::BTreeMap;
use std::time::Instant;

use super::*;

/// A history from a sequential execution: op `i` takes effect at `effect[i]`, strictly
/// increasing, and is invoked and returns within `JITTER` of it (each client
/// sequential). Such a history is linearizable by construction.
struct Generated {
    operations: Vec<Operation>,
    effect: Vec<u64>,
    /// (key, effect time, value overwritten) for each completed write that changed a
    /// present value.
    overwrites: Vec<(Vec<u8>, u64, Vec<u8>)>,
}

const JITTER: u64 = 200;

fn generate(seed: u64, count: usize, keys: u64, clients: u64, lost_per_mille: u64) -> Generated {
    let mut rng = raft::Prng::new(seed);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut free_at = vec![0u64; clients as usize];
    let mut generated = Generated {
        operations: Vec::with_capacity(count),
        effect: Vec::with_capacity(count),
        overwrites: Vec::new(),
    };
    let mut time = 0u64;
    let mut next_value = 0u64;
    while generated.operations.len() < count {
        time += 1 + rng.below(10);
        let client = rng.below(clients);
        let free = free_at[client as usize];
        if free >= time {
            continue;
        }
        let invoked = time - rng.below(JITTER.min(time - free));
        let returned = time + rng.below(JITTER);
        free_at[client as usize] = returned;
        let key = format!("key{}", rng.below(keys)).into_bytes();
        let current = model.get(&key).cloned();
        let mut fresh = || {
            next_value += 1;
            format!("v{next_value}").into_bytes()
        };
        let (op, result, after) = match rng.below(20) {
            0..=6 => {
                let new = fresh();
                let op = Op::Put {
                    key: key.clone(),
                    value: new.clone(),
                };
                (
                    op,
                    OpResult::Put {
                        previous: current.clone(),
                    },
                    Some(new),
                )
            }
            7..=13 => (
                Op::Get { key: key.clone() },
                OpResult::Get {
                    value: current.clone(),
                },
                current.clone(),
            ),
            14..=15 => (
                Op::Delete { key: key.clone() },
                OpResult::Delete {
                    previous: current.clone(),
                },
                None,
            ),
            _ => {
                let expected = if rng.below(2) == 0 {
                    current.clone()
                } else {
                    Some(fresh())
                };
                let new = if rng.below(5) == 0 { None } else { Some(fresh()) };
                let swapped = expected == current;
                let after = if swapped { new.clone() } else { current.clone() };
                let op = Op::Cas {
                    key: key.clone(),
                    expected,
                    new,
                };
                (
                    op,
                    OpResult::Cas {
                        swapped,
                        current: current.clone(),
                    },
                    after,
                )
            }
        };
        let lost = rng.below(1000) < lost_per_mille;
        // A lost op took effect or not, at random.
        let applied = !lost || rng.below(2) == 0;
        if applied {
            if let Some(previous) = current.as_ref().filter(|_| after != current) {
                if !lost {
                    generated.overwrites.push((key.clone(), time, previous.clone()));
                }
            }
            match after {
                Some(value) => model.insert(key, value),
                None => model.remove(&key),
            };
        }
        generated.operations.push(if lost {
            Operation::indeterminate(client, op, invoked)
        } else {
            Operation::completed(client, op, invoked, returned, result)
        });
        generated.effect.push(time);
    }
    generated
}

/// Makes one late read return a value that a write which completed before the read
/// began had already overwritten (values are unique, so it can never come back).
fn corrupt_one_read(generated: &mut Generated) -> usize {
    let count = generated.operations.len();
    for index in (count / 2..count).rev() {
        let operation = &generated.operations[index];
        let (Op::Get { key }, Outcome::Completed { result, .. }) = (&operation.op, &operation.outcome) else {
            continue;
        };
        let effect = generated.effect[index];
        let stale = generated
            .overwrites
            .iter()
            .rev()
            .find(|(written, at, old)| {
                written == key
                    && *at + 2 * JITTER < effect
                    && *result
                        != OpResult::Get {
                            value: Some(old.clone()),
                        }
            })
            .map(|(_, _, old)| old.clone());
        if let Some(stale) = stale {
            if let Outcome::Completed { result, .. } = &mut generated.operations[index].outcome {
                *result = OpResult::Get { value: Some(stale) };
            }
            return index;
        }
    }
    panic!("no read to corrupt");
}

#[test]
fn random_concurrent_histories_from_sequential_executions_are_linearizable() {
    for seed in 0..20 {
        let generated = generate(seed, 2_000, 3, 8, 50);
        let result = check(&generated.operations);
        assert_eq!(
            result,
            CheckResult::Linearizable,
            "seed {seed}: {}",
            explanation(&result)
        );
    }
}

#[test]
fn random_history_with_one_corrupted_read_is_not_linearizable() {
    for seed in 0..10 {
        let mut generated = generate(seed, 2_000, 3, 8, 0);
        let corrupted = corrupt_one_read(&mut generated);
        match check(&generated.operations) {
            CheckResult::NotLinearizable { explanation, .. } => {
                assert!(
                    explanation.contains(&format!("#{corrupted} ")),
                    "seed {seed}: {explanation}"
                );
            }
            other => panic!("seed {seed}: corrupted read #{corrupted} not found: {other:?}"),
        }
    }
}

/// The definition, by brute force: some order of all completed ops and some of the
/// indeterminate ones, respecting real time, that the sequential model accepts.
fn brute_force(history: &[Operation]) -> bool {
    fn returned(operation: &Operation) -> Option<u64> {
        match operation.outcome {
            Outcome::Completed { returned, .. } => Some(returned),
            Outcome::Indeterminate => None,
        }
    }
    fn apply(operation: &Operation, state: &Option<Vec<u8>>) -> Option<Option<Vec<u8>>> {
        let (after, result) = match &operation.op {
            Op::Put { value, .. } => (
                Some(value.clone()),
                OpResult::Put {
                    previous: state.clone(),
                },
            ),
            Op::Get { .. } => (state.clone(), OpResult::Get { value: state.clone() }),
            Op::Delete { .. } => (
                None,
                OpResult::Delete {
                    previous: state.clone(),
                },
            ),
            Op::Cas { expected, new, .. } => {
                let swapped = expected == state;
                let after = if swapped { new.clone() } else { state.clone() };
                (
                    after,
                    OpResult::Cas {
                        swapped,
                        current: state.clone(),
                    },
                )
            }
        };
        match &operation.outcome {
            // A put that saw nothing fits any state.
            Outcome::Completed {
                result: OpResult::PutDone,
                ..
            } => Some(after),
            Outcome::Completed { result: observed, .. } if *observed != result => None,
            _ => Some(after),
        }
    }
    fn search(history: &[Operation], placed: u32, state: &Option<Vec<u8>>) -> bool {
        let done = |i: usize| placed & (1 << i) != 0;
        if (0..history.len()).all(|i| done(i) || returned(&history[i]).is_none()) {
            return true;
        }
        (0..history.len()).any(|next| {
            !done(next)
                && (0..history.len()).all(|other| {
                    done(other) || returned(&history[other]).is_none_or(|r| r >= history[next].invoked)
                })
                && apply(&history[next], state)
                    .is_some_and(|after| search(history, placed | (1 << next), &after))
        })
    }
    search(history, 0, &None)
}

#[test]
fn agrees_with_brute_force_on_small_histories() {
    let mut rng = raft::Prng::new(4);
    let values = [None, Some("a"), Some("b"), Some("c")];
    let mut verdicts = [0usize; 2];
    for case in 0..3_000 {
        let mut state: Option<&str> = None;
        let mut history = Vec::new();
        for index in 0..1 + rng.below(6) {
            let effect = 10 * index;
            let invoked = effect - rng.below(effect + 1).min(15);
            let returned = effect + rng.below(15);
            let pick = |rng: &mut raft::Prng| values[rng.below(4) as usize];
            // Values repeat on purpose: the checker must not rely on unique values.
            let mut operation = match rng.below(4) {
                0 => {
                    let new = pick(&mut rng).unwrap_or("a");
                    let previous = state.replace(new);
                    if rng.below(3) == 0 {
                        put_done(1, invoked, returned, new)
                    } else {
                        put(1, invoked, returned, new, previous)
                    }
                }
                1 => get(1, invoked, returned, state),
                2 => delete(1, invoked, returned, state.take()),
                _ => {
                    let (expected, new) = (pick(&mut rng), pick(&mut rng));
                    let (swapped, current) = (expected == state, state);
                    if swapped {
                        state = new;
                    }
                    cas(1, invoked, returned, expected, new, swapped, current)
                }
            };
            if rng.below(5) == 0 {
                operation.outcome = Outcome::Indeterminate;
            } else if rng.below(6) == 0 {
                // A wrong answer, which may or may not still be explainable.
                if let Outcome::Completed { result, .. } = &mut operation.outcome {
                    let other = value(pick(&mut rng));
                    match result {
                        OpResult::Put { previous } | OpResult::Delete { previous } => *previous = other,
                        OpResult::Get { value } => *value = other,
                        OpResult::PutDone => {}
                        OpResult::Cas { current, .. } => *current = other,
                    }
                }
            }
            history.push(operation);
        }
        let expected = brute_force(&history);
        let result = check(&history);
        assert_eq!(
            result.is_linearizable(),
            expected,
            "case {case}: {history:#?}\n{result:?}"
        );
        verdicts[usize::from(expected)] += 1;
    }
    // Both verdicts were exercised.
    assert!(verdicts[0] > 100 && verdicts[1] > 100, "{verdicts:?}");
}

fn timed_check(count: usize, keys: u64, clients: u64, lost_per_mille: u64, corrupt: bool) {
    let mut generated = generate(7, count, keys, clients, if corrupt { 0 } else { lost_per_mille });
    if corrupt {
        corrupt_one_read(&mut generated);
    }
    let started = Instant::now();
    let result = check(&generated.operations);
    println!(
        "{count} ops, {keys} keys, {clients} clients, {lost_per_mille}/1000 lost, corrupted {corrupt}: \
         {} in {:?}",
        match result {
            CheckResult::Linearizable => "linearizable",
            CheckResult::NotLinearizable { .. } => "not linearizable",
            CheckResult::Unknown { .. } => "unknown",
        },
        started.elapsed()
    );
    assert_eq!(result.is_linearizable(), !corrupt, "{}", explanation(&result));
}

/// Prints how long the checker takes on a history the size of a simulation run's.
#[test]
fn ten_thousand_operations_over_five_keys_with_eight_clients() {
    timed_check(10_000, 5, 8, 0, false);
    timed_check(10_000, 5, 8, 50, false);
    timed_check(10_000, 5, 8, 0, true);
}

/// A bigger benchmark: `cargo test -p raftkv-sim --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn hundred_thousand_operations() {
    timed_check(100_000, 5, 8, 20, false);
    timed_check(100_000, 5, 16, 20, false);
    timed_check(100_000, 5, 8, 0, true);
}
