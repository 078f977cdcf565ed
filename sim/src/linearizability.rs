//! A per-key linearizability checker for KV histories.
//!
//! Linearizability is compositional (Herlihy & Wing, "Linearizability: a correctness
//! condition for concurrent objects", 1990, theorem 1): a history is linearizable iff its
//! restriction to each object is. Every KV operation touches one key, so the history is
//! split by key and each key, a register with put/get/delete/compare-and-swap, is checked
//! alone. This keeps the search small: its cost grows with the concurrency within one key,
//! not with the whole history.
//!
//! Each key is checked with the algorithm of Wing & Gong ("Testing and verifying concurrent
//! objects", J. Parallel and Distributed Computing 17, 1993): walk the history's call and
//! return events in time order, linearize (apply to a sequential model) any operation whose
//! call comes before the first pending return, and backtrack when a return is reached whose
//! operation has not been linearized. The search is memoised as proposed by Lowe ("Testing
//! for linearizability", Concurrency and Computation: Practice and Experience 29(4), 2017):
//! a configuration is the set of linearized operations (a bitset) plus the model state; a
//! configuration already explored is never explored again, which turns the exponential
//! worst case into one bounded by the number of distinct configurations. The event list is
//! a doubly linked list whose "lift"/"unlift" follow Knuth's dancing links, as in Lowe's and
//! Porcupine's implementations.
//!
//! Indeterminate operations (no answer) have no return event: they may be linearized at any
//! point after their call, or never, and their result is unconstrained (Knossos treats them
//! the same way). A key is linearizable once every completed operation is linearized.
//!
//! Each key's search is bounded by a step budget; exhausting it gives [`CheckResult::Unknown`]
//! rather than a hang.
//!
//! Real-time order is the textbook one: operation A precedes B iff A returned strictly
//! before B was invoked. Equal times are treated as concurrent, which can only make the
//! checker more permissive, never report a false violation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use crate::history::{Key, Op, OpResult, Operation, Outcome, ShowBytes, ShowValue};

/// A step budget per key that checks histories of tens of thousands of operations with
/// moderate concurrency comfortably, and stops a pathological search in seconds.
pub const DEFAULT_STEP_BUDGET: u64 = 2_000_000;

/// How many operations of the longest linearizable prefix an explanation lists.
const EXPLAINED_PREFIX: usize = 12;
/// How many concurrent, not yet linearized operations an explanation lists.
const EXPLAINED_CONCURRENT: usize = 8;

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// The sub-history of `key` is not linearizable; `explanation` names the longest
    /// linearizable prefix found and the operation that could not be placed after it.
    NotLinearizable { key: Key, explanation: String },
    /// The search for `key` ran out of its step budget before reaching a verdict (and no
    /// other key is known not to be linearizable).
    Unknown { key: Key },
}

impl CheckResult {
    pub fn is_linearizable(&self) -> bool {
        *self == CheckResult::Linearizable
    }
}

/// Checks `operations` with [`DEFAULT_STEP_BUDGET`] per key.
pub fn check(operations: &[Operation]) -> CheckResult {
    check_with_budget(operations, DEFAULT_STEP_BUDGET)
}

/// Checks `operations`, allowing each key's search at most `step_budget_per_key` steps.
///
/// Keys are checked in byte order. A key that is not linearizable is reported even when
/// an earlier key was `Unknown`, since it is the stronger verdict; otherwise the first
/// `Unknown` key is reported.
///
/// # Panics
/// If a completed operation returned before it was invoked (a broken recorder).
pub fn check_with_budget(operations: &[Operation], step_budget_per_key: u64) -> CheckResult {
    let mut by_key: BTreeMap<&Key, Vec<usize>> = BTreeMap::new();
    for (index, operation) in operations.iter().enumerate() {
        if let Outcome::Completed { returned, .. } = operation.outcome {
            assert!(
                returned >= operation.invoked,
                "operation #{index} returned before it was invoked: {operation}"
            );
        }
        by_key.entry(operation.op.key()).or_default().push(index);
    }
    let mut unknown = None;
    for (key, indexes) in by_key {
        match KeySearch::new(operations, &indexes).run(step_budget_per_key) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Unknown => {
                unknown.get_or_insert_with(|| key.clone());
            }
            KeyVerdict::NotLinearizable(failure) => {
                return CheckResult::NotLinearizable {
                    key: key.clone(),
                    explanation: failure.explain(operations, key),
                };
            }
        }
    }
    match unknown {
        Some(key) => CheckResult::Unknown { key },
        None => CheckResult::Linearizable,
    }
}

