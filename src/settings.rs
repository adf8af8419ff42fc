//! Command-line settings (clap). Each flag of `run` also reads an environment
//! variable `TOLLGATE_<FLAG>`; the Helm chart and scripts rely on these names.
//!
//! Invariant: parsing only; validation that needs more than one flag happens
//! in [`RunArgs::validate`], which names the flag in its error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::config::{CompileOptions, ObjectKey};
use crate::table::upstream::PortRef;

/// `--version` and `tollgate version`: the version and the git revision.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("TOLLGATE_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version = LONG_VERSION,
    about = "Kubernetes Ingress controller and L7 reverse proxy"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up; variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve traffic: from manifest files with --manifests (standalone), else
    /// from the Kubernetes API (in-cluster config, KUBECONFIG or ~/.kube/config).
    Run(RunArgs),
    /// Compile manifests once; print the routing table and diagnostics.
    Check(CheckArgs),
    /// Run the built-in echo backend (for examples, tests and benchmarks).
    Echo(EchoArgs),
    /// Print the RBAC rules Kubernetes mode needs (a ClusterRole and a Role
    /// for the leader Lease) as YAML.
    Rbac(RbacArgs),
    /// Print the TrafficPolicy CustomResourceDefinition (generated from the
    /// types; committed as crds/trafficpolicy.yaml) as YAML.
    Crd,
    /// Print the version and the git revision it was built from.
    Version,
}

#[derive(Debug, Clone, Args)]
pub struct RbacArgs {
    /// Name of the ClusterRole and Role.
    #[arg(long, default_value = "tollgate")]
    pub name: String,
    /// Namespace of the Role (where the controller and its Lease live).
    #[arg(long, default_value = "tollgate")]
    pub namespace: String,
    /// Include the Gateway API rules (as `run --gateway-api`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub gateway_api: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 5s or 250ms: {e}"))
}

fn hsts(s: &str) -> Result<http::HeaderValue, String> {
    if !s.trim_start().starts_with("max-age=") {
        return Err(format!("`{s}` must start with max-age=SECONDS"));
    }
    http::HeaderValue::from_str(s).map_err(|_| format!("`{s}` is not a valid header value"))
}

fn cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not a CIDR (10.0.0.0/8) or IP address"))
}

/// `namespace/name[:port]`.
pub fn service_ref(s: &str) -> Result<(ObjectKey, Option<PortRef>), String> {
    let (name_part, port) = match s.rsplit_once(':') {
        Some((n, p)) => {
            let port = match p.parse::<i32>() {
                Ok(num) => PortRef::Number(num),
                Err(_) => PortRef::Name(p.to_string()),
            };
            (n, Some(port))
        }
        None => (s, None),
    };
    match name_part.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ObjectKey::new(ns, name), port))
        }
        _ => Err(format!(
            "`{s}` is not namespace/name or namespace/name:port"
        )),
    }
}

