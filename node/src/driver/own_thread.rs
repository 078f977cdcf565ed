//! The driver runs on a thread of its own, outside the simulation. Its storage calls
//! block (an fsync; one on a dead disk may never return), and a blocked worker of the
//! node's multi-thread runtime stalls that runtime's timers and sockets with it: tokio
//! drives them from whichever worker parks, and the others wait to be woken (seen in
//! `probe_tests.rs`: a persist that did not return froze every timer of a three-worker
//! runtime). On its own current-thread runtime a stuck driver stops only itself, and the
//! ops probes (which then report it), the client and peer ports stay served.
//!
//! Under madsim there is one thread and nothing blocks: the driver runs in place.

use std::future::Future;

/// Runs `driver` (a `Driver::run` future) to its end on its own thread; in place under
/// madsim. Tasks it spawns must go through a handle of the node's runtime (see
/// `crate::transport::Transport`'s spawner), not `tokio::spawn`.
pub async fn run_on_own_thread<T: Send + 'static>(
    driver: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    #[cfg(madsim)]
    {
        Ok(driver.await)
    }
    #[cfg(not(madsim))]
    {
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("raftkv-driver".into())
            .spawn(
                move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => {
                        let _ = done.send(Ok(runtime.block_on(driver)));
                    }
                    Err(error) => {
                        let _ = done.send(Err(format!("cannot build the driver's runtime: {error}")));
                    }
                },
            )
            .map_err(|error| format!("cannot start the driver's thread: {error}"))?;
        result
            .await
            .map_err(|_| "the driver's thread ended without a result".to_string())?
    }
}
