//! How `raftkv` prints: text for people, one-line JSON for scripts, and errors as one
//! line on stderr. Keys and values are bytes on the wire: text shows them with what is not
//! printable escaped (`text`), JSON carries them in base64 beside `"encoding": "base64"`
//! (as etcdctl's `-w json` does), and `get --raw` writes them as they are.
//!
//! Everything goes through `write_stdout` (the `outln!` and `out!` macros): a reader that
//! closed the pipe (`raftkv list '' | head -1`) ends the command quietly, not with a panic.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use base64::Engine;

use clap::error::ErrorKind as ClapErrorKind;
use clap::ValueEnum;
use client::wire::{KeyValue, NodeDump, NodeStatus};
use serde_json::{json, Value};

use crate::failure::{Exit, Failure};

/// Exit code of a failure to write the output itself.
const EXIT_FAILURE: u8 = Exit::Failure as u8;
/// Exit code of bad usage, as clap's own.
const EXIT_USAGE: u8 = Exit::Usage as u8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The `encoding` field of JSON output that carries keys or values.
pub const ENCODING: &str = "base64";

/// Bytes as one line of text: printable UTF-8 as it is, a backslash doubled, tab,
/// newline and carriage return as `\t`, `\n`, `\r`, other control characters as
/// `\u{..}`, and bytes that are not UTF-8 as `\xNN`. So a tab-separated `list` line is
/// never ambiguous, and two different keys never print alike.
pub fn text(bytes: &[u8]) -> String {
    let mut shown = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for character in chunk.valid().chars() {
            match character {
                '\\' => shown.push_str("\\\\"),
                '\t' => shown.push_str("\\t"),
                '\n' => shown.push_str("\\n"),
                '\r' => shown.push_str("\\r"),
                control if control.is_control() => shown.push_str(&control.escape_unicode().to_string()),
                printable => shown.push(printable),
            }
        }
        for byte in chunk.invalid() {
            shown.push_str(&format!("\\x{byte:02x}"));
        }
    }
    shown
}

/// Bytes for JSON: standard base64 (with padding).
pub fn bytes_json(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Writes to stdout; a closed pipe ends the process quietly (exit 0: the reader has what
/// it wanted), any other failure with one error line.
pub fn write_stdout(arguments: fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    let written = stdout.write_fmt(arguments).and_then(|()| stdout.flush());
    end_on_write_error(written);
}

/// `write_stdout` for bytes as they are (`get --raw`).
pub fn write_stdout_bytes(bytes: &[u8]) {
    let mut stdout = io::stdout().lock();
    let written = stdout.write_all(bytes).and_then(|()| stdout.flush());
    end_on_write_error(written);
}

fn end_on_write_error(written: io::Result<()>) {
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to stdout: {error}");
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    }
}

/// One JSON document per line, so output can be piped to `jq` or read line by line.
pub fn print_json(value: &Value) {
    outln!("{value}");
}

pub fn pairs_json(pairs: &[(Vec<u8>, Vec<u8>)]) -> Value {
    pairs
        .iter()
        .map(|(key, value)| json!({ "key": bytes_json(key), "value": bytes_json(value) }))
        .collect()
}

/// Pairs with their revisions (etcd's `KeyValue` fields, keys and values in base64).
pub fn key_values_json(pairs: &[KeyValue]) -> Value {
    pairs.iter().map(key_value_json).collect()
}

pub fn key_value_json(kv: &KeyValue) -> Value {
    json!({
        "key": bytes_json(&kv.key),
        "value": bytes_json(&kv.value),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
    })
}

pub fn status_json(status: &NodeStatus) -> Result<Value, Failure> {
    serde_json::to_value(status)
        .map_err(|error| Failure::from(format!("cannot render a status as JSON: {error}")))
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
        "encoding": ENCODING,
        "kv": pairs_json(&dump.kv),
    }))
}

pub fn print_dump_text(address: &str, dump: &NodeDump) {
    let status = &dump.status;
    let leader = status
        .leader
        .map_or_else(|| "unknown".to_string(), |id| id.to_string());
    outln!(
        "node {} at {address}: {} in term {}, leader {leader}",
        status.id,
        status.role,
        status.term
    );
    outln!(
        "commit {}, applied {}, log {}..={}, snapshot at {}",
        status.commit,
        status.applied,
        status.first_index,
        status.last_index,
        status.snapshot_index
    );
    outln!("log ({} entries):", dump.log.len());
    for (index, term, entry) in &dump.log {
        outln!("  {index}\tterm {term}\t{entry}");
    }
    outln!("kv ({} pairs):", dump.kv.len());
    for (key, value) in &dump.kv {
        outln!("  {}\t{}", text(key), text(value));
    }
}

/// Reports a run-time failure: one line on stderr, or with `--output json` one document
/// on stdout (`{"error": {"kind", "message", "exit_code"}}`); a quiet failure printed its
/// answer already. Returns its exit code.
pub fn failure(failure: &Failure, format: Output) -> ExitCode {
    if !failure.message.is_empty() {
        match format {
            Output::Text => eprintln!("error: {}", one_line(&failure.message)),
            Output::Json => print_json(&json!({
                "error": {
                    "kind": failure.exit.name(),
                    "message": one_line(&failure.message),
                    "exit_code": failure.exit.code(),
                }
            })),
        }
    }
    ExitCode::from(failure.exit.code())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_what_is_not_printable_and_never_shows_two_keys_alike() {
        assert_eq!(text(b"plain key/with spaces"), "plain key/with spaces");
        assert_eq!(text("héllo ✓".as_bytes()), "héllo ✓");
        assert_eq!(text(b"a\tb\nc\rd"), "a\\tb\\nc\\rd");
        assert_eq!(text(b"\x00\x1b[31m"), "\\u{0}\\u{1b}[31m");
        assert_eq!(text(b"k\xff\xfe"), "k\\xff\\xfe");
        // A backslash is doubled, so the escape of a byte and its spelling differ.
        assert_eq!(text(b"\\xff"), "\\\\xff");
        assert_ne!(text(b"\\xff"), text(b"\xff"));
    }

    #[test]
    fn json_bytes_are_standard_base64() {
        assert_eq!(bytes_json(b""), Value::String(String::new()));
        assert_eq!(bytes_json(b"\xff\x00a"), Value::String("/wBh".to_string()));
    }
}
