//! `raftkv member list | add | remove | promote`: the cluster's membership, changed one
//! server at a time through the leader (thesis §4.1), learners first (§4.2.1).
//!
//! A node started on an empty data dir joins by itself (the node's `join` module): these
//! commands are for an operator who wants to see, add ahead of time, or retire members.

use clap::{Args, Subcommand};
use client::wire::{MemberChange, MemberList};
use serde_json::{json, Value};

use crate::output::{self, Output};
use crate::{Failure, GlobalArgs};

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv member list")]
pub struct MemberArgs {
    #[command(subcommand)]
    command: MemberCommand,
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Print the members of the leader's configuration.
    #[command(after_help = "Example: raftkv member list --output json")]
    List,
    /// Add ID as a learner (it receives the log but does not vote until promoted).
    Add(AddArgs),
    /// Remove ID from the configuration (a leader removing itself steps down).
    Remove(RemoveArgs),
    /// Make learner ID a voter; waits (up to --timeout-ms) until it has caught up.
    Promote(PromoteArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example: raftkv member add 4 --peer-address 10.0.0.4:7001 --client-address 10.0.0.4:7101"
)]
struct AddArgs {
    id: u64,
    /// Where the other members reach it: its peer host:port.
    #[arg(long)]
    peer_address: String,
    /// Where it serves clients: its client host:port.
    #[arg(long)]
    client_address: String,
    /// Bind the member to this data dir incarnation (16 hex digits, from the node's log);
    /// without it, the first node that connects as ID becomes the member.
    #[arg(long, value_parser = parse_incarnation)]
    incarnation: Option<u64>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv member remove 4")]
struct RemoveArgs {
    id: u64,
    /// Remove only if the member is still this incarnation.
    #[arg(long, value_parser = parse_incarnation)]
    incarnation: Option<u64>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv member promote 4")]
struct PromoteArgs {
    id: u64,
}

fn parse_incarnation(text: &str) -> Result<u64, String> {
    u64::from_str_radix(text, 16).map_err(|_| format!("{text:?} is not a hex incarnation"))
}

pub async fn member(global: &GlobalArgs, args: MemberArgs) -> Result<(), Failure> {
    let mut client = global.client()?;
    let (list, done) = match args.command {
        MemberCommand::List => (client.members().await?, None),
        MemberCommand::Add(add) => {
            let change = MemberChange::AddLearner {
                id: add.id,
                peer_address: add.peer_address,
                client_address: add.client_address,
                incarnation: add.incarnation,
            };
            let id = change.id();
            (
                client.change_members(change).await?,
                Some(format!("member {id} is a learner")),
            )
        }
        MemberCommand::Remove(remove) => {
            let change = MemberChange::Remove {
                id: remove.id,
                incarnation: remove.incarnation,
            };
            (
                client.change_members(change).await?,
                Some(format!("member {} removed", remove.id)),
            )
        }
        MemberCommand::Promote(promote) => {
            let change = MemberChange::Promote { id: promote.id };
            (
                client.change_members(change).await?,
                Some(format!("member {} is a voter", promote.id)),
            )
        }
    };
    match global.output {
        Output::Text => {
            if let Some(done) = done {
                outln!("{done}");
            }
            out!("{}", table(&list));
        }
        Output::Json => output::print_json(&list_json(&list)),
    }
    Ok(())
}

const HEADER: [&str; 7] = [
    "ID",
    "ROLE",
    "PEER ADDRESS",
    "CLIENT ADDRESS",
    "INCARNATION",
    "MATCH",
    "LEADER",
];

/// One row per member, in id order, columns padded to their widest cell.
fn table(list: &MemberList) -> String {
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = list
        .members
        .iter()
        .map(|member| {
            vec![
                member.id.to_string(),
                member.role.as_str().to_string(),
                member.peer_address.clone().unwrap_or_else(dash),
                member.client_address.clone().unwrap_or_else(dash),
                member
                    .incarnation
                    .map_or_else(dash, |incarnation| format!("{incarnation:016x}")),
                member.match_index.to_string(),
                if member.id == list.leader { "*" } else { "" }.to_string(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = HEADER.iter().map(|title| title.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = format!(
        "cluster {:016x}, term {}, commit {}\n",
        list.cluster_id, list.term, list.commit
    );
    text.push_str(&line(&HEADER.map(str::to_string)));
    for row in &rows {
        text.push_str(&line(row));
    }
    text
}

fn list_json(list: &MemberList) -> Value {
    let members: Vec<Value> = list
        .members
        .iter()
        .map(|member| {
            json!({
                "id": member.id,
                "role": member.role.as_str(),
                "peer_address": member.peer_address,
                "client_address": member.client_address,
                "incarnation": member.incarnation.map(|incarnation| format!("{incarnation:016x}")),
                "match_index": member.match_index,
                "is_leader": member.id == list.leader,
            })
        })
        .collect();
    json!({
        "cluster_id": format!("{:016x}", list.cluster_id),
        "leader": list.leader,
        "term": list.term,
        "commit": list.commit,
        "members": members,
    })
}

#[cfg(test)]
mod tests {
    use client::wire::{MemberInfo, MemberRole};

    use super::*;

    fn list() -> MemberList {
        MemberList {
            cluster_id: 0xab,
            leader: 1,
            term: 4,
            commit: 17,
            members: vec![
                MemberInfo {
                    id: 1,
                    role: MemberRole::Voter,
                    peer_address: Some("a:7001".into()),
                    client_address: Some("a:7101".into()),
                    incarnation: Some(0x11),
                    match_index: 17,
                },
                MemberInfo {
                    id: 4,
                    role: MemberRole::Learner,
                    peer_address: None,
                    client_address: None,
                    incarnation: None,
                    match_index: 3,
                },
            ],
        }
    }

    #[test]
    fn the_table_and_the_json_show_every_member() {
        let text = table(&list());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "cluster 00000000000000ab, term 4, commit 17");
        assert!(lines[1].starts_with("ID  ROLE"), "{text}");
        assert!(lines[2].contains("voter") && lines[2].ends_with('*'), "{text}");
        assert!(lines[3].contains("learner") && lines[3].contains(" - "), "{text}");
        let json = list_json(&list());
        assert_eq!(json["members"][0]["incarnation"], "0000000000000011");
        assert_eq!(json["members"][1]["role"], "learner");
        assert_eq!(json["members"][1]["is_leader"], false);
    }
}
