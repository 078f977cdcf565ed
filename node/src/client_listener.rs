//! Accepts client connections and relays their requests to the driver. Requests on one
//! connection may be pipelined; answers go back tagged with the request id as soon as
//! the driver gives them, in any order. A malformed frame closes that connection only.
//!
//! Bounds (issue 11), so that no client, let alone a stranger, can make the node hold
//! unbounded memory or sockets:
//! - connections still in their TLS handshake are pending (`crate::admission`): at most
//!   `PENDING_HANDSHAKES_MAX`, the oldest evicted, each closed after `TLS_HANDSHAKE_TIMEOUT`;
//! - established connections are capped (`--client-connections-max`);
//! - a request frame is at most `REQUEST_PAYLOAD_BYTES_MAX`, far below the peer limit;
//! - request bytes in flight are budgeted per connection and per node: a connection over
//!   its budget, or a node over its, stops reading (TCP backpressure), it does not buffer;
//! - a frame once started must arrive within `FRAME_READ_TIMEOUT`, and a connection with
//!   nothing in flight is closed after `IDLE_TIMEOUT`.
//!
//! With TLS, a client is its certificate's name: its role decides what it may ask
//! (`crate::client_roles`), and its session ids are bound to that name, so replaying
//! another client's id names another session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn};
use wire::connection::{Connection, ConnectionError};
use wire::frame::FRAME_HEADER_BYTES;
use wire::tls::{certificate_identity, ReloadingTls, Stream};
use wire::{
    ErrorKind, ErrorReply, Request, RequestEnvelope, Response, ResponseEnvelope, CLIENT_PROTOCOL_VERSION,
    KEY_BYTES_MAX, VALUE_BYTES_MAX,
};

use crate::accept_loop::accept_until_shutdown;
use crate::admission::{Admission, PendingTicket};
use crate::backup_images::{BackupError, BackupImages};
use crate::client_roles::{ClientRoles, Role};
use crate::driver::{ClientCall, Reply, RequestPermits};
use crate::warn_limiter::WarnLimiter;

/// Requests one connection may have in flight before it is answered `Overloaded`.
pub const CONNECTION_REQUESTS_IN_FLIGHT_MAX: usize = 1024;
/// Largest request frame: a compare-and-swap carries a key and two values.
pub const REQUEST_PAYLOAD_BYTES_MAX: usize = 2 * VALUE_BYTES_MAX + 2 * KEY_BYTES_MAX + 1024;
/// A largest request frame with its header: what a connection needs free to read on.
const FRAME_BYTES_MAX: usize = FRAME_HEADER_BYTES + REQUEST_PAYLOAD_BYTES_MAX;
/// Request bytes one connection may have read and not yet answered.
pub const CONNECTION_REQUEST_BYTES_IN_FLIGHT_MAX: usize = 4 * REQUEST_PAYLOAD_BYTES_MAX;
/// Request bytes all connections of the node may have read and not yet answered.
pub const NODE_REQUEST_BYTES_IN_FLIGHT_MAX: usize = 64 * 1024 * 1024;
// Both budgets hold at least one largest frame, or a connection could wait forever.
const _: () = assert!(CONNECTION_REQUEST_BYTES_IN_FLIGHT_MAX >= FRAME_BYTES_MAX);
const _: () = assert!(NODE_REQUEST_BYTES_IN_FLIGHT_MAX >= FRAME_BYTES_MAX);
/// Connections in their TLS handshake at once (see `crate::admission`).
pub const PENDING_HANDSHAKES_MAX: usize = 256;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one frame's arrival once its first byte came: a slow or stalled sender
/// (slowloris) gives up its buffer after this.
pub const FRAME_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with nothing in flight and no byte received for this long is closed.
/// Clients reconnect on use (`client::client::pool` retries a closed cached connection).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Failed client TLS handshakes are warned about once per 10 s (a stranger controls them).
static TLS_FAILURE_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));
/// How long one response may take to write before the client is presumed gone.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the client port is secured and bounded.
#[derive(Debug, Clone)]
pub struct ClientPort {
    /// Mutual TLS; `None` is `--insecure` (every client may do everything).
    pub tls: Option<Arc<ReloadingTls>>,
    pub roles: ClientRoles,
    /// Established connections served at once.
    pub connections_max: usize,
    /// Backups begun on this node, whose chunks this port serves (`None`: no data dir).
    pub backups: Option<Arc<BackupImages>>,
}

