//! How `raftkv` prints: text for people, one-line JSON for scripts, and errors as one
//! line on stderr. Keys and values are bytes on the wire; both formats show them as
//! UTF-8, with invalid sequences replaced (U+FFFD) rather than refused.

use std::borrow::Cow;
use std::process::ExitCode;

use clap::error::ErrorKind as ClapErrorKind;
use clap::ValueEnum;
use client::wire::{NodeDump, NodeStatus};
use serde_json::{json, Value};

use crate::Failure;

/// Exit code of a failure at run time (clap's usage errors use 2).
const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage, as clap's own.
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Bytes as text: UTF-8, invalid sequences replaced.
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// One JSON document per line, so output can be piped to `jq` or read line by line.
pub fn print_json(value: &Value) {
    println!("{value}");
}

pub fn pairs_json(pairs: &[(Vec<u8>, Vec<u8>)]) -> Value {
    pairs
        .iter()
        .map(|(key, value)| json!({ "key": lossy(key), "value": lossy(value) }))
        .collect()
}

pub fn status_json(status: &NodeStatus) -> Result<Value, Failure> {
    serde_json::to_value(status).map_err(|error| Failure(format!("cannot render a status as JSON: {error}")))
}

pub fn dump_json(address: &str, dump: &NodeDump) -> Result<Value, Failure> {
    let log: Vec<Value> = dump
        .log
        .iter()
        .map(|(index, term, entry)| json!({ "index": index, "term": term, "entry": entry }))
        .collect();
    Ok(json!({
        "endpoint": address,
        "status": status_json(&dump.status)?,
        "log": log,
        "kv": pairs_json(&dump.kv),
    }))
}

pub fn print_dump_text(address: &str, dump: &NodeDump) {
    let status = &dump.status;
    let leader = status
        .leader
        .map_or_else(|| "unknown".to_string(), |id| id.to_string());
    println!(
        "node {} at {address}: {} in term {}, leader {leader}",
        status.id, status.role, status.term
    );
    println!(
        "commit {}, applied {}, log {}..={}, snapshot at {}",
        status.commit, status.applied, status.first_index, status.last_index, status.snapshot_index
    );
    println!("log ({} entries):", dump.log.len());
    for (index, term, entry) in &dump.log {
        println!("  {index}\tterm {term}\t{entry}");
    }
    println!("kv ({} pairs):", dump.kv.len());
    for (key, value) in &dump.kv {
        println!("  {}\t{}", lossy(key), lossy(value));
    }
}

/// Reports a run-time failure as one line on stderr.
pub fn failure(message: &str) -> ExitCode {
    eprintln!("error: {}", one_line(message));
    ExitCode::from(EXIT_FAILURE)
}

/// Prints help or version as clap does, and squeezes a usage error into one line: the
/// message and its details, without clap's "Usage:" block and "--help" tip lines.
pub fn usage_error(error: clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion
    ) {
        // Help goes to stdout; if even that fails there is nowhere left to report it.
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    if error.kind() == ClapErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // A bare `raftkv`: the help is the clearest answer (clap sends it to stderr).
        let _ = error.print();
        return ExitCode::from(EXIT_USAGE);
    }
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Usage:") && !line.starts_with("For more"))
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("error: {message} (see 'raftkv --help')");
    ExitCode::from(EXIT_USAGE)
}

/// A multi-line message (say, an I/O error's text) would break "one line per error".
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