/// A value interned to a small number; `None` is the absent key.
type State = Option<u32>;

/// An operation's call, with values interned.
#[derive(Debug, Clone, Copy)]
enum Call {
    Put(u32),
    Get,
    Delete,
    Cas { expected: State, new: State },
}

/// An operation's observed result, with values interned.
#[derive(Debug, Clone, Copy)]
enum Ret {
    /// Indeterminate: any result is allowed.
    Any,
    Put(State),
    /// A put that saw nothing: allowed in any state. Dropping an indeterminate write stays
    /// sound with it around: like an indeterminate put it overwrites whatever it finds.
    PutDone,
    Get(State),
    Delete(State),
    Cas {
        swapped: bool,
        current: State,
    },
    /// The result is of another operation's kind: it can never be linearized.
    Mismatch,
}

#[derive(Debug, Clone, Copy)]
struct KeyOp {
    /// Index in the whole history, which is how explanations name it.
    index: usize,
    call: Call,
    ret: Ret,
}

impl KeyOp {
    /// The sequential specification: the state after this operation if, applied to
    /// `state`, it returns what was observed; `None` if it cannot.
    fn apply(&self, state: State) -> Option<State> {
        let (next, allowed) = match self.call {
            Call::Put(value) => (
                Some(value),
                matches!(self.ret, Ret::Put(previous) if previous == state)
                    || matches!(self.ret, Ret::PutDone),
            ),
            Call::Get => (state, matches!(self.ret, Ret::Get(value) if value == state)),
            Call::Delete => (
                None,
                matches!(self.ret, Ret::Delete(previous) if previous == state),
            ),
            Call::Cas { expected, new } => {
                let swapped = expected == state;
                let next = if swapped { new } else { state };
                let allowed = matches!(self.ret,
                    Ret::Cas { swapped: s, current } if s == swapped && current == state);
                (next, allowed)
            }
        };
        (allowed || matches!(self.ret, Ret::Any)).then_some(next)
    }
}

/// A node of the event list: the call or the return of the `KeyOp` at that position.
#[derive(Debug, Clone, Copy)]
enum Event {
    Call(usize),
    Return(usize),
}

const NIL: usize = usize::MAX;

/// One configuration of Lowe's cache. Hashing uses only the incrementally maintained
/// hash of the bitset and the state; equality compares the bitsets themselves, so a hash
/// collision costs time, never a wrong verdict.
#[derive(Debug, PartialEq, Eq)]
struct Configuration {
    hash: u64,
    state: State,
    linearized: CompactSet,
}

/// A bitset stored as its count of leading all-ones words plus the words after them,
/// trailing zero words dropped. Ops are numbered in history order and a linearization
/// advances through the history, so a linearized set is nearly always "everything up to
/// about here, plus a few": a handful of words whatever the history's length. This keeps
/// the cache small (it holds up to one entry per step of the budget).
#[derive(Debug, PartialEq, Eq)]
struct CompactSet {
    full_words: usize,
    rest: Box<[u64]>,
}

impl CompactSet {
    fn new(words: &[u64]) -> Self {
        let full_words = words.iter().take_while(|&&word| word == u64::MAX).count();
        let rest = &words[full_words..];
        let used = rest
            .iter()
            .rposition(|&word| word != 0)
            .map_or(0, |last| last + 1);
        Self {
            full_words,
            rest: rest[..used].into(),
        }
    }
}

impl Hash for Configuration {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        self.hash.hash(hasher);
        self.state.hash(hasher);
    }
}

/// Where the deepest search got stuck, for the explanation.
#[derive(Debug)]
struct Failure {
    steps: u64,
    /// The longest linearizable prefix found, as history indexes, in linearization order.
    prefix: Vec<usize>,
    /// The model state after the prefix, as a value (interning undone).
    state: Option<Vec<u8>>,
    /// The history index of the operation that had to be linearized next but could not.
    blocked: usize,
    /// What the model would answer to it in that state.
    expected: String,
    /// Operations concurrent with the blocked one and not in the prefix.
    concurrent: Vec<usize>,
}

