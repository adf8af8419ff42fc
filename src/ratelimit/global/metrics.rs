//! The global rate limit's metrics: the store's health and round trips
//! (process-wide), and decisions per route and result (handles resolved by
//! the publisher, so a request only touches atomics).
//!
//! Invariant: nothing here takes a lock on the request path; families are
//! consulted only by the control plane ([`GlobalMetrics::decisions`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the store round-trip histogram: a Redis next
/// door answers in tens of microseconds, the default budget is 50 ms.
const ROUND_TRIP_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

/// Results of a global limit's decision.
pub const RESULTS: [&str; 4] = ["allowed", "limited", "fallback", "unavailable"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// `namespace/name` of the Ingress or route the limit belongs to.
    route: String,
    result: &'static str,
}

/// Process-wide metrics of the global limits (registered once).
#[derive(Debug, Clone, Default)]
pub struct GlobalMetrics {
    decisions: Family<DecisionLabels, Counter>,
    /// Failed or timed-out store calls (and failed connection attempts).
    pub store_errors: Counter,
    /// 1 while the store is connected and answering.
    pub store_up: Gauge,
    /// Store calls sent (one per batch of same-key requests).
    pub store_calls: Counter,
    pub round_trip: RoundTripHistogram,
}

/// Decision counters of one limit, indexed like [`RESULTS`].
#[derive(Debug, Clone, Default)]
pub struct DecisionCounters(pub [Counter; 4]);

/// Which [`DecisionCounters`] entry a decision counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed = 0,
    Limited = 1,
    /// The store did not answer; the local limit decided (fail open).
    Fallback = 2,
    /// The store did not answer; refused (fail closed).
    Unavailable = 3,
}

/// Round-trip times with fixed buckets and atomic counts (sum in µs).
#[derive(Debug, Clone, Default)]
pub struct RoundTripHistogram(Arc<Buckets>);

#[derive(Debug, Default)]
struct Buckets {
    counts: [AtomicU64; ROUND_TRIP_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl GlobalMetrics {
    /// Registers the metrics in `registry` (start-up only).
    pub fn register(registry: &mut Registry) -> Self {
        let m = GlobalMetrics::default();
        registry.register(
            "global_rate_limit_decisions",
            "Global rate limit decisions by route and result (fallback: the store did not answer and the local limit decided)",
            m.decisions.clone(),
        );
        registry.register(
            "global_rate_limit_store_errors",
            "Global rate limit store calls that failed or exceeded the budget, and failed connection attempts",
            m.store_errors.clone(),
        );
        registry.register(
            "global_rate_limit_store_up",
            "1 while the global rate limit store is connected and answering",
            m.store_up.clone(),
        );
        registry.register(
            "global_rate_limit_store_calls",
            "Calls sent to the global rate limit store (one per batch of same-key requests)",
            m.store_calls.clone(),
        );
        registry.register_with_unit(
            "global_rate_limit_store_round_trip",
            "Round-trip time of global rate limit store calls",
            prometheus_client::registry::Unit::Seconds,
            m.round_trip.clone(),
        );
        m
    }

    /// The decision counters of `route` (control plane: takes locks).
    pub fn decisions(&self, route: &str) -> DecisionCounters {
        DecisionCounters(RESULTS.map(|result| {
            self.decisions
                .get_or_create(&DecisionLabels {
                    route: route.to_string(),
                    result,
                })
                .clone()
        }))
    }
}

impl DecisionCounters {
    #[inline]
    pub fn count(&self, outcome: Outcome) {
        if let Some(c) = self.0.get(outcome as usize) {
            c.inc();
        }
    }
}

impl RoundTripHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = ROUND_TRIP_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(ROUND_TRIP_BUCKETS.len());
        if let Some(count) = self.0.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl TypedMetric for RoundTripHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for RoundTripHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = Vec::with_capacity(ROUND_TRIP_BUCKETS.len() + 1);
        let mut count = 0;
        for (i, c) in self.0.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            buckets.push((ROUND_TRIP_BUCKETS.get(i).copied().unwrap_or(f64::MAX), n));
        }
        let sum = self.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
