//! The accept loop: hands each new connection to its own [`InboundSession`] task and
//! keeps serving whatever a single connection does.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::sleep;
use tracing::{info_span, warn, Instrument};

use super::inbound::InboundSession;
use super::lifecycle::{Shutdown, TaskGuard};
use super::shared::Shared;
use crate::admission::Admission;

/// Pause after a failed `accept`, which mostly means the process ran out of file
/// descriptors: retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The listening side of the transport.
#[derive(Debug)]
pub(super) struct PeerListener {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// Connections still in their handshake (TLS and peer): the oldest is evicted when
    /// too many are, so idle sockets of a stranger never lock a peer out.
    pending: Arc<Admission>,
    /// Authenticated connections served at once. Each peer needs one, two while it
    /// replaces a dead one.
    connection_slots: Arc<Semaphore>,
}

/// Connections that may be in their handshake at once (see `crate::admission`).
const PENDING_HANDSHAKES_MAX: usize = 128;

impl PeerListener {
    pub(super) fn new(listener: TcpListener, shared: Arc<Shared>) -> Self {
        // Peers come and go with the configuration: room for a cluster of 8 at least.
        let connections_max = 2 * shared.peers().len().max(8) + 8;
        Self {
            listener,
            shared,
            pending: Admission::new(PENDING_HANDSHAKES_MAX),
            connection_slots: Arc::new(Semaphore::new(connections_max)),
        }
    }

    /// Accepts until shutdown; dropping the listener on return frees the port.
    pub(super) async fn run(self, mut shutdown: Shutdown, task: TaskGuard) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.requested() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "accepting a peer connection failed");
                    tokio::select! {
                        () = shutdown.requested() => return,
                        () = sleep(ACCEPT_ERROR_PAUSE) => {}
                    }
                    continue;
                }
            };
            let ticket = self.pending.admit();
            let session = InboundSession::new(self.shared.clone(), remote);
            let span = info_span!("peer_inbound", own_id = self.shared.own_id, %remote);
            tokio::task::spawn(
                session
                    .run(
                        stream,
                        shutdown.clone(),
                        task.clone(),
                        ticket,
                        self.connection_slots.clone(),
                    )
                    .instrument(span),
            );
        }
    }
}
