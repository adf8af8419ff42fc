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
//!   one step per file (selection, TLS, hosts and paths, conflicts, canaries,
//!   backends, policy assembly). The annotations (`config::annotations`) parse
//!   straight into [`table::policy::RoutePolicy`], and TrafficPolicies are laid
//!   over it (`config::overlay`). Problems are data (`config::problem`: field
//!   and reason) until they become [`config::Diagnostic`]s in one place.
//! - [`crd`]: the `TrafficPolicy` custom resource: its types (`crd::types`),
//!   the CRD generated from them (`crd::schema`, `tollgate crd`), and
//!   `crd::validate` (`crd::validation`), which re-checks everything the CRD
//!   schema checks (standalone mode has no API server).
//! - [`table`]: the immutable routing table (hosts → paths → routes). Looked up
//!   per request without locks and without allocating.
//! - [`lb`]: upstreams, endpoint sets (swapped on their own, so an
//!   EndpointSlice change never recompiles routes) and pickers.
//! - [`ratelimit`]: per-client limiters built from compiled specs: request
//!   rate (GCRA) and concurrent requests per client IP, lock-free, with a
//!   prune that keeps memory bounded by recent clients.
//! - [`runtime`]: turns compiled output into the published state (one
//!   `ArcSwap`) and applies endpoint-only changes through the fast path.
//! - [`proxy`]: the data plane: listeners (one single-threaded runtime per
//!   worker, `SO_REUSEPORT`, optional PROXY protocol), the hyper service,
//!   header rewriting, the framing check, thread-local upstream connection
//!   pools, error → status. Routes with a policy go through `proxy::policy`
//!   (limits, access lists, auth, canary, rewrite, retries, CORS...); plain
//!   routes skip it with one branch.
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
