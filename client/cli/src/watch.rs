//! `raftkv watch PREFIX`: prints every change under PREFIX in revision order as it is
//! applied, from `--from-revision` (or from now), and goes on across node failures and
//! leader changes without missing or repeating an event (`client::client::Watcher`).
//! Text is one event a line (revision, PUT or DELETE, key, value; tab-separated and
//! escaped as `list` is); JSON is one object a line.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use clap::Args;
use client::client::Watcher;
use client::wire::Event;
use serde_json::json;

use crate::failure::Failure;
use crate::output::{self, text, Output};
use crate::GlobalArgs;

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv watch app/ --from-revision 1 --output json")]
pub struct WatchArgs {
    prefix: OsString,
    /// The first revision to print (0: the changes after the current revision). A
    /// revision compacted away exits with code 9.
    #[arg(long, value_name = "R", default_value_t = 0)]
    from_revision: u64,
    /// Exit after printing this many events (0: never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_events: u64,
}

pub async fn watch(global: &GlobalArgs, args: WatchArgs) -> Result<(), Failure> {
    let prefix = args.prefix.as_bytes().to_vec();
    let mut client = global.client()?;
    let mut watcher = Watcher::new(prefix, args.from_revision);
    let mut printed = 0u64;
    loop {
        let events = match watcher.next(&mut client).await {
            Ok(events) => events,
            // No node answered in time: the next call asks again from the same revision.
            Err(error) if error.unavailable() => {
                eprintln!(
                    "watch: {error}; retrying from revision {}",
                    watcher.next_revision()
                );
                continue;
            }
            // Compacted (exit 9), refused, or not permitted: asking again cannot help.
            Err(error) => return Err(error.into()),
        };
        for event in &events {
            print_event(global.output, event);
            printed += 1;
            if printed == args.max_events {
                return Ok(());
            }
        }
    }
}

fn print_event(format: Output, event: &Event) {
    match format {
        Output::Text => outln!(
            "{}\t{}\t{}\t{}",
            event.revision(),
            event.kind.as_str(),
            text(&event.kv.key),
            text(&event.kv.value)
        ),
        Output::Json => {
            let mut line = output::key_value_json(&event.kv);
            line["type"] = json!(event.kind.as_str());
            line["revision"] = json!(event.revision());
            line["encoding"] = json!(output::ENCODING);
            output::print_json(&line);
        }
    }
}
