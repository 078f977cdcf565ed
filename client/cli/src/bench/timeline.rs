//! The run's timeline, for measuring failovers (`bench/compare-etcd.sh`): the longest
//! time between two consecutive acknowledged requests, and with `--latency-log FILE` a
//! CSV row per request, warm-up included: `start_ms,latency_us,ok`, where `start_ms` is
//! when the request was sent, in milliseconds since the run's start (the summary's
//! `start_unix_ms` in wall clock time), `latency_us` how long it took and `ok` 1 for an
//! acknowledgement, 0 for an error. Rows are written as requests finish, so they are in
//! order of completion, not of start.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Failure;

/// The CSV's header line.
pub(super) const LATENCY_LOG_HEADER: &str = "start_ms,latency_us,ok";

#[derive(Debug)]
pub(super) struct Timeline {
    started: Instant,
    /// Wall clock milliseconds since the Unix epoch at `started`.
    start_unix_ms: u64,
    /// Microseconds after `started` of the latest acknowledgement; 0 before the first.
    last_ack_micros: AtomicU64,
    max_ack_gap_micros: AtomicU64,
    log: Option<LatencyLog>,
}

#[derive(Debug)]
struct LatencyLog {
    path: PathBuf,
    writer: Mutex<BufWriter<File>>,
    /// The first write error, reported at the end rather than per request.
    failed: Mutex<Option<String>>,
}

impl Timeline {
    /// Starts the clock now; creates the log (truncating it) when a path is given.
    pub(super) fn start(log: Option<&Path>) -> Result<Self, Failure> {
        let log = match log {
            Some(path) => {
                let cannot = |error: std::io::Error| {
                    Failure::from(format!("cannot write {}: {error}", path.display()))
                };
                let mut writer = BufWriter::new(File::create(path).map_err(cannot)?);
                writeln!(writer, "{LATENCY_LOG_HEADER}").map_err(cannot)?;
                Some(LatencyLog {
                    path: path.to_path_buf(),
                    writer: Mutex::new(writer),
                    failed: Mutex::new(None),
                })
            }
            None => None,
        };
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        Ok(Self {
            started: Instant::now(),
            start_unix_ms,
            last_ack_micros: AtomicU64::new(0),
            max_ack_gap_micros: AtomicU64::new(0),
            log,
        })
    }

    pub(super) fn started(&self) -> Instant {
        self.started
    }

    pub(super) fn start_unix_ms(&self) -> u64 {
        self.start_unix_ms
    }

    /// A request sent at `sent` finished at `finished`, acknowledged when `ok`.
    pub(super) fn record(&self, sent: Instant, finished: Instant, ok: bool) {
        if ok {
            let micros = micros(finished.saturating_duration_since(self.started)).max(1);
            let previous = self.last_ack_micros.fetch_max(micros, Ordering::Relaxed);
            if previous > 0 && micros > previous {
                self.max_ack_gap_micros
                    .fetch_max(micros - previous, Ordering::Relaxed);
            }
        }
        if let Some(log) = &self.log {
            let start_ms = sent.saturating_duration_since(self.started).as_secs_f64() * 1000.0;
            let latency_us = micros(finished.saturating_duration_since(sent));
            let mut writer = log.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(error) = writeln!(writer, "{start_ms:.3},{latency_us},{}", u8::from(ok)) {
                log.failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }

    /// The longest time between two consecutive acknowledgements so far.
    pub(super) fn max_ack_gap(&self) -> Duration {
        Duration::from_micros(self.max_ack_gap_micros.load(Ordering::Relaxed))
    }

    /// Flushes the log; the first write error, if any, fails the run.
    pub(super) fn finish(&self) -> Result<(), Failure> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let flushed = log
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
            .map_err(|error| error.to_string());
        let failed = log.failed.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match failed.map_or(flushed, Err) {
            Ok(()) => Ok(()),
            Err(error) => Err(Failure::from(format!(
                "cannot write {}: {error}",
                log.path.display()
            ))),
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_between_acknowledgements_ignores_errors() {
        let timeline = Timeline::start(None).expect("no log");
        let at = |millis| timeline.started() + Duration::from_millis(millis);
        timeline.record(at(0), at(10), true);
        timeline.record(at(10), at(20), true);
        timeline.record(at(20), at(300), false);
        timeline.record(at(20), at(520), true);
        timeline.record(at(520), at(530), true);
        assert_eq!(timeline.max_ack_gap(), Duration::from_millis(500));
    }

    #[test]
    fn the_log_has_a_row_per_request() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latency.csv");
        let timeline = Timeline::start(Some(&path)).expect("log");
        let at = |millis| timeline.started() + Duration::from_millis(millis);
        timeline.record(at(5), at(7), true);
        timeline.record(at(8), at(20), false);
        timeline.finish().expect("flushed");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "start_ms,latency_us,ok\n5.000,2000,1\n8.000,12000,0\n");
    }
}
