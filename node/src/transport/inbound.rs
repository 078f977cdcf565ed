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

use client::connection::{Connection, ConnectionError};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::timeout;
use tracing::{debug, info, warn};

use super::dial::HANDSHAKE_TIMEOUT;
use super::handshake::{check_handshake, is_leader_message, Accepted, Handshake, HandshakeReply};
use super::lifecycle::{Shutdown, TaskGuard};
use super::peer_frame::check_routing;
use super::shared::Shared;
use super::stats::bump;

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
    /// closes it. `_slot` is this connection's share of the listener's connection limit.
    pub(super) async fn run(
        self,
        stream: TcpStream,
        mut shutdown: Shutdown,
        _task: TaskGuard,
        _slot: OwnedSemaphorePermit,
    ) {
        let mut connection = Connection::new(stream);
        tokio::select! {
            () = shutdown.requested() => debug!("closing the peer connection on shutdown"),
            () = self.serve(&mut connection) => {}
        }
    }

    async fn serve(&self, connection: &mut Connection<TcpStream>) {
        let Some((peer_id, incarnation, verified)) = self.handshake(connection).await else {
            return;
        };
        let registration = Registration::claim(&self.shared, peer_id, incarnation, verified);
        tokio::select! {
            () = registration.close.notified() => {
                info!(peer_id, "peer dialed again, or is no longer a member under this incarnation; closing its connection");
            }
            () = self.forward(connection, peer_id, verified) => {}
        }
    }

    /// Reads and checks the handshake and answers it. `Some((peer id, its incarnation,
    /// whether that incarnation is the member's))` when accepted.
    async fn handshake(&self, connection: &mut Connection<TcpStream>) -> Option<(u64, u64, bool)> {
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
        let accepted = check_handshake(&handshake, &self.shared.expected_handshake());
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
            Ok(Accepted::LeaderMessagesOnly) => {
                info!(
                    peer_id,
                    incarnation = format_args!("{:016x}", handshake.incarnation),
                    "node {peer_id} connects under an incarnation that is not the member's in this node's \
                     configuration (a wiped or replaced disk, or this node lags): only a leader's messages \
                     pass from it, never a vote or an acknowledgement"
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

    fn accepted_reply(&self) -> HandshakeReply {
        HandshakeReply::Accepted {
            node_id: self.shared.own_id,
            client_address: self.shared.advertised_client_address.clone(),
        }
    }

    /// Forwards the peer's messages to the driver until the connection ends; from a peer
    /// of an unverified incarnation, only a leader's (`Accepted::LeaderMessagesOnly`).
    async fn forward(&self, connection: &mut Connection<TcpStream>, peer_id: u64, verified: bool) {
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
            if !verified && !is_leader_message(&message.body) {
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
            ConnectionError::TruncatedFrame | ConnectionError::Io(_) => {
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
