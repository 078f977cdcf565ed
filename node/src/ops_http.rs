//! Operations endpoints over HTTP/1.1: `/livez`, `/readyz`, `/metrics` (Prometheus
//! text) and `/status` (JSON). The probes look at the driver itself: `/livez` fails when
//! its loop has not turned for `driver_stall_max` (stuck in an fsync on a dead disk,
//! say), `/readyz` also when a linearizable read through this node does not complete. Hand-written on tokio: four GET routes with bounded
//! request heads and a read deadline do not justify hyper's build on two cores. Not run
//! under madsim (nothing in the simulation scrapes it).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::debug;
use wire::tls::ReloadingTls;
use wire::{NodeStatus, ReadConsistency, Request, Response};

use crate::accept_loop::accept_until_shutdown;
use crate::admission::Admission;
use crate::driver::{ClientCall, DriverHeartbeat, Reply};
use crate::metrics::{Metrics, PeerCounters};

/// Upper bound of a request head; probes and scrapers send a few hundred bytes.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Bound on a whole exchange: TLS handshake, request head, response.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Ops connections open at once; probes and scrapes take milliseconds.
const CONNECTIONS_MAX: usize = 64;
/// `/readyz`'s linearizable read must complete within this (a leader's round trip to a
/// quorum, plus an fsync or two).
const READYZ_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// `/readyz` reads this (empty) range of raftkv's own keys, as a client's read would.
const READYZ_PREFIX: &[u8] = b"\0raftkv/readyz/";

pub type PeerCountersSource = Arc<dyn Fn() -> PeerCounters + Send + Sync>;

#[derive(Clone)]
pub struct OpsState {
    pub status: watch::Receiver<NodeStatus>,
    pub metrics: Arc<Metrics>,
    pub peer_counters: PeerCountersSource,
    pub heartbeat: Arc<DriverHeartbeat>,
    /// Client calls into the driver, for `/readyz`'s read.
    pub calls: mpsc::Sender<ClientCall>,
    /// `/livez` fails once the driver has not turned for longer than this.
    pub driver_stall_max: Duration,
}

impl std::fmt::Debug for OpsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsState").finish_non_exhaustive()
    }
}

/// Serves the ops endpoints until shutdown; over TLS (server side only: kubelet probes and
/// Prometheus present no client certificate) unless the node runs `--insecure`. Every
/// connection is short-lived and pending until answered: at most `CONNECTIONS_MAX` at
/// once, the oldest evicted (`crate::admission`).
pub async fn serve_ops(
    listener: TcpListener,
    state: OpsState,
    tls: Option<Arc<ReloadingTls>>,
    shutdown: watch::Receiver<bool>,
) {
    let admission = Admission::new(CONNECTIONS_MAX);
    accept_until_shutdown(listener, shutdown, "ops HTTP", move |stream, _peer| {
        let state = state.clone();
        let tls = tls.clone();
        let ticket = admission.admit();
        async move {
            let served = async {
                let outcome = tokio::time::timeout(REQUEST_READ_TIMEOUT, async {
                    match tls {
                        None => serve_request(stream, &state).await,
                        Some(tls) => {
                            let stream = tokio_rustls::TlsAcceptor::from(tls.server_anonymous())
                                .accept(stream)
                                .await?;
                            serve_request(stream, &state).await
                        }
                    }
                })
                .await;
                match outcome {
                    Ok(Err(error)) => debug!(%error, "ops request failed"),
                    Err(_elapsed) => debug!("ops request not served within {REQUEST_READ_TIMEOUT:?}"),
                    Ok(Ok(())) => {}
                }
            };
            tokio::select! {
                () = ticket.evicted() => {}
                () = served => {}
            }
        }
    })
    .await;
}

async fn serve_request<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    state: &OpsState,
) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let (status_line, content_type, body) = match head.as_deref().and_then(parse_request_line) {
        None => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
        Some(("GET", path)) => route(path, state).await,
        Some(_) => ("405 Method Not Allowed", "text/plain", "only GET\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the blank line ending the head; `None` if it is too long or cut short.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await?;
        if read == 0 || head.len() + read > REQUEST_HEAD_BYTES_MAX {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8(head).ok())
}

fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let path = target.split('?').next()?;
    Some((method, path))
}

