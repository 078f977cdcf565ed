//! Accepts client connections and relays their requests to the driver. Requests on one
//! connection may be pipelined; answers go back tagged with the request id as soon as
//! the driver gives them, in any order. Every connection is bounded in requests in
//! flight, and a malformed frame closes that connection only.

use std::net::SocketAddr;

use client::connection::{Connection, ConnectionError};
use client::wire::{
    ErrorKind, ErrorReply, RequestEnvelope, Response, ResponseEnvelope, CLIENT_PROTOCOL_VERSION,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info};

use crate::accept_loop::accept_until_shutdown;
use crate::driver::ClientCall;

/// Requests one connection may have in flight before it is answered `Overloaded`.
pub const CONNECTION_REQUESTS_IN_FLIGHT_MAX: usize = 1024;
/// How long one response may take to write before the client is presumed gone.
const CLIENT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves clients until `shutdown` turns true.
pub async fn serve_clients(
    listener: TcpListener,
    calls: mpsc::Sender<ClientCall>,
    shutdown: watch::Receiver<bool>,
) {
    let connection_shutdown = shutdown.clone();
    accept_until_shutdown(listener, shutdown, "client", move |stream, peer| {
        serve_connection(stream, peer, calls.clone(), connection_shutdown.clone())
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    calls: mpsc::Sender<ClientCall>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut connection = Connection::new(stream);
    let (answers_sender, mut answers) = mpsc::channel::<ResponseEnvelope>(CONNECTION_REQUESTS_IN_FLIGHT_MAX);
    let mut in_flight = 0usize;
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
            // Cancel-safe: a partly read frame stays in the connection's buffer.
            frame = connection.read_frame::<RequestEnvelope>() => {
                let envelope = match frame {
                    Ok(Some(envelope)) => envelope,
                    Ok(None) => return,
                    Err(error) => {
                        log_bad_connection(peer, &error);
                        return;
                    }
                };
                if envelope.protocol_version != CLIENT_PROTOCOL_VERSION {
                    let reply = error(ErrorKind::InvalidRequest, format!(
                        "client protocol {} is not {CLIENT_PROTOCOL_VERSION}", envelope.protocol_version
                    ));
                    let _ = connection.write_frame(&ResponseEnvelope { id: envelope.id, response: reply }).await;
                    return;
                }
                if in_flight >= CONNECTION_REQUESTS_IN_FLIGHT_MAX {
                    let reply = error(ErrorKind::Overloaded, "too many requests in flight on this connection".into());
                    if connection.write_frame(&ResponseEnvelope { id: envelope.id, response: reply }).await.is_err() {
                        return;
                    }
                    continue;
                }
                in_flight += 1;
                relay(envelope, &calls, answers_sender.clone());
            }
            Some(answer) = answers.recv() => {
                in_flight -= 1;
                // A client that stops reading must not pin this task forever.
                match tokio::time::timeout(CLIENT_WRITE_TIMEOUT, connection.write_frame(&answer)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        debug!(%peer, %error, "client went away");
                        return;
                    }
                    Err(_) => {
                        info!(%peer, "closed a client connection that stopped reading");
                        return;
                    }
                }
            }
        }
    }
}

/// Hands one request to the driver and forwards its answer, without blocking the
/// connection: a full driver queue is answered `Overloaded` at once.
fn relay(
    envelope: RequestEnvelope,
    calls: &mpsc::Sender<ClientCall>,
    answers: mpsc::Sender<ResponseEnvelope>,
) {
    let (reply, answer) = oneshot::channel();
    let id = envelope.id;
    let call = ClientCall {
        request: envelope.request,
        reply,
    };
    let immediate = match calls.try_send(call) {
        Ok(()) => None,
        Err(mpsc::error::TrySendError::Full(_)) => {
            Some(error(ErrorKind::Overloaded, "node is busy; retry".into()))
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            Some(error(ErrorKind::ShuttingDown, "node is shutting down".into()))
        }
    };
    tokio::spawn(async move {
        let response = match immediate {
            Some(response) => response,
            None => answer
                .await
                .unwrap_or_else(|_| error(ErrorKind::ShuttingDown, "node is shutting down".into())),
        };
        let _ = answers.send(ResponseEnvelope { id, response }).await;
    });
}

fn log_bad_connection(peer: SocketAddr, error: &ConnectionError) {
    match error {
        ConnectionError::Io(error) => debug!(%peer, %error, "client connection failed"),
        other => info!(%peer, error = %other, "closed a client connection that sent a malformed frame"),
    }
}

fn error(kind: ErrorKind, message: String) -> Response {
    Response::Error(ErrorReply { kind, message })
}
