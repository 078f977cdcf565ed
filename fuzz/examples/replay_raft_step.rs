//! Replays one raft_step input with every operation and message printed, to read a
//! crash: `cargo run --example replay_raft_step -- fuzz/artifacts/raft_step/crash-...`
//! (a dev build: the raft crate's debug invariants are on).

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: replay_raft_step <input file>");
    let data = std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let outcome = raftkv_fuzz::cluster::run_traced(&data, true);
    println!("{outcome:?}");
}