impl ClientPort {
    /// Plain TCP, no roles: the simulation and `--insecure`.
    pub fn insecure() -> Self {
        Self {
            tls: None,
            roles: ClientRoles::default(),
            connections_max: 1024,
            backups: None,
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// `--insecure`: nobody is authenticated, everybody may do everything.
    Anonymous,
    /// The name in the client's certificate and its role, if it has one.
    Named { name: String, role: Option<Role> },
}

impl Caller {
    /// `Err(reason)` if this caller may not send `request`.
    fn authorize(&self, request: &Request) -> Result<(), String> {
        let Self::Named { name, role } = self else {
            return Ok(());
        };
        let required = Role::required_for(request);
        match role {
            Some(role) if *role >= required => Ok(()),
            Some(role) => Err(format!("client {name:?} has role {role}; this request needs {required}")),
            None => Err(format!(
                "client {name:?} has no role on this cluster (see --client-roles); this request needs {required}"
            )),
        }
    }

    /// Binds a session to this caller: the id the log sees is derived from the
    /// certificate name and the id the client chose, so another client sending the same
    /// id (read from a dump, say) names a different session and cannot make this one's
    /// next write a silent duplicate.
    fn bind(&self, request: &mut Request) {
        let Self::Named { name, .. } = self else {
            return;
        };
        match request {
            Request::Write { session, .. } => session.client_id = bound_client_id(name, session.client_id),
            Request::OpenSession { client_id } => *client_id = bound_client_id(name, *client_id),
            _ => {}
        }
    }
}

/// SHA-256 of (name, client id), first 8 bytes. Never 0, the system session's id.
fn bound_client_id(name: &str, client_id: u64) -> u64 {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(&(name.len() as u64).to_be_bytes());
    context.update(name.as_bytes());
    context.update(&client_id.to_be_bytes());
    let digest = context.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first).max(1)
}

/// Serves clients until `shutdown` turns true.
pub async fn serve_clients(
    listener: TcpListener,
    port: ClientPort,
    calls: mpsc::Sender<ClientCall>,
    shutdown: watch::Receiver<bool>,
) {
    let pending = Admission::new(PENDING_HANDSHAKES_MAX);
    let slots = Arc::new(Semaphore::new(port.connections_max.max(1)));
    let node_budget = Arc::new(Semaphore::new(NODE_REQUEST_BYTES_IN_FLIGHT_MAX));
    let port = Arc::new(port);
    let connection_shutdown = shutdown.clone();
    accept_until_shutdown(listener, shutdown, "client", move |stream, peer| {
        let ticket = pending.admit();
        let connection = ClientConnection {
            peer,
            port: port.clone(),
            calls: calls.clone(),
            node_budget: node_budget.clone(),
        };
        let slots = slots.clone();
        let shutdown = connection_shutdown.clone();
        async move { connection.run(stream, ticket, slots, shutdown).await }
    })
    .await;
}

/// One client connection's task.
#[derive(Debug)]
struct ClientConnection {
    peer: SocketAddr,
    port: Arc<ClientPort>,
    calls: mpsc::Sender<ClientCall>,
    node_budget: Arc<Semaphore>,
}

impl ClientConnection {
    async fn run(
        self,
        stream: TcpStream,
        ticket: PendingTicket,
        slots: Arc<Semaphore>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let authenticated = tokio::select! {
            () = ticket.evicted() => {
                debug!(peer = %self.peer, "closing a client connection still in its TLS handshake: newer ones needed its place");
                return;
            }
            authenticated = self.authenticate(stream) => authenticated,
        };
        drop(ticket);
        let Some((stream, caller)) = authenticated else {
            return;
        };
        let Ok(_slot) = slots.try_acquire_owned() else {
            warn!(peer = %self.peer, max = self.port.connections_max, "too many client connections; closing a new one");
            return;
        };
        let connection = Connection::new(stream)
            .with_payload_limit(REQUEST_PAYLOAD_BYTES_MAX)
            .with_frame_timeout(FRAME_READ_TIMEOUT);
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => {}
            () = self.serve(connection, caller) => {}
        }
    }

