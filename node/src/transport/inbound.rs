//! One task per accepted connection: check the dialer's handshake, then forward its Raft
//! messages to the driver.
//!
//! Backpressure: each message is handed over with `send().await` on the driver's bounded
//! inbox, not `try_send`. A slow driver therefore stops this reader; TCP flow control then
//! stalls the peer's writer, the peer's bounded queue fills, and the peer's `send` drops
//! and counts. Memory stays bounded (the inbox, one frame per connection, socket buffers),
//! nothing is lost silently on the receiving side, and tokio's bounded channel serves
//! waiting senders in order, so one busy peer cannot starve the others. The driver never
//! waits on the transport (its `send` never blocks), so this cannot deadlock.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::time::timeout;
use tracing::{debug, info, warn};
use wire::connection::{Connection, ConnectionError};
use wire::frame::FRAME_PAYLOAD_BYTES_MAX;
use wire::tls::{certificate_identity, certificate_names, node_name, Stream};

use super::dial::HANDSHAKE_TIMEOUT;
use super::handshake::{check_handshake, passes_unverified, Accepted, Handshake, HandshakeReply, Refusal};
use super::lifecycle::{Shutdown, TaskGuard};
use super::peer_frame::check_routing;
use super::shared::Shared;
use super::stats::bump;
use crate::admission::PendingTicket;
use crate::warn_limiter::WarnLimiter;

/// Failed peer TLS handshakes are warned about once per 10 s (a stranger controls them;
/// each is counted in `connections_refused` all the same).
static TLS_FAILURE_WARNINGS: WarnLimiter = WarnLimiter::new(std::time::Duration::from_secs(10));

/// Largest handshake frame accepted: names and addresses of a few hundred bytes.
const HANDSHAKE_PAYLOAD_BYTES_MAX: usize = 4 * 1024;

/// The acceptor's side of one connection.
#[derive(Debug)]
pub(super) struct InboundSession {
    shared: Arc<Shared>,
    remote: SocketAddr,
}

impl InboundSession {
    pub(super) fn new(shared: Arc<Shared>, remote: SocketAddr) -> Self {
        Self { shared, remote }
    }

    /// Serves the connection until it ends or the transport shuts down; dropping the stream
    /// closes it. Until it has authenticated it holds `ticket` (evicted by newer
    /// connections when too many are pending, see `crate::admission`); then one of `slots`,
    /// the port's cap on established connections.
    pub(super) async fn run(
        self,
        stream: TcpStream,
        mut shutdown: Shutdown,
        _task: TaskGuard,
        ticket: PendingTicket,
        slots: Arc<Semaphore>,
    ) {
        tokio::select! {
            () = shutdown.requested() => debug!("closing the peer connection on shutdown"),
            () = self.serve(stream, ticket, slots) => {}
        }
    }

    async fn serve(&self, stream: TcpStream, ticket: PendingTicket, slots: Arc<Semaphore>) {
        let authenticated = tokio::select! {
            () = ticket.evicted() => {
                debug!("closing a connection still in its handshake: newer ones needed its place");
                return;
            }
            authenticated = self.authenticate(stream) => authenticated,
        };
        drop(ticket);
        let Some((mut connection, peer_id, incarnation, verified)) = authenticated else {
            return;
        };
        let Ok(_slot) = slots.try_acquire_owned() else {
            warn!(peer_id, "too many peer connections; closing this one");
            return;
        };
        connection.set_payload_limit(FRAME_PAYLOAD_BYTES_MAX);
        let registration = Registration::claim(&self.shared, peer_id, incarnation, verified);
        tokio::select! {
            () = registration.close.notified() => {
                info!(peer_id, "peer dialed again, or is no longer a member under this incarnation; closing its connection");
            }
            () = self.forward(&mut connection, peer_id, verified) => {}
        }
    }

