//! The driver's proof of life: the time of its latest loop turn. `/livez` and `/readyz`
//! read it, so a driver stuck in an fsync on a dead disk (or in any storage call) is
//! seen as such, instead of a probe that answers "ok" whatever the driver does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct DriverHeartbeat {
    origin: Instant,
    /// Milliseconds from `origin` to the latest turn.
    last_turn_millis: AtomicU64,
}

impl Default for DriverHeartbeat {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_turn_millis: AtomicU64::new(0),
        }
    }
}

impl DriverHeartbeat {
    /// The driver turned (it beats at least once a tick while it runs).
    pub fn beat(&self) {
        self.last_turn_millis
            .fetch_max(millis(self.origin.elapsed()), Ordering::Relaxed);
    }

    /// How long ago the driver last turned.
    pub fn silent_for(&self) -> Duration {
        let now = millis(self.origin.elapsed());
        Duration::from_millis(now.saturating_sub(self.last_turn_millis.load(Ordering::Relaxed)))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn silence_grows_until_the_next_beat() {
        let heartbeat = DriverHeartbeat::default();
        heartbeat.beat();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(heartbeat.silent_for() >= Duration::from_millis(60));
        heartbeat.beat();
        assert!(heartbeat.silent_for() < Duration::from_millis(60));
    }
}
