//! Compiler tests of Gateway API: attachment, hostnames, allowed routes,
//! conflicts, references and the conditions they produce; lowering into
//! the table (precedence, guards, backends).

use super::status::*;
use crate::config::{compile, CompileOptions, Compiled, LastGood, Snapshot};
use crate::provider::files::parse_manifests;

const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tollgate}
spec: {controllerName: tollgate.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
";

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec: {ports: [{port: 8080}]}
";

fn gateway(name: &str, ns: &str, listeners: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}, generation: 3}}
spec:
  gatewayClassName: tollgate
  listeners: {listeners}
"
    )
}

fn route(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}, generation: 7}}
spec:
{spec}
"
    )
}

fn compile_docs(docs: &[String]) -> Compiled {
    let mut snapshot = Snapshot::default();
    let text = [CLASS.to_string(), SERVICES.to_string()]
        .iter()
        .chain(docs)
        .cloned()
        .collect::<Vec<_>>()
        .join("---\n");
    for (origin, object) in parse_manifests("test.yaml", &text).expect("manifests parse") {
        snapshot.insert(origin, object);
    }
    compile(&snapshot, &CompileOptions::default(), &LastGood::new())
}

fn cond<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {conditions:?}"))
}

fn parent_cond<'a>(out: &'a Compiled, route: &str, type_: &str) -> &'a Condition {
    let (ns, name) = route.split_once('/').unwrap();
    let status = &out.gateway_status.http_routes[&crate::config::ObjectKey::new(ns, name)];
    cond(&status.parents[0].conditions, type_)
}

const HTTP: &str = "[{name: http, port: 80, protocol: HTTP}]";

fn get(out: &Compiled, host: &str, path: &str) -> Option<String> {
    get_with(out, host, path, http::Request::get(path))
}

fn get_with(out: &Compiled, host: &str, path: &str, req: http::request::Builder) -> Option<String> {
    let (parts, ()) = req.body(()).unwrap().into_parts();
    let id = out.table.lookup_request(host, path, &parts)?;
    let r = out.table.route(id)?;
    Some(format!("{} {}", r.ingress, r.path))
}

#[test]
fn classes_and_gateways_of_ours_only() {
    let out = compile_docs(&[
        gateway("gw", "default", HTTP),
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: default}
spec: {gatewayClassName: other, listeners: [{name: http, port: 80, protocol: HTTP}]}
"
        .into(),
    ]);
    let st = &out.gateway_status;
    assert!(cond(&st.classes["tollgate"].conditions, ACCEPTED).is_true());
    assert!(!st.classes.contains_key("other"));
    let gw = &st.gateways[&crate::config::ObjectKey::new("default", "gw")];
    assert!(cond(&gw.conditions, ACCEPTED).is_true());
    assert!(cond(&gw.conditions, PROGRAMMED).is_true());
    assert_eq!(cond(&gw.conditions, ACCEPTED).observed_generation, Some(3));
    assert_eq!(gw.listeners[0].supported_kinds.len(), 2);
    assert!(!st
        .gateways
        .contains_key(&crate::config::ObjectKey::new("default", "theirs")));
}

#[test]
fn route_attaches_and_counts() {
    let out = compile_docs(&[
        gateway("gw", "default", HTTP),
        route(
            "r",
            "default",
            "  parentRefs: [{name: gw}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: web, port: 8080}]}]",
        ),
    ]);
    let c = parent_cond(&out, "default/r", ACCEPTED);
    assert!(c.is_true(), "{c:?}");
    assert_eq!(c.observed_generation, Some(7));
    assert!(parent_cond(&out, "default/r", RESOLVED_REFS).is_true());
    let gw = &out.gateway_status.gateways[&crate::config::ObjectKey::new("default", "gw")];
    assert_eq!(gw.listeners[0].attached_routes, 1);
    assert_eq!(
        get(&out, "a.example.com", "/x").as_deref(),
        Some("default/r /")
    );
    assert_eq!(get(&out, "b.example.com", "/x"), None);
    assert!(!out.rejected(), "{:?}", out.diagnostics);
}

#[test]
fn no_matching_parent_for_section_name_or_port() {
    let out = compile_docs(&[
        gateway("gw", "default", HTTP),
        route(
            "s",
            "default",
            "  parentRefs: [{name: gw, sectionName: nope}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]",
        ),
        route(
            "p",
            "default",
            "  parentRefs: [{name: gw, port: 8080}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]",
        ),
    ]);
    for r in ["default/s", "default/p"] {
        let c = parent_cond(&out, r, ACCEPTED);
        assert_eq!(
            (c.status, c.reason),
            ("False", REASON_NO_MATCHING_PARENT),
            "{r}"
        );
    }
    assert_eq!(get(&out, "x", "/"), None);
    assert!(out.rejected());
}

