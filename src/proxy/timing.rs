//! What forwarding learns about the upstream exchange of one request, for
//! the metrics and the access log: connect time of a new connection,
//! time to the response headers, the upstream's status.
//!
//! Invariant: plain atomics written by the senders through the plan's
//! shared reference (the plan is `Copy`) and read once when the request
//! ends; imports nothing of the request path.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Not measured (no new connection, no upstream response).
const NONE: u64 = u64::MAX;

/// The upstream side of one request (see the module docs).
#[derive(Debug)]
pub struct UpstreamTiming {
    connect_micros: AtomicU64,
    response_micros: AtomicU64,
    status: AtomicU32,
}

impl Default for UpstreamTiming {
    fn default() -> Self {
        Self {
            connect_micros: AtomicU64::new(NONE),
            response_micros: AtomicU64::new(NONE),
            status: AtomicU32::new(0),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(NONE - 1)
}

fn duration(v: u64) -> Option<Duration> {
    (v != NONE).then(|| Duration::from_micros(v))
}

impl UpstreamTiming {
    /// A new upstream connection took `d` (the last one, on retries).
    #[inline]
    pub fn connected(&self, d: Duration) {
        self.connect_micros.store(micros(d), Ordering::Relaxed);
    }

    /// Response headers with `status` came `d` after the request was sent.
    #[inline]
    pub fn responded(&self, d: Duration, status: u16) {
        self.response_micros.store(micros(d), Ordering::Relaxed);
        self.status.store(u32::from(status), Ordering::Relaxed);
    }

    pub fn connect(&self) -> Option<Duration> {
        duration(self.connect_micros.load(Ordering::Relaxed))
    }

    pub fn response(&self) -> Option<Duration> {
        duration(self.response_micros.load(Ordering::Relaxed))
    }

    pub fn status(&self) -> Option<u16> {
        u16::try_from(self.status.load(Ordering::Relaxed))
            .ok()
            .filter(|s| *s != 0)
    }
}
