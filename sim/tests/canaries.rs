//! Canaries: each test injects one known bug into every node (`raft::canary::Canary`)
//! and asserts that the simulation finds a violation within a fixed range of seeds. A
//! checker that cannot find these bugs proves nothing about the real code.
//!
//! The seed range is fixed so that the test is deterministic: the same seeds find the
//! same bug every time. `CANARY_SEEDS=N` widens or narrows it.
//!
//! `EmptyDiskBootstrapsAsVoter` (issue 10) is injected by the simulation itself: a node
//! whose disk was lost restarts with the incarnation of the lost data dir, as raftkv
//! did before it gave data dirs an identity.
#![cfg(all(madsim, feature = "canaries"))]

// The package is `raftkv-sim`; its tests call the crate `sim`.
extern crate raftkv_sim as sim;

use raft::canary::Canary;
use sim::runner::{env_u64, run_seed, summary, verbose, SeedOutcome};
use sim::RunParameters;

/// The first seed of every canary's range.
const FIRST_SEED: u64 = 1_000;
/// How many seeds a canary may take to be found.
const SEEDS_DEFAULT: u64 = 80;

/// Runs seeds with `canary` until a run has a finding; fails if none does.
fn assert_found(canary: Canary) {
    let seeds = env_u64("CANARY_SEEDS").unwrap_or(SEEDS_DEFAULT);
    for seed in FIRST_SEED..FIRST_SEED + seeds {
        let parameters = RunParameters {
            canary: Some(canary),
            ..RunParameters::from_seed(seed)
        };
        let (outcome, wall) = run_seed(parameters);
        if let SeedOutcome::Finished(report) = &outcome {
            if verbose() {
                for line in &report.faults.lines {
                    println!("seed {seed}:   {line}");
                }
            }
            println!("seed {seed}: {}", summary(report, wall));
        }
        let findings = outcome.findings();
        if !findings.is_empty() {
            println!(
                "canary {canary:?} found by seed {seed} ({} of {seeds}): {}",
                seed - FIRST_SEED + 1,
                findings.join("; ")
            );
            return;
        }
        println!("canary {canary:?}: seed {seed} found nothing");
    }
    panic!(
        "canary {canary:?} was not found by seeds {FIRST_SEED}..{}",
        FIRST_SEED + seeds
    );
}

#[test]
fn a_vote_sent_before_it_is_durable_is_found() {
    assert_found(Canary::VoteBeforePersist);
}

#[test]
fn committing_an_old_term_entry_by_counting_is_found() {
    assert_found(Canary::CommitOldTermByCounting);
}

#[test]
fn a_deposed_leader_serving_reads_without_read_index_is_found() {
    assert_found(Canary::StaleLeaderReads);
}

#[test]
fn applying_a_retried_write_twice_is_found() {
    assert_found(Canary::NoWriteDedup);
}

#[test]
fn a_retry_applied_again_after_its_session_expired_is_found() {
    assert_found(Canary::UnknownSessionApplies);
}

#[test]
fn an_empty_disk_taken_for_the_member_it_replaces_is_found() {
    assert_found(Canary::EmptyDiskBootstrapsAsVoter);
}

#[test]
fn a_snapshot_chunk_staged_at_the_wrong_offset_is_found() {
    assert_found(Canary::SnapshotChunkAtAnyOffset);
}

#[test]
fn a_watch_that_skips_an_event_when_it_resumes_is_found() {
    assert_found(Canary::WatchResumeSkipsAnEvent);
}
