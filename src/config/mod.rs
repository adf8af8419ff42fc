//! The compiler: a pure function from a [`Snapshot`] of Kubernetes objects to
//! a [`RoutingTable`](crate::table::RoutingTable), the upstreams it routes
//! to, and diagnostics.
//!
//! [`compile`] runs the steps in order, one file each:
//! - `ingress_nginx`: the ingress-nginx ConfigMap (`--configmap`,
//!   parsed by `nginx_config`) under every Ingress's annotations;
//! - `select`: which Ingresses are ours, oldest first, and which version of
//!   each is served (as written, or its last good one);
//! - `tls`: certificates for the hosts of `spec.tls`;
//! - `routes`: hosts and paths into the table, with the HTTPS redirects;
//! - `conflicts`: who gets a (host, path) or the default backend when two
//!   Ingresses ask for it, and which route a canary attaches to;
//! - `canary`: canary Ingresses attached to the others' routes;
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
//! `incremental` ([`Incremental`]: what a recompile reuses),
//! `options` ([`CompileOptions`]), `compiled` ([`Compiled`], [`LastGood`]),
//! `certificate` (TLS Secret parsing), [`snapshot`], [`diagnostic`] and
//! [`problem`]. This file only declares the modules, re-exports, and runs
//! the steps ([`compile`]).
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
mod compiled;
mod conflicts;
pub mod diagnostic;
pub mod endpoints;
pub mod gateway;
mod global_limit;
mod incremental;
mod ingress_nginx;
pub mod nginx_config;
mod options;
pub mod overlay;
pub mod problem;
mod route_policy;
mod routes;
mod select;
pub mod snapshot;
pub mod tls;
pub mod traffic_policy;
pub mod validate;

use std::sync::Arc;

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

use builder::Builder;

#[cfg(test)]
use crate::table::upstream::{EndpointAddr, LbAlgorithm};

/// A full compile: [`Incremental::compile`] with nothing to reuse.
pub fn compile(snapshot: &Snapshot, opts: &CompileOptions, last_good: &LastGood) -> Compiled {
    compile_with(snapshot, opts, last_good, &mut incremental::Memo::default())
}

/// Runs the steps, reusing (and filling) `memo`.
fn compile_with(
    snapshot: &Snapshot,
    opts: &CompileOptions,
    last_good: &LastGood,
    memo: &mut incremental::Memo,
) -> Compiled {
    let mut out = Compiled::default();
    let ours = select::ours(snapshot, opts);
    // The ingress-nginx ConfigMap (`--configmap`), parsed once: the
    // defaults every Ingress's annotations are read over.
    let (nginx, nginx_diagnostics) = ingress_nginx::load(snapshot, opts.configmap.as_ref());
    out.diagnostics.extend(nginx_diagnostics);
    let mut builder = Builder::new(snapshot, opts, last_good, &mut out, memo);
    builder.nginx = nginx;
    // The version of each TrafficPolicy in force (current, or last valid
    // while the current one is invalid), and which applies to which Ingress.
    builder.out.last_good.policies =
        traffic_policy::versions_in_force(snapshot, &last_good.policies);
    builder.policies = traffic_policy::owners(snapshot, &last_good.policies)
        .into_iter()
        .collect();
    let served = builder.select(ours);
    // Certificates first, for every Ingress: whether a host redirects to
    // HTTPS depends on it having a certificate, whichever Ingress gave it.
    for ingress in &served {
        builder.add_tls(ingress.key, &ingress.origin, &ingress.object);
    }
    let mut served_keys = Vec::with_capacity(served.len());
    // Canary Ingresses attach to the routes of the others: those first.
    let (canaries, mains): (Vec<_>, Vec<_>) = served
        .into_iter()
        .partition(|ingress| select::is_canary(&ingress.object));
    for ingress in mains {
        served_keys.push(ingress.key.clone());
        builder.add_ingress(ingress);
        builder.out.ingresses += 1;
    }
    for ingress in canaries {
        served_keys.push(ingress.key.clone());
        builder.add_canary(ingress);
        builder.out.ingresses += 1;
    }
    builder.add_aliases();
    served_keys.sort();
    builder.out.served = served_keys;
    // Gateway API routes after the Ingresses: an Ingress keeps its paths.
    builder.add_gateway_api();
    if let Some((service, port)) = &opts.default_backend {
        builder.add_default_backend_flag(service, port.as_ref());
    }
    if let Some(secret) = &opts.default_certificate {
        let origin: Option<Arc<str>> = Some("--default-certificate".into());
        if let Some(id) = builder.certificate(secret, &origin) {
            builder.out.tls.set_default(id);
        }
    }
    traffic_policy::apply(snapshot, &mut out, &last_good.policies);
    global_limit::report_without_store(snapshot, &mut out, opts);
    out.table = out.table.compacted();
    out
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