#[test]
fn allowed_routes_namespaces() {
    let listeners = "[{name: same, port: 80, protocol: HTTP, hostname: same.example},
    {name: all, port: 80, protocol: HTTP, hostname: all.example, allowedRoutes: {namespaces: {from: All}}},
    {name: sel, port: 80, protocol: HTTP, hostname: sel.example, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}}]";
    let ns = "apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: a}}
"
    .to_string();
    let r = |name: &str, section: &str| {
        route(
            name,
            "apps",
            &format!(
                "  parentRefs: [{{name: gw, namespace: default, sectionName: {section}}}]
  rules: [{{backendRefs: [{{name: web, port: 8080}}]}}]"
            ),
        )
    };
    let out = compile_docs(&[
        gateway("gw", "default", listeners),
        ns,
        r("to-same", "same"),
        r("to-all", "all"),
        r("to-sel", "sel"),
    ]);
    let c = parent_cond(&out, "apps/to-same", ACCEPTED);
    assert_eq!(c.reason, REASON_NOT_ALLOWED_BY_LISTENERS);
    assert!(parent_cond(&out, "apps/to-all", ACCEPTED).is_true());
    assert!(parent_cond(&out, "apps/to-sel", ACCEPTED).is_true());
    assert_eq!(get(&out, "same.example", "/"), None);
    assert!(get(&out, "all.example", "/").is_some());
    assert!(get(&out, "sel.example", "/").is_some());
}

#[test]
fn allowed_kinds_and_invalid_kinds() {
    let listeners = "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: GRPCRoute}, {kind: TCPRoute}]}}]";
    let out = compile_docs(&[
        gateway("gw", "default", listeners),
        route(
            "r",
            "default",
            "  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]",
        ),
    ]);
    let gw = &out.gateway_status.gateways[&crate::config::ObjectKey::new("default", "gw")];
    let c = cond(&gw.listeners[0].conditions, RESOLVED_REFS);
    assert_eq!((c.status, c.reason), ("False", REASON_INVALID_ROUTE_KINDS));
    assert_eq!(
        parent_cond(&out, "default/r", ACCEPTED).reason,
        REASON_NOT_ALLOWED_BY_LISTENERS
    );
}

#[test]
fn hostname_intersection_and_no_match() {
    let listeners = "[{name: wild, port: 80, protocol: HTTP, hostname: '*.example.com'}]";
    let out = compile_docs(&[
        gateway("gw", "default", listeners),
        route(
            "r",
            "default",
            "  parentRefs: [{name: gw}]
  hostnames: [a.example.com, other.org]
  rules: [{backendRefs: [{name: web, port: 8080}]}]",
        ),
        route(
            "none",
            "default",
            "  parentRefs: [{name: gw}]
  hostnames: [other.org]
  rules: [{backendRefs: [{name: web, port: 8080}]}]",
        ),
    ]);
    assert!(get(&out, "a.example.com", "/").is_some());
    assert_eq!(get(&out, "other.org", "/"), None);
    assert_eq!(
        parent_cond(&out, "default/none", ACCEPTED).reason,
        REASON_NO_MATCHING_LISTENER_HOSTNAME
    );
}

#[test]
fn unsupported_protocol_does_not_break_the_gateway() {
    let listeners =
        "[{name: tcp, port: 9000, protocol: TCP}, {name: http, port: 80, protocol: HTTP}]";
    let out = compile_docs(&[gateway("gw", "default", listeners)]);
    let gw = &out.gateway_status.gateways[&crate::config::ObjectKey::new("default", "gw")];
    let c = cond(&gw.listeners[0].conditions, ACCEPTED);
    assert_eq!((c.status, c.reason), ("False", REASON_UNSUPPORTED_PROTOCOL));
    assert!(cond(&gw.listeners[1].conditions, PROGRAMMED).is_true());
    assert!(cond(&gw.conditions, ACCEPTED).is_true());
}

#[test]
fn listener_conflicts_oldest_gateway_wins() {
    let older = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: b-older, namespace: default, creationTimestamp: '2024-01-01T00:00:00Z'}
spec: {gatewayClassName: tollgate, listeners: [{name: http, port: 80, protocol: HTTP, hostname: x.example}]}
";
    let newer = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: a-newer, namespace: default, creationTimestamp: '2025-01-01T00:00:00Z'}
spec: {gatewayClassName: tollgate, listeners: [{name: http, port: 8080, protocol: HTTP, hostname: x.example}]}
";
    let out = compile_docs(&[older.into(), newer.into()]);
    let st = &out.gateway_status.gateways;
    let old = &st[&crate::config::ObjectKey::new("default", "b-older")];
    let new = &st[&crate::config::ObjectKey::new("default", "a-newer")];
    assert!(!cond(&old.listeners[0].conditions, CONFLICTED).is_true());
    let c = cond(&new.listeners[0].conditions, CONFLICTED);
    assert_eq!((c.status, c.reason), ("True", REASON_HOSTNAME_CONFLICT));
    assert!(!cond(&new.listeners[0].conditions, PROGRAMMED).is_true());
}

