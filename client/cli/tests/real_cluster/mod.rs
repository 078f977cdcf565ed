//! Helpers of the CLI tests against real `raftkv-node` processes.
//!
//! The node binary belongs to another package, so Cargo does not build it for this one:
//! the tests use the `raftkv-node` beside `raftkv` (`cargo test --workspace` builds both
//! before it runs any test) or `RAFTKV_NODE_BIN`. Without either they say they skipped; CI
//! sets `RAFTKV_NODE_BIN`, which must then exist.

#![allow(dead_code, reason = "each test crate uses a different part")]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// The node binary; `None` (skip) only when `RAFTKV_NODE_BIN` is unset and none was
/// built. A set `RAFTKV_NODE_BIN` must exist: `ci/test.sh` sets it, so CI never skips.
pub fn node_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RAFTKV_NODE_BIN") {
        let path = PathBuf::from(path);
        assert!(path.exists(), "RAFTKV_NODE_BIN={} does not exist", path.display());
        return Some(path);
    }
    let path = PathBuf::from(env!("CARGO_BIN_EXE_raftkv")).with_file_name("raftkv-node");
    path.exists().then_some(path)
}

/// Runs the `raftkv` CLI against `endpoints`.
pub fn raftkv(endpoints: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["--endpoints", endpoints])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run raftkv")
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A fresh directory under the system's temporary one (this crate has no `tempfile`).
pub fn temporary_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos();
    std::env::temp_dir().join(format!("raftkv-{name}-{}-{nanos}", std::process::id()))
}
