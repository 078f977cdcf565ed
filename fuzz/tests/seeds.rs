//! The raft_step seeds do what their names say (so the fuzzer starts from a replicating
//! cluster), and every seed of every target is in the corpus. Run with `cargo test`.

use std::fs;
use std::path::Path;

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
        .join(format!("seed-{name}"));
    fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn raft_step_seeds_elect_and_replicate() {
    for name in [
        "elect-replicate",
        "reads-transfer",
        "join-promote-remove",
        "compact-crash-restart",
        "lazy-lossy",
    ] {
        let outcome = raftkv_fuzz::cluster::run(&seed("raft_step", name));
        println!("{name}: {outcome:?}");
        assert!(outcome.leader_terms >= 1, "{name}: no leader");
        assert!(outcome.applied >= 3, "{name}: nothing replicated");
        assert!(!outcome.tainted, "{name}: honest");
    }
    let forged = raftkv_fuzz::cluster::run(&seed("raft_step", "forged"));
    println!("forged: {forged:?}");
    assert!(forged.applied >= 3);
}
