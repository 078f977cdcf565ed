//! The key/value subcommands: put, get, delete, cas, list.
//!
//! Keys and values are bytes end to end: arguments are taken as the OS gives them (any
//! bytes but NUL on Unix), values can come from a file or stdin (`--value-file -`), `get
//! --raw` writes a value's bytes exactly, text output escapes what is not printable
//! (`output::text`) and JSON carries keys and values in base64 (`output::bytes_json`).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use client::wire::{Prior, ReadConsistency, VALUE_BYTES_MAX};
use serde_json::json;

use crate::failure::{Exit, Failure};
use crate::output::{self, bytes_json, text, Output};
use crate::GlobalArgs;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["value", "value_file"])))]
#[command(
    after_help = "Example: raftkv put greeting hello; raftkv put photo --value-file photo.jpg --prev-kv"
)]
pub struct PutArgs {
    key: OsString,
    value: Option<OsString>,
    /// Read the value from this file, byte for byte (`-`: stdin), instead of VALUE.
    #[arg(long, value_name = "PATH")]
    value_file: Option<PathBuf>,
    /// Print the value KEY held before (etcdctl's `--prev-kv`). Without it the cluster
    /// answers only whether KEY held a value, and keeps no copy of it for a retry.
    #[arg(long)]
    prev_kv: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv get greeting; raftkv get photo --raw > photo.jpg")]
pub struct GetArgs {
    key: OsString,
    /// Read the contacted node's local state: faster, never blocks on the leader, may be stale.
    #[arg(long)]
    stale: bool,
    /// Write the value's bytes exactly as stored, with no newline and no escaping
    /// (whatever --output says).
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv delete greeting --prev-kv")]
pub struct DeleteArgs {
    key: OsString,
    /// Print the value KEY held (etcdctl's `--prev-kv`).
    #[arg(long)]
    prev_kv: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("expectation").required(true)
    .args(["expected", "expected_file", "expect_absent"])))]
#[command(group(ArgGroup::new("replacement").required(true).args(["new", "new_file", "delete"])))]
#[command(after_help = "Example: raftkv cas greeting --expected hello --new bye")]
pub struct CasArgs {
    key: OsString,
    /// Swap only if KEY currently holds this value.
    #[arg(long, value_name = "VALUE")]
    expected: Option<OsString>,
    /// Swap only if KEY currently holds the bytes of this file (`-`: stdin).
    #[arg(long, value_name = "PATH")]
    expected_file: Option<PathBuf>,
    /// Swap only if KEY is currently absent.
    #[arg(long)]
    expect_absent: bool,
    /// The value to write.
    #[arg(long, value_name = "VALUE")]
    new: Option<OsString>,
    /// Write the bytes of this file (`-`: stdin).
    #[arg(long, value_name = "PATH")]
    new_file: Option<PathBuf>,
    /// Delete KEY instead of writing a value.
    #[arg(long)]
    delete: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example: raftkv list app/ --limit 100; raftkv list app/ --all --output json; raftkv list app/ --count"
)]
pub struct ListArgs {
    prefix: OsString,
    /// At most this many pairs per page (a page also stops at about 8 MiB of keys and
    /// values; the output says where the next one starts).
    #[arg(long, default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(client::wire::LIST_LIMIT_MAX)))]
    limit: u32,
    /// Start at this key (a previous page's next key) instead of the prefix's first.
    #[arg(long, value_name = "KEY")]
    start: Option<OsString>,
    /// Follow the pages to the end: every pair under PREFIX (each page one read).
    #[arg(long, conflicts_with = "count")]
    all: bool,
    /// Print only how many keys start with PREFIX (from --start on).
    #[arg(long)]
    count: bool,
    /// Read the contacted node's local state: may be stale.
    #[arg(long)]
    stale: bool,
}

fn consistency(stale: bool) -> ReadConsistency {
    if stale {
        ReadConsistency::Stale
    } else {
        ReadConsistency::Linearizable
    }
}

