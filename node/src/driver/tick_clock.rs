//! When the driver's Raft ticks are due, and how many after a stall.
//!
//! Without lease reads a late tick is delivered once and the schedule slides (tokio's
//! `MissedTickBehavior::Delay`): after a stall, elections and heartbeats resume at their
//! pace instead of firing in a burst. With lease reads (thesis §6.4.1) the leader's tick
//! count is its lease clock, and a count that fell behind real time would stretch the
//! lease past the point where followers may elect someone else: every overdue tick is
//! delivered before the driver handles its next input (`Raft::read_index` or a forwarded
//! read among them), up to `catch_up_ticks_max`, which is already more than any lease
//! lasts.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct TickClock {
    interval: Duration,
    next_tick_at: Instant,
    /// Lease reads: deliver every overdue tick, not one.
    catch_up: bool,
    catch_up_ticks_max: u32,
}

impl TickClock {
    pub fn new(interval: Duration, now: Instant, catch_up: bool, catch_up_ticks_max: u32) -> Self {
        assert!(!interval.is_zero(), "a tick lasts at least 1 ms (config)");
        assert!(catch_up_ticks_max >= 1);
        Self {
            interval,
            next_tick_at: now + interval,
            catch_up,
            catch_up_ticks_max,
        }
    }

    pub fn next_tick_at(&self) -> Instant {
        self.next_tick_at
    }

    /// How many ticks to deliver at `now`, moving the schedule past them.
    pub fn take_due(&mut self, now: Instant) -> u32 {
        if now < self.next_tick_at {
            return 0;
        }
        if !self.catch_up {
            // One tick; on time, the schedule keeps its phase, late, it slides.
            let on_time = now - self.next_tick_at < self.interval;
            self.next_tick_at = if on_time {
                self.next_tick_at + self.interval
            } else {
                now + self.interval
            };
            return 1;
        }
        let mut due = 0;
        while now >= self.next_tick_at && due < self.catch_up_ticks_max {
            due += 1;
            self.next_tick_at += self.interval;
        }
        if now >= self.next_tick_at {
            // Beyond the cap, more ticks change nothing a lease depends on.
            self.next_tick_at = now + self.interval;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(10);

    #[test]
    fn on_time_ticks_come_one_at_a_time_in_phase() {
        let start = Instant::now();
        for catch_up in [false, true] {
            let mut clock = TickClock::new(TICK, start, catch_up, 50);
            assert_eq!(clock.take_due(start + Duration::from_millis(9)), 0);
            assert_eq!(clock.take_due(start + Duration::from_millis(12)), 1);
            assert_eq!(clock.next_tick_at(), start + Duration::from_millis(20));
        }
    }

    #[test]
    fn after_a_stall_only_lease_reads_catch_up_every_tick() {
        let start = Instant::now();
        let stalled = start + Duration::from_millis(105);
        let mut sliding = TickClock::new(TICK, start, false, 50);
        assert_eq!(sliding.take_due(stalled), 1);
        assert_eq!(sliding.next_tick_at(), stalled + TICK);
        let mut catching_up = TickClock::new(TICK, start, true, 50);
        assert_eq!(
            catching_up.take_due(stalled),
            10,
            "ticks due at 10, 20, ..., 100 ms"
        );
        assert_eq!(catching_up.next_tick_at(), start + Duration::from_millis(110));
    }

    #[test]
    fn catching_up_stops_at_its_cap_and_resumes_from_now() {
        let start = Instant::now();
        let stalled = start + Duration::from_secs(10);
        let mut clock = TickClock::new(TICK, start, true, 40);
        assert_eq!(clock.take_due(stalled), 40);
        assert_eq!(clock.next_tick_at(), stalled + TICK);
        assert_eq!(clock.take_due(stalled), 0);
    }
}