async fn route(path: &str, state: &OpsState) -> (&'static str, &'static str, String) {
    match path {
        "/livez" => match liveness(state) {
            Ok(()) => ("200 OK", "text/plain", "ok\n".into()),
            Err(reason) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not live: {reason}\n"),
            ),
        },
        "/readyz" => match ready(state).await {
            Ok(()) => ("200 OK", "text/plain", "ready\n".into()),
            Err(reason) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready: {reason}\n"),
            ),
        },
        "/metrics" => {
            let body = state.metrics.render((state.peer_counters)());
            ("200 OK", "text/plain; version=0.0.4", body)
        }
        "/status" => {
            let status = state.status.borrow().clone();
            match serde_json::to_string_pretty(&status) {
                Ok(json) => ("200 OK", "application/json", json + "\n"),
                Err(error) => ("500 Internal Server Error", "text/plain", format!("{error}\n")),
            }
        }
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}

/// Live while the driver turns: it beats at least once a tick, so silence longer than
/// `driver_stall_max` means it is stuck (a storage call that does not return).
pub fn liveness(state: &OpsState) -> Result<(), String> {
    let silent = state.heartbeat.silent_for();
    if silent > state.driver_stall_max {
        return Err(format!(
            "the driver has not turned for {} ms (stuck in a storage call?)",
            silent.as_millis()
        ));
    }
    Ok(())
}

/// Ready when live, caught up (`readiness`), and a linearizable read through this node
/// completes: the node can then serve every kind of request.
pub async fn ready(state: &OpsState) -> Result<(), String> {
    liveness(state)?;
    let status = state.status.borrow().clone();
    readiness(&status)?;
    linearizable_read(state).await
}

/// One linearizable read (ReadIndex through the leader) of an empty range, bounded by
/// `READYZ_READ_TIMEOUT`.
async fn linearizable_read(state: &OpsState) -> Result<(), String> {
    let (reply, answer) = Reply::oneshot();
    let request = Request::List {
        prefix: READYZ_PREFIX.to_vec(),
        start: Vec::new(),
        limit: 1,
        count_only: false,
        consistency: ReadConsistency::Linearizable,
    };
    state
        .calls
        .try_send(ClientCall { request, reply })
        .map_err(|_| "the driver's queue is full or closed".to_string())?;
    match tokio::time::timeout(READYZ_READ_TIMEOUT, answer).await {
        Err(_elapsed) => Err(format!(
            "a linearizable read did not complete within {} ms",
            READYZ_READ_TIMEOUT.as_millis()
        )),
        Ok(Err(_dropped)) => Err("the driver dropped a linearizable read".into()),
        Ok(Ok(Response::Listing(_))) => Ok(()),
        Ok(Ok(Response::NotLeader { .. })) => Err("no leader confirms a linearizable read".into()),
        Ok(Ok(Response::Error(reply))) => Err(format!("a linearizable read failed: {}", reply.message)),
        Ok(Ok(other)) => Err(format!("a linearizable read was answered {other:?}")),
    }
}

/// Ready as far as the status shows when the node knows a leader and has applied
/// everything it knows committed: it can then serve stale reads that are current and
/// redirect writes correctly.
pub fn readiness(status: &NodeStatus) -> Result<(), String> {
    if status.leader.is_none() {
        return Err("no known leader".into());
    }
    if status.applied < status.commit {
        return Err(format!(
            "applied {} behind commit {}",
            status.applied, status.commit
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_and_garbage_does_not() {
        assert_eq!(
            parse_request_line("GET /readyz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(("GET", "/readyz"))
        );
        assert_eq!(parse_request_line(""), None);
        assert_eq!(parse_request_line("GARBAGE"), None);
    }

    #[test]
    fn readiness_needs_a_leader_and_a_caught_up_state_machine() {
        let mut status = NodeStatus {
            id: 1,
            role: "follower".into(),
            term: 2,
            leader: None,
            commit: 5,
            applied: 5,
            first_index: 1,
            last_index: 5,
            snapshot_index: 0,
            voters: vec![1, 2, 3],
            learners: vec![],
            peers: vec![],
            space: Default::default(),
        };
        assert!(readiness(&status).is_err());
        status.leader = Some(2);
        assert!(readiness(&status).is_ok());
        status.applied = 4;
        assert!(readiness(&status).is_err());
    }
}