impl Failure {
    fn explain(&self, operations: &[Operation], key: &Key) -> String {
        let mut text = String::new();
        let name = |index: usize| format!("#{index} {}", operations[index]);
        let _ = writeln!(
            text,
            "key {} is not linearizable (searched {} steps).",
            ShowBytes(key),
            self.steps
        );
        let shown = self.prefix.len().min(EXPLAINED_PREFIX);
        let _ = writeln!(
            text,
            "The longest linearizable prefix found has {} operation{}{}:",
            self.prefix.len(),
            if self.prefix.len() == 1 { "" } else { "s" },
            if shown < self.prefix.len() {
                format!("; its last {shown}")
            } else {
                String::new()
            }
        );
        for &index in &self.prefix[self.prefix.len() - shown..] {
            let _ = writeln!(text, "  {}", name(index));
        }
        let _ = writeln!(
            text,
            "after which the key holds {}.",
            ShowValue(self.state.as_deref())
        );
        let _ = writeln!(
            text,
            "The next operation to return cannot take effect after that prefix:\n  {}\n\
             in that state the model answers: {}.",
            name(self.blocked),
            self.expected
        );
        if !self.concurrent.is_empty() {
            let _ = writeln!(text, "Operations concurrent with it, not in the prefix:");
            for &index in &self.concurrent {
                let _ = writeln!(text, "  {}", name(index));
            }
        }
        text
    }
}

enum KeyVerdict {
    Linearizable,
    NotLinearizable(Box<Failure>),
    Unknown,
}

/// The Wing & Gong search with Lowe's memoisation over one key's operations.
struct KeySearch {
    ops: Vec<KeyOp>,
    values: Vec<Vec<u8>>,
    events: Vec<Event>,
    /// The return event of each op, or `NIL` for indeterminate ones.
    return_event: Vec<usize>,
    /// The linked list over `events`; position `events.len()` is the head sentinel.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Random 64-bit tags per op; the set's hash is the XOR of its members' tags
    /// (Zobrist hashing), updated in O(1) per linearize/undo.
    tags: Vec<u64>,
}

impl KeySearch {
    fn new(operations: &[Operation], indexes: &[usize]) -> Self {
        let mut interned: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut values: Vec<Vec<u8>> = Vec::new();
        // How many times each value appears anywhere in this key's history.
        let mut mentions: Vec<u32> = Vec::new();
        let mut intern = |value: Option<&Vec<u8>>| -> State {
            let value = value?;
            let id = match interned.get(value.as_slice()) {
                Some(&id) => id,
                None => {
                    let id = values.len() as u32;
                    values.push(value.clone());
                    mentions.push(0);
                    interned.insert(value.clone(), id);
                    id
                }
            };
            mentions[id as usize] += 1;
            Some(id)
        };
        let mut ops = Vec::with_capacity(indexes.len());
        let mut times = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let operation = &operations[index];
            let call = match &operation.op {
                Op::Put { value, .. } => Call::Put(intern(Some(value)).unwrap_or_default()),
                Op::Get { .. } => Call::Get,
                Op::Delete { .. } => Call::Delete,
                Op::Cas { expected, new, .. } => Call::Cas {
                    expected: intern(expected.as_ref()),
                    new: intern(new.as_ref()),
                },
            };
            let (ret, returned) = match &operation.outcome {
                Outcome::Indeterminate => (Ret::Any, None),
                Outcome::Completed { returned, result } => {
                    let ret = match (result, &operation.op) {
                        (OpResult::Put { previous }, Op::Put { .. }) => Ret::Put(intern(previous.as_ref())),
                        (OpResult::PutDone, Op::Put { .. }) => Ret::PutDone,
                        (OpResult::Get { value }, Op::Get { .. }) => Ret::Get(intern(value.as_ref())),
                        (OpResult::Delete { previous }, Op::Delete { .. }) => {
                            Ret::Delete(intern(previous.as_ref()))
                        }
                        (OpResult::Cas { swapped, current }, Op::Cas { .. }) => Ret::Cas {
                            swapped: *swapped,
                            current: intern(current.as_ref()),
                        },
                        _ => Ret::Mismatch,
                    };
                    (ret, Some(*returned))
                }
            };
            ops.push(KeyOp { index, call, ret });
            times.push((operation.invoked, returned));
        }