    /// The TLS handshake and the caller's identity; `None` closes the connection.
    async fn authenticate(&self, stream: TcpStream) -> Option<(Stream, Caller)> {
        let Some(tls) = &self.port.tls else {
            return Some((Stream::Plain(stream), Caller::Anonymous));
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_mutual());
        let stream = match timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Err(_elapsed) => {
                info!(peer = %self.peer, "no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}; closing the client connection");
                return None;
            }
            // Closed before a word (a port scan, a TCP health check): not worth a warning.
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                debug!(peer = %self.peer, %error, "client connection closed during its TLS handshake");
                return None;
            }
            Ok(Err(error)) => {
                if let Some(left_out) = TLS_FAILURE_WARNINGS.allow() {
                    warn!(peer = %self.peer, %error, left_out, "refused a client connection: TLS handshake failed");
                }
                return None;
            }
            Ok(Ok(stream)) => Stream::from(stream),
        };
        let Some(name) = stream.peer_certificate().and_then(certificate_identity) else {
            warn!(peer = %self.peer, "refused a client connection: its certificate carries no DNS name to identify it");
            return None;
        };
        let role = self.port.roles.role_of(&name);
        debug!(peer = %self.peer, %name, ?role, "client authenticated");
        Some((stream, Caller::Named { name, role }))
    }

    async fn serve(&self, mut connection: Connection<Stream>, caller: Caller) {
        let (answers_sender, mut answers) =
            mpsc::channel::<ResponseEnvelope>(CONNECTION_REQUESTS_IN_FLIGHT_MAX);
        // This connection's share of request bytes: reading stops while a largest frame
        // would not fit, so the budget below is never exceeded.
        let connection_budget = Arc::new(Semaphore::new(CONNECTION_REQUEST_BYTES_IN_FLIGHT_MAX));
        let mut in_flight = 0usize;
        let mut last_activity = Instant::now();
        let mut refusals_logged = false;
        // A backup chunk answer holds up to 1 MiB until written: one at a time per
        // connection, so a client that pipelines chunk requests cannot pile them up.
        let mut backup_chunk_in_flight: Option<u64> = None;
        loop {
            let may_read = connection_budget.available_permits() >= FRAME_BYTES_MAX;
            // A started frame is bounded inside the read (`with_frame_timeout`); this
            // deadline is for a connection that sends nothing while nothing is in flight.
            let deadline = if in_flight == 0 {
                last_activity + IDLE_TIMEOUT
            } else {
                Instant::now() + IDLE_TIMEOUT
            };
            tokio::select! {
                // Cancel-safe: a partly read frame stays in the connection's buffer.
                frame = connection.read_frame_budgeted::<RequestEnvelope>(&self.node_budget), if may_read => {
                    let (mut envelope, node_permit) = match frame {
                        Ok(Some(read)) => read,
                        Ok(None) => return,
                        Err(error) => {
                            log_bad_connection(self.peer, &error);
                            return;
                        }
                    };
                    last_activity = Instant::now();
                    let frame_bytes = node_permit.num_permits();
                    // Reading only starts with room for a largest frame, so this succeeds;
                    // were it ever not to, closing the connection is the safe answer.
                    let Ok(connection_permit) = connection_budget
                        .clone()
                        .try_acquire_many_owned(u32::try_from(frame_bytes).unwrap_or(u32::MAX))
                    else {
                        warn!(peer = %self.peer, frame_bytes, "a request over this connection's byte budget; closing it");
                        return;
                    };
                    let permits = (node_permit, connection_permit);
                    if envelope.protocol_version != CLIENT_PROTOCOL_VERSION {
                        let reply = error(ErrorKind::InvalidRequest, format!(
                            "client protocol {} is not {CLIENT_PROTOCOL_VERSION}", envelope.protocol_version
                        ));
                        let _ = connection.write_frame(&ResponseEnvelope { id: envelope.id, response: reply }).await;
                        return;
                    }
                    let is_chunk = matches!(envelope.request, Request::SnapshotChunk { .. });
                    let refusal = if in_flight >= CONNECTION_REQUESTS_IN_FLIGHT_MAX {
                        Some(error(ErrorKind::Overloaded, "too many requests in flight on this connection".into()))
                    } else if let Err(why) = caller.authorize(&envelope.request) {
                        if !refusals_logged {
                            warn!(peer = %self.peer, "permission denied: {why}");
                            refusals_logged = true;
                        }
                        Some(error(ErrorKind::PermissionDenied, why))
                    } else if is_chunk && backup_chunk_in_flight.is_some() {
                        Some(error(ErrorKind::Overloaded, "one backup chunk at a time per connection".into()))
                    } else {
                        None
                    };
                    if let Some(reply) = refusal {
                        if connection.write_frame(&ResponseEnvelope { id: envelope.id, response: reply }).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    caller.bind(&mut envelope.request);
                    in_flight += 1;
                    if matches!(envelope.request, Request::SnapshotChunk { .. } | Request::SnapshotRelease { .. }) {
                        if is_chunk {
                            backup_chunk_in_flight = Some(envelope.id);
                        }
                        serve_backup(envelope, permits, self.port.backups.clone(), answers_sender.clone());
                    } else {
                        relay(envelope, permits, &self.calls, &answers_sender);
                    }
                }
                Some(answer) = answers.recv() => {
                    in_flight -= 1;
                    if backup_chunk_in_flight == Some(answer.id) {
                        backup_chunk_in_flight = None;
                    }
                    last_activity = Instant::now();
                    // A client that stops reading must not pin this task forever.
                    match timeout(CLIENT_WRITE_TIMEOUT, connection.write_frame(&answer)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            debug!(peer = %self.peer, %error, "client went away");
                            return;
                        }
                        Err(_) => {
                            info!(peer = %self.peer, "closed a client connection that stopped reading");
                            return;
                        }
                    }
                }
                () = sleep_until(deadline) => {
                    // A frame that began just now is the read's to bound: look again.
                    if in_flight == 0 && connection.frame_started_at().is_none() {
                        debug!(peer = %self.peer, "closed an idle client connection");
                        return;
                    }
                }
            }
        }
    }
}

