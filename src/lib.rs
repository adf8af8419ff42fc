//! tollgate: a Kubernetes Ingress controller and Layer-7 reverse proxy.
//!
//! # Layout
//! Objects flow one way: `provider → config → table ← proxy`.
//!
//! - [`provider`]: the only sources of Kubernetes objects. `files` reads
//!   manifests from disk and watches them, producing [`config::Snapshot`]s;
//!   `kubernetes` watches the API server and feeds the runtime changes one
//!   object at a time, and writes Ingress status and Events as the leader.
//! - [`config`]: the pure compiler. `Snapshot → (RoutingTable, upstream specs,
//!   diagnostics)`. No IO, no async, no clock: all Ingress semantics live here,
//!   including the annotations (`config::annotations`) and TrafficPolicies
//!   laid over them (`config::overlay`), compiled into each route's
//!   [`table::policy::RoutePolicy`], which the table turns into each
//!   route's ordered phases ([`table::phases`]).
//! - [`crd`]: the `TrafficPolicy` custom resource: its types, the CRD
//!   generated from them (`tollgate crd`), and `validate`, which re-checks
//!   everything the CRD schema checks (standalone mode has no API server).
//! - [`table`]: the immutable routing table (hosts → paths → routes). Looked up
//!   per request without locks and without allocating.
//! - [`lb`]: upstreams, endpoint sets (swapped on their own, so an
//!   EndpointSlice change never recompiles routes) and pickers. Knows
//!   endpoints (each with an id), not connections: it imports nothing from
//!   the data plane.
//! - [`ratelimit`]: per-client limiters built from compiled specs: request
//!   rate (GCRA) and concurrent requests per client IP, lock-free, with a
//!   prune that keeps memory bounded by recent clients.
//! - [`runtime`]: turns compiled output into the published state (one
//!   `ArcSwap`) and applies endpoint-only changes through the fast path.
//! - [`proxy`]: the data plane, one way down: `listener` (accept, PROXY
//!   protocol, TLS, connection context) → `service` (framing check, Host,
//!   route lookup) → `policy` (a route's phases in order; plain routes skip
//!   it with one branch) → `forward` (endpoint choice, thread-local
//!   connection pools keyed by endpoint id, retries, timeouts) →
//!   `response` (metrics, access log, HSTS). No step calls one above it.
//! - [`tls`]: TLS in one place; `tls::client` secures connections to
//!   upstreams (verified against configured CAs, or not, or blocked).
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`auth`]: authentication building blocks the compiler builds from the
//!   auth annotations and the proxy calls: htpasswd Basic auth, URL
//!   templates, external auth (`auth-url`) sub-requests.
//! - [`metrics`]: the Prometheus registry; per-route handles resolved when a
//!   table is published, so requests only touch atomics.
//! - [`check`]: `tollgate check`, the same provider and compiler as `run`.
//! - [`settings`]: the command line (clap), each flag with an env variable.
//! - [`echo`]: the built-in echo backend shared by examples, tests and benches.
//!
//! The data plane never sees a k8s-openapi type: everything it reads was
//! compiled into plain types first.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod check;
pub mod config;
pub mod crd;
pub mod echo;
pub mod lb;
pub mod metrics;
pub mod provider;
pub mod proxy;
pub mod ratelimit;
pub mod runtime;
pub mod settings;
pub mod table;
pub mod tls;
