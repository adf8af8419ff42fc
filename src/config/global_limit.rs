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

#[cfg(test)]
mod tests {
    use crate::config::{compile, CompileOptions, LastGood, Snapshot};
    use crate::provider::files::parse_manifests;

    const DOCS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tollgate}
spec: {controllerName: tollgate.dev/gateway-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: tollgate
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [api.example.com]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: tollgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: global, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
  rateLimit: {requestsPerSecond: 5, burst: 10, scope: Global}
";

    /// A TrafficPolicy with `scope: Global` on an HTTPRoute gives its routes
    /// a global limit; without a store, the route and the policy say so.
    #[test]
    fn an_httproute_policy_with_scope_global_is_global_and_reported_without_a_store() {
        let mut snapshot = Snapshot::default();
        for (origin, object) in parse_manifests("test.yaml", DOCS).expect("manifests parse") {
            snapshot.insert(origin, object);
        }
        let out = compile(&snapshot, &CompileOptions::default(), &LastGood::new());
        let routes: Vec<_> = out
            .table
            .routes()
            .iter()
            .filter(|r| &*r.ingress == "default/api")
            .collect();
        assert!(!routes.is_empty());
        for r in &routes {
            let g = r.policy.global_rate.as_ref().expect("global");
            assert_eq!((g.rate.requests.get(), g.rate.burst.get()), (5, 10));
            assert!(r.policy.rate.is_none());
        }
        let warned: Vec<_> = out
            .diagnostics
            .iter()
            .filter(|d| d.reason.contains("no --global-rate-limit-store"))
            .map(|d| d.kind)
            .collect();
        assert_eq!(
            warned,
            ["HTTPRoute", "TrafficPolicy"],
            "{:?}",
            out.diagnostics
        );
        let with_store = CompileOptions {
            global_rate_limit_store: true,
            ..CompileOptions::default()
        };
        let out = compile(&snapshot, &with_store, &LastGood::new());
        assert!(!out
            .diagnostics
            .iter()
            .any(|d| d.reason.contains("global-rate-limit-store")));
    }
}
