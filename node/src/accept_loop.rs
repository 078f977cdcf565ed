//! The accept loop every listener of the node shares: accept until shutdown, hand each
//! connection to its own task, and ride out accept errors (e.g. too many open files)
//! with a short pause instead of spinning.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::warn;

/// Pause after a failed accept, so a persistent error does not spin the task.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accepts connections until `shutdown` turns true, spawning `serve` for each.
pub async fn accept_until_shutdown<Serve, Served>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
    mut serve: Serve,
) where
    Serve: FnMut(TcpStream, SocketAddr) -> Served,
    Served: Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve(stream, peer));
                }
                Err(error) => {
                    warn!(%error, "accepting a {what} connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
}