#[test]
fn backend_refs_invalid_kinds_missing_and_cross_namespace() {
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: '', kind: Service, name: web}]
";
    let r = |name: &str, backend: &str| {
        route(
            name,
            "default",
            &format!(
                "  parentRefs: [{{name: gw}}]
  hostnames: [{name}.example]
  rules: [{{backendRefs: [{backend}]}}]"
            ),
        )
    };
    let without = compile_docs(&[
        gateway("gw", "default", HTTP),
        r("cross", "{name: web, namespace: apps, port: 8080}"),
        r("missing", "{name: nothere, port: 8080}"),
        r("kind", "{group: example.com, kind: Bucket, name: b}"),
    ]);
    for (route, reason) in [
        ("default/cross", REASON_REF_NOT_PERMITTED),
        ("default/missing", REASON_BACKEND_NOT_FOUND),
        ("default/kind", REASON_INVALID_KIND),
    ] {
        let c = parent_cond(&without, route, RESOLVED_REFS);
        assert_eq!((c.status, c.reason), ("False", reason), "{route}");
        // Still accepted and served (the request gets 500).
        assert!(parent_cond(&without, route, ACCEPTED).is_true(), "{route}");
    }
    let id = without
        .table
        .lookup("cross.example", "/")
        .expect("served, answering 500");
    let policy = &without.table.route(id).unwrap().policy;
    let backends = policy.backends.as_ref().expect("weighted backends");
    assert!(backends.choices[0].upstream.is_none());

    let with = compile_docs(&[
        gateway("gw", "default", HTTP),
        grant.into(),
        r("cross", "{name: web, namespace: apps, port: 8080}"),
    ]);
    assert!(parent_cond(&with, "default/cross", RESOLVED_REFS).is_true());
}

#[test]
fn precedence_across_routes_and_matches() {
    let out = compile_docs(&[
        gateway("gw", "default", HTTP),
        route(
            "b-prefix",
            "default",
            "  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-v, value: '2'}]}]
    backendRefs: [{name: web, port: 8080}]",
        ),
        route(
            "a-exact",
            "default",
            "  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: Exact, value: /api}}, {path: {value: /api/v1}, method: POST}]
    backendRefs: [{name: web, port: 8080}]",
        ),
    ]);
    assert_eq!(
        get(&out, "h", "/api").as_deref(),
        Some("default/a-exact /api")
    );
    assert_eq!(
        get(&out, "h", "/api/x").as_deref(),
        Some("default/b-prefix /api")
    );
    let with_header = http::Request::get("/api/x").header("x-v", "2");
    let id = {
        let (parts, ()) = with_header.body(()).unwrap().into_parts();
        out.table.lookup_request("h", "/api/x", &parts).unwrap()
    };
    // The rule with a header match wins over the plain one on the same path.
    assert!(out.table.route(id).unwrap().guard.is_some());
    assert_eq!(
        get_with(&out, "h", "/api/v1/z", http::Request::post("/api/v1/z")).as_deref(),
        Some("default/a-exact /api/v1")
    );
    assert_eq!(
        get(&out, "h", "/api/v1/z").as_deref(),
        Some("default/b-prefix /api")
    );
}

#[test]
fn unsupported_filter_rejects_the_route() {
    let out = compile_docs(&[
        gateway("gw", "default", HTTP),
        route(
            "r",
            "default",
            "  parentRefs: [{name: gw}]
  rules: [{filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}], backendRefs: [{name: web, port: 8080}]}]",
        ),
    ]);
    let c = parent_cond(&out, "default/r", ACCEPTED);
    assert_eq!((c.status, c.reason), ("False", REASON_UNSUPPORTED_VALUE));
    assert_eq!(get(&out, "h", "/"), None);
    assert!(out.table.routes().is_empty());
}

#[test]
fn ingress_keeps_its_path_and_the_shadowed_route_is_reported() {
    let ingress = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing, namespace: default}
spec:
  ingressClassName: tollgate
  rules:
  - host: both.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 8080}}}}]}
";
    let out = compile_docs(&[
        ingress.into(),
        gateway("gw", "default", HTTP),
        route(
            "r",
            "default",
            "  parentRefs: [{name: gw}]
  hostnames: [both.example]
  rules:
  - matches: [{path: {value: /}}]
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {value: /only-route}}]
    backendRefs: [{name: web, port: 8080}]",
        ),
    ]);
    assert_eq!(
        get(&out, "both.example", "/x").as_deref(),
        Some("default/ing /")
    );
    assert_eq!(
        get(&out, "both.example", "/only-route/a").as_deref(),
        Some("default/r /only-route")
    );
    assert!(out
        .diagnostics
        .iter()
        .any(|d| d.kind == "HTTPRoute" && d.reason.contains("Ingress default/ing")));
}