    /// The TLS handshake (if TLS is on) and the peer handshake: `Some` once the dialer is
    /// known and accepted.
    async fn authenticate(&self, stream: TcpStream) -> Option<(Connection<Stream>, u64, u64, bool)> {
        let stream = match &self.shared.tls {
            None => Stream::Plain(stream),
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_mutual());
                match timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Err(_elapsed) => {
                        info!(
                            "no TLS handshake from {} within {HANDSHAKE_TIMEOUT:?}; closing",
                            self.remote
                        );
                        return None;
                    }
                    Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                        debug!(%error, "connection from {} closed during its TLS handshake", self.remote);
                        return None;
                    }
                    Ok(Err(error)) => {
                        bump(&self.shared.counters.connections_refused);
                        if let Some(left_out) = TLS_FAILURE_WARNINGS.allow() {
                            warn!(%error, left_out, "refused a peer connection from {}: TLS handshake failed", self.remote);
                        }
                        return None;
                    }
                    Ok(Ok(stream)) => Stream::from(stream),
                }
            }
        };
        // Until the dialer is known, a handshake's worth of bytes and no more.
        let mut connection = Connection::new(stream).with_payload_limit(HANDSHAKE_PAYLOAD_BYTES_MAX);
        let (peer_id, incarnation, verified) = self.handshake(&mut connection).await?;
        Some((connection, peer_id, incarnation, verified))
    }

    /// Reads and checks the handshake and answers it. `Some((peer id, its incarnation,
    /// whether that incarnation is the member's))` when accepted.
    async fn handshake(&self, connection: &mut Connection<Stream>) -> Option<(u64, u64, bool)> {
        let handshake = match timeout(HANDSHAKE_TIMEOUT, connection.read_frame::<Handshake>()).await {
            Err(_elapsed) => {
                info!("no handshake within {HANDSHAKE_TIMEOUT:?}; closing the connection");
                return None;
            }
            Ok(Ok(None)) => {
                debug!("connection closed before its handshake");
                return None;
            }
            Ok(Err(error)) => {
                self.closed_on_error(&error);
                return None;
            }
            Ok(Ok(Some(handshake))) => handshake,
        };
        let peer_id = handshake.node_id;
        let accepted = self
            .check_certificate(connection.stream(), peer_id)
            .and_then(|()| check_handshake(&handshake, &self.shared.expected_handshake()));
        let accepted_kind = accepted.as_ref().ok().copied();
        let (reply, accepted) = match accepted {
            Err(refusal) => {
                bump(&self.shared.counters.connections_refused);
                warn!("refused a peer connection from {}: {refusal}", self.remote);
                let reply = HandshakeReply::Refused {
                    reason: refusal.to_string(),
                };
                (reply, false)
            }
            Ok(Accepted::Probe) => {
                debug!(peer_id, incarnation = handshake.incarnation, "answering a probe");
                (HandshakeReply::Probed(self.shared.peer_state()), false)
            }
            Ok(Accepted::RaftMessages) => (self.accepted_reply(), true),
            Ok(Accepted::Unverified) => {
                info!(
                    peer_id,
                    incarnation = format_args!("{:016x}", handshake.incarnation),
                    "node {peer_id} connects under an incarnation that is not the member's in this node's \
                     configuration (a wiped or replaced disk, or this node lags): only a leader's messages \
                     and vote requests pass from it, never a vote or an acknowledgement"
                );
                (self.accepted_reply(), true)
            }
        };
        let verified = accepted_kind == Some(Accepted::RaftMessages);
        if !accepted {
            // Best effort: the dialer learns why (or who we are), but we close either way.
            let _ = timeout(HANDSHAKE_TIMEOUT, connection.write_frame(&reply)).await;
            return None;
        }
        match timeout(HANDSHAKE_TIMEOUT, connection.write_frame(&reply)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                info!(peer_id, %error, "could not answer the peer's handshake");
                return None;
            }
            Err(_elapsed) => {
                info!(
                    peer_id,
                    "could not answer the peer's handshake in {HANDSHAKE_TIMEOUT:?}"
                );
                return None;
            }
        }
        self.shared
            .record_client_address(peer_id, &handshake.client_address);
        bump(&self.shared.counters.connections_accepted);
        info!(peer_id, verified, "accepted a peer connection");
        Some((peer_id, handshake.incarnation, verified))
    }

    /// With TLS, the dialer's certificate (verified against the CA by rustls) must name
    /// the node id its handshake claims.
    fn check_certificate(&self, stream: &Stream, claimed_id: u64) -> Result<(), Refusal> {
        if self.shared.tls.is_none() {
            return Ok(());
        }
        let certificate = stream.peer_certificate();
        if certificate.is_some_and(|certificate| certificate_names(certificate, &node_name(claimed_id))) {
            return Ok(());
        }
        Err(Refusal::CertificateMismatch {
            dialer_id: claimed_id,
            certificate_name: certificate.and_then(certificate_identity),
        })
    }

    fn accepted_reply(&self) -> HandshakeReply {
        HandshakeReply::Accepted {
            node_id: self.shared.own_id,
            client_address: self.shared.advertised_client_address.clone(),
        }
    }

    /// Forwards the peer's messages to the driver until the connection ends; from a peer
    /// of an unverified incarnation, only a leader's messages and vote requests (`Accepted::Unverified`).
    async fn forward(&self, connection: &mut Connection<Stream>, peer_id: u64, verified: bool) {
        loop {
            let message = match connection.read_frame::<raft::Message>().await {
                Ok(Some(message)) => message,
                Ok(None) => {
                    info!(peer_id, "peer closed its connection");
                    return;
                }
                Err(error) => {
                    self.closed_on_error(&error);
                    return;
                }
            };
            if let Err(misrouted) = check_routing(&message, peer_id, self.shared.own_id) {
                bump(&self.shared.counters.malformed_frames);
                warn!(peer_id, "closing a peer connection: {misrouted}");
                return;
            }
            if !verified && !passes_unverified(&message.body) {
                bump(&self.shared.counters.messages_unverified_dropped);
                continue;
            }
            if self.shared.inbound.send(message).await.is_err() {
                info!(
                    peer_id,
                    "the driver's inbox is closed; closing the peer connection"
                );
                return;
            }
            bump(&self.shared.counters.messages_received);
        }
    }

    /// Logs why a read failed, counting malformed input (as opposed to a peer that died).
    fn closed_on_error(&self, error: &ConnectionError) {
        match error {
            ConnectionError::Frame(_) => {
                bump(&self.shared.counters.malformed_frames);
                warn!(%error, "closing a peer connection from {} on a malformed frame", self.remote);
            }
            // A peer killed mid-write leaves a truncated frame: normal life, not an attack.
            ConnectionError::TruncatedFrame | ConnectionError::Io(_) | ConnectionError::FrameTimeout(_) => {
                info!(%error, "peer connection from {} failed", self.remote);
            }
        }
    }
}

/// This connection's entry as its peer's live inbound connection; unregistered on drop,
/// including when shutdown cancels the session mid-way.
#[derive(Debug)]
struct Registration<'a> {
    shared: &'a Shared,
    peer_id: u64,
    close: Arc<Notify>,
}

impl<'a> Registration<'a> {
    fn claim(shared: &'a Shared, peer_id: u64, incarnation: u64, verified: bool) -> Self {
        let close = shared.claim_inbound_session(peer_id, incarnation, verified);
        Self {
            shared,
            peer_id,
            close,
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.release_inbound_session(self.peer_id, &self.close);
    }
}
