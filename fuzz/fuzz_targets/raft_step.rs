//! The raft `step` function fed arbitrary message sequences on a small cluster: three
//! voters and one node that may join, driven by a byte script of ticks, deliveries,
//! losses, duplicates, reorderings, proposals, reads, transfers, membership changes,
//! compactions, crashes (also half way through a `Ready`), restarts and forged or
//! corrupted messages. The invariants checked are listed in `src/cluster.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = raftkv_fuzz::cluster::run(data);
});
