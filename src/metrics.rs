//! Prometheus metrics (prometheus-client), registered once at start-up.
//!
//! Invariants:
//! - The request path never takes a lock for metrics: per-route counters and
//!   histograms are resolved from their families by the control plane when a
//!   table is published ([`RouteMetrics`]), and then only touched through
//!   atomics. prometheus-client's own `Histogram` takes a lock per
//!   observation, so request durations use [`AtomicHistogram`].
//! - Request metrics live in [`route`] (one series per route label set,
//!   exposed by a collector), process metrics in [`process`], the
//!   lock-free histograms in [`histogram`].

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub mod histogram;
pub mod process;
pub mod route;

pub use histogram::AtomicHistogram;
pub use route::{RouteMetrics, RouteSeries, SeriesLabels};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    /// `namespace/name` of the TLS Secret.
    pub secret: String,
    /// A host the certificate serves (one series per Ingress TLS host).
    pub host: String,
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

/// Results of a TLS passthrough connection
/// (`tollgate_tls_passthrough_connections_total`): `spliced` to an
/// endpoint, or closed because the host's Service has `no_endpoints` or
/// every attempt `connect_failed`.
pub const PASSTHROUGH_RESULTS: [&str; 3] = ["spliced", "no_endpoints", "connect_failed"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassthroughLabels {
    /// One of [`PASSTHROUGH_RESULTS`].
    pub result: &'static str,
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

/// All metrics of the process.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub upstream_connect_errors: Family<UpstreamLabels, Counter>,
    pub open_connections: Gauge,
    pub table_generation: Gauge,
    pub reloads: Counter,
    pub endpoint_updates: Counter,
    pub compile_failures: Counter,
    pub compile_seconds: AtomicHistogram,
    pub source_errors: Family<SourceLabels, Counter>,
    /// End of validity (Unix seconds) of each TLS Secret's certificate,
    /// per host it serves.
    pub certificate_expiry: Family<SecretLabels, Gauge>,
    /// TLS handshakes by result (see [`HANDSHAKE_RESULTS`]), resolved once
    /// so a handshake only increments an atomic.
    pub tls_handshakes: [Counter; HANDSHAKE_RESULTS.len()],
    /// Connections closed for a missing or invalid PROXY protocol header.
    pub proxy_protocol_refused: Counter,
    /// TLS passthrough connections by result (see [`PASSTHROUGH_RESULTS`]).
    pub tls_passthrough: [Counter; PASSTHROUGH_RESULTS.len()],
    /// Requests refused as malformed, by [`BadRequest`], resolved once so
    /// a refusal only increments an atomic.
    bad_requests: [Counter; BadRequest::ALL.len()],
    /// Requests that matched no route (404 from the built-in default
    /// backend) or were refused before routing.
    pub unrouted: Arc<RouteSeries>,
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
    /// Observability (issue 18): per-route series, configuration apply
    /// state, build and access-log metrics.
    pub observe: Observe,
}

/// Metrics of the request series, the last configuration apply, the build
/// and the access log (one block, registered by [`Observe::register`]).
#[derive(Debug)]
pub struct Observe {
    /// The per-route series the scrape exposes (`tollgate_requests_total`,
    /// the request histograms, `tollgate_limited_requests_total`).
    pub series: Arc<route::RouteSeriesSet>,
    /// Label request series with the rule's host (`--metrics-per-host`).
    pub per_host: bool,
    /// 1 when the last compile rejected nothing, else 0.
    pub last_apply_success: Gauge,
    /// When the last compile was applied (Unix seconds).
    pub last_apply_timestamp: Gauge,
    /// Current diagnostics by object kind and severity.
    pub diagnostics: Family<DiagnosticLabels, Gauge>,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiagnosticLabels {
    /// The object's kind (`Ingress`, `HTTPRoute`, `File`...).
    pub kind: &'static str,
    /// `warning` or `rejected`.
    pub severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
}

impl Observe {
    fn register(registry: &mut Registry) -> Self {
        let series = Arc::new(route::RouteSeriesSet::default());
        registry.register_collector(Box::new(series.clone()));
        let last_apply_success = Gauge::default();
        registry.register(
            "config_last_apply_success",
            "1 when the last configuration compile rejected nothing, else 0",
            last_apply_success.clone(),
        );
        let last_apply_timestamp = Gauge::default();
        registry.register_with_unit(
            "config_last_apply_timestamp",
            "When the last configuration was compiled and installed, in seconds since the Unix epoch",
            prometheus_client::registry::Unit::Seconds,
            last_apply_timestamp.clone(),
        );
        let diagnostics = Family::<DiagnosticLabels, Gauge>::default();
        registry.register(
            "config_diagnostics",
            "Current configuration diagnostics by object kind and severity",
            diagnostics.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Version and git revision of this binary (always 1)",
            build.clone(),
        );
        build
            .get_or_create(&BuildLabels {
                version: crate::build_info::VERSION,
                revision: crate::build_info::REVISION,
            })
            .set(1);
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the log writer fell behind",
            access_log_dropped.clone(),
        );
        Self {
            series,
            per_host: false,
            last_apply_success,
            last_apply_timestamp,
            diagnostics,
            access_log_dropped,
        }
    }
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
            "certificate_expiry_timestamp_seconds",
            "End of validity of each TLS Secret's certificate (notAfter) by host, in seconds since the Unix epoch",
            certificate_expiry.clone(),
        );
        let tls_handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes on the HTTPS listener by result: ok, or the reason it failed",
            tls_handshakes.clone(),
        );
        let proxy_protocol_refused = Counter::default();
        registry.register(
            "proxy_protocol_refused",
            "Connections closed for a missing or invalid PROXY protocol header",
            proxy_protocol_refused.clone(),
        );
        let tls_passthrough = Family::<PassthroughLabels, Counter>::default();
        registry.register(
            "tls_passthrough_connections",
            "TLS passthrough connections (ssl-passthrough hosts) by result: spliced, no_endpoints, connect_failed",
            tls_passthrough.clone(),
        );
        let tls_passthrough = PASSTHROUGH_RESULTS.map(|result| {
            tls_passthrough
                .get_or_create(&PassthroughLabels { result })
                .clone()
        });
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
        let unrouted = Arc::new(RouteSeries::new(SeriesLabels {
            ingress: "".into(),
            service: "".into(),
            route: "".into(),
            canary: false,
            host: None,
        }));
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
        let observe = Observe::register(&mut registry);
        Self {
            registry,
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
            proxy_protocol_refused,
            tls_passthrough,
            bad_requests,
            unrouted,
            kube_watch_errors,
            kube_watch_synced,
            leader,
            status_updates,
            status_writes,
            events_published,
            global_rate_limit,
            observe,
        }
    }

    /// Labels request series with the rule's host (`--metrics-per-host`);
    /// before the metrics are shared.
    pub fn with_per_host(mut self, per_host: bool) -> Self {
        self.observe.per_host = per_host;
        self
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
        // Process metrics keep their conventional unprefixed names.
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector));
        let encoded = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
            .and_then(|()| prometheus_client::encoding::text::encode_registry(&mut out, &process))
            .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut out));
        if encoded.is_err() {
            out.clear();
        }
        out
    }
}
