//! What a publish can take over from the previous one when the new table
//! only adds to it (an incremental compile's patch): the live upstreams,
//! metric handles and limiters of the routes and upstreams that are the
//! same, at the same ids, so the publisher's work is proportional to what
//! was added rather than to the size of the table.
//!
//! Invariants:
//! - "The same" is strict: an upstream with the same key and trust at the
//!   same id; a route whose labels and policy are the very same `Arc`s.
//!   Anything else takes the full path of `Publisher::install`.
//! - Reused state is shared (`Arc`), never copied: counters, limiter
//!   budgets and pooled connections carry on.
//! - Free functions over the maps they extend (the publisher passes its
//!   own): this file does not depend on the publisher's.

use std::sync::Arc;

use super::observe;
use crate::intern::intern;
use crate::lb::Upstream;
use crate::metrics::{Metrics, RouteMetrics, RouteSeries, SeriesLabels};
use crate::ratelimit::global::{GlobalLimiter, GlobalStore};
use crate::ratelimit::{ConnLimiter, RateSpec, RequestLimiter};
use crate::state::{Published, RouteLimits};
use crate::table::policy::GlobalRateLimit;
use crate::table::policy::{ConnLimit, RateLimit};
use crate::table::upstream::{UpstreamKey, UpstreamSpec};
use crate::table::{Route, RoutingTable};
use crate::tls::client::UpstreamTls;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Whether `specs` starts with the previous publish's upstreams, in order
/// (same key, same trust).
pub(super) fn upstreams_extend(prev: &Published, specs: &[UpstreamSpec]) -> bool {
    !prev.upstreams.is_empty()
        && specs.len() >= prev.upstreams.len()
        && prev.upstream_tls.len() == prev.upstreams.len()
        && prev
            .upstreams
            .iter()
            .zip(&prev.upstream_tls)
            .zip(specs)
            .all(|((u, tls), spec)| u.key == spec.key && *tls.trust() == spec.trust)
}

/// Whether `table` starts with the previous table's routes, each the very
/// same (labels and policy by identity), with metrics for each.
pub(super) fn routes_extend(prev: &Published, table: &RoutingTable) -> bool {
    let old = prev.table.routes();
    !old.is_empty()
        && prev.route_metrics.len() == old.len()
        && (prev.route_limits.is_empty() || prev.route_limits.len() == old.len())
        && table.routes().len() >= old.len()
        && old
            .iter()
            .zip(table.routes())
            .all(|(a, b)| same_route(a, b))
}

fn same_route(a: &Route, b: &Route) -> bool {
    let canary = match (&a.canary, &b.canary) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            Arc::ptr_eq(&x.ingress, &y.ingress)
                && Arc::ptr_eq(&x.service, &y.service)
                && x.upstream == y.upstream
        }
        _ => false,
    };
    canary
        && a.kind == b.kind
        && a.upstream == b.upstream
        && Arc::ptr_eq(&a.ingress, &b.ingress)
        && Arc::ptr_eq(&a.service, &b.service)
        && Arc::ptr_eq(&a.host, &b.host)
        && Arc::ptr_eq(&a.policy, &b.policy)
}

/// The previous publish's live upstreams (endpoints brought up to date),
/// extended with new ones for the specs past them (added to `upstreams`,
/// the live ones by key).
pub(super) fn extend_upstreams(
    prev: &Published,
    specs: Vec<UpstreamSpec>,
    metrics: &Metrics,
    upstreams: &mut HashMap<UpstreamKey, (Arc<Upstream>, UpstreamTls)>,
) -> (Vec<Arc<Upstream>>, Vec<UpstreamTls>) {
    let (mut live, mut upstream_tls) = (prev.upstreams.clone(), prev.upstream_tls.clone());
    for (i, spec) in specs.into_iter().enumerate() {
        if let Some(existing) = live.get(i) {
            existing.set_endpoints(&spec.endpoints);
            continue;
        }
        let made = (
            Arc::new(Upstream::new(&spec, metrics.connect_error(&spec.label))),
            UpstreamTls::new(&spec),
        );
        live.push(made.0.clone());
        upstream_tls.push(made.1.clone());
        upstreams.insert(spec.key, made);
    }
    (live, upstream_tls)
}

