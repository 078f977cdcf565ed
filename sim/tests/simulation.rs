//! The full simulation: for each seed, a cluster of 3 or 5 real raftkv nodes under
//! madsim, a safety phase of crashes, pauses, partitions and latency spikes, a liveness
//! phase, and every check (Raft invariants, linearizability, liveness, convergence).
//! Any finding fails the test with the seed that reproduces it.
//!
//! `ci/sim.sh [seeds]` runs it; see `sim::runner` for the environment.
#![cfg(madsim)]

use std::time::{Duration, Instant};

use madsim::runtime::Runtime;
use sim::runner::{run_seed, seeds_from_env, summary, verbose, SeedOutcome, SIMULATED_TIME_LIMIT};
use sim::{scenario, RunParameters};

#[test]
fn clusters_survive_the_fault_schedule() {
    if std::env::var("MADSIM_TEST_CHECK_DETERMINISM").is_ok() {
        let (seed, _) = seeds_from_env(1);
        println!("seed {seed}: checking determinism (the run twice, every random draw compared)");
        Runtime::check_determinism(seed, madsim::Config::default(), determinism_run);
        println!("seed {seed}: deterministic");
        return;
    }
    let (first_seed, seeds) = seeds_from_env(1);
    let all_started = Instant::now();
    let mut simulated_total = Duration::ZERO;
    let mut unknown = 0;
    for seed in first_seed..first_seed + seeds {
        let (outcome, wall) = run_seed(RunParameters::from_seed(seed));
        let findings = outcome.findings();
        match &outcome {
            SeedOutcome::Finished(report) => {
                simulated_total += report.simulated;
                if verbose() || !findings.is_empty() {
                    for line in &report.faults.lines {
                        println!("seed {seed}:   {line}");
                    }
                }
                if let Some(key) = &report.linearizability_unknown {
                    unknown += 1;
                    println!("seed {seed}: linearizability UNKNOWN on key {key:?} (step budget exhausted)");
                }
                println!("seed {seed}: {}", summary(report, wall));
            }
            SeedOutcome::Panicked(_) => {}
        }
        assert!(
            findings.is_empty(),
            "seed {seed} FAILED: {findings:#?}\nreproduce: MADSIM_TEST_SEED={seed} ci/sim.sh 1"
        );
        println!("seed {seed}: passed");
    }
    let wall = all_started.elapsed();
    println!(
        "{seeds} seeds from {first_seed} passed in {:.1} wall s: {:.1} seeds per minute, {:.1} simulated s \
         per wall s ({} with an unknown linearizability verdict; time limit {SIMULATED_TIME_LIMIT:?})",
        wall.as_secs_f64(),
        seeds as f64 * 60.0 / wall.as_secs_f64(),
        simulated_total.as_secs_f64() / wall.as_secs_f64(),
        unknown,
    );
}

/// One run for the determinism check (a plain `fn` pointer: it cannot capture the seed).
async fn determinism_run() {
    let seed = madsim::runtime::Handle::current().seed();
    let report = scenario::run(RunParameters::from_seed(seed)).await;
    assert!(report.findings.is_empty(), "seed {seed}: {:?}", report.findings);
}
