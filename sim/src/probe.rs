//! The supervisor's view of a running cluster, asked over the client protocol from a
//! madsim node of its own (a task on the runtime's main node has no network address).

use std::time::Duration;

use client::client::{Client, ClientOptions};
use raft::NodeId;
use wire::{MemberList, MemberRole};

use crate::cluster::client_endpoint;
use crate::tls::with_run_tls;

/// A node's whole KV map, as `Client::dump` returns it.
pub type KvMap = Vec<(Vec<u8>, Vec<u8>)>;

fn probe_client() -> Client {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(2),
    };
    with_run_tls(
        Client::new(vec![client_endpoint(1)], options)
            .expect("one endpoint")
            .with_client_id(u64::MAX),
    )
}

/// The node that says it is leader with the highest term, if any of `ids` answers.
pub async fn find_leader(ids: Vec<NodeId>) -> Option<NodeId> {
    let mut client = probe_client();
    let mut best: Option<(u64, NodeId)> = None;
    for id in ids {
        if let Ok(status) = client.status(&client_endpoint(id)).await {
            if status.role == "leader" && best.is_none_or(|(term, _)| status.term > term) {
                best = Some((status.term, id));
            }
        }
    }
    best.map(|(_, id)| id)
}

/// What every node agreed on: the applied index and the number of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converged {
    pub applied: u64,
    pub keys: usize,
}

/// `Ok` when every node of `ids` has applied == commit, the same applied index and the
/// same KV map; otherwise why not.
pub async fn convergence(ids: Vec<NodeId>) -> Result<Converged, String> {
    let mut client = probe_client();
    // (node id, applied index, KV map) of the first node that answered.
    let mut reference: Option<(NodeId, u64, KvMap)> = None;
    for id in ids {
        let dump = client
            .dump(&client_endpoint(id))
            .await
            .map_err(|e| format!("node {id}: {e}"))?;
        let status = &dump.status;
        if status.applied != status.commit {
            return Err(format!(
                "node {id}: applied {} != commit {}",
                status.applied, status.commit
            ));
        }
        match &reference {
            None => reference = Some((id, status.applied, dump.kv)),
            Some((first, applied, kv)) => {
                if status.applied != *applied {
                    return Err(format!(
                        "node {id} applied {} but node {first} applied {applied}",
                        status.applied
                    ));
                }
                if dump.kv != *kv {
                    return Err(format!(
                        "node {id} and node {first} hold different KV maps at {applied}"
                    ));
                }
            }
        }
    }
    let (_, applied, kv) = reference.ok_or("no node to compare")?;
    Ok(Converged {
        applied,
        keys: kv.len(),
    })
}

/// The members as the leader lists them (`raftkv member list`), asked through any of
/// `ids`; why not, if no leader answers.
pub async fn members(ids: Vec<NodeId>) -> Result<MemberList, String> {
    let endpoints = ids.iter().map(|&id| client_endpoint(id)).collect();
    let options = ClientOptions {
        request_timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(2),
    };
    let mut client = with_run_tls(
        Client::new(endpoints, options)
            .map_err(|e| format!("no endpoint: {e}"))?
            .with_client_id(u64::MAX - 1),
    );
    client.members().await.map_err(|e| format!("members: {e}"))
}

/// `Ok` when `list` shows every node of `expected` (id, incarnation) as a voter under
/// that incarnation; otherwise the first that is not.
pub fn every_node_a_voter(list: &MemberList, expected: &[(NodeId, Option<u64>)]) -> Result<(), String> {
    for &(id, incarnation) in expected {
        let Some(member) = list.member(id) else {
            return Err(format!("node {id} is not a member"));
        };
        if member.role != MemberRole::Voter {
            return Err(format!("node {id} is a {}", member.role.as_str()));
        }
        if incarnation.is_none() || member.incarnation != incarnation {
            return Err(format!(
                "node {id} is a voter as incarnation {:x?}, but runs as {incarnation:x?}",
                member.incarnation
            ));
        }
    }
    Ok(())
}

/// Operator's `raftkv member remove <id>`, asked through any of `ids`, waiting until the
/// change is applied (or `deadline` passes: the outcome is then unknown).
pub async fn remove_member(ids: Vec<NodeId>, id: NodeId, deadline: Duration) -> Result<MemberList, String> {
    let endpoints = ids.iter().map(|&id| client_endpoint(id)).collect();
    let options = ClientOptions {
        request_timeout: Duration::from_millis(1_000),
        deadline,
    };
    let mut client = with_run_tls(
        Client::new(endpoints, options)
            .map_err(|e| format!("no endpoint: {e}"))?
            .with_client_id(u64::MAX - 2),
    );
    let change = wire::MemberChange::Remove {
        id,
        incarnation: None,
    };
    client
        .change_members(change)
        .await
        .map_err(|e| format!("remove {id}: {e}"))
}

/// Node `id`'s whole history of changes (revisions 1 on) and its revision, read from that
/// node alone, a page at a time.
pub async fn history_of(id: NodeId) -> Result<(Vec<wire::Event>, u64), String> {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(2),
    };
    let mut client = with_run_tls(
        Client::new(vec![client_endpoint(id)], options)
            .map_err(|e| format!("no endpoint: {e}"))?
            .with_client_id(u64::MAX - 3),
    );
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = client
            .watch_page(Vec::new(), from, Duration::ZERO, false)
            .await
            .map_err(|e| format!("node {id}: history from revision {from}: {e}"))?;
        if page.next_revision <= from && !page.events.is_empty() || page.next_revision < from {
            return Err(format!(
                "node {id}: a history page from {from} moved back to {}",
                page.next_revision
            ));
        }
        events.extend(page.events);
        from = page.next_revision;
        if from > page.revision {
            return Ok((events, page.revision));
        }
    }
}

/// Node `id`'s KV map (a dump).
pub async fn kv_of(id: NodeId) -> Result<KvMap, String> {
    let mut client = probe_client();
    client
        .dump(&client_endpoint(id))
        .await
        .map(|dump| dump.kv)
        .map_err(|e| format!("node {id}: {e}"))
}
