//! Runs seeds: one madsim runtime per seed, built here rather than by
//! `#[madsim::test]` because inside a runtime `std::time::Instant` is simulated too, and
//! wall time (simulated seconds per wall second) can only be measured outside it.
//!
//! Environment, as with `#[madsim::test]`: `MADSIM_TEST_SEED` (first seed; default from
//! the clock), `MADSIM_TEST_NUM` (how many seeds), `MADSIM_TEST_CHECK_DETERMINISM` (run
//! the first seed twice and compare every random draw). `SIM_VERBOSE=1` prints every
//! fault of every seed, not only of failing ones.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use madsim::runtime::Runtime;

use crate::parameters::RunParameters;
use crate::scenario::{self, RunReport};

/// A run that does not finish within this much simulated time hangs: it fails.
pub const SIMULATED_TIME_LIMIT: Duration = Duration::from_secs(400);

/// The integer in environment variable `name`, if set.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|value| {
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be an integer, not {value:?}"))
    })
}

/// The first seed and how many, from the environment.
pub fn seeds_from_env(default_count: u64) -> (u64, u64) {
    let first = env_u64("MADSIM_TEST_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64
    });
    (first, env_u64("MADSIM_TEST_NUM").unwrap_or(default_count))
}

pub fn verbose() -> bool {
    std::env::var("SIM_VERBOSE").is_ok_and(|value| value != "0")
}

/// How one seed ended.
#[derive(Debug)]
pub enum SeedOutcome {
    /// The run finished; its report says whether anything was found.
    Finished(Box<RunReport>),
    /// Something panicked (a node's assertion, the time limit): always a failure.
    Panicked(String),
}

impl SeedOutcome {
    /// What was wrong, if anything.
    pub fn findings(&self) -> Vec<String> {
        match self {
            SeedOutcome::Finished(report) => report.findings.clone(),
            SeedOutcome::Panicked(message) => vec![format!("panic: {message}")],
        }
    }
}

/// Runs one seed to the end in a fresh runtime; returns its outcome and the wall time.
pub fn run_seed(parameters: RunParameters) -> (SeedOutcome, Duration) {
    let seed = parameters.seed;
    println!("seed {seed}: {parameters}");
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.set_time_limit(SIMULATED_TIME_LIMIT);
        with_seeded_tokio_rng(seed, move || runtime.block_on(scenario::run(parameters)))
    }));
    let wall = started.elapsed();
    let outcome = match outcome {
        Ok(report) => SeedOutcome::Finished(Box::new(report)),
        Err(panic) => SeedOutcome::Panicked(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_string()))
                .unwrap_or_else(|| "a panic without a message".to_string()),
        ),
    };
    (outcome, wall)
}

/// One line summing up a finished run.
pub fn summary(report: &RunReport, wall: Duration) -> String {
    let checks = report.checks;
    format!(
        "{:.1} simulated s in {:.2} wall s; {} ops ({} completed, {} indeterminate); faults {:?}, \
         {} overlapping, {} disks lost ({} after a removal, {} losses skipped), \
         {} restarts after compaction caught up by snapshot; leader {:?} after heal; converged {:?}; \
         watchers saw {} events of {} revisions; \
         checked {} leaders, {} vote grants, {} acks, {} commit advances, {} entries written, {} decided",
        report.simulated.as_secs_f64(),
        wall.as_secs_f64(),
        report.operations,
        report.workload.completed,
        report.workload.indeterminate,
        report.faults.counts,
        report.faults.overlaps,
        report.faults.disks_lost,
        report.faults.members_removed,
        report.faults.skipped,
        report.faults.compactions_passed,
        report.leader_after_heal,
        report.converged,
        report.watched.events,
        report.watched.revisions,
        checks.leaders_seen,
        checks.vote_grants,
        checks.append_acks,
        checks.commit_advances,
        checks.entries_written,
        checks.entries_decided,
    )
}

/// Runs `run` (a whole simulated run) with tokio's thread-local random generator seeded
/// from `seed`.
///
/// Why: madsim-tokio re-exports real tokio's `sync` types and `select!` macro, and those
/// draw from a thread-local generator that tokio seeds from std's `RandomState` (which
/// `select!` uses to pick the branch it polls first, and `watch` to spread waiters over
/// its notifiers, so the order in which woken tasks run). madsim makes that state
/// follow the run's seed by answering libc's `getrandom`, but the std of Rust 1.95 on
/// Linux asks the kernel through `syscall` and madsim's hook never runs ("failed to
/// initialize std random state" in madsim's log): every process then simulated a seed
/// differently. A tokio runtime built with `rng_seed` (an unstable tokio API, hence
/// `--cfg tokio_unstable` in `ci/sim.sh`) sets the generator while its `block_on`
/// runs; madsim's whole run happens inside it, on this thread. `unconstrained`: tokio's
/// cooperative budget would otherwise make its sync types yield forever once one poll
/// of the outer future had spent it.
#[cfg(tokio_unstable)]
pub fn with_seeded_tokio_rng<T>(seed: u64, run: impl FnOnce() -> T) -> T {
    let seeded = real_tokio::runtime::Builder::new_current_thread()
        .rng_seed(real_tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()))
        .build()
        .expect("a current-thread tokio runtime builds");
    seeded.block_on(real_tokio::task::unconstrained(async move { run() }))
}

/// Without `--cfg tokio_unstable` a run cannot seed tokio's generator: it still runs, but
/// a seed no longer replays exactly (see the other definition).
#[cfg(not(tokio_unstable))]
pub fn with_seeded_tokio_rng<T>(_seed: u64, run: impl FnOnce() -> T) -> T {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "WARNING: built without --cfg tokio_unstable: tokio's random generator is not seeded, \
             so a seed does not replay exactly (use ci/sim.sh)"
        );
    });
    run()
}
