//! A progress bar while the benchmark runs, on stderr and only when stderr is a terminal:
//! a script's or a test's output stays exactly the report.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Stop;

#[derive(Debug)]
pub(super) struct Progress {
    bar: ProgressBar,
    stop: Stop,
    measure_from: Instant,
}

impl Progress {
    /// A bar over the measured phase: seconds for a duration, requests for `--requests`.
    pub(super) fn start(stop: Stop, measure_from: Instant) -> Self {
        let length = match stop {
            Stop::AfterSeconds(seconds) => seconds,
            Stop::AfterRequests(requests) => requests,
        };
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let unit = match stop {
            Stop::AfterSeconds(_) => "s",
            Stop::AfterRequests(_) => "requests",
        };
        let template = format!("{{prefix:>8}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix("warm-up");
        Self {
            bar,
            stop,
            measure_from,
        }
    }

    /// Called by the coordinator every tick: `measured` requests answered (acknowledged
    /// or failed) in the measured phase, `errors` of them failed.
    pub(super) fn update(&self, measured: u64, errors: u64) {
        let now = Instant::now();
        if now < self.measure_from {
            return;
        }
        self.bar.set_prefix("measured");
        let position = match self.stop {
            Stop::AfterSeconds(_) => now.saturating_duration_since(self.measure_from).as_secs(),
            Stop::AfterRequests(_) => measured,
        };
        self.bar.set_position(position);
        let seconds = now
            .saturating_duration_since(self.measure_from)
            .max(Duration::from_millis(1))
            .as_secs_f64();
        self.bar.set_message(format!(
            "{measured} requests, {:.0} ops/s, {errors} errors",
            measured as f64 / seconds
        ));
    }

    /// Removes the bar, so the report starts on a clean line.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
