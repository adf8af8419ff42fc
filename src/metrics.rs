//! Prometheus metrics (prometheus-client), registered once at start-up.
//!
//! Invariants:
//! - The request path never takes a lock for metrics: per-route counters and
//!   histograms are resolved from their families by the control plane when a
//!   table is published ([`RouteMetrics`]), and then only touched through
//!   atomics. prometheus-client's own `Histogram` takes a lock per
//!   observation, so request durations use [`AtomicHistogram`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the request-duration histogram.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub ingress: String,
    pub service: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub ingress: String,
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    /// `namespace/name` of the TLS Secret.
    pub secret: String,
}

/// Results of a TLS handshake: `ok`, or why it failed.
pub const HANDSHAKE_RESULTS: [&str; 9] = [
    "ok",
    "timeout",
    "io",
    "incompatible",
    "invalid_message",
    "alert",
    "misbehaved",
    "no_alpn",
    "other",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// `rate` or `connections`.
    pub limit: &'static str,
}

/// Why a request was refused as malformed (`tollgate_bad_requests_total`).
/// A short, fixed list: the label never carries request data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// A head hyper's parser refused (obs-fold, bad header syntax, bad or
    /// conflicting Content-Length, Transfer-Encoding hyper does not accept,
    /// HTTP/0.9...).
    Head,
    /// Both Content-Length and Transfer-Encoding.
    FramingConflict,
    /// Transfer-Encoding other than exactly `chunked`, or several of them.
    TransferEncoding,
    /// A body that breaks its framing (bad chunk size or line ending...).
    BodyMalformed,
    /// A body that ended before its framing said it would.
    BodyIncomplete,
    /// No Host, several, an invalid one, or (HTTP/2) a `Host` that differs
    /// from `:authority`.
    Host,
    /// A request target tollgate does not proxy: CONNECT, authority-form,
    /// asterisk-form outside `OPTIONS`, a scheme other than http(s), a path
    /// not starting with `/`.
    Target,
    /// A request head over `--max-header-bytes` (431).
    HeadersTooLarge,
}

impl BadRequest {
    pub const ALL: [BadRequest; 8] = [
        BadRequest::Head,
        BadRequest::FramingConflict,
        BadRequest::TransferEncoding,
        BadRequest::BodyMalformed,
        BadRequest::BodyIncomplete,
        BadRequest::Host,
        BadRequest::Target,
        BadRequest::HeadersTooLarge,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            BadRequest::Head => "head",
            BadRequest::FramingConflict => "framing_conflict",
            BadRequest::TransferEncoding => "transfer_encoding",
            BadRequest::BodyMalformed => "body_malformed",
            BadRequest::BodyIncomplete => "body_incomplete",
            BadRequest::Host => "host",
            BadRequest::Target => "target",
            BadRequest::HeadersTooLarge => "headers_too_large",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BadRequestLabels {
    /// [`BadRequest::as_str`].
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// One of [`HANDSHAKE_RESULTS`].
    pub result: &'static str,
}

impl Metrics {
    /// Counts a request refused as malformed (an atomic increment).
    pub fn bad_request(&self, reason: BadRequest) {
        if let Some(counter) = self.bad_requests.get(reason as usize) {
            counter.inc();
        }
    }

    /// Counts a handshake under `result` (one of [`HANDSHAKE_RESULTS`]).
    pub fn handshake(&self, result: &str) {
        let at = HANDSHAKE_RESULTS
            .iter()
            .position(|r| *r == result)
            .unwrap_or(HANDSHAKE_RESULTS.len() - 1);
        if let Some(counter) = self.tls_handshakes.get(at) {
            counter.inc();
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

/// A histogram with fixed buckets and atomic counts (sum kept in µs).
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug)]
struct HistogramInner {
    /// One count per bucket of [`DURATION_BUCKETS`], plus +Inf.
    counts: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self {
            inner: Arc::new(HistogramInner {
                counts: std::array::from_fn(|_| AtomicU64::new(0)),
                sum_micros: AtomicU64::new(0),
            }),
        }
    }
}

impl AtomicHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BUCKETS.len());
        if let Some(count) = self.inner.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.inner.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len() + 1);
        let mut count = 0;
        for (i, c) in self.inner.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            buckets.push((DURATION_BUCKETS.get(i).copied().unwrap_or(f64::MAX), n));
        }
        let sum = self.inner.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Status classes, indexed by `status / 100 - 1`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The pre-resolved metrics of one route (cheap to clone: handles only).
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub requests: [Counter; 5],
    pub duration: AtomicHistogram,
}