#[test]
fn unknown_fields_are_warnings() {
    let out = compile_docs(&[
        gateway("gw", "default", HTTP),
        route(
            "r",
            "default",
            "  parentRefs: [{name: gw}]
  novel: true
  rules: [{backendRefs: [{name: web, port: 8080}]}]",
        ),
    ]);
    assert!(out
        .diagnostics
        .iter()
        .any(|d| d.kind == "HTTPRoute" && d.field == "spec.novel"));
    assert!(parent_cond(&out, "default/r", ACCEPTED).is_true());
}

#[test]
fn https_listener_certificate_references() {
    let listeners = |secret: &str| {
        format!(
            "[{{name: https, port: 443, protocol: HTTPS, hostname: s.example, tls: {{certificateRefs: [{secret}]}}}}]"
        )
    };
    let missing = compile_docs(&[gateway("gw", "default", &listeners("{name: nothere}"))]);
    let gw = &missing.gateway_status.gateways[&crate::config::ObjectKey::new("default", "gw")];
    let c = cond(&gw.listeners[0].conditions, RESOLVED_REFS);
    assert_eq!(
        (c.status, c.reason),
        ("False", REASON_INVALID_CERTIFICATE_REF)
    );
    assert!(!cond(&gw.listeners[0].conditions, PROGRAMMED).is_true());
    assert!(!cond(&gw.conditions, PROGRAMMED).is_true());

    let elsewhere = compile_docs(&[gateway(
        "gw",
        "default",
        &listeners("{name: cert, namespace: certs}"),
    )]);
    let gw = &elsewhere.gateway_status.gateways[&crate::config::ObjectKey::new("default", "gw")];
    let c = cond(&gw.listeners[0].conditions, RESOLVED_REFS);
    assert_eq!((c.status, c.reason), ("False", REASON_REF_NOT_PERMITTED));

    let passthrough = compile_docs(&[gateway(
        "gw",
        "default",
        "[{name: https, port: 443, protocol: HTTPS, tls: {mode: Passthrough}}]",
    )]);
    let gw = &passthrough.gateway_status.gateways[&crate::config::ObjectKey::new("default", "gw")];
    let c = cond(&gw.listeners[0].conditions, ACCEPTED);
    assert_eq!((c.status, c.reason), ("False", REASON_UNSUPPORTED_VALUE));
}

#[test]
fn label_selectors() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    let labels: std::collections::BTreeMap<String, String> = [
        ("team".to_string(), "a".to_string()),
        ("env".to_string(), "prod".to_string()),
    ]
    .into();
    let req = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    };
    let sel = |exprs: Vec<LabelSelectorRequirement>| LabelSelector {
        match_expressions: Some(exprs),
        match_labels: None,
    };
    assert!(super::attach::selects(&LabelSelector::default(), &labels));
    assert!(super::attach::selects(
        &sel(vec![req("team", "In", &["a", "b"])]),
        &labels
    ));
    assert!(!super::attach::selects(
        &sel(vec![req("team", "NotIn", &["a"])]),
        &labels
    ));
    assert!(super::attach::selects(
        &sel(vec![req("env", "Exists", &[])]),
        &labels
    ));
    assert!(!super::attach::selects(
        &sel(vec![req("env", "DoesNotExist", &[])]),
        &labels
    ));
    assert!(!super::attach::selects(
        &sel(vec![req("env", "Bogus", &[])]),
        &labels
    ));
}

#[test]
fn grpc_routes_attach_and_lower() {
    let out = compile_docs(&[
        gateway("gw", "default", HTTP),
        "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example]
  rules:
  - matches: [{method: {service: pkg.Svc, method: Do}}]
    backendRefs: [{name: web, port: 8080}]
"
        .into(),
    ]);
    let key = crate::config::ObjectKey::new("default", "g");
    let status = &out.gateway_status.grpc_routes[&key];
    assert!(cond(&status.parents[0].conditions, ACCEPTED).is_true());
    let id = out
        .table
        .lookup("grpc.example", "/pkg.Svc/Do")
        .expect("routed");
    let route = out.table.route(id).unwrap();
    assert_eq!(route.kind, crate::table::RouteKind::GrpcRoute);
    assert_eq!(out.table.lookup("grpc.example", "/pkg.Svc/Other"), None);
    let gw = &out.gateway_status.gateways[&crate::config::ObjectKey::new("default", "gw")];
    assert_eq!(gw.listeners[0].attached_routes, 1);
}