        // Drop indeterminate operations that provably cannot matter:
        // - a get without an answer has no effect;
        // - a write without an answer whose value nobody else mentions. If a linearization
        //   places it, every operation after it up to the next overwrite sees its value, so
        //   none of them is completed (it would mention the value in its result); the
        //   indeterminate ones among them are puts/deletes (which overwrite regardless of
        //   state) or compare-and-swaps expecting another value (no effect on it; dropped
        //   too, as if they never happened). So the history with the write removed is
        //   linearizable iff the original is. This does not rely on unique values: a value
        //   written twice is mentioned twice. It keeps timed-out writes from multiplying
        //   the search space.
        let droppable = |op: &KeyOp| match (op.ret, op.call) {
            (Ret::Any, Call::Get) => true,
            (Ret::Any, Call::Put(value)) => mentions[value as usize] == 1,
            (Ret::Any, Call::Cas { new: Some(value), .. }) => mentions[value as usize] == 1,
            _ => false,
        };
        let keep: Vec<bool> = ops.iter().map(|op| !droppable(op)).collect();
        let mut kept_ops = Vec::new();
        let mut kept_times = Vec::new();
        for ((op, time), keep) in ops.into_iter().zip(times).zip(keep) {
            if keep {
                kept_ops.push(op);
                kept_times.push(time);
            }
        }
        let ops = kept_ops;