impl RouteMetrics {
    #[inline]
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(c) = self.requests.get(class) {
            c.inc();
        }
        self.duration.observe(elapsed);
    }
}

/// All metrics of the process.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, AtomicHistogram>,
    pub upstream_connect_errors: Family<UpstreamLabels, Counter>,
    pub open_connections: Gauge,
    pub table_generation: Gauge,
    pub reloads: Counter,
    pub endpoint_updates: Counter,
    pub compile_failures: Counter,
    pub compile_seconds: AtomicHistogram,
    pub source_errors: Family<SourceLabels, Counter>,
    /// End of validity (Unix seconds) of each TLS Secret's certificate.
    pub certificate_expiry: Family<SecretLabels, Gauge>,
    /// TLS handshakes by result (see [`HANDSHAKE_RESULTS`]), resolved once
    /// so a handshake only increments an atomic.
    pub tls_handshakes: [Counter; HANDSHAKE_RESULTS.len()],
    /// Requests refused by a rate limit (`limit="rate"`) or a concurrency
    /// limit (`limit="connections"`), resolved once so a request only
    /// increments an atomic.
    pub limited_rate: Counter,
    pub limited_connections: Counter,
    /// Connections closed for a missing or invalid PROXY protocol header.
    pub proxy_protocol_refused: Counter,
    /// Requests refused as malformed, by [`BadRequest`], resolved once so
    /// a refusal only increments an atomic.
    bad_requests: [Counter; BadRequest::ALL.len()],
    /// Requests that matched no route (404 from the built-in default backend).
    pub unrouted: RouteMetrics,
    /// Kubernetes mode: watch failures by kind (the watcher retries with
    /// backoff; the last good table keeps serving).
    pub kube_watch_errors: Family<KindLabels, Counter>,
    /// Kubernetes mode: 1 once a kind's initial list has completed.
    pub kube_watch_synced: Family<KindLabels, Gauge>,
    /// Kubernetes mode: 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    /// Ingress status writes by result (`ok`, `error`).
    pub status_updates: Family<ResultLabels, Counter>,
    /// Status writes by kind (`ingress`, `trafficpolicy`) and result (`ok`,
    /// `error`): a write storm shows here.
    pub status_writes: Family<StatusWriteLabels, Counter>,
    /// Kubernetes Events published for diagnostics, by result.
    pub events_published: Family<ResultLabels, Counter>,
    /// Global rate limits: decisions, the store's health and round trips.
    pub global_rate_limit: crate::ratelimit::global::GlobalMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusWriteLabels {
    /// The kind written: `ingress`, `trafficpolicy`.
    pub kind: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by ingress, service and status class",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, AtomicHistogram>::default();
        registry.register_with_unit(
            "request_duration",
            "Time from request received to response headers sent",
            prometheus_client::registry::Unit::Seconds,
            durations.clone(),
        );
        let upstream_connect_errors = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_connect_errors",
            "Failed connection attempts to upstream endpoints",
            upstream_connect_errors.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Open client connections",
            open_connections.clone(),
        );
        let table_generation = Gauge::default();
        registry.register(
            "table_generation",
            "Generation of the installed routing table",
            table_generation.clone(),
        );
        let reloads = Counter::default();
        registry.register(
            "reloads",
            "Routing tables compiled and installed",
            reloads.clone(),
        );
        let endpoint_updates = Counter::default();
        registry.register(
            "endpoint_updates",
            "Endpoint-only changes applied without recompiling routes",
            endpoint_updates.clone(),
        );
        let compile_failures = Counter::default();
        registry.register(
            "compile_failures",
            "Compiles that rejected at least one object",
            compile_failures.clone(),
        );
        let compile_seconds = AtomicHistogram::default();
        registry.register_with_unit(
            "compile_duration",
            "Time to compile a routing table",
            prometheus_client::registry::Unit::Seconds,
            compile_seconds.clone(),
        );
        let source_errors = Family::<SourceLabels, Counter>::default();
        registry.register(
            "source_errors",
            "Objects or files a source could not read (the last good version keeps serving)",
            source_errors.clone(),
        );
        let certificate_expiry = Family::<SecretLabels, Gauge>::default();
        registry.register(
            "certificate_expiry_seconds",
            "End of validity of each TLS Secret's certificate, in seconds since the Unix epoch",
            certificate_expiry.clone(),
        );
        let tls_handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes on the HTTPS listener by result: ok, or the reason it failed",
            tls_handshakes.clone(),
        );
        let limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "limited_requests",
            "Requests refused by a per-client limit, by limit (rate or connections)",
            limited.clone(),
        );
        let limited_rate = limited
            .get_or_create(&LimitLabels { limit: "rate" })
            .clone();
        let limited_connections = limited
            .get_or_create(&LimitLabels {
                limit: "connections",
            })
            .clone();
        let proxy_protocol_refused = Counter::default();
        registry.register(
            "proxy_protocol_refused",
            "Connections closed for a missing or invalid PROXY protocol header",
            proxy_protocol_refused.clone(),
        );
        let bad_requests = Family::<BadRequestLabels, Counter>::default();
        registry.register(
            "bad_requests",
            "Requests refused with 400 as malformed (framing, header syntax, body), by reason",
            bad_requests.clone(),
        );
        let bad_requests = BadRequest::ALL.map(|reason| {
            bad_requests
                .get_or_create(&BadRequestLabels {
                    reason: reason.as_str(),
                })
                .clone()
        });
        let tls_handshakes = HANDSHAKE_RESULTS.map(|result| {
            tls_handshakes
                .get_or_create(&HandshakeLabels { result })
                .clone()
        });
        let unrouted = Self::route_metrics_from(&requests, &durations, "", "");
        let kube_watch_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "kube_watch_errors",
            "Kubernetes API watch failures by kind (retried with backoff; the last good table keeps serving)",
            kube_watch_errors.clone(),
        );
        let kube_watch_synced = Family::<KindLabels, Gauge>::default();
        registry.register(
            "kube_watch_synced",
            "1 once the initial list of a kind has completed (readiness waits for every kind)",
            kube_watch_synced.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (writes Ingress status and Events)",
            leader.clone(),
        );
        let status_updates = Family::<ResultLabels, Counter>::default();
        registry.register(
            "status_updates",
            "Ingress status writes by result",
            status_updates.clone(),
        );
        let status_writes = Family::<StatusWriteLabels, Counter>::default();
        registry.register(
            "status_writes",
            "Status writes (PATCH of /status) by kind and result",
            status_writes.clone(),
        );
        let events_published = Family::<ResultLabels, Counter>::default();
        registry.register(
            "events_published",
            "Kubernetes Events published for configuration diagnostics, by result",
            events_published.clone(),
        );
        let global_rate_limit = crate::ratelimit::global::GlobalMetrics::register(&mut registry);
        Self {
            registry,
            requests,
            durations,
            upstream_connect_errors,
            open_connections,
            table_generation,
            reloads,
            endpoint_updates,
            compile_failures,
            compile_seconds,
            source_errors,
            certificate_expiry,
            tls_handshakes,
            limited_rate,
            limited_connections,
            proxy_protocol_refused,
            bad_requests,
            unrouted,
            kube_watch_errors,
            kube_watch_synced,
            leader,
            status_updates,
            status_writes,
            events_published,
            global_rate_limit,
        }
    }

    fn route_metrics_from(
        requests: &Family<RequestLabels, Counter>,
        durations: &Family<RouteLabels, AtomicHistogram>,
        ingress: &str,
        service: &str,
    ) -> RouteMetrics {
        let requests = STATUS_CLASSES.map(|status_class| {
            requests
                .get_or_create(&RequestLabels {
                    ingress: ingress.to_string(),
                    service: service.to_string(),
                    status_class,
                })
                .clone()
        });
        let duration = durations
            .get_or_create(&RouteLabels {
                ingress: ingress.to_string(),
                service: service.to_string(),
            })
            .clone();
        RouteMetrics { requests, duration }
    }

    /// Resolves the metrics of a route (control plane only: takes locks).
    pub fn route(&self, ingress: &str, service: &str) -> RouteMetrics {
        Self::route_metrics_from(&self.requests, &self.durations, ingress, service)
    }

    pub fn connect_error(&self, service: &str) -> Counter {
        self.upstream_connect_errors
            .get_or_create(&UpstreamLabels {
                service: service.to_string(),
            })
            .clone()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
