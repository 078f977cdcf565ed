//! The measured phase's figures: per-kind latency histograms and error counts, printed
//! as a table or as one JSON document.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::{Plan, Stop, LATENCY_MICROS_MAX, LATENCY_SIGNIFICANT_DIGITS};
use crate::output::{self, Output};
use crate::Failure;

/// What one kind of operation did in the measured phase.
#[derive(Debug, Clone)]
pub(super) struct Tally {
    pub(super) latency_micros: Histogram<u64>,
    pub(super) errors: u64,
    pub(super) last_error: Option<String>,
}

impl Tally {
    pub(super) fn new() -> Result<Self, Failure> {
        let latency_micros = Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, LATENCY_SIGNIFICANT_DIGITS)
            .map_err(|error| Failure::from(format!("cannot create a latency histogram: {error}")))?;
        Ok(Self {
            latency_micros,
            errors: 0,
            last_error: None,
        })
    }

    pub(super) fn successes(&self) -> u64 {
        self.latency_micros.len()
    }
}

/// The measured phase's figures.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) plan: Plan,
    /// From the end of the warm-up to the last measured request's answer.
    pub(super) elapsed: Duration,
    /// Indexed by `Kind::index`.
    pub(super) tallies: [Tally; 2],
    pub(super) load_average: Option<f64>,
    /// Wall clock milliseconds since the Unix epoch when the load (warm-up) started: the
    /// origin of the latency log's `start_ms`.
    pub(super) start_unix_ms: u64,
    /// The longest time between two consecutive acknowledgements, warm-up included.
    pub(super) max_ack_gap: Duration,
}

/// Percentiles reported, with their labels in text and JSON.
const PERCENTILES: [(f64, &str, &str); 4] = [
    (0.50, "P50", "p50"),
    (0.90, "P90", "p90"),
    (0.99, "P99", "p99"),
    (0.999, "P99.9", "p99_9"),
];

impl Report {
    fn throughput(&self, operations: u64) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            operations as f64 / seconds
        } else {
            0.0
        }
    }

    pub(super) fn print(&self) {
        match self.plan.output {
            Output::Text => self.print_text(),
            Output::Json => output::print_json(&self.json()),
        }
    }

    fn print_text(&self) {
        let mut header = format!("{:<6} {:>9} {:>7} {:>10}", "OP", "OK", "ERRORS", "OPS/S");
        for (_, label, _) in PERCENTILES {
            header.push_str(&format!(" {:>9}", format!("{label} ms")));
        }
        header.push_str(&format!(" {:>9}", "MAX ms"));
        outln!("{header}");
        let kinds = self.plan.mix.kinds();
        for &kind in kinds {
            let tally = &self.tallies[kind.index()];
            let mut row = format!(
                "{:<6} {:>9} {:>7} {:>10.1}",
                kind.name(),
                tally.successes(),
                tally.errors,
                self.throughput(tally.successes())
            );
            for (quantile, _, _) in PERCENTILES {
                row.push_str(&format!(" {:>9}", millis_text(tally, Some(quantile))));
            }
            row.push_str(&format!(" {:>9}", millis_text(tally, None)));
            outln!("{row}");
        }
        if kinds.len() > 1 {
            let (successes, errors) = self.totals();
            outln!(
                "{:<6} {:>9} {:>7} {:>10.1}",
                "all",
                successes,
                errors,
                self.throughput(successes)
            );
        }
        let load = self
            .load_average
            .map_or_else(|| "unknown".to_string(), |load| format!("{load:.2}"));
        outln!(
            "measured {:.2} s; load average (1 min) {load} on {} cores",
            self.elapsed.as_secs_f64(),
            cores()
        );
        outln!(
            "longest time between two acknowledgements: {:.1} ms",
            self.max_ack_gap.as_secs_f64() * 1000.0
        );
        if let Some(path) = &self.plan.latency_log {
            outln!("latency log: {}", path.display());
        }
        for &kind in kinds {
            if let Some(error) = &self.tallies[kind.index()].last_error {
                outln!("last {} error: {error}", kind.name());
            }
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.tallies.iter().fold((0, 0), |(successes, errors), tally| {
            (successes + tally.successes(), errors + tally.errors)
        })
    }

    fn json(&self) -> Value {
        let mut operations = serde_json::Map::new();
        for &kind in self.plan.mix.kinds() {
            let tally = &self.tallies[kind.index()];
            let mut latency = serde_json::Map::new();
            for (quantile, _, label) in PERCENTILES {
                latency.insert(label.into(), json!(millis(tally, Some(quantile))));
            }
            latency.insert("max".into(), json!(millis(tally, None)));
            operations.insert(
                kind.name().into(),
                json!({
                    "ok": tally.successes(),
                    "errors": tally.errors,
                    "ops_per_sec": round(self.throughput(tally.successes()), 1),
                    "latency_ms": latency,
                    "last_error": tally.last_error,
                }),
            );
        }
        let (successes, errors) = self.totals();
        let plan = &self.plan;
        let (duration_secs, requests) = match plan.stop {
            Stop::AfterSeconds(seconds) => (Some(seconds), None),
            Stop::AfterRequests(requests) => (None, Some(requests)),
        };
        json!({
            "system": "raftkv",
            "endpoints": plan.endpoints.iter().map(|e| format!("{}:{}", e.host, e.port)).collect::<Vec<_>>(),
            "local": plan.local.is_some(),
            "mix": plan.mix.name(),
            "clients": plan.clients,
            "value_bytes": plan.value_bytes,
            "keys": plan.keys,
            "warmup_secs": plan.warmup.as_secs(),
            "duration_secs": duration_secs,
            "requests": requests,
            "elapsed_secs": round(self.elapsed.as_secs_f64(), 3),
            "operations": operations,
            "total": {
                "ok": successes,
                "errors": errors,
                "ops_per_sec": round(self.throughput(successes), 1),
            },
            "start_unix_ms": self.start_unix_ms,
            "max_ack_gap_ms": round(self.max_ack_gap.as_secs_f64() * 1000.0, 3),
            "latency_log": plan.latency_log,
            "load_average_1m": self.load_average,
            "cores": cores(),
        })
    }
}

/// A percentile (or the maximum, for `None`) in milliseconds; `None` with no samples.
fn millis(tally: &Tally, quantile: Option<f64>) -> Option<f64> {
    let histogram = &tally.latency_micros;
    if histogram.is_empty() {
        return None;
    }
    let micros = match quantile {
        Some(quantile) => histogram.value_at_quantile(quantile),
        None => histogram.max(),
    };
    Some(round(micros as f64 / 1000.0, 3))
}

fn millis_text(tally: &Tally, quantile: Option<f64>) -> String {
    millis(tally, quantile).map_or_else(|| "-".to_string(), |millis| format!("{millis:.2}"))
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The one-minute load average, printed beside the figures: on a shared machine a busy
/// neighbour explains a slow run better than any percentile.
pub(super) fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_reported_in_milliseconds() {
        let mut tally = Tally::new().expect("valid bounds");
        assert_eq!(millis(&tally, Some(0.5)), None, "no samples, no figure");
        for micros in 1..=1000 {
            tally.latency_micros.record(micros).expect("in range");
        }
        assert_eq!(millis(&tally, Some(0.5)), Some(0.5));
        assert_eq!(millis(&tally, None), Some(1.0));
        assert_eq!(millis_text(&tally, Some(0.999)), "1.00");
    }
}
