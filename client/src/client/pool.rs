//! One cached connection per node, and the exchange of one request for its response.
//!
//! A connection carries one request at a time, so a response is simply the next frame
//! (still matched by request id, not trusted by position). A connection whose exchange
//! failed or timed out is dropped rather than reused: a late response to an abandoned
//! request must never be read as the answer to the next one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::ClientConfig;
use tokio::net::TcpStream;
use tokio::time::{self, Instant};

use super::error::ClientError;
use crate::connection::{Connection, ConnectionError};
use crate::frame::FrameError;
use crate::tls::{server_name, Stream};
use crate::wire::{RequestEnvelope, Response, ResponseEnvelope};

/// Upper bound of cached connections: a cluster has a handful of nodes, but redirects
/// may name addresses the user never listed, and the cache must not grow without end.
const CONNECTIONS_CACHED_MAX: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct ConnectionPool {
    /// Healthy connections not in use, by `host:port` address.
    idle: BTreeMap<String, Connection<Stream>>,
    /// TLS towards every node (`None`: plain TCP, for `--insecure` clusters).
    tls: Option<Arc<ClientConfig>>,
}

impl ConnectionPool {
    pub(crate) fn set_tls(&mut self, tls: Option<Arc<ClientConfig>>) {
        self.idle.clear();
        self.tls = tls;
    }

    /// Sends `envelope` to `address` and waits for its response, all within `timeout`.
    pub(crate) async fn exchange(
        &mut self,
        address: &str,
        envelope: &RequestEnvelope,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let started = Instant::now();
        let cached = self.idle.remove(address);
        let reused = cached.is_some();
        let outcome = match time::timeout(
            timeout,
            send_and_receive(address, cached, envelope, self.tls.as_ref()),
        )
        .await
        {
            Ok(Err(error)) if reused => {
                // The node may have closed this idle connection since its last use
                // (restart, idle timeout), so the request likely never arrived: try once
                // on a fresh connection inside what is left of the timeout. Safe for
                // writes too: a duplicate carries the same session and applies once.
                tracing::debug!(%address, %error, "cached connection failed; reconnecting once");
                let remaining = timeout.saturating_sub(started.elapsed());
                let retried = time::timeout(
                    remaining,
                    send_and_receive(address, None, envelope, self.tls.as_ref()),
                )
                .await;
                // The first copy may have arrived: a reconnect that fails is no proof that
                // nothing was sent, so it must not read as `Unreachable` (the client would
                // take a later `SessionExpired` as safe to send again in a new session).
                match retried {
                    Ok(Err(ClientError::Unreachable { endpoint, reason })) => {
                        Ok(Err(ClientError::Connection {
                            endpoint,
                            reason: format!("{reason} (after a cached connection failed: {error})"),
                        }))
                    }
                    other => other,
                }
            }
            outcome => outcome,
        };
        match outcome {
            Ok(Ok((connection, response))) => {
                self.keep(address, connection);
                Ok(response)
            }
            Ok(Err(error)) => Err(error),
            Err(_elapsed) => Err(ClientError::Timeout {
                endpoint: address.to_string(),
                after: timeout,
            }),
        }
    }

    fn keep(&mut self, address: &str, connection: Connection<Stream>) {
        if self.idle.len() >= CONNECTIONS_CACHED_MAX {
            // Rare (only with many redirect targets): dropping any one keeps the bound.
            self.idle.pop_first();
        }
        self.idle.insert(address.to_string(), connection);
        debug_assert!(self.idle.len() <= CONNECTIONS_CACHED_MAX);
    }
}

async fn send_and_receive(
    address: &str,
    cached: Option<Connection<Stream>>,
    envelope: &RequestEnvelope,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Connection<Stream>, Response), ClientError> {
    let mut connection = match cached {
        Some(connection) => connection,
        None => connect(address, tls).await?,
    };
    connection
        .write_frame(envelope)
        .await
        .map_err(|error| ClientError::connection(address, error))?;
    loop {
        match connection.read_frame::<ResponseEnvelope>().await {
            Ok(Some(reply)) if reply.id == envelope.id => return Ok((connection, reply.response)),
            Ok(Some(reply)) => {
                tracing::debug!(%address, expected = envelope.id, got = reply.id, "skipping a stray response");
            }
            Ok(None) => return Err(ClientError::connection(address, "connection closed by the node")),
            Err(error) if tls.is_none() && is_tls_record(&error) => {
                return Err(ClientError::connection(
                    address,
                    "the node speaks TLS: pass --tls-cert, --tls-key and --tls-ca (RAFTKV_TLS_*)",
                ))
            }
            Err(error) => return Err(ClientError::connection(address, error)),
        }
    }
}

async fn connect(address: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Connection<Stream>, ClientError> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|error| ClientError::unreachable(address, format!("cannot connect: {error}")))?;
    // Requests are single small frames awaiting an answer: Nagle's delay only adds latency.
    // (madsim's simulated stream has no such knob.)
    #[cfg(not(madsim))]
    stream
        .set_nodelay(true)
        .map_err(|error| ClientError::unreachable(address, error))?;
    let Some(tls) = tls else {
        return Ok(Connection::new(Stream::Plain(stream)));
    };
    // The node's certificate must name the host dialled (its pod DNS name, 127.0.0.1).
    let host = address.rsplit_once(':').map_or(address, |(host, _port)| host);
    let name = server_name(host).map_err(|error| ClientError::unreachable(address, error))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, stream)
        .await
        .map_err(|error| ClientError::unreachable(address, format!("TLS handshake failed: {error}")))?;
    Ok(Connection::new(Stream::from(stream)))
}

/// Whether a "frame too large" was really a TLS record read as a frame header: the node
/// runs TLS and this client does not (a TLS alert or handshake record starts 0x15 0x03 or
/// 0x16 0x03, which as a length is hundreds of megabytes).
fn is_tls_record(error: &ConnectionError) -> bool {
    matches!(
        error,
        ConnectionError::Frame(FrameError::TooLarge { payload_bytes, .. })
            if matches!(payload_bytes >> 16, 0x1503 | 0x1603)
    )
}