/// Flags shared by `run` and `check`: what decides which objects are ours.
#[derive(Debug, Clone, Args)]
pub struct SelectionArgs {
    /// Manifest file or directory (recursive: *.yaml, *.yml, *.json). Repeatable.
    #[arg(long = "manifests", env = "TOLLGATE_MANIFESTS", value_delimiter = ',')]
    pub manifests: Vec<PathBuf>,
    /// IngressClass name this controller serves.
    #[arg(long, env = "TOLLGATE_INGRESS_CLASS", default_value = "tollgate")]
    pub ingress_class: String,
    /// Value of IngressClass spec.controller that selects this controller.
    #[arg(
        long,
        env = "TOLLGATE_CONTROLLER_NAME",
        default_value = "tollgate.dev/ingress-controller"
    )]
    pub controller_name: String,
    /// Value of GatewayClass spec.controllerName that selects this
    /// controller (Gateway API).
    #[arg(
        long,
        env = "TOLLGATE_GATEWAY_CONTROLLER_NAME",
        default_value = "tollgate.dev/gateway-controller"
    )]
    pub gateway_controller_name: String,
    /// Kubernetes mode: watch the Gateway API kinds (GatewayClass, Gateway,
    /// HTTPRoute, GRPCRoute, ReferenceGrant) and Namespaces, and write their
    /// status. `false` where the RBAC does not grant them (the Helm chart
    /// without `gatewayAPI.enabled`).
    #[arg(
        long,
        env = "TOLLGATE_GATEWAY_API",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub gateway_api: bool,
    /// Only read namespaced objects in these namespaces (repeatable; default all).
    #[arg(
        long = "watch-namespace",
        env = "TOLLGATE_WATCH_NAMESPACE",
        value_delimiter = ','
    )]
    pub watch_namespaces: Vec<String>,
    /// Service (namespace/name[:port]) that serves requests no rule matches.
    #[arg(long, env = "TOLLGATE_DEFAULT_BACKEND_SERVICE", value_parser = service_ref)]
    pub default_backend_service: Option<(ObjectKey, Option<PortRef>)>,
    /// TLS Secret (namespace/name) served for unknown or missing SNI names;
    /// default: a self-signed certificate generated at start-up.
    #[arg(long, env = "TOLLGATE_DEFAULT_CERTIFICATE", value_parser = object_ref)]
    pub default_certificate: Option<ObjectKey>,
    /// Status answered when a `tollgate.dev/limit-*` limit (or a
    /// TrafficPolicy rateLimit) rejects a request (with Retry-After).
    #[arg(long, env = "TOLLGATE_LIMIT_STATUS", default_value_t = 429, value_parser = limit_status)]
    pub limit_status: u16,
    /// Status answered when a `nginx.ingress.kubernetes.io/limit-*` limit
    /// rejects a request (ingress-nginx's default is 503).
    #[arg(long, env = "TOLLGATE_NGINX_LIMIT_STATUS", default_value_t = 503, value_parser = limit_status)]
    pub nginx_limit_status: u16,
    /// ingress-nginx's ConfigMap (namespace/name) of global settings, with
    /// ingress-nginx's key names (docs/migration.md): watched in Kubernetes
    /// mode, read from the manifests in standalone mode; changes apply
    /// without a restart. Annotations override it.
    #[arg(long, env = "TOLLGATE_CONFIGMAP", value_parser = object_ref)]
    pub configmap: Option<ObjectKey>,
    /// TLS passthrough (ingress-nginx's `--enable-ssl-passthrough`): the
    /// HTTPS listener reads the SNI of each ClientHello and splices the
    /// connections of `ssl-passthrough` hosts to their backend untouched.
    /// Without it, an Ingress asking for passthrough is rejected.
    #[arg(long, env = "TOLLGATE_ENABLE_SSL_PASSTHROUGH")]
    pub enable_ssl_passthrough: bool,
    #[command(flatten)]
    pub global_rate_limit: crate::ratelimit::global::settings::GlobalRateLimitArgs,
}

fn limit_status(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(code) if (400..=599).contains(&code) => Ok(code),
        _ => Err(format!("`{s}` is not a 4xx or 5xx status code")),
    }
}

/// `namespace/name`.
pub fn object_ref(s: &str) -> Result<ObjectKey, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjectKey::new(ns, name))
        }
        _ => Err(format!("`{s}` is not namespace/name")),
    }
}

