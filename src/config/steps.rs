//! The compile steps in order ([`run`]: a full compile; [`one`]: one
//! Ingress alone, as an incremental patch grafts it), shared by
//! [`super::compile`] and [`super::Incremental`] so both build by the very
//! same steps.
//!
//! Invariants:
//! - Pure, like every step: the same input always gives the same output.
//! - [`one`] runs the Ingress steps of [`run`] in the same order, for an
//!   Ingress the caller has shown isolated (no canary, TLS, passthrough,
//!   alias or twin host reaching another Ingress).

use std::sync::Arc;

use crate::config::snapshot::CompactIngress;

use super::builder::Builder;
use super::compiled::{Compiled, LastGood};
use super::memo::Memo;
use super::nginx_config::NginxConfig;
use super::options::CompileOptions;
use super::snapshot::{Entry, ObjectKey, Snapshot};
use super::{global_limit, ingress_nginx, passthrough, select, traffic_policy};

/// Runs the steps, reusing (and filling) `memo`.
pub(super) fn run(
    snapshot: &Snapshot,
    opts: &CompileOptions,
    last_good: &LastGood,
    memo: &mut Memo,
) -> Compiled {
    let mut out = Compiled::default();
    let ours = select::ours(snapshot, opts);
    // The ingress-nginx ConfigMap (`--configmap`), parsed once: the
    // defaults every Ingress's annotations are read over.
    let (nginx, globals, nginx_diagnostics) =
        ingress_nginx::load(snapshot, opts.configmap.as_ref(), last_good);
    out.diagnostics.extend(nginx_diagnostics);
    out.last_good.block_agents = globals.block_agents.clone();
    out.table.set_globals(globals);
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
    // TLS passthrough hosts, added once every Ingress has its paths.
    let passthrough =
        passthrough::requests(served.iter().map(|s| (s.key, &s.origin, &s.object)), opts);
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
    builder.add_passthrough(passthrough);
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

/// Compiles one Ingress alone, by the steps of a full compile.
pub(super) fn one(
    snapshot: &Snapshot,
    opts: &CompileOptions,
    last_good: &LastGood,
    key: &ObjectKey,
    entry: &Entry<CompactIngress>,
    nginx: &NginxConfig,
    memo: &mut Memo,
) -> Compiled {
    let mut out = Compiled::default();
    let mut builder = Builder::new(snapshot, opts, last_good, &mut out, memo);
    builder.nginx = nginx.clone();
    builder.policies = traffic_policy::owners(snapshot, &last_good.policies)
        .into_iter()
        .collect();
    let served = builder.select(vec![(key, entry)]);
    for ingress in &served {
        builder.add_tls(ingress.key, &ingress.origin, &ingress.object);
    }
    for ingress in served {
        if select::is_canary(&ingress.object) {
            builder.add_canary(ingress);
        } else {
            builder.add_ingress(ingress);
        }
        builder.out.ingresses += 1;
    }
    builder.add_aliases();
    out.table = out.table.compacted();
    out
}
