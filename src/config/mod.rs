//! The compiler: a pure function from a [`Snapshot`] of Kubernetes objects to
//! a [`RoutingTable`](crate::table::RoutingTable), the upstreams it routes
//! to, and diagnostics.
//!
//! [`compile`] runs the steps in order, one file each:
//! - `ingress_nginx`: the ingress-nginx ConfigMap (`--configmap`,
//!   parsed by `nginx_config`) under every Ingress's annotations, and its
//!   request-path keys (`nginx_globals`) into the table's globals;
//! - `select`: which Ingresses are ours, oldest first, and which version of
//!   each is served (as written, or its last good one);
//! - `tls`: certificates for the hosts of `spec.tls`;
//! - `routes`: hosts and paths into the table, with the HTTPS redirects;
//! - `conflicts`: who gets a (host, path) or the default backend when two
//!   Ingresses ask for it, and which route a canary attaches to;
//! - `canary`: canary Ingresses attached to the others' routes;
//! - `passthrough`: `ssl-passthrough` hosts → the upstream of their `/`
//!   route, spliced untouched by the HTTPS listener;
//! - `backends`: Services → upstreams (protocol, load balancing, backend
//!   TLS, endpoints);
//! - `route_policy`: annotations and TrafficPolicy → each route's
//!   [`crate::table::policy::RoutePolicy`] (authentication, fallbacks,
//!   error pages);
//! - `traffic_policy`: TrafficPolicy ownership and status;
//! - `global_limit`: a warning on every object asking for a global rate
//!   limit when no store is configured;
//! - `gateway`: GatewayClasses, Gateways, HTTPRoutes and GRPCRoutes (after
//!   the Ingresses, into the same table), and their status as data.
//!
//! What the steps share is in files of its own, which never call a step:
//! `builder` (the `Builder` state every step extends and reports through),
//! `memo` (per-Ingress results kept between compiles),
//! `incremental` ([`Incremental`]: what a recompile reuses),
//! `options` ([`CompileOptions`]), `compiled` ([`Compiled`], [`LastGood`]),
//! `certificate` (TLS Secret parsing), [`snapshot`], [`diagnostic`] and
//! [`problem`]. `steps` runs the steps in order (for a full compile, and
//! for one Ingress alone); this file only declares the modules and
//! re-exports, and [`compile`] calls `steps`.
//!
//! Problems are data ([`problem::Problem`]: a field and a reason) until
//! [`problem::Subject::diagnostic`] turns them into [`Diagnostic`]s.
//!
//! Invariants:
//! - No IO, no async, no clock: the same input always gives the same output.
//!   All Ingress semantics live here and are unit-tested here.
//! - Ingresses are applied oldest first (creationTimestamp, then
//!   `namespace/name`; a missing timestamp counts as oldest), so on a
//!   conflict (same host, path and pathType) the oldest Ingress wins and the
//!   loser gets a diagnostic.
//! - An Ingress that fails validation is not served as written: its last
//!   good version (from [`LastGood`]) is served instead, if there is one.
//! - A problem confined to one backend (missing Service, missing port) does
//!   not reject the Ingress: its routes answer 503 and a warning says why.

pub mod annotations;
mod backends;
mod builder;
mod canary;
mod certificate;
pub mod class;
mod client_auth;
mod compiled;
mod conflicts;
pub mod diagnostic;
pub mod endpoints;
pub mod gateway;
mod global_limit;
mod incremental;
mod ingress_nginx;
mod memo;
pub mod nginx_config;
mod nginx_globals;
mod options;
pub mod overlay;
pub mod passthrough;
pub mod problem;
mod route_policy;
mod routes;
mod select;
pub mod snapshot;
mod steps;
pub mod tls;
pub mod traffic_policy;
pub mod validate;

pub use backends::{
    resolve_upstream, BACKEND_CA_ANNOTATION, BACKEND_PROTOCOL_ANNOTATION,
    BACKEND_TLS_NAME_ANNOTATION, LOAD_BALANCE_ANNOTATION, NGINX_BACKEND_PROTOCOL_ANNOTATION,
    NGINX_LOAD_BALANCE_ANNOTATION, NGINX_PROXY_SSL_NAME, NGINX_PROXY_SSL_SECRET,
    NGINX_PROXY_SSL_VERIFY,
};
pub use certificate::parse_secret;
pub use compiled::{Compiled, LastGood, Resolved};
pub use diagnostic::{Diagnostic, Severity};
pub use incremental::{Incremental, Touched};
pub use options::{CompileOptions, DEFAULT_GATEWAY_CONTROLLER_NAME};
pub use routes::{
    NGINX_FORCE_SSL_REDIRECT_ANNOTATION, NGINX_SSL_REDIRECT_ANNOTATION, SSL_REDIRECT_ANNOTATION,
};
pub use snapshot::{Changes, Entry, Object, ObjectKey, Snapshot};

#[cfg(test)]
use crate::table::upstream::{EndpointAddr, LbAlgorithm};

/// A full compile: [`Incremental::compile`] with nothing to reuse.
pub fn compile(snapshot: &Snapshot, opts: &CompileOptions, last_good: &LastGood) -> Compiled {
    steps::run(snapshot, opts, last_good, &mut memo::Memo::default())
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
