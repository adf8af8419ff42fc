//! A monotonic process clock for health and latency bookkeeping.
//!
//! Uses tokio's `Instant` so tests that pause time also move this clock.

use std::sync::OnceLock;

use tokio::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    u64::try_from(Instant::now().saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Milliseconds since the first call in this process (never 0, which the
/// health state uses as "up").
pub fn now_ms() -> u64 {
    now_ns() / 1_000_000 + 1
}