        // Events in time order; at equal times calls come first (equal times are
        // concurrent), and among equal events the history order decides, for determinism.
        let mut timed: Vec<(u64, u8, usize, Event)> = Vec::with_capacity(2 * ops.len());
        for (position, &(invoked, returned)) in kept_times.iter().enumerate() {
            timed.push((invoked, 0, position, Event::Call(position)));
            if let Some(returned) = returned {
                timed.push((returned, 1, position, Event::Return(position)));
            }
        }
        timed.sort_unstable_by_key(|&(time, kind, position, _)| (time, kind, position));
        let events: Vec<Event> = timed.into_iter().map(|(_, _, _, event)| event).collect();
        let mut return_event = vec![NIL; ops.len()];
        for (position, event) in events.iter().enumerate() {
            if let Event::Return(op) = *event {
                return_event[op] = position;
            }
        }
        let head = events.len();
        let mut next = vec![NIL; events.len() + 1];
        let mut prev = vec![NIL; events.len() + 1];
        let mut last = head;
        for (position, before) in prev.iter_mut().enumerate().take(events.len()) {
            next[last] = position;
            *before = last;
            last = position;
        }
        let tags = (0..ops.len() as u64)
            .map(|i| splitmix64(i ^ 0x5eed_1a7e))
            .collect();
        Self {
            ops,
            values,
            events,
            return_event,
            next,
            prev,
            tags,
        }
    }

    fn head(&self) -> usize {
        self.events.len()
    }

    /// Removes node `at` from the list; its own links are kept for `relink`.
    fn unlink(&mut self, at: usize) {
        let (before, after) = (self.prev[at], self.next[at]);
        self.next[before] = after;
        if after != NIL {
            self.prev[after] = before;
        }
    }

    /// Puts node `at` back where it was. Nodes must be relinked in the reverse order of
    /// their unlinking (dancing links).
    fn relink(&mut self, at: usize) {
        let (before, after) = (self.prev[at], self.next[at]);
        self.next[before] = at;
        if after != NIL {
            self.prev[after] = at;
        }
    }

    /// Takes an op's call and return out of the list.
    fn lift(&mut self, op: usize, call: usize) {
        self.unlink(call);
        if self.return_event[op] != NIL {
            self.unlink(self.return_event[op]);
        }
    }

    fn unlift(&mut self, op: usize, call: usize) {
        if self.return_event[op] != NIL {
            self.relink(self.return_event[op]);
        }
        self.relink(call);
    }

    fn run(mut self, budget: u64) -> KeyVerdict {
        let mut remaining = self.return_event.iter().filter(|&&event| event != NIL).count();
        let mut linearized = vec![0u64; self.ops.len().div_ceil(64)].into_boxed_slice();
        let mut hash = 0u64;
        let mut state: State = None;
        let mut cache: HashSet<Configuration> = HashSet::new();
        // (call event, op, state before it) of each linearized op, in order.
        let mut stack: Vec<(usize, usize, State)> = Vec::new();
        let mut deepest: Option<Box<Failure>> = None;
        let mut steps = 0u64;
        let mut entry = self.next[self.head()];
        loop {
            if remaining == 0 {
                return KeyVerdict::Linearizable;
            }
            steps += 1;
            if steps > budget {
                return KeyVerdict::Unknown;
            }
            let backtrack = match self.events.get(entry).copied() {
                Some(Event::Call(op)) => {
                    if let Some(after) = self.ops[op].apply(state) {
                        linearized[op / 64] |= 1 << (op % 64);
                        hash ^= self.tags[op];
                        let fresh = cache.insert(Configuration {
                            hash,
                            state: after,
                            linearized: CompactSet::new(&linearized),
                        });
                        if fresh {
                            stack.push((entry, op, state));
                            state = after;
                            self.lift(op, entry);
                            if self.return_event[op] != NIL {
                                remaining -= 1;
                            }
                            entry = self.next[self.head()];
                            continue;
                        }
                        linearized[op / 64] &= !(1 << (op % 64));
                        hash ^= self.tags[op];
                    }
                    entry = self.next[entry];
                    false
                }
                Some(Event::Return(op)) => {
                    if deepest
                        .as_ref()
                        .is_none_or(|failure| stack.len() > failure.prefix.len())
                    {
                        deepest = Some(Box::new(self.failure(&stack, state, op, entry, steps)));
                    }
                    true
                }
                // Only indeterminate ops were left to try; unreachable while a completed op
                // remains (its return is in the list), but backtracking is the safe answer.
                None => true,
            };
            if backtrack {
                let Some((call, op, before)) = stack.pop() else {
                    let mut failure = deepest.unwrap_or_else(|| Box::new(self.failure(&[], None, 0, NIL, 0)));
                    failure.steps = steps;
                    return KeyVerdict::NotLinearizable(failure);
                };
                linearized[op / 64] &= !(1 << (op % 64));
                hash ^= self.tags[op];
                state = before;
                self.unlift(op, call);
                if self.return_event[op] != NIL {
                    remaining += 1;
                }
                entry = self.next[call];
            }
        }
    }

    /// Describes the search when op `blocked` (whose return event is `at`) could not be
    /// linearized after the ops on `stack`.
    fn failure(
        &self,
        stack: &[(usize, usize, State)],
        state: State,
        blocked: usize,
        at: usize,
        steps: u64,
    ) -> Failure {
        let mut concurrent = Vec::new();
        let mut cursor = self.next[self.head()];
        while cursor != at && cursor != NIL && concurrent.len() < EXPLAINED_CONCURRENT {
            if let Event::Call(op) = self.events[cursor] {
                if op != blocked {
                    concurrent.push(self.ops[op].index);
                }
            }
            cursor = self.next[cursor];
        }
        let value = |state: State| state.map(|id| self.values[id as usize].clone());
        let show = |state: State| ShowValue(value(state).as_deref()).to_string();
        let op = self.ops.get(blocked);
        let expected = match op.map(|op| op.call) {
            None => "nothing".to_string(),
            Some(Call::Put(_)) | Some(Call::Delete) => format!("previous {}", show(state)),
            Some(Call::Get) => show(state),
            Some(Call::Cas { expected, .. }) => {
                format!("swapped {}, found {}", expected == state, show(state))
            }
        };
        Failure {
            steps,
            prefix: stack.iter().map(|&(_, op, _)| self.ops[op].index).collect(),
            state: value(state),
            blocked: op.map_or(0, |op| op.index),
            expected,
            concurrent,
        }
    }
}

/// A well-mixed 64-bit tag per op: the first output of the raft crate's SplitMix64
/// seeded with `seed` (Vigna's finaliser of `seed` plus the golden gamma).
fn splitmix64(seed: u64) -> u64 {
    raft::Prng::new(seed).next_u64()
}

#[cfg(test)]
mod tests;