/// Hands one request to the driver, without blocking the connection: the driver answers
/// into the connection's queue of answers (`Reply::to_connection`), and a full driver
/// queue is answered `Overloaded` at once. `permits` hold the request's bytes in the
/// budgets until it is answered.
fn relay(
    envelope: RequestEnvelope,
    permits: RequestPermits,
    calls: &mpsc::Sender<ClientCall>,
    answers: &mpsc::Sender<ResponseEnvelope>,
) {
    let call = ClientCall {
        request: envelope.request,
        reply: Reply::to_connection(envelope.id, answers.clone(), permits),
    };
    match calls.try_send(call) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(call)) => {
            let _ = call
                .reply
                .send(error(ErrorKind::Overloaded, "node is busy; retry".into()));
        }
        // The reply, dropped unanswered, answers `ShuttingDown`.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// Answers a backup chunk or release from the image file, off the driver loop (the read
/// of up to 1 MiB runs on this task; the driver has a thread of its own).
fn serve_backup(
    envelope: RequestEnvelope,
    permits: RequestPermits,
    backups: Option<Arc<BackupImages>>,
    answers: mpsc::Sender<ResponseEnvelope>,
) {
    let id = envelope.id;
    tokio::spawn(async move {
        let response = match (backups, envelope.request) {
            (None, _) => error(ErrorKind::InvalidRequest, "this node keeps no backups".into()),
            (Some(backups), Request::SnapshotChunk { id, offset }) => match backups.chunk(id, offset) {
                Ok(chunk) => Response::SnapshotChunk(chunk),
                Err(why @ BackupError::Building { .. }) => error(ErrorKind::NotNow, why.to_string()),
                Err(why @ BackupError::Unknown { .. }) => error(ErrorKind::InvalidRequest, why.to_string()),
                Err(why) => error(ErrorKind::Internal, why.to_string()),
            },
            (Some(backups), Request::SnapshotRelease { id }) => {
                backups.release(id);
                Response::SnapshotReleased
            }
            (Some(_), _) => unreachable!("only backup chunks and releases are served here"),
        };
        drop(permits);
        let _ = answers.send(ResponseEnvelope { id, response }).await;
    });
}

