//! Pauses between retries: exponential so that a cluster in the middle of an election
//! (hundreds of milliseconds) is not hammered, capped so that a client notices a new
//! leader soon, and jittered so that many clients that failed together do not retry in
//! lockstep. The jitter comes from a tiny xorshift seeded by the client id: no RNG crate,
//! and replayable under simulation.

use std::time::Duration;

/// First pause: long enough for a redirect race to settle, short next to an election.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause: about a third of the node's shortest default election timeout (150
/// ms), so that a client finds a new leader within tens of milliseconds of its election
/// rather than hundreds (issue 14's failover). Each retry costs the cluster one small
/// request, answered at once by a node that knows no leader.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    jitter_state: u64,
}

impl Backoff {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            next: BACKOFF_MIN,
            // xorshift is stuck at zero forever.
            jitter_state: seed.max(1),
        }
    }

    /// The pause before the next retry: the current step, less up to half of it at
    /// random; the step then doubles up to `BACKOFF_MAX`.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let step_micros = u64::try_from(step.as_micros()).unwrap_or(u64::MAX);
        let jitter_micros = self.next_random() % (step_micros / 2).max(1);
        let pause = step - Duration::from_micros(jitter_micros);
        debug_assert!(pause >= BACKOFF_MIN / 2 && pause <= BACKOFF_MAX);
        pause
    }

    /// Marsaglia's xorshift64.
    fn next_random(&mut self) -> u64 {
        let mut x = self.jitter_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter_state = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_up_to_the_cap_and_stay_above_half_the_minimum() {
        let mut backoff = Backoff::new(42);
        let pauses: Vec<Duration> = (0..20).map(|_| backoff.next_pause()).collect();
        assert!(pauses.iter().all(|p| *p >= BACKOFF_MIN / 2 && *p <= BACKOFF_MAX));
        assert!(pauses[0] <= BACKOFF_MIN);
        assert!(pauses[19] > BACKOFF_MAX / 2, "late pauses sit near the cap");
    }
}
