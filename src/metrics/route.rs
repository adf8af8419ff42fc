//! Per-route request metrics: one [`RouteSeries`] per label set
//! (`ingress`, `service`, `route`, `canary`, and `host` with
//! `--metrics-per-host`), holding the request counter by status and
//! method, the five request histograms and the per-route limit counters.
//!
//! Invariants:
//! - Label values are fixed when the publisher resolves a series (control
//!   plane); a request only touches atomics through the handle its route
//!   carries ([`RouteMetrics`]): no lock, no label string, no allocation.
//! - Status and method are counted in a small open-addressing table of
//!   atomic slots (claimed by compare-and-swap, never freed): a route sees
//!   few (method, status) pairs, and should it see more than
//!   [`SLOTS`], the rest is counted as `method="other",status="other"`
//!   rather than growing memory.
//! - Scrapes read the set of live series through one `ArcSwap` load; the
//!   publisher replaces the set when it publishes a table. Series without
//!   a request yet are not exposed (a 10,000-route table does not print
//!   hundreds of thousands of zero buckets).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::histogram::Histo;

/// Slots of the (method, status) table of one series.
pub const SLOTS: usize = 16;

/// Method label values, by [`method_index`].
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
];

/// The index of a method in [`METHODS`] (no allocation, no string compare
/// for the standard methods).
#[inline]
pub fn method_index(method: &Method) -> u8 {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ => 9,
    }
}

/// The labels of one series, fixed when it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesLabels {
    /// `namespace/name` of the Ingress (empty for Gateway API routes and
    /// unrouted requests).
    pub ingress: Arc<str>,
    /// `namespace/service:port` (empty when unrouted).
    pub service: Arc<str>,
    /// `namespace/name` of the HTTPRoute or GRPCRoute (empty for Ingresses).
    pub route: Arc<str>,
    /// Counted for a canary Ingress's backend.
    pub canary: bool,
    /// The rule's host, only with `--metrics-per-host`.
    pub host: Option<Arc<str>>,
}

impl EncodeLabelSet for SeriesLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let canary = if self.canary { "true" } else { "false" };
        [
            ("ingress", &*self.ingress),
            ("service", &*self.service),
            ("route", &*self.route),
            ("canary", canary),
        ]
        .as_slice()
        .encode(encoder)?;
        if let Some(host) = &self.host {
            [("host", &**host)].as_slice().encode(encoder)?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// `(method index + 1) << 16 | status`; 0: free.
    key: AtomicU32,
    count: AtomicU64,
}

/// The metrics of one label set.
#[derive(Debug)]
pub struct RouteSeries {
    pub labels: SeriesLabels,
    slots: [Slot; SLOTS],
    overflow: AtomicU64,
    /// Request received → last response byte sent (or the client gone).
    pub duration: Histo,
    /// Request sent upstream → response headers received.
    pub upstream_response: Histo,
    /// New HTTP/1 upstream connections: dial → connected (TLS included).
    pub upstream_connect: Histo,
    pub request_size: Histo,
    pub response_size: Histo,
    /// Requests refused by the route's rate limit.
    pub limited_rate: AtomicU64,
    /// Requests refused by the route's concurrency limit.
    pub limited_connections: AtomicU64,
}

impl RouteSeries {
    pub fn new(labels: SeriesLabels) -> Self {
        Self {
            labels,
            slots: Default::default(),
            overflow: AtomicU64::new(0),
            duration: Histo::seconds(),
            upstream_response: Histo::seconds(),
            upstream_connect: Histo::seconds(),
            request_size: Histo::bytes(),
            response_size: Histo::bytes(),
            limited_rate: AtomicU64::new(0),
            limited_connections: AtomicU64::new(0),
        }
    }

    /// Counts one request (see the module invariants).
    #[inline]
    pub fn count(&self, method: u8, status: u16) {
        let key = ((u32::from(method) + 1) << 16) | u32::from(status);
        let start = (key as usize).wrapping_mul(0x9E37_79B9) >> 7;
        for i in 0..SLOTS {
            let Some(slot) = self.slots.get((start + i) % SLOTS) else {
                break;
            };
            let mut current = slot.key.load(Ordering::Relaxed);
            if current == 0 {
                current =
                    match slot
                        .key
                        .compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed)
                    {
                        Ok(_) => key,
                        Err(actual) => actual,
                    };
            }
            if current == key {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted so far.
    pub fn requests(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.count.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.overflow.load(Ordering::Relaxed)
    }
}

/// The handles a route carries: its own series and, for a route with a
/// canary, the canary Ingress's series.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub main: Arc<RouteSeries>,
    pub canary: Option<Arc<RouteSeries>>,
}

/// `(labels of the series, status, method)` as one label set.
struct RequestLabels<'a> {
    series: &'a SeriesLabels,
    status: &'a str,
    method: &'a str,
}

impl EncodeLabelSet for RequestLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.series.encode(encoder)?;
        [("status", self.status), ("method", self.method)]
            .as_slice()
            .encode(encoder)
    }
}

