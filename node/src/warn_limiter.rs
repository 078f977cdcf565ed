//! At most one warning per interval for one kind of event a stranger can cause at will
//! (a failed TLS handshake): a flood of bad connections must not become a flood of log
//! lines. The next warning says how many were left out.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Rate limit of one kind of warning.
#[derive(Debug)]
pub struct WarnLimiter {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    warned_at: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State {
                warned_at: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(left out since the last warning)` if this event may be warned about now.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if state
            .warned_at
            .is_some_and(|at| now.duration_since(at) < self.interval)
        {
            state.suppressed += 1;
            return None;
        }
        state.warned_at = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_then_the_count_left_out() {
        let limiter = WarnLimiter::new(Duration::from_millis(200));
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        std::thread::sleep(Duration::from_millis(210));
        assert_eq!(limiter.allow(), Some(2));
        assert_eq!(limiter.allow(), None);
    }
}
