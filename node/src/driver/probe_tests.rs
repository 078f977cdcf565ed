//! The probes against a driver whose store stalls (issue 12): a storage call that does
//! not return, as an fsync on a dead disk, must fail `/livez` within `driver_stall_max`
//! and `/readyz` with it, and both recover once the store does. Run inside the driver's
//! runtime (before `driver::own_thread`), the stuck persist froze the test's timers too.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use wire::{Request, Response};

use super::faulty_store::FaultyStore;
use super::tests::SingleVoter;
use super::ClientCall;
use crate::metrics::PeerCounters;
use crate::ops_http::{liveness, ready, OpsState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_fails_livez_and_readyz_until_it_returns() {
    let store = FaultyStore::default();
    let stalled = store.persist_stalled.clone();
    // As in the node, the driver runs on a thread of its own: its stuck persist leaves
    // the runtime that serves the probes running.
    let node = SingleVoter::start(store).await;
    let (handles, calls_sender) = (&node.handles, &node.calls);
    let state = OpsState {
        status: handles.status.clone(),
        metrics: handles.metrics.clone(),
        peer_counters: Arc::new(PeerCounters::default),
        heartbeat: handles.heartbeat.clone(),
        calls: calls_sender.clone(),
        driver_stall_max: Duration::from_millis(500),
    };
    // Wait out the first commit of the term, then both probes pass.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ready(&state).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    liveness(&state).expect("live");

    // The store stalls in the next persist: a write makes one.
    stalled.store(true, Ordering::Relaxed);
    let (reply, answer) = super::Reply::oneshot();
    calls_sender
        .send(ClientCall {
            request: Request::OpenSession { client_id: 7 },
            reply,
        })
        .await
        .expect("driver queue");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let not_live = liveness(&state).expect_err("a stalled driver is not live");
    assert!(not_live.contains("has not turned"), "{not_live}");
    let not_ready = ready(&state).await.expect_err("a stalled driver is not ready");
    assert!(not_ready.contains("has not turned"), "{not_ready}");

    // The store returns: the write completes and both probes pass again.
    stalled.store(false, Ordering::Relaxed);
    let opened = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("answered once the store returns")
        .expect("answered");
    assert!(matches!(opened, Response::SessionOpened { .. }), "{opened:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while liveness(&state).is_err() || ready(&state).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "not live and ready again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.stop().await;
}