fn bytes_of(argument: &OsString) -> Vec<u8> {
    argument.as_bytes().to_vec()
}

/// The bytes of `path` (`-`: stdin), refused past the largest value a node takes, with
/// a message that names the file.
fn read_value(path: &Path) -> Result<Vec<u8>, Failure> {
    let limit = VALUE_BYTES_MAX as u64 + 1;
    let mut value = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().lock().take(limit).read_to_end(&mut value)
    } else {
        std::fs::File::open(path).and_then(|file| file.take(limit).read_to_end(&mut value))
    };
    let name = if path == Path::new("-") {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    read.map_err(|error| Failure::from(format!("cannot read the value from {name}: {error}")))?;
    if value.len() > VALUE_BYTES_MAX {
        return Err(Failure::from(format!(
            "the value in {name} is over the {VALUE_BYTES_MAX}-byte limit of a value"
        )));
    }
    Ok(value)
}

/// The one value among an argument and a file (clap's groups allow at most one).
fn value_of(argument: Option<&OsString>, file: Option<&Path>) -> Result<Option<Vec<u8>>, Failure> {
    match (argument, file) {
        (Some(argument), _) => Ok(Some(bytes_of(argument))),
        (None, Some(file)) => read_value(file).map(Some),
        (None, None) => Ok(None),
    }
}

/// The JSON of a write's prior value, when it was asked for.
fn prior_json(answer: &mut serde_json::Value, field: &str, prior: &Prior) {
    answer[field] = prior.value().map_or(serde_json::Value::Null, bytes_json);
}

pub async fn put(global: &GlobalArgs, args: PutArgs) -> Result<(), Failure> {
    let key = bytes_of(&args.key);
    let value = value_of(args.value.as_ref(), args.value_file.as_deref())?.unwrap_or_default();
    let mut client = global.client()?;
    let prior = if args.prev_kv {
        client
            .put_returning_previous(key.clone(), value.clone())
            .await?
            .map_or(Prior::Absent, Prior::Value)
    } else {
        client.put(key.clone(), value.clone()).await?
    };
    match global.output {
        Output::Text => match prior.value() {
            Some(previous) => outln!("OK (previous value: {})", text(previous)),
            None => outln!("OK"),
        },
        Output::Json => {
            let mut answer = json!({
                "key": bytes_json(&key),
                "value": bytes_json(&value),
                "encoding": output::ENCODING,
                "existed": prior.existed(),
            });
            if args.prev_kv {
                prior_json(&mut answer, "previous", &prior);
            }
            output::print_json(&answer);
        }
    }
    Ok(())
}

pub async fn get(global: &GlobalArgs, args: GetArgs) -> Result<(), Failure> {
    let key = bytes_of(&args.key);
    let read = global
        .client()?
        .get_with_revisions(key.clone(), consistency(args.stale))
        .await?;
    let Some(kv) = read.kv else {
        return Err(Failure::new(
            Exit::NotFound,
            format!("key {} not found (at revision {})", text(&key), read.revision),
        ));
    };
    match global.output {
        _ if args.raw => output::write_stdout_bytes(&kv.value),
        Output::Text => outln!("{}", text(&kv.value)),
        Output::Json => {
            let mut answer = output::key_value_json(&kv);
            answer["encoding"] = json!(output::ENCODING);
            answer["revision"] = json!(read.revision);
            output::print_json(&answer);
        }
    }
    Ok(())
}

pub async fn delete(global: &GlobalArgs, args: DeleteArgs) -> Result<(), Failure> {
    let key = bytes_of(&args.key);
    let mut client = global.client()?;
    let prior = if args.prev_kv {
        client
            .delete_returning_previous(key.clone())
            .await?
            .map_or(Prior::Absent, Prior::Value)
    } else {
        client.delete(key.clone()).await?
    };
    match global.output {
        Output::Text => match (&prior, prior.value()) {
            (_, Some(previous)) => outln!("deleted (previous value: {})", text(previous)),
            (Prior::Absent, None) => outln!("OK (key was absent)"),
            (_, None) => outln!("deleted"),
        },
        Output::Json => {
            let mut answer = json!({
                "key": bytes_json(&key),
                "encoding": output::ENCODING,
                "deleted": prior.existed(),
            });
            if args.prev_kv {
                prior_json(&mut answer, "previous", &prior);
            }
            output::print_json(&answer);
        }
    }
    Ok(())
}

