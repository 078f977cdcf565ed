//! The watch checker (issue 13): every watch stream must be a gap-free, duplicate-free,
//! in-order view of the committed history, and that history must be the one the clients
//! wrote and the one the replicas hold.
//!
//! The committed history is read, once the cluster has converged, from every node
//! (`probe::history_of`): the nodes must agree on it event for event, it must run from
//! revision 1 to the converged revision without a gap, and replaying it must give the
//! converged KV map. Against it:
//! - each watcher's events, from its first revision to the last it was answered for, are
//!   exactly the history's events under its prefix in that range, in order, each once;
//! - every write a client saw acknowledged (a put, a swap that stored a value) is a put
//!   event of its key and value, exactly once (values are unique: a second event of one
//!   value is a write applied twice).

use std::collections::{BTreeMap, HashMap};

use wire::{Event, EventKind};

use crate::history::{Op, OpResult, Operation, Outcome};

/// What one watcher saw.
#[derive(Debug, Clone, Default)]
pub struct WatchRecord {
    pub prefix: Vec<u8>,
    /// The revision it asked from first.
    pub from_revision: u64,
    pub events: Vec<Event>,
    /// Where its next page would have started: it was answered for every revision below.
    pub next_revision: u64,
    /// Errors that are findings (anything but "no node answered in time").
    pub errors: Vec<String>,
}

/// The findings of the watch checker (empty: every stream and the history check out).
pub fn check(
    history: &[Event],
    nodes_agree: Result<(), String>,
    final_kv: &BTreeMap<Vec<u8>, Vec<u8>>,
    watchers: &[WatchRecord],
    operations: &[Operation],
) -> Vec<String> {
    let mut findings = Vec::new();
    if let Err(why) = nodes_agree {
        findings.push(format!("watch: the replicas' histories differ: {why}"));
    }
    for (position, event) in history.iter().enumerate() {
        if event.revision() != position as u64 + 1 {
            findings.push(format!(
                "watch: the history has revision {} at position {} (a gap or a repeat)",
                event.revision(),
                position + 1
            ));
            return findings;
        }
    }
    let replayed = replay(history);
    if replayed != *final_kv {
        findings.push(format!(
            "watch: replaying the history gives {} keys, not the converged map of {} (first difference at {:?})",
            replayed.len(),
            final_kv.len(),
            first_difference(&replayed, final_kv)
        ));
    }
    for watcher in watchers {
        findings.extend(check_watcher(history, watcher));
    }
    findings.extend(check_acknowledged(history, operations));
    findings
}

fn replay(history: &[Event]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut kv = BTreeMap::new();
    for event in history {
        match event.kind {
            EventKind::Put => kv.insert(event.kv.key.clone(), event.kv.value.clone()),
            EventKind::Delete => kv.remove(&event.kv.key),
        };
    }
    kv
}

fn first_difference(a: &BTreeMap<Vec<u8>, Vec<u8>>, b: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<String> {
    a.keys()
        .chain(b.keys())
        .find(|key| a.get(*key) != b.get(*key))
        .map(|key| String::from_utf8_lossy(key).into_owned())
}

fn check_watcher(history: &[Event], watcher: &WatchRecord) -> Vec<String> {
    let name = format!("watch {:?}", String::from_utf8_lossy(&watcher.prefix));
    let mut findings: Vec<String> = watcher
        .errors
        .iter()
        .map(|error| format!("{name}: {error}"))
        .collect();
    let first = watcher.from_revision.max(1);
    let expected: Vec<&Event> = history
        .iter()
        .filter(|event| event.revision() >= first && event.revision() < watcher.next_revision)
        .filter(|event| event.kv.key.starts_with(&watcher.prefix))
        .collect();
    let seen: Vec<&Event> = watcher.events.iter().collect();
    if seen != expected {
        let position = seen
            .iter()
            .zip(&expected)
            .position(|(seen, expected)| seen != expected)
            .unwrap_or(seen.len().min(expected.len()));
        findings.push(format!(
            "{name}: saw {} events, the history has {} under the prefix in revisions {first}..{}; \
             first difference at event {position}: saw {:?}, expected {:?}",
            seen.len(),
            expected.len(),
            watcher.next_revision,
            seen.get(position).map(|event| describe(event)),
            expected.get(position).map(|event| describe(event)),
        ));
    }
    findings
}

fn describe(event: &Event) -> String {
    format!(
        "{} {} {:?}={:?}",
        event.revision(),
        event.kind.as_str(),
        String::from_utf8_lossy(&event.kv.key),
        String::from_utf8_lossy(&event.kv.value)
    )
}

/// Every acknowledged write that stored a value is one put event of that key and value.
fn check_acknowledged(history: &[Event], operations: &[Operation]) -> Vec<String> {
    let mut puts: HashMap<(&[u8], &[u8]), usize> = HashMap::new();
    for event in history.iter().filter(|event| event.kind == EventKind::Put) {
        *puts.entry((&event.kv.key, &event.kv.value)).or_default() += 1;
    }
    let mut findings = Vec::new();
    if let Some(((key, value), count)) = puts.iter().find(|(_, count)| **count > 1) {
        findings.push(format!(
            "watch: the history puts {:?}={:?} {count} times (a write applied twice)",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(value)
        ));
    }
    for operation in operations {
        let Outcome::Completed { result, .. } = &operation.outcome else {
            continue;
        };
        let stored = match (&operation.op, result) {
            (Op::Put { key, value }, OpResult::Put { .. } | OpResult::PutDone) => Some((key, value)),
            (
                Op::Cas {
                    key,
                    new: Some(value),
                    ..
                },
                OpResult::Cas { swapped: true, .. },
            ) => Some((key, value)),
            _ => None,
        };
        if let Some((key, value)) = stored {
            if !puts.contains_key(&(key.as_slice(), value.as_slice())) {
                findings.push(format!(
                    "watch: an acknowledged write of {:?}={:?} is not in the history",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(value)
                ));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests;
