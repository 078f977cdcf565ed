//! `raftkv status`: asks every endpoint at once for its Raft state and prints one row per
//! node. A node that does not answer is a row saying so: during an outage the rows of
//! the live nodes are exactly what an operator needs. The exit code is 5 (unavailable)
//! when any endpoint did not answer; when none did, the one error line says why.

use std::sync::Arc;

use client::client::{Client, ClientError, ClientOptions};
use client::wire::{NodeStatus, SpaceStatus};
use client::Endpoint;
use serde_json::{json, Value};

use crate::failure::{Exit, Failure};
use crate::output::{self, Output};
use crate::{GlobalArgs, StatusArgs};

/// One node's row: its address and what it said, or why it said nothing.
pub type Row = (String, Result<NodeStatus, ClientError>);

const HEADER: [&str; 9] = [
    "ENDPOINT",
    "ID",
    "ROLE",
    "TERM",
    "LEADER",
    "COMMIT",
    "APPLIED",
    "LAST INDEX",
    "DATA / QUOTA",
];

/// `1.5 MiB`: bytes in the largest binary unit that keeps a number of at least 1.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The data size against the quota, and the NoSpace alarm when it is raised.
fn space_cell(space: &SpaceStatus) -> String {
    let quota = match space.quota_bytes {
        0 => "no quota".to_string(),
        quota => human_bytes(quota),
    };
    let alarm = match (space.quota_alarm(), space.disk_alarm()) {
        (_, true) => format!(
            " ALARM: NOSPACE (disk: {} free)",
            human_bytes(space.disk_free_bytes.unwrap_or(0))
        ),
        (true, false) => " ALARM: NOSPACE".to_string(),
        (false, false) => String::new(),
    };
    format!("{} / {quota}{alarm}", human_bytes(space.data_bytes))
}

pub async fn status(global: &GlobalArgs, _args: StatusArgs) -> Result<(), Failure> {
    let rows = query_all(&global.endpoints.0, global.client_options(), global.tls()?).await;
    if let Some(failure) = all_unreachable(&rows) {
        return Err(failure);
    }
    match global.output {
        Output::Text => out!("{}", table(&rows)),
        Output::Json => output::print_json(&rows_json(&rows)?),
    }
    if rows.iter().any(|(_, result)| result.is_err()) {
        return Err(Failure::quiet(Exit::Unavailable));
    }
    Ok(())
}

/// Asks every endpoint for its status at once: one row per endpoint, in their order.
/// One task and one client per node, so a dead node costs one timeout, not one each.
pub async fn query_all(
    endpoints: &[Endpoint],
    options: ClientOptions,
    tls: Option<Arc<rustls::client::ClientConfig>>,
) -> Vec<Row> {
    let queries: Vec<_> = endpoints
        .iter()
        .cloned()
        .map(|endpoint| {
            let tls = tls.clone();
            tokio::spawn(async move {
                let mut client = Client::new(vec![endpoint.clone()], options)?;
                if let Some(tls) = tls {
                    client = client.with_tls(tls);
                }
                client.status(&endpoint).await
            })
        })
        .collect();
    let mut rows: Vec<Row> = Vec::with_capacity(queries.len());
    for (endpoint, query) in endpoints.iter().zip(queries) {
        let result = query.await.unwrap_or_else(|error| {
            Err(ClientError::Connection {
                endpoint: address_of(endpoint),
                reason: format!("status query failed: {error}"),
            })
        });
        rows.push((address_of(endpoint), result));
    }
    rows
}

pub fn address_of(endpoint: &Endpoint) -> String {
    format!("{}:{}", endpoint.host, endpoint.port)
}

fn all_unreachable(rows: &[Row]) -> Option<Failure> {
    if rows.iter().any(|(_, result)| result.is_ok()) {
        return None;
    }
    let reasons: Vec<String> = rows
        .iter()
        .filter_map(|(_, result)| result.as_ref().err().map(ToString::to_string))
        .collect();
    Some(Failure::new(
        Exit::Unavailable,
        format!("no node answered: {}", reasons.join("; ")),
    ))
}