/// A compare that fails prints its answer (with the value found) and exits with its own
/// code, 4 (`Exit::NotSwapped`), so a script can tell it from a swap. (Asking for it leaves
/// a copy in this one-off session's record until the session expires or the cache bound
/// evicts it; an evicted session only refuses its own retries.)
pub async fn cas(global: &GlobalArgs, args: CasArgs) -> Result<(), Failure> {
    if args.expected_file.as_deref() == Some(Path::new("-"))
        && args.new_file.as_deref() == Some(Path::new("-"))
    {
        return Err(Failure::new(
            Exit::Usage,
            "--expected-file and --new-file cannot both read stdin",
        ));
    }
    let key = bytes_of(&args.key);
    // clap's groups guarantee exactly one of each: absent and delete are the `None`s.
    let expected = value_of(args.expected.as_ref(), args.expected_file.as_deref())?;
    let new_value = value_of(args.new.as_ref(), args.new_file.as_deref())?;
    let (swapped, current) = global
        .client()?
        .compare_and_swap_returning_current(key.clone(), expected, new_value)
        .await?;
    match global.output {
        Output::Text => match (swapped, &current) {
            (true, _) => outln!("swapped"),
            (false, Some(current)) => outln!("not swapped: current value is {}", text(current)),
            (false, None) => outln!("not swapped: key is absent"),
        },
        Output::Json => output::print_json(&json!({
            "key": bytes_json(&key),
            "encoding": output::ENCODING,
            "swapped": swapped,
            "current": current.as_deref().map_or(serde_json::Value::Null, bytes_json),
        })),
    }
    if swapped {
        Ok(())
    } else {
        Err(Failure::quiet(Exit::NotSwapped))
    }
}

/// A page at a time: text is one pair a line (key, a tab, value; both escaped, so a line
/// holds exactly one tab) and, when a page is not the last and `--all` is not given, a
/// last line without a tab that names the next key; JSON is one document per page with
/// `more` and `next`. `--all` prints every page as it comes, so memory stays one page.
pub async fn list(global: &GlobalArgs, args: ListArgs) -> Result<(), Failure> {
    let prefix = bytes_of(&args.prefix);
    let mut start = args.start.as_ref().map(bytes_of).unwrap_or_default();
    let mut client = global.client()?;
    if args.count {
        let count = client
            .count_from(prefix.clone(), start, consistency(args.stale))
            .await?;
        match global.output {
            Output::Text => outln!("{count}"),
            Output::Json => output::print_json(&json!({
                "prefix": bytes_json(&prefix),
                "encoding": output::ENCODING,
                "count": count,
            })),
        }
        return Ok(());
    }
    loop {
        let page = client
            .list_from(prefix.clone(), start, args.limit, consistency(args.stale))
            .await?;
        match global.output {
            Output::Text => {
                for kv in &page.pairs {
                    outln!("{}\t{}", text(&kv.key), text(&kv.value));
                }
                if let (Some(next), false) = (&page.next, args.all) {
                    outln!(
                        "-- more: the next page starts at {} (--start it, or --all)",
                        text(next)
                    );
                }
            }
            Output::Json => output::print_json(&json!({
                "prefix": bytes_json(&prefix),
                "encoding": output::ENCODING,
                "pairs": output::key_values_json(&page.pairs),
                "revision": page.revision,
                "more": page.next.is_some(),
                "next": page.next.as_deref().map_or(serde_json::Value::Null, bytes_json),
            })),
        }
        match page.next {
            Some(next) if args.all => start = next,
            _ => return Ok(()),
        }
    }
}