struct LimitLabels<'a> {
    series: &'a SeriesLabels,
    limit: &'static str,
}

impl EncodeLabelSet for LimitLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("limit", self.limit)].as_slice().encode(encoder)?;
        self.series.encode(encoder)
    }
}

/// The live series, as the scrape sees them (a collector on the registry).
#[derive(Debug, Default)]
pub struct RouteSeriesSet {
    live: ArcSwap<Vec<Arc<RouteSeries>>>,
}

impl RouteSeriesSet {
    /// Replaces the exposed series (control plane, at publish).
    pub fn publish(&self, series: Vec<Arc<RouteSeries>>) {
        self.live.store(Arc::new(series));
    }
}

type HistoOf = fn(&RouteSeries) -> &Histo;

/// The histograms every series has: name, help, unit, field.
const HISTOGRAMS: [(&str, &str, Unit, HistoOf); 5] = [
    (
        "request_duration",
        "Time from request received to the last response byte sent",
        Unit::Seconds,
        |s| &s.duration,
    ),
    (
        "upstream_response_duration",
        "Time from sending a request upstream to its response headers",
        Unit::Seconds,
        |s| &s.upstream_response,
    ),
    (
        "upstream_connect_duration",
        "Time to establish a new HTTP/1 upstream connection (TLS included)",
        Unit::Seconds,
        |s| &s.upstream_connect,
    ),
    (
        "request_size",
        "Request size: request line, headers and declared body length",
        Unit::Bytes,
        |s| &s.request_size,
    ),
    (
        "response_size",
        "Response size: headers and body bytes sent",
        Unit::Bytes,
        |s| &s.response_size,
    ),
];

impl Collector for RouteSeriesSet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = self.live.load();
        let active: Vec<&RouteSeries> = live
            .iter()
            .map(Arc::as_ref)
            .filter(|s| s.requests() > 0 || limited(s))
            .collect();
        {
            let mut family = encoder.encode_descriptor(
                "requests",
                "Requests by ingress, service, route, canary, status and method",
                None,
                MetricType::Counter,
            )?;
            for series in &active {
                let slots = series.slots.iter().filter_map(|slot| {
                    let key = slot.key.load(Ordering::Relaxed);
                    let method = METHODS.get(usize::try_from(key >> 16).ok()?.checked_sub(1)?)?;
                    Some((key & 0xffff, *method, slot.count.load(Ordering::Relaxed)))
                });
                for (status, method, count) in slots {
                    let status = status.to_string();
                    let labels = RequestLabels {
                        series: &series.labels,
                        status: &status,
                        method,
                    };
                    family
                        .encode_family(&labels)?
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                            &count, None,
                        )?;
                }
                let overflow = series.overflow.load(Ordering::Relaxed);
                if overflow > 0 {
                    let labels = RequestLabels {
                        series: &series.labels,
                        status: "other",
                        method: "other",
                    };
                    family
                        .encode_family(&labels)?
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                            &overflow, None,
                        )?;
                }
            }
        }
        for (name, help, unit, field) in HISTOGRAMS {
            let mut family =
                encoder.encode_descriptor(name, help, Some(&unit), MetricType::Histogram)?;
            for series in &active {
                let histo = field(series);
                if histo.count() > 0 {
                    histo.encode(family.encode_family(&series.labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "limited_requests",
            "Requests refused by a per-client limit, by limit (rate or connections) and route",
            None,
            MetricType::Counter,
        )?;
        for series in &active {
            for (limit, value) in [
                ("rate", &series.limited_rate),
                ("connections", &series.limited_connections),
            ] {
                let value = value.load(Ordering::Relaxed);
                if value > 0 {
                    let labels = LimitLabels {
                        series: &series.labels,
                        limit,
                    };
                    family
                        .encode_family(&labels)?
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                            &value, None,
                        )?;
                }
            }
        }
        Ok(())
    }
}

fn limited(series: &RouteSeries) -> bool {
    series.limited_rate.load(Ordering::Relaxed) > 0
        || series.limited_connections.load(Ordering::Relaxed) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> RouteSeries {
        RouteSeries::new(SeriesLabels {
            ingress: "ns/ing".into(),
            service: "ns/svc:80".into(),
            route: "".into(),
            canary: false,
            host: None,
        })
    }

    #[test]
    fn slots_count_pairs_and_overflow() {
        let s = series();
        s.count(0, 200);
        s.count(0, 200);
        s.count(2, 404);
        assert_eq!(s.requests(), 3);
        for status in 0..40 {
            s.count(1, 200 + status);
        }
        assert_eq!(s.requests(), 43);
        assert!(s.overflow.load(Ordering::Relaxed) > 0);
        let claimed = s
            .slots
            .iter()
            .filter(|slot| slot.key.load(Ordering::Relaxed) != 0)
            .count();
        assert_eq!(claimed, SLOTS);
    }

    #[test]
    fn methods_map_to_their_labels() {
        assert_eq!(METHODS[usize::from(method_index(&Method::PATCH))], "PATCH");
        let odd = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(METHODS[usize::from(method_index(&odd))], "other");
    }
}
