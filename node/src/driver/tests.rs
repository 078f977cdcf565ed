//! The driver on a one-voter cluster with the in-memory store: the request paths and
//! group commit, without sockets.

use std::time::Duration;

use raft::{ConfState, Message, NodeId, Raft};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use wire::{Command, ErrorKind, Prior, ReadConsistency, Request, Response, Session, WriteResult};

use super::{run_on_own_thread, ClientCall, Driver, DriverConfig, DriverError, DriverHandles, PeerNetwork};
use crate::kv::state_machine::StateMachine;
use crate::storage::memory_store::MemoryStore;
use crate::storage::Storage;

pub(super) struct NoPeers;

impl PeerNetwork for NoPeers {
    fn send(&self, _message: Message) {}

    fn peer_client_address(&self, _id: NodeId) -> Option<String> {
        None
    }

    fn set_peers(&self, _peers: std::collections::BTreeMap<NodeId, crate::membership::PeerEntry>) {}
}

fn put(client_id: u64, sequence: u64, key: &str, value: &str) -> Request {
    Request::Write {
        session: Session { client_id, sequence },
        command: Command::Put {
            key: key.into(),
            value: value.into(),
        },
        return_prior: true,
    }
}

pub(super) async fn call(calls: &mpsc::Sender<ClientCall>, request: Request) -> oneshot::Receiver<Response> {
    let (reply, answer) = super::Reply::oneshot();
    calls
        .send(ClientCall { request, reply })
        .await
        .expect("driver runs");
    answer
}

/// A one-voter node's raft and driver settings (ticks of 5 ms).
pub(super) fn single_voter() -> (Raft, DriverConfig) {
    let raft = Raft::bootstrap(raft::Config::new(1), ConfState::with_voters([1])).expect("bootstrap");
    let config = DriverConfig {
        tick_interval: Duration::from_millis(5),
        snapshot_every_entries: 1_000,
        snapshot_every_bytes: u64::MAX,
        own_client_address: "127.0.0.1:1".into(),
        own_peer_address: "127.0.0.1:2".into(),
        cluster_id: 1,
        shutdown_transfer_ticks_max: 10,
        inputs_per_turn_max: 4096,
        session_limits: crate::kv::command::SessionLimits::DEFAULT,
        quota_bytes: None,
        disk_free_min_bytes: None,
    };
    (raft, config)
}

/// A one-voter driver over a store, on a thread of its own as in the node
/// (`run_on_own_thread`), started and led.
pub(super) struct SingleVoter {
    pub(super) handles: DriverHandles,
    pub(super) calls: mpsc::Sender<ClientCall>,
    shutdown: watch::Sender<bool>,
    _inbound: mpsc::Sender<Message>,
    running: JoinHandle<Result<Result<(), DriverError>, String>>,
}

impl SingleVoter {
    /// Sends `request` and waits (at most 5 s) for its answer.
    pub(super) async fn ask(&self, request: Request) -> Response {
        tokio::time::timeout(Duration::from_secs(5), call(&self.calls, request).await)
            .await
            .expect("answered in time")
            .expect("answered")
    }

    pub(super) async fn start<S: Storage>(store: S) -> Self {
        Self::start_with(store, |_| {}).await
    }

    /// `start`, with `edit` applied to the driver's settings.
    pub(super) async fn start_with<S: Storage>(store: S, edit: impl FnOnce(&mut DriverConfig)) -> Self {
        let (raft, mut config) = single_voter();
        edit(&mut config);
        let (driver, handles) = Driver::new(
            raft,
            store,
            NoPeers,
            StateMachine::new([]),
            config,
            crate::membership::PeerDirectory::default(),
        )
        .expect("driver starts");
        let (inbound_sender, inbound) = mpsc::channel(16);
        let (calls, calls_receiver) = mpsc::channel(1024);
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let running = tokio::spawn(run_on_own_thread(driver.run(
            inbound,
            calls_receiver,
            shutdown_receiver,
        )));
        let mut status = handles.status.clone();
        tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| s.role == "leader"))
            .await
            .expect("elected")
            .expect("driver alive");
        Self {
            handles,
            calls,
            shutdown,
            _inbound: inbound_sender,
            running,
        }
    }

    /// Stops the driver; it must stop cleanly.
    pub(super) async fn stop(self) {
        self.shutdown.send(true).expect("driver listens");
        self.running
            .await
            .expect("joins")
            .expect("the driver's thread ran")
            .expect("clean stop");
    }
}

#[tokio::test]
async fn one_sync_covers_a_batch_of_writes_and_retries_apply_once() {
    let node = SingleVoter::start(MemoryStore::default()).await;
    let (handles, calls_sender) = (&node.handles, &node.calls);
    // Thesis §6.3: sessions are opened through the log before their writes; a write of
    // a session never opened is refused, not applied.
    let unopened = call(calls_sender, put(999, 1, "never", "v"))
        .await
        .await
        .expect("answered");
    assert!(
        matches!(&unopened, Response::Error(reply) if reply.kind == ErrorKind::SessionExpired),
        "{unopened:?}"
    );
    let mut opened = Vec::new();
    for client in 0..200u64 {
        opened.push(
            call(
                calls_sender,
                Request::OpenSession {
                    client_id: client + 1,
                },
            )
            .await,
        );
    }
    for answer in opened {
        let response = answer.await.expect("answered");
        assert!(matches!(response, Response::SessionOpened { .. }), "{response:?}");
    }
    let syncs_before = handles.metrics.fsync_count();
    let mut answers = Vec::new();
    for client in 0..200u64 {
        answers.push(call(calls_sender, put(client + 1, 1, &format!("k{client}"), "v")).await);
    }
    for answer in answers {
        let response = answer.await.expect("answered");
        assert_eq!(
            response,
            Response::Written(WriteResult::Done {
                previous: Prior::Absent
            })
        );
    }
    let syncs = handles.metrics.fsync_count() - syncs_before;
    assert!(
        syncs < 50,
        "200 writes took {syncs} syncs: group commit is not batching"
    );
    // A retry of client 1's first write is answered from its session, not re-applied.
    let retry = call(calls_sender, put(1, 1, "k0", "other"))
        .await
        .await
        .expect("answered");
    assert_eq!(
        retry,
        Response::Written(WriteResult::Done {
            previous: Prior::Absent
        })
    );
    let read = Request::Get {
        key: "k0".into(),
        consistency: ReadConsistency::Linearizable,
    };
    let value = call(calls_sender, read).await.await.expect("answered");
    assert!(
        matches!(&value, Response::Value(read) if read.value() == Some(b"v".as_slice())),
        "{value:?}"
    );
    node.stop().await;
}
