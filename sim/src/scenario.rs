//! One simulated run, end to end: a cluster and clients from the run's parameters, a
//! safety phase with faults, a liveness phase with every fault healed, then the checks.
//! Every finding is collected in the report rather than panicked on, so that the canary
//! tests can assert that a known bug is found.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use client::client::ClientOptions;
use madsim::runtime::Handle;
use tokio::sync::watch;
use tokio::time::{sleep, Instant};

use crate::cluster::{ClusterConfig, SimCluster};
use crate::history::{History, Outcome};
use crate::invariants::CheckCounts;
use crate::linearizability::{check, CheckResult};
use crate::nemesis::{FaultLog, Nemesis};
use crate::parameters::RunParameters;
use crate::probe::{convergence, every_node_a_voter, find_leader, history_of, kv_of, members, Converged};
use crate::watch_check::{self, WatchRecord};
use crate::watchers;
use crate::workload::{self, WorkloadConfig, WorkloadStats};

/// Liveness: once healed, a leader must be known within this.
pub const LEADER_BOUND: Duration = Duration::from_secs(10);
/// Liveness: once healed, every client must complete an operation within this.
pub const CLIENT_PROGRESS_BOUND: Duration = Duration::from_secs(10);
/// Liveness: after the clients stop, every node must be a voter again (a node whose
/// disk was lost rejoins by itself) and every replica converge, within this.
pub const CONVERGENCE_BOUND: Duration = Duration::from_secs(30);

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub parameters: RunParameters,
    pub simulated: Duration,
    pub workload: WorkloadStats,
    pub operations: usize,
    pub faults: FaultLog,
    pub checks: CheckCounts,
    /// Simulated time from the heal to a known leader.
    pub leader_after_heal: Option<Duration>,
    pub converged: Option<Converged>,
    /// What the watchers saw and the history they were checked against.
    pub watched: WatchedCounts,
    /// A key the linearizability checker gave up on (its step budget ran out): neither
    /// a pass nor a finding, reported so that it is seen.
    pub linearizability_unknown: Option<String>,
    /// Every broken property: Raft invariants, linearizability, liveness, convergence.
    /// Empty for a correct run.
    pub findings: Vec<String>,
    /// A digest of what the run observed: every operation with its simulated times and
    /// result, every fault, the checks' counts. Two runs of one seed must agree on it
    /// (the determinism check, `tests/simulation.rs`).
    pub digest: u64,
}