/// The previous route metrics, extended with handles for the routes past
/// them (reusing the `handles` of equal label sets).
pub(super) fn extend_route_metrics(
    prev: &Published,
    table: &RoutingTable,
    metrics: &Metrics,
    handles: &mut HashMap<SeriesLabels, Arc<RouteSeries>>,
) -> Vec<RouteMetrics> {
    let start = prev.route_metrics.len();
    let per_host = metrics.observe.per_host;
    let mut out = prev.route_metrics.clone();
    let mut created = false;
    let mut series = |labels| -> Arc<RouteSeries> {
        handles
            .entry(labels)
            .or_insert_with_key(|labels| {
                created = true;
                Arc::new(RouteSeries::new(labels.clone()))
            })
            .clone()
    };
    for r in table.routes().iter().skip(start) {
        out.push(RouteMetrics {
            canary: r
                .canary
                .as_ref()
                .map(|c| series(observe::canary_labels(r, c, per_host))),
            main: series(observe::labels_of(r, per_host)),
        });
    }
    if created {
        metrics.observe.series.publish(
            std::iter::once(metrics.unrouted.clone())
                .chain(handles.values().cloned())
                .collect(),
        );
    }
    out
}

/// The live limiters by (object, limit), and what makes global ones.
pub(super) struct Limiters<'a> {
    pub(super) rate: &'a mut HashMap<(Arc<str>, RateLimit), Arc<RequestLimiter>>,
    pub(super) conn: &'a mut HashMap<(Arc<str>, ConnLimit), Arc<ConnLimiter>>,
    pub(super) global: &'a mut HashMap<(Arc<str>, GlobalRateLimit), Arc<GlobalLimiter>>,
    pub(super) store: &'a Option<Arc<GlobalStore>>,
    pub(super) metrics: &'a Metrics,
}

/// The previous route limits, extended with the limiters of the routes
/// past them (live ones reused by (object, limit)).
pub(super) fn extend_route_limits(
    prev: &Published,
    table: &RoutingTable,
    limiters: Limiters<'_>,
) -> Vec<RouteLimits> {
    let start = prev.table.routes().len();
    let mut out = prev.route_limits.clone();
    for (i, route) in table.routes().iter().enumerate().skip(start) {
        let policy = &route.policy;
        if policy.rate.is_none() && policy.connections.is_none() && policy.global_rate.is_none() {
            continue;
        }
        if out.is_empty() {
            out = vec![RouteLimits::default(); start];
        }
        out.resize(i, RouteLimits::default());
        let rate = policy.rate.map(|spec| {
            limiters
                .rate
                .entry((route.ingress.clone(), spec))
                .or_insert_with(|| {
                    Arc::new(RequestLimiter::new(RateSpec {
                        requests: spec.requests,
                        per: spec.per,
                        burst: spec.burst,
                    }))
                })
                .clone()
        });
        let connections = policy.connections.map(|spec| {
            limiters
                .conn
                .entry((route.ingress.clone(), spec))
                .or_insert_with(|| Arc::new(ConnLimiter::new(spec.max)))
                .clone()
        });
        let global = policy.global_rate.as_ref().map(|limit| {
            let object = intern(&format!("{}/{}", route.kind.as_str(), route.ingress));
            let (store, metrics) = (limiters.store, limiters.metrics);
            limiters
                .global
                .entry((object, GlobalRateLimit::clone(limit)))
                .or_insert_with_key(|key| {
                    Arc::new(GlobalLimiter::new(
                        &key.0,
                        limit,
                        store.clone(),
                        metrics.global_rate_limit.decisions(&key.0),
                    ))
                })
                .clone()
        });
        out.push(RouteLimits {
            rate,
            global,
            connections,
        });
    }
    if !out.is_empty() {
        out.resize(table.routes().len(), RouteLimits::default());
    }
    out
}