impl SelectionArgs {
    pub fn compile_options(&self) -> CompileOptions {
        CompileOptions {
            ingress_class: self.ingress_class.clone(),
            controller_name: self.controller_name.clone(),
            gateway_controller_name: self.gateway_controller_name.clone(),
            default_backend: self.default_backend_service.clone(),
            default_certificate: self.default_certificate.clone(),
            now: None,
            limit_statuses: crate::config::annotations::LimitStatuses {
                tollgate: http::StatusCode::from_u16(self.limit_status)
                    .unwrap_or(http::StatusCode::TOO_MANY_REQUESTS),
                nginx: http::StatusCode::from_u16(self.nginx_limit_status)
                    .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE),
            },
            configmap: self.configmap.clone(),
            global_rate_limit_store: self.global_rate_limit.global_rate_limit_store.is_some(),
            ssl_passthrough: self.enable_ssl_passthrough,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Plain-HTTP listener (HTTP/1.1 and h2c prior knowledge). `[::]` (the
    /// default of every listener) is dual-stack, or `0.0.0.0` without IPv6.
    #[arg(long, env = "TOLLGATE_HTTP_ADDR", default_value = "[::]:8080")]
    pub http_addr: SocketAddr,
    /// HTTPS listener (TLS 1.2/1.3, ALPN h2 and http/1.1).
    #[arg(long, env = "TOLLGATE_HTTPS_ADDR", default_value = "[::]:8443")]
    pub https_addr: SocketAddr,
    /// Port written into HTTP → HTTPS redirects (omitted when 443): the port
    /// clients reach the HTTPS listener on, e.g. through a LoadBalancer.
    #[arg(long, env = "TOLLGATE_HTTPS_REDIRECT_PORT", default_value_t = 443)]
    pub https_redirect_port: u16,
    /// Strict-Transport-Security value for HTTPS responses, e.g.
    /// `max-age=31536000; includeSubDomains` (default: none).
    #[arg(long, env = "TOLLGATE_HSTS", value_parser = hsts)]
    pub hsts: Option<http::HeaderValue>,
    /// Admin listener: /healthz, /readyz, /metrics.
    #[arg(long, env = "TOLLGATE_ADMIN_ADDR", default_value = "[::]:9180")]
    pub admin_addr: SocketAddr,
    /// Worker threads for the data plane (default: number of CPUs).
    #[arg(long, env = "TOLLGATE_THREADS")]
    pub threads: Option<usize>,
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log one line per request.
    #[arg(long, env = "TOLLGATE_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,
    /// Serve plain keep-alive HTTP/1.1 GET requests to plain routes (no
    /// policy, plain-HTTP upstream) on tollgate's own HTTP/1.1 path instead
    /// of hyper's: the same responses for less CPU. Any other request (and
    /// the rest of its connection) goes through hyper as before.
    #[arg(long, env = "TOLLGATE_HTTP1_FAST_PATH", default_value_t = true, action = clap::ArgAction::Set)]
    pub http1_fast_path: bool,
    /// Access-log line format with nginx-style `$variable` placeholders
    /// (ingress-nginx's `log-format-upstream` variables, e.g. `$remote_addr
    /// $status $request_time $upstream_addr`). Default: one JSON object per
    /// line with `--log-format json`, else ingress-nginx's `upstreaminfo`.
    #[arg(long, env = "TOLLGATE_ACCESS_LOG_FORMAT")]
    pub access_log_format: Option<String>,
    /// Request paths left out of the access log (health checks): exact,
    /// or a prefix when ending in `*`. Comma-separated or repeated.
    #[arg(
        long = "access-log-skip-path",
        env = "TOLLGATE_ACCESS_LOG_SKIP_PATHS",
        value_delimiter = ','
    )]
    pub access_log_skip_paths: Vec<String>,
    /// Label request metrics with the rule's host (as ingress-nginx's
    /// `--metrics-per-host`); off by default to keep cardinality low.
    #[arg(long, env = "TOLLGATE_METRICS_PER_HOST")]
    pub metrics_per_host: bool,
    /// CIDRs whose X-Forwarded-For (and X-Forwarded-*) headers are trusted.
    /// The request's client IP (X-Real-IP, allow/deny lists, rate limits) is
    /// then the right-most X-Forwarded-For address not in these CIDRs.
    #[arg(long, env = "TOLLGATE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = cidr)]
    pub trusted_proxies: Vec<IpNet>,
    /// Every connection to the HTTP and HTTPS listeners must start with a
    /// PROXY protocol (v1 or v2) header, whose source address becomes the
    /// client address; connections without one are closed. For load
    /// balancers that send it (e.g. AWS NLB with proxy protocol enabled).
    #[arg(long, env = "TOLLGATE_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,
    /// Time to establish a connection to an upstream endpoint.
    #[arg(long, env = "TOLLGATE_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub upstream_connect_timeout: Duration,
    /// Time from sending a request upstream to its response headers (and the
    /// longest pause allowed between chunks of a request body).
    #[arg(long, env = "TOLLGATE_UPSTREAM_RESPONSE_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub upstream_response_timeout: Duration,
    /// Idle upstream keep-alive connections are closed after this long.
    #[arg(long, env = "TOLLGATE_UPSTREAM_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub upstream_idle_timeout: Duration,
    /// Time a client has to send complete request headers (slowloris guard).
    #[arg(long, env = "TOLLGATE_CLIENT_HEADER_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub client_header_timeout: Duration,
    /// Idle client keep-alive connections are closed after this long.
    #[arg(long, env = "TOLLGATE_IDLE_TIMEOUT", default_value = "75s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// Largest request head (request line + headers); larger gets 431.
    #[arg(long, env = "TOLLGATE_MAX_HEADER_BYTES", default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,
    /// HTTP/2: streams a client may have open at once on one connection
    /// (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "TOLLGATE_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: control frames (SETTINGS, PING, PRIORITY, RST_STREAM, unknown
    /// types) a client may send per second on one connection; more closes
    /// it with GOAWAY PROTOCOL_ERROR (SETTINGS/PING floods). 0: no limit.
    #[arg(long, env = "TOLLGATE_HTTP2_MAX_CONTROL_FRAMES", default_value_t = 200)]
    pub http2_max_control_frames: u32,
    /// On SIGTERM, time to let in-flight requests finish.
    #[arg(long, env = "TOLLGATE_SHUTDOWN_GRACE", default_value = "25s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// Coalesces bursts of changes: files are re-read this long after a
    /// change; in Kubernetes mode routes recompile at most once per window
    /// (the first change after a quiet window at once).
    #[arg(long, env = "TOLLGATE_RELOAD_DEBOUNCE", default_value = "100ms", value_parser = duration)]
    pub reload_debounce: Duration,
    /// Kubernetes mode: LoadBalancer Service (namespace/name) whose
    /// status.loadBalancer.ingress is copied into the status of every
    /// Ingress served.
    #[arg(long, env = "TOLLGATE_PUBLISH_SERVICE", value_parser = object_ref, conflicts_with = "publish_address", help_heading = "Kubernetes mode")]
    pub publish_service: Option<ObjectKey>,
    /// Kubernetes mode: addresses (IPs or hostnames) written into the status
    /// of every Ingress served.
    #[arg(
        long,
        env = "TOLLGATE_PUBLISH_ADDRESS",
        value_delimiter = ',',
        help_heading = "Kubernetes mode"
    )]
    pub publish_address: Vec<String>,
    /// Kubernetes mode: name of the leader-election Lease, in the pod's
    /// namespace (POD_NAMESPACE, else the service account's or kubeconfig's).
    /// Only the leader writes Ingress status and Events.
    #[arg(
        long,
        env = "TOLLGATE_ELECTION_ID",
        default_value = "tollgate-leader",
        help_heading = "Kubernetes mode"
    )]
    pub election_id: String,
    /// Kubernetes mode: how long the leader's Lease lasts without renewal
    /// (another replica takes over after this when the leader dies).
    #[arg(long, env = "TOLLGATE_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = duration, help_heading = "Kubernetes mode")]
    pub election_lease_duration: Duration,
    /// Validating admission webhook: serve `POST /validate` (AdmissionReview
    /// v1 for Ingress, TrafficPolicy, Gateway, HTTPRoute, GRPCRoute) over
    /// HTTPS on this address. Needs --admission-certificate.
    #[arg(
        long,
        env = "TOLLGATE_ADMISSION_ADDR",
        help_heading = "Admission webhook"
    )]
    pub admission_addr: Option<SocketAddr>,
    /// The webhook's certificate: a kubernetes.io/tls Secret (namespace/name)
    /// among the watched objects (or the manifests); re-read when it changes.
    #[arg(long, env = "TOLLGATE_ADMISSION_CERTIFICATE", value_parser = object_ref, help_heading = "Admission webhook")]
    pub admission_certificate: Option<ObjectKey>,
    /// Kubernetes mode: a diagnostic that still stands is published again as
    /// an Event after this long (before the API server's Event TTL, one
    /// hour by default, deletes it). Hidden: tests shorten it.
    #[arg(long, env = "TOLLGATE_EVENT_REPUBLISH_INTERVAL", default_value = "30m", value_parser = duration, hide = true)]
    pub event_republish_interval: Duration,
}