/// Runs the scenario inside the current madsim runtime.
pub async fn run(parameters: RunParameters) -> RunReport {
    assert!(
        parameters.liveness_phase >= CLIENT_PROGRESS_BOUND && parameters.liveness_phase >= LEADER_BOUND,
        "the clients run long enough after the heal to show progress"
    );
    let handle = Handle::current();
    let origin = Instant::now();
    let cluster_config = ClusterConfig::from_parameters(&parameters);
    let monitor = cluster_config.monitor.clone();
    let mut cluster = SimCluster::start(cluster_config);
    let ids = cluster.ids();
    let mut findings = Vec::new();

    let history: Arc<Mutex<History>> = Arc::default();
    let workload_config = WorkloadConfig {
        client_count: parameters.client_count,
        read_only_clients: parameters.read_only_clients,
        key_count: parameters.key_count,
        client_options: ClientOptions {
            request_timeout: Duration::from_millis(300),
            deadline: Duration::from_millis(1_000),
        },
        think_time_max: parameters.think_time_max,
        op_mix: parameters.op_mix,
    };
    let clients = handle
        .create_node()
        .name("clients")
        .ip("10.0.1.1".parse().expect("an IP address"))
        .build();
    let (stop_clients, clients_stop) = watch::channel(false);
    let (last_revision, watchers_last_revision) = watch::channel(None);
    let watchers = clients.spawn(watchers::run(
        cluster.endpoints(),
        workload_config.client_options,
        watchers_last_revision,
    ));
    let workload = clients.spawn(workload::run(
        cluster.endpoints(),
        workload_config,
        history.clone(),
        origin,
        clients_stop,
    ));
    let probe = handle
        .create_node()
        .name("probe")
        .ip("10.0.1.2".parse().expect("an IP address"))
        .build();

    // Safety phase.
    let mut nemesis = Nemesis::new(&mut cluster, &parameters, probe.clone(), origin);
    nemesis.run_until(origin + parameters.safety_phase).await;
    let faults = nemesis.log.clone();
    let healed_at = Instant::now();

    // Liveness phase, timed from the heal: a leader, progress for every client, then
    // (clients stopped) convergence.
    let leader_after_heal = loop {
        if probe
            .spawn(find_leader(ids.clone()))
            .await
            .expect("probe task")
            .is_some()
        {
            break Some(healed_at.elapsed());
        }
        if healed_at.elapsed() >= LEADER_BOUND {
            findings.push(format!("liveness: no leader within {LEADER_BOUND:?} of the heal"));
            break None;
        }
        sleep(Duration::from_millis(50)).await;
    };
    sleep(parameters.liveness_phase.saturating_sub(healed_at.elapsed())).await;
    stop_clients.send_replace(true);
    let workload = workload.await.expect("workload task");
    let history = history.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let healed_nanos = (healed_at - origin).as_nanos() as u64;
    let bound_nanos = healed_nanos + CLIENT_PROGRESS_BOUND.as_nanos() as u64;
    for client in 1..=parameters.client_count as u64 {
        let progressed = history.operations().iter().any(|operation| {
            operation.client == client
                && operation.invoked >= healed_nanos
                && matches!(operation.outcome, Outcome::Completed { returned, .. } if returned <= bound_nanos)
        });
        if !progressed {
            findings.push(format!(
                "liveness: client {client} completed no operation within {CLIENT_PROGRESS_BOUND:?} of the heal"
            ));
        }
    }
    let converge_by = Instant::now() + CONVERGENCE_BOUND;
    let converged = loop {
        let expected: Vec<_> = ids.iter().map(|&id| (id, cluster.incarnation(id))).collect();
        let voters = probe.spawn(members(ids.clone())).await.expect("probe task");
        let agreed = match voters.and_then(|list| every_node_a_voter(&list, &expected)) {
            Ok(()) => probe.spawn(convergence(ids.clone())).await.expect("probe task"),
            Err(why) => Err(format!("membership: {why}")),
        };
        match agreed {
            Ok(converged) => break Some(converged),
            Err(why) if Instant::now() >= converge_by => {
                findings.push(format!("convergence: not within {CONVERGENCE_BOUND:?}: {why}"));
                break None;
            }
            Err(_) => sleep(Duration::from_millis(200)).await,
        }
    };

    // The watchers drain to the converged revision; their streams are checked against
    // the replicas' history.
    let (watch_findings, watched) = match converged {
        Some(_) => check_watches(&probe, &ids, &last_revision, watchers, history.operations()).await,
        None => {
            last_revision.send_replace(Some(0));
            let _ = watchers.await;
            (Vec::new(), WatchedCounts::default())
        }
    };
    findings.extend(watch_findings);

    // Checks of the whole run.
    monitor.check_final_logs();
    findings.extend(
        monitor
            .violations()
            .iter()
            .map(|violation| format!("invariant {violation}")),
    );
    let mut linearizability_unknown = None;
    match check(history.operations()) {
        CheckResult::Linearizable => {}
        CheckResult::NotLinearizable { key, explanation } => findings.push(format!(
            "linearizability: key {:?}: {explanation}",
            String::from_utf8_lossy(&key)
        )),
        CheckResult::Unknown { key } => {
            linearizability_unknown = Some(String::from_utf8_lossy(&key).into_owned());
        }
    }
    // `DefaultHasher::new()` has fixed keys: the digest depends on the run alone.
    let mut digest = DefaultHasher::new();
    history.operations().hash(&mut digest);
    faults.lines.hash(&mut digest);
    monitor.counts().hash(&mut digest);
    watched.hash(&mut digest);
    findings.hash(&mut digest);
    RunReport {
        digest: digest.finish(),
        parameters,
        simulated: origin.elapsed(),
        workload,
        operations: history.len(),
        faults,
        checks: monitor.counts(),
        leader_after_heal,
        converged,
        watched,
        linearizability_unknown,
        findings,
    }
}

/// The size of what the watch checker checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WatchedCounts {
    /// Revisions in the converged history.
    pub revisions: u64,
    /// Events the watchers received, all streams together.
    pub events: usize,
}

/// Reads every node's history, lets the watchers drain to its last revision, and checks
/// their streams, the history and the acknowledged writes (`watch_check`).
async fn check_watches(
    probe: &madsim::runtime::NodeHandle,
    ids: &[raft::NodeId],
    last_revision: &watch::Sender<Option<u64>>,
    watchers: madsim::task::JoinHandle<Vec<WatchRecord>>,
    operations: &[crate::history::Operation],
) -> (Vec<String>, WatchedCounts) {
    let mut reference: Option<(raft::NodeId, Vec<wire::Event>, u64)> = None;
    let mut agree = Ok(());
    for &id in ids {
        match probe.spawn(history_of(id)).await.expect("probe task") {
            Err(why) => agree = agree.and(Err(why)),
            Ok((events, revision)) => match &reference {
                None => reference = Some((id, events, revision)),
                Some((first, first_events, first_revision)) => {
                    if (revision, &events) != (*first_revision, first_events) {
                        let at = events
                            .iter()
                            .zip(first_events)
                            .position(|(a, b)| a != b)
                            .map_or(events.len().min(first_events.len()), |position| position);
                        agree = agree.and(Err(format!(
                            "node {id} (revision {revision}) and node {first} (revision {first_revision}) \
                             differ at event {at}"
                        )));
                    }
                }
            },
        }
    }
    let Some((first, history, revision)) = reference else {
        last_revision.send_replace(Some(0));
        let _ = watchers.await;
        return (
            vec![format!("watch: no node answered its history: {agree:?}")],
            WatchedCounts::default(),
        );
    };
    last_revision.send_replace(Some(revision));
    let records = watchers.await.expect("watchers task");
    let counts = WatchedCounts {
        revisions: revision,
        events: records.iter().map(|record| record.events.len()).sum(),
    };
    let final_kv = match probe.spawn(kv_of(first)).await.expect("probe task") {
        Ok(kv) => kv.into_iter().collect(),
        Err(why) => {
            return (
                vec![format!("watch: cannot read node {first}'s map: {why}")],
                counts,
            )
        }
    };
    (
        watch_check::check(&history, agree, &final_kv, &records, operations),
        counts,
    )
}