/// Why a node has no row of numbers, without repeating its address.
pub fn unreachable_reason(error: &ClientError) -> String {
    match error {
        ClientError::Unreachable { reason, .. } | ClientError::Connection { reason, .. } => reason.clone(),
        ClientError::Timeout { after, .. } => format!("no answer within {} ms", after.as_millis()),
        other => other.to_string(),
    }
}

/// A left-aligned table; an unreachable node's row says so after its endpoint.
fn table(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(address, result)| match result {
            Ok(status) => vec![
                address.clone(),
                status.id.to_string(),
                status.role.clone(),
                status.term.to_string(),
                status.leader.map_or_else(|| "-".to_string(), |id| id.to_string()),
                status.commit.to_string(),
                status.applied.to_string(),
                status.last_index.to_string(),
                space_cell(&status.space),
            ],
            Err(error) => vec![
                address.clone(),
                format!("unreachable: {}", unreachable_reason(error)),
            ],
        })
        .collect();
    // Widths come from the header and complete rows only: an unreachable row's long
    // reason runs past the columns instead of stretching them.
    let mut widths: Vec<usize> = HEADER.iter().map(|title| title.len()).collect();
    for row in cells.iter().filter(|row| row.len() == HEADER.len()) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    if let Some(endpoint_width) = cells.iter().map(|row| row[0].chars().count()).max() {
        widths[0] = widths[0].max(endpoint_width);
    }
    let header: Vec<String> = HEADER.iter().map(|title| title.to_string()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn rows_json(rows: &[Row]) -> Result<Value, Failure> {
    let mut nodes = Vec::with_capacity(rows.len());
    for (address, result) in rows {
        nodes.push(match result {
            Ok(status) => json!({ "endpoint": address, "status": output::status_json(status)? }),
            Err(error) => json!({ "endpoint": address, "error": unreachable_reason(error) }),
        });
    }
    Ok(Value::Array(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: u64, role: &str) -> NodeStatus {
        NodeStatus {
            id,
            role: role.to_string(),
            term: 3,
            leader: Some(1),
            commit: 10,
            applied: 9,
            first_index: 1,
            last_index: 11,
            snapshot_index: 0,
            voters: vec![1, 2, 3],
            learners: vec![],
            peers: vec![],
            space: Default::default(),
        }
    }

    #[test]
    fn table_has_a_row_per_node_and_marks_unreachable_ones() {
        let rows: Vec<Row> = vec![
            ("127.0.0.1:7101".to_string(), Ok(status(1, "Leader"))),
            (
                "127.0.0.1:7102".to_string(),
                Err(ClientError::Connection {
                    endpoint: "127.0.0.1:7102".to_string(),
                    reason: "cannot connect: refused".to_string(),
                }),
            ),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ENDPOINT"));
        assert!(lines[1].contains("Leader") && lines[1].ends_with("0 B / no quota"));
        let full = SpaceStatus {
            data_bytes: (2 << 30) - 512 * 1024,
            quota_bytes: 2 << 30,
            disk_free_bytes: Some(1 << 30),
            disk_free_min_bytes: 128 << 20,
        };
        assert_eq!(space_cell(&full), "2.0 GiB / 2.0 GiB ALARM: NOSPACE");
        let disk_full = SpaceStatus {
            data_bytes: 1024,
            disk_free_bytes: Some(64 << 20),
            ..full
        };
        assert_eq!(
            space_cell(&disk_full),
            "1.0 KiB / 2.0 GiB ALARM: NOSPACE (disk: 64.0 MiB free)"
        );
        assert!(lines[2].starts_with("127.0.0.1:7102  unreachable: cannot connect: refused"));
        assert!(all_unreachable(&rows).is_none());
        assert!(all_unreachable(&rows[1..]).is_some());
    }
}