fn log_bad_connection(peer: SocketAddr, error: &ConnectionError) {
    match error {
        ConnectionError::Io(error) => debug!(%peer, %error, "client connection failed"),
        ConnectionError::FrameTimeout(_) => {
            info!(%peer, %error, "closed a client connection whose frame stalled")
        }
        other => info!(%peer, error = %other, "closed a client connection that sent a malformed frame"),
    }
}

fn error(kind: ErrorKind, message: String) -> Response {
    Response::Error(ErrorReply { kind, message })
}

#[cfg(test)]
mod tests {
    use wire::{Command, Session};

    use super::*;

    fn write(client_id: u64) -> Request {
        Request::Write {
            session: Session {
                client_id,
                sequence: 1,
            },
            command: Command::Delete { key: b"k".to_vec() },
            return_prior: false,
        }
    }

    #[test]
    fn roles_allow_what_they_name_and_nothing_more() {
        let reader = Caller::Named {
            name: "alice".into(),
            role: Some(Role::Read),
        };
        assert!(reader
            .authorize(&Request::Get {
                key: b"k".to_vec(),
                consistency: wire::ReadConsistency::Linearizable
            })
            .is_ok());
        let refused = reader.authorize(&write(7)).expect_err("a reader cannot write");
        assert!(refused.contains("needs write"), "{refused}");
        let stranger = Caller::Named {
            name: "mallory".into(),
            role: None,
        };
        assert!(stranger.authorize(&Request::Status).is_err());
        assert!(Caller::Anonymous.authorize(&Request::Dump).is_ok());
    }

    #[test]
    fn sessions_are_bound_to_the_certificate_name() {
        let alice = Caller::Named {
            name: "alice".into(),
            role: Some(Role::Write),
        };
        let mallory = Caller::Named {
            name: "mallory".into(),
            role: Some(Role::Write),
        };
        let (mut from_alice, mut from_mallory, mut anonymous) = (write(7), write(7), write(7));
        alice.bind(&mut from_alice);
        mallory.bind(&mut from_mallory);
        Caller::Anonymous.bind(&mut anonymous);
        let id = |request: &Request| match request {
            Request::Write { session, .. } => session.client_id,
            _ => unreachable!(),
        };
        assert_ne!(
            id(&from_alice),
            id(&from_mallory),
            "same id, different clients, different sessions"
        );
        assert_eq!(
            id(&from_alice),
            bound_client_id("alice", 7),
            "stable across nodes and retries"
        );
        assert_eq!(id(&anonymous), 7);
        assert_ne!(bound_client_id("alice", 7), bound_client_id("alice", 8));
    }
}