impl RunArgs {
    pub fn validate(&self) -> Result<(), String> {
        if !self.selection.manifests.is_empty()
            && (self.publish_service.is_some() || !self.publish_address.is_empty())
        {
            return Err(
                "--publish-service and --publish-address apply to Kubernetes mode only \
                 (without --manifests)"
                    .into(),
            );
        }
        if self.election_id.is_empty() {
            return Err("--election-id must not be empty".into());
        }
        if self.election_lease_duration < Duration::from_secs(2) {
            return Err("--election-lease-duration must be at least 2s".into());
        }
        if self.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        if self.max_header_bytes < 1024 {
            return Err("--max-header-bytes must be at least 1024".into());
        }
        if let Some(format) = &self.access_log_format {
            crate::access_log::Template::parse(format)
                .map_err(|e| format!("--access-log-format: {e}"))?;
        }
        if self.admission_addr.is_some() != self.admission_certificate.is_some() {
            return Err("--admission-addr and --admission-certificate go together".into());
        }
        if self.event_republish_interval < Duration::from_secs(1) {
            return Err("--event-republish-interval must be at least 1s".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Treat Services, Secrets and ConfigMaps the Ingresses name but the
    /// manifests lack as present (lint Ingress-only repositories).
    #[arg(long)]
    pub assume_external_refs: bool,
}

#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// ADDR=SERVICE: listen on ADDR and report SERVICE as the serving service. Repeatable.
    #[arg(long = "listen", required = true, value_parser = echo_listen)]
    pub listen: Vec<(SocketAddr, String)>,
    /// Answer every request with a fixed small body instead of the JSON echo
    /// (a cheaper backend for benchmarks).
    #[arg(long)]
    pub fixed: bool,
    /// Worker threads (default 1).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

fn echo_listen(s: &str) -> Result<(SocketAddr, String), String> {
    let (addr, name) = s.split_once('=').unwrap_or((s, "echo"));
    let addr = addr
        .parse::<SocketAddr>()
        .map_err(|e| format!("`{addr}`: {e}"))?;
    Ok((addr, name.to_string()))
}
