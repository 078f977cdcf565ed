//! What clients saw: the operations a workload issued against the KV store, when each was
//! invoked and when (and with what result) it returned, or that it never returned.
//!
//! This is the input of the linearizability checker ([`crate::linearizability`]). Times are
//! simulated nanoseconds; only their order matters. The model is the node's KV state
//! machine: put and delete return the previous value, compare-and-swap returns whether it
//! swapped and the value it found.

use std::fmt;

/// A key of the KV store.
pub type Key = Vec<u8>;
/// A value of the KV store.
pub type Value = Vec<u8>;

/// An operation a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Stores `value`; returns the previous value.
    Put { key: Key, value: Value },
    /// Reads the value.
    Get { key: Key },
    /// Removes the key; returns the previous value.
    Delete { key: Key },
    /// If the current value equals `expected` (`None`: the key is absent), stores `new`
    /// (`None`: removes the key). Returns whether it swapped and the value it found.
    Cas {
        key: Key,
        expected: Option<Value>,
        new: Option<Value>,
    },
}

impl Op {
    /// The one key this operation touches.
    pub fn key(&self) -> &Key {
        match self {
            Op::Put { key, .. } | Op::Get { key } | Op::Delete { key } | Op::Cas { key, .. } => key,
        }
    }
}

/// What a completed operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpResult {
    /// The value before the put.
    Put { previous: Option<Value> },
    /// A put that did not ask for the value it replaced (`Client::put`): it took effect,
    /// and nothing was seen of the state before it.
    PutDone,
    /// The value read.
    Get { value: Option<Value> },
    /// The value before the delete.
    Delete { previous: Option<Value> },
    /// Whether the swap happened, and the value found (before the swap).
    Cas { swapped: bool, current: Option<Value> },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The client got an answer at simulated time `returned` (`>= invoked`).
    Completed { returned: u64, result: OpResult },
    /// No answer (timeout, crash of the node it talked to, end of the run): the operation
    /// may have taken effect at any time after its invocation, or never. Wing & Gong and
    /// Knossos treat this as an operation that returns at infinity with any result.
    Indeterminate,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation {
    pub client: u64,
    pub op: Op,
    /// Simulated nanoseconds when the client sent the request.
    pub invoked: u64,
    pub outcome: Outcome,
}

impl Operation {
    /// A completed operation.
    pub fn completed(client: u64, op: Op, invoked: u64, returned: u64, result: OpResult) -> Self {
        Self {
            client,
            op,
            invoked,
            outcome: Outcome::Completed { returned, result },
        }
    }

    /// An operation whose outcome is unknown.
    pub fn indeterminate(client: u64, op: Op, invoked: u64) -> Self {
        Self {
            client,
            op,
            invoked,
            outcome: Outcome::Indeterminate,
        }
    }
}

/// Index of an operation in a [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationId(pub usize);

/// A recorder: clients call [`History::invoke`] before sending a request and
/// [`History::complete`] when the answer arrives. An operation never completed stays
/// [`Outcome::Indeterminate`], which is what a timed-out request is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    operations: Vec<Operation>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the invocation of `op` by `client` at time `at`.
    pub fn invoke(&mut self, client: u64, op: Op, at: u64) -> OperationId {
        self.operations.push(Operation::indeterminate(client, op, at));
        OperationId(self.operations.len() - 1)
    }

    /// Records the answer to an invoked operation.
    ///
    /// # Panics
    /// If `id` is not from this history, the operation already completed, or `at` is
    /// before the invocation: all bugs of the recorder.
    pub fn complete(&mut self, id: OperationId, at: u64, result: OpResult) {
        let operation = &mut self.operations[id.0];
        assert!(
            operation.outcome == Outcome::Indeterminate,
            "operation {} completed twice",
            id.0
        );
        assert!(
            at >= operation.invoked,
            "operation {} returned before it was invoked",
            id.0
        );
        operation.outcome = Outcome::Completed { returned: at, result };
    }

    /// Appends a whole operation.
    pub fn push(&mut self, operation: Operation) -> OperationId {
        self.operations.push(operation);
        OperationId(self.operations.len() - 1)
    }

    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

/// Shows bytes as a quoted string when they are printable UTF-8, else as hex.
pub(crate) struct ShowBytes<'a>(pub &'a [u8]);

impl fmt::Display for ShowBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(text) if text.chars().all(|c| !c.is_control()) => write!(f, "{text:?}"),
            _ => {
                write!(f, "0x")?;
                self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
            }
        }
    }
}

/// Shows an optional value; `None` is an absent key.
pub(crate) struct ShowValue<'a>(pub Option<&'a [u8]>);

impl fmt::Display for ShowValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bytes) => ShowBytes(bytes).fmt(f),
            None => write!(f, "absent"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put {} {}", ShowBytes(key), ShowBytes(value)),
            Op::Get { key } => write!(f, "get {}", ShowBytes(key)),
            Op::Delete { key } => write!(f, "delete {}", ShowBytes(key)),
            Op::Cas { key, expected, new } => write!(
                f,
                "cas {} expected {} new {}",
                ShowBytes(key),
                ShowValue(expected.as_deref()),
                ShowValue(new.as_deref())
            ),
        }
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Put { previous } | OpResult::Delete { previous } => {
                write!(f, "previous {}", ShowValue(previous.as_deref()))
            }
            OpResult::PutDone => write!(f, "done (previous not asked for)"),
            OpResult::Get { value } => write!(f, "{}", ShowValue(value.as_deref())),
            OpResult::Cas { swapped, current } => {
                write!(f, "swapped {swapped}, found {}", ShowValue(current.as_deref()))
            }
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}: {}", self.client, self.op)?;
        match &self.outcome {
            Outcome::Completed { returned, result } => {
                write!(f, " -> {result} [invoked {}, returned {returned}]", self.invoked)
            }
            Outcome::Indeterminate => write!(f, " -> ? [invoked {}, never returned]", self.invoked),
        }
    }
}
