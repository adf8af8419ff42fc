//! The diagnostic for global rate limits that have no store: without
//! `--global-rate-limit-store` a global limit is counted per replica (its
//! local fallback), and every object that asks for one says so, in `check`
//! and in Events, instead of being a silent downgrade.
//!
//! Invariants: pure (reads the compiled table and the snapshot); one
//! warning per object, on the object that asked (the Ingress or route
//! whose routes carry a global limit, and each TrafficPolicy with
//! `rateLimit.scope: Global`); nothing when a store is configured.

use std::collections::BTreeSet;

use super::compiled::Compiled;
use super::diagnostic::Severity;
use super::options::CompileOptions;
use super::problem::{Field, Problem, Reason, Subject};
use super::snapshot::{ObjectKey, Snapshot};
use crate::table::RouteKind;

/// Adds the warnings (see the module doc).
pub fn report_without_store(snapshot: &Snapshot, out: &mut Compiled, opts: &CompileOptions) {
    if opts.global_rate_limit_store {
        return;
    }
    let mut objects: BTreeSet<(RouteKind, ObjectKey)> = BTreeSet::new();
    for route in out.table.routes() {
        if route.policy.global_rate.is_none() {
            continue;
        }
        if let Some((ns, name)) = route.ingress.split_once('/') {
            objects.insert((route.kind, ObjectKey::new(ns, name)));
        }
    }
    for (kind, key) in objects {
        let origin = match kind {
            RouteKind::Ingress => snapshot.ingresses.get(&key).map(|e| e.origin.clone()),
            RouteKind::HttpRoute => snapshot.http_routes.get(&key).map(|e| e.origin.clone()),
            RouteKind::GrpcRoute => snapshot.grpc_routes.get(&key).map(|e| e.origin.clone()),
        };
        let field = match kind {
            RouteKind::Ingress => Field::Annotations,
            _ => Field::Spec,
        };
        let subject = Subject {
            kind: kind.as_str(),
            key: &key,
            origin: &origin,
        };
        out.diagnostics.push(subject.diagnostic(
            Severity::Warning,
            Problem::new(field, Reason::GlobalLimitWithoutStore),
        ));
    }
    for (key, entry) in &snapshot.traffic_policies {
        if !entry
            .object
            .spec
            .rate_limit
            .as_ref()
            .is_some_and(|r| r.is_global())
        {
            continue;
        }
        let origin = Some(entry.origin.clone());
        let subject = Subject {
            kind: "TrafficPolicy",
            key,
            origin: &origin,
        };
        out.diagnostics.push(subject.diagnostic(
            Severity::Warning,
            Problem::new(
                Field::Reported("spec.rateLimit.scope".into()),
                Reason::GlobalLimitWithoutStore,
            ),
        ));
    }
}
