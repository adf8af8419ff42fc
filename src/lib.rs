//! tollgate: a Kubernetes Ingress controller and Layer-7 reverse proxy.
//!
//! # Layout
//! Objects flow one way: `provider → config → table ← proxy`. The control
//! plane writes the state the data plane reads, and the data plane never
//! imports the control plane: `publisher → state ← proxy, tls, admin`.
//!
//! Control plane (one thread of its own, never a data-plane worker):
//! - [`provider`]: the only sources of Kubernetes objects. `files` reads
//!   manifests from disk and watches them, producing [`config::Snapshot`]s;
//!   `kubernetes` watches the API server and feeds the publisher changes
//!   one object at a time, and writes Ingress status and Events as the
//!   leader.
//! - [`config`]: the pure compiler. `Snapshot → (RoutingTable, upstream specs,
//!   diagnostics)`. No IO, no async, no clock: all Ingress semantics live here,
//!   one step per file (selection, TLS, hosts and paths, conflicts, canaries,
//!   backends, policy assembly). The annotations (`config::annotations`) parse
//!   straight into [`table::policy::RoutePolicy`], and TrafficPolicies are laid
//!   over it (`config::overlay`); the table turns each route's policy into
//!   its ordered phases ([`table::phases`]). Problems are data
//!   (`config::problem`: field and reason) until they become
//!   [`config::Diagnostic`]s in one place.
//! - [`crd`]: the `TrafficPolicy` custom resource: its types (`crd::types`),
//!   the CRD generated from them (`crd::manifest`, `tollgate crd`), and
//!   `crd::validate` (`crd::validation`), which re-checks everything the CRD
//!   schema checks (standalone mode has no API server).
//! - [`gateway_api`]: the Gateway API kinds (GatewayClass, Gateway,
//!   HTTPRoute, GRPCRoute, ReferenceGrant) as plain serde types;
//!   `config::gateway` compiles them into the same table as Ingresses.
//! - [`publisher`]: turns compiled output into the published state and
//!   stores it whole (one `ArcSwap`), keeping upstreams, limiters and metric
//!   handles across recompiles; applies endpoint-only changes through the
//!   fast path. The only writer of [`state::Published`].
//!
//! The boundary (plain types the compiler or publisher build and the data
//! plane reads):
//! - [`table`]: the immutable routing table (hosts → paths → routes, and
//!   guarded Gateway API candidates at one path). Looked up per request
//!   without locks and without allocating.
//! - [`state`]: what a request may read: [`state::Published`] (table,
//!   certificates, upstreams, per-route metrics and limiters, swapped as
//!   one and loaded once per request) and the process [`state::Health`].
//!
//! Data plane (reads [`state`], never the publisher):
//! - [`lb`]: upstreams, endpoint sets (swapped on their own, so an
//!   EndpointSlice change never recompiles routes) and pickers. Knows
//!   endpoints (each with an id), not connections: it imports nothing from
//!   the data plane.
//! - [`ratelimit`]: per-client limiters built from compiled specs: request
//!   rate (GCRA) and concurrent requests per client IP, lock-free, with a
//!   prune that keeps memory bounded by recent clients.
//! - [`proxy`]: the data plane, one way down: `listener` (accept, PROXY
//!   protocol, TLS, connection context) → `service` (framing check, Host,
//!   route lookup) → `policy` (a route's phases in order; plain routes skip
//!   it with one branch) → `forward` (endpoint choice, thread-local
//!   connection pools keyed by endpoint id, retries, timeouts) →
//!   `response` (metrics, access log, HSTS). No step calls one above it.
//!   `fastpath` is the same way down for the common plain keep-alive
//!   HTTP/1.1 `GET`, byte to byte without hyper; it hands a connection to
//!   hyper at the first request it does not serve.
//! - [`tls`]: TLS in one place. `tls::server` terminates client
//!   connections: the rustls server configuration (versions, ALPN), the
//!   certificate resolver over the published table, the default
//!   certificate, handshake failure reasons. `tls::client` secures
//!   connections to upstreams (verified against configured CAs, or not, or
//!   blocked).
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`, and `/debug/routes`,
//!   `/debug/diagnostics` (read from [`inspect`]).
//!
//! Shared building blocks (import nothing above them):
//! - [`auth`]: authentication the compiler builds from the auth annotations
//!   and the proxy calls: htpasswd Basic auth, URL templates, external auth
//!   (`auth-url`). Pure except `auth::external::client`, the sub-request's
//!   HTTP client, which only the proxy uses.
//! - [`nginx_vars`]: nginx-style `$name` placeholders split once (access-log
//!   formats, rate-limit keys).
//! - [`hop_by_hop`]: which headers are connection-specific and never cross
//!   a hop; used by the proxy and the external-auth client alike.
//! - [`access_log`]: the access-log line formats (JSON, nginx-style
//!   templates compiled at start) and its writer thread; workers format
//!   into per-thread buffers and never wait for stdout.
//! - [`build_info`]: the version and git revision of the binary.
//! - [`intern`]: interned strings shared by the snapshot's keys and
//!   objects, the compiled table and metric labels (control plane only).
//! - [`metrics`]: the Prometheus registry; per-route handles resolved when a
//!   table is published, so requests only touch atomics.
//!
//! Around them:
//! - [`inspect`]: what the publisher shows outside the request path after
//!   each recompile (snapshot, diagnostics with first-seen times, the
//!   report `check` prints), swapped as one; read by `admin` and
//!   `admission`, never by the proxy.
//! - [`admission`]: the validating admission webhook (HTTPS): a reviewed
//!   object is added to a copy of the snapshot and compiled by the pure
//!   compiler; nothing from it is ever executed.
//! - [`build_info`]: the version and git revision (`tollgate version`).
//! - [`check`]: `tollgate check`, the same provider and compiler as `run`.
//! - [`settings`]: the command line (clap), each flag with an env variable.
//! - [`echo`]: the built-in echo backend shared by examples, tests and benches.
//! - [`fdtable`]: the fd table grown once at start-up, so that no accept or
//!   connect while serving waits for the kernel to grow it.
//! - `fuzzing` (tests only): the runner of the fuzz targets, which live in
//!   a `fuzz` module next to the code each covers (`docs/fuzzing.md`).
//!
//! The data plane never sees a k8s-openapi type: everything it reads was
//! compiled into plain types first.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod auth;
// Observability (issue 18): the build's version and revision, the access log.
pub mod access_log;
pub mod build_info;
pub mod check;
pub mod config;
pub mod crd;
pub mod echo;
pub mod fdtable;
#[cfg(test)]
mod fuzzing;
pub mod gateway_api;
pub mod hop_by_hop;
pub mod inspect;
pub mod intern;
pub mod lb;
pub mod metrics;
pub mod nginx_vars;
pub mod provider;
pub mod proxy;
pub mod publisher;
pub mod ratelimit;
pub mod settings;
pub mod state;
pub mod table;
pub mod tls;
