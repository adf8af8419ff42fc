//! Where one install's time went, phase by phase: what the "routing table
//! installed" log line reports and `benches/compile.rs` prints.
//!
//! Invariant: measured on the control plane around whole phases of
//! `Publisher::install`; nothing here runs per request.

use std::time::{Duration, Instant};

/// The phases of the last recompile, each as a duration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InstallTimings {
    /// The compiler (a patch or a full compile).
    pub compile: Duration,
    /// Live upstreams for the compiled specs.
    pub upstreams: Duration,
    /// Route metric handles and limiters.
    pub routes: Duration,
    /// From the start to the swap (what a request waits for).
    pub published: Duration,
    /// After the swap: the upstream-by-Service index.
    pub index: Duration,
    /// After the swap: diagnostics (gauges, log lines), statuses,
    /// certificate expiry gauges.
    pub diagnostics: Duration,
    /// After the swap: what the debug endpoints and the webhook read.
    pub inspect: Duration,
    /// After the swap: releasing the previous state (handing it to the
    /// dropper thread).
    pub drop: Duration,
    /// From the start until the next change can be taken.
    pub total: Duration,
}

/// A stopwatch that hands out the time since its last lap.
pub(super) struct Laps(Instant);

impl Laps {
    pub(super) fn start() -> Self {
        Self(Instant::now())
    }

    /// The time since the last lap (or the start), and starts a new lap.
    pub(super) fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let lap = now.duration_since(self.0);
        self.0 = now;
        lap
    }
}

/// Milliseconds, for log fields.
pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
