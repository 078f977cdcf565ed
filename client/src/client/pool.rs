//! One cached connection per node, and the exchange of one request for its response.
//!
//! A connection carries one request at a time, so a response is simply the next frame
//! (still matched by request id, not trusted by position). A connection whose exchange
//! failed or timed out is dropped rather than reused: a late response to an abandoned
//! request must never be read as the answer to the next one.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{self, Instant};

use super::error::ClientError;
use crate::connection::Connection;
use crate::wire::{RequestEnvelope, Response, ResponseEnvelope};

/// Upper bound of cached connections: a cluster has a handful of nodes, but redirects
/// may name addresses the user never listed, and the cache must not grow without end.
const CONNECTIONS_CACHED_MAX: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct ConnectionPool {
    /// Healthy connections not in use, by `host:port` address.
    idle: BTreeMap<String, Connection<TcpStream>>,
}

impl ConnectionPool {
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
        let outcome = match time::timeout(timeout, send_and_receive(address, cached, envelope)).await {
            Ok(Err(error)) if reused => {
                // The node may have closed this idle connection since its last use
                // (restart, idle timeout), so the request likely never arrived: try once
                // on a fresh connection inside what is left of the timeout. Safe for
                // writes too: a duplicate carries the same session and applies once.
                tracing::debug!(%address, %error, "cached connection failed; reconnecting once");
                let remaining = timeout.saturating_sub(started.elapsed());
                time::timeout(remaining, send_and_receive(address, None, envelope)).await
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

    fn keep(&mut self, address: &str, connection: Connection<TcpStream>) {
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
    cached: Option<Connection<TcpStream>>,
    envelope: &RequestEnvelope,
) -> Result<(Connection<TcpStream>, Response), ClientError> {
    let mut connection = match cached {
        Some(connection) => connection,
        None => connect(address).await?,
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
            Err(error) => return Err(ClientError::connection(address, error)),
        }
    }
}

async fn connect(address: &str) -> Result<Connection<TcpStream>, ClientError> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|error| ClientError::connection(address, format!("cannot connect: {error}")))?;
    // Requests are single small frames awaiting an answer: Nagle's delay only adds latency.
    // (madsim's simulated stream has no such knob.)
    #[cfg(not(madsim))]
    stream
        .set_nodelay(true)
        .map_err(|error| ClientError::connection(address, error))?;
    Ok(Connection::new(stream))
}
