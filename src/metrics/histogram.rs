//! Lock-free histograms: fixed bucket bounds in an integer base unit
//! (microseconds for durations, bytes for sizes) and atomic counts.
//!
//! Invariants:
//! - Observing is a linear scan over at most 15 integer bounds and two
//!   relaxed atomic adds: no lock, no float, no allocation.
//!   (prometheus-client's own `Histogram` takes a lock per observation.)
//! - Encoding reads the counts once each; a scrape racing observations may
//!   see a count and sum from slightly different instants, as with any
//!   lock-free histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds of duration histograms, in microseconds (0.5 ms … 10 s).
pub const DURATION_BOUNDS_MICROS: &[u64] = &[
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Upper bounds of size histograms, in bytes (64 B … 16 MiB).
pub const SIZE_BOUNDS_BYTES: &[u64] = &[
    64, 256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216,
];

/// A histogram over integer observations (see the module invariants).
#[derive(Debug)]
pub struct Histo {
    bounds: &'static [u64],
    /// Exposed value of one base unit (1e-6 for microseconds → seconds).
    scale: f64,
    /// One count per bound, plus +Inf.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histo {
    /// A duration histogram, exposed in seconds.
    pub fn seconds() -> Self {
        Self::new(DURATION_BOUNDS_MICROS, 1e-6)
    }

    /// A size histogram, exposed in bytes.
    pub fn bytes() -> Self {
        Self::new(SIZE_BOUNDS_BYTES, 1.0)
    }

    fn new(bounds: &'static [u64], scale: f64) -> Self {
        Self {
            bounds,
            scale,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Observes `value` base units.
    #[inline]
    pub fn observe(&self, value: u64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Observes a duration (a seconds histogram).
    #[inline]
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Encodes as a Prometheus histogram (cumulative buckets are the
    /// encoder's business: it is given per-bucket counts).
    pub fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = Vec::with_capacity(self.counts.len());
        let mut count = 0;
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            let bound = self
                .bounds
                .get(i)
                .map_or(f64::MAX, |&b| b as f64 * self.scale);
            buckets.push((bound, n));
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 * self.scale;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// A registrable duration histogram (seconds), cheap to clone.
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Histo>,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self {
            inner: Arc::new(Histo::seconds()),
        }
    }
}

impl AtomicHistogram {
    pub fn observe(&self, elapsed: Duration) {
        self.inner.observe_duration(elapsed);
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.inner.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_sum() {
        let h = Histo::bytes();
        h.observe(10);
        h.observe(64);
        h.observe(65);
        h.observe(u64::from(u32::MAX));
        assert_eq!(h.count(), 4);
        assert_eq!(h.counts[0].load(Ordering::Relaxed), 2);
        assert_eq!(h.counts[1].load(Ordering::Relaxed), 1);
        assert_eq!(h.counts[SIZE_BOUNDS_BYTES.len()].load(Ordering::Relaxed), 1);
        let d = Histo::seconds();
        d.observe_duration(Duration::from_millis(3));
        assert_eq!(d.counts[3].load(Ordering::Relaxed), 1);
        assert_eq!(d.sum.load(Ordering::Relaxed), 3_000);
    }
}
