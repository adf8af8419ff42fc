//! Gateway API end to end, standalone mode: GatewayClass, Gateway and
//! HTTPRoute manifests loaded by the real binary, requests through real
//! sockets to `tollgate echo` backends. The expectations are those of the
//! upstream conformance suite (`conformance/tests/httproute-*.go` of
//! kubernetes-sigs/gateway-api), written anew for these fixtures; each test
//! names the upstream cases it covers. Filters are in
//! `tests/gateway_filters.rs`.

mod common;

use bytes::Bytes;
use common::gateway::*;
use common::*;
use http_body_util::Full;
use serde_json::Value;

/// Our class, Gateway `same-namespace` (one HTTP listener on 80, routes
/// from its own namespace), the echo backends' Services, and `extra`.
fn infra(echo: &Echo, extra: Vec<Value>) -> Vec<Value> {
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "same-namespace",
            "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}]",
        ),
    ];
    docs.extend(echo.backends(INFRA));
    docs.extend(extra);
    docs
}

async fn infra_echo() -> Echo {
    Echo::services(&["infra-backend-v1", "infra-backend-v2", "infra-backend-v3"]).await
}

/// One request with extra headers; the response.
async fn call(
    t: &Tollgate,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut r = req(method, host, target);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    send(t.http_addr(), r.body(Full::<Bytes>::default()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {host}{target}: {e}"))
}

/// Asserts which backend answers (or, for `None`, the status).
async fn expect(
    f: &mut Failures,
    t: &Tollgate,
    (method, host, target, headers): (&str, &str, &str, &[(&str, &str)]),
    want: Result<&str, u16>,
) {
    let r = call(t, method, host, target, headers).await;
    let got = match r.service() {
        Some(s) if r.status == 200 => Ok(s),
        _ => Err(r.status),
    };
    let want = want.map(str::to_string);
    f.check(got == want, || {
        format!(
            "{method} {host}{target} {headers:?}: want {want:?}, got {}",
            r.summary()
        )
    });
}

const V1: Result<&str, u16> = Ok("infra-backend-v1");
const V2: Result<&str, u16> = Ok("infra-backend-v2");
const V3: Result<&str, u16> = Ok("infra-backend-v3");

/// httproute-simple-same-namespace, httproute-matching,
/// httproute-exact-path-matching, httproute-header-matching,
/// httproute-query-param-matching, httproute-method-matching,
/// httproute-path-match-order, httproute-matching-across-routes.
#[tokio::test]
async fn matching_and_precedence() {
    let echo = infra_echo().await;
    let matching = http_route(
        INFRA,
        "matching",
        "parentRefs: [{name: same-namespace}]
rules:
- matches: [{path: {type: PathPrefix, value: /}}]
  backendRefs: [{name: infra-backend-v1, port: 8080}]
- matches: [{path: {type: PathPrefix, value: /v2}}]
  backendRefs: [{name: infra-backend-v2, port: 8080}]
- matches: [{path: {type: Exact, value: /exact}}]
  backendRefs: [{name: infra-backend-v3, port: 8080}]
- matches: [{headers: [{name: version, value: two}]}]
  backendRefs: [{name: infra-backend-v2, port: 8080}]
- matches: [{path: {value: /q}, queryParams: [{name: animal, value: whale}]}]
  backendRefs: [{name: infra-backend-v3, port: 8080}]
- matches: [{path: {value: /m}, method: POST}]
  backendRefs: [{name: infra-backend-v2, port: 8080}]
- matches: [{path: {value: /re}, headers: [{type: RegularExpression, name: x-ver, value: 'v[0-9]+'}]}]
  backendRefs: [{name: infra-backend-v3, port: 8080}]
- matches: [{path: {type: RegularExpression, value: '/regex/[0-9]+'}}]
  backendRefs: [{name: infra-backend-v2, port: 8080}]
- matches:
  - {path: {value: /order}, headers: [{name: a, value: '1'}]}
  - {path: {value: /order}, headers: [{name: a, value: '1'}, {name: b, value: '2'}]}
  backendRefs: [{name: infra-backend-v1, port: 8080}]
- matches: [{path: {value: /order}, headers: [{name: a, value: '1'}, {name: b, value: '2'}, {name: c, value: '3'}]}]
  backendRefs: [{name: infra-backend-v3, port: 8080}]",
    );
    let part1 = http_route(
        INFRA,
        "matching-part1",
        "parentRefs: [{name: same-namespace}]
hostnames: [example.com, example.net]
rules:
- matches: [{path: {type: PathPrefix, value: /}}, {headers: [{name: version, value: one}]}]
  backendRefs: [{name: infra-backend-v1, port: 8080}]",
    );
    let part2 = http_route(
        INFRA,
        "matching-part2",
        "parentRefs: [{name: same-namespace}]
hostnames: [example.com]
rules:
- matches: [{path: {type: PathPrefix, value: /v2}}, {headers: [{name: version, value: two}]}]
  backendRefs: [{name: infra-backend-v2, port: 8080}]",
    );
    let t = Tollgate::with_docs(&infra(&echo, vec![matching, part1, part2])).await;
    let mut f = Failures::default();
    let h = "any.example";
    let none: &[(&str, &str)] = &[];
    for (case, want) in [
        (("GET", h, "/", none), V1),
        (("GET", h, "/v2", none), V2),
        (("GET", h, "/v2/example", none), V2),
        (("GET", h, "/v2example", none), V1),
        (("GET", h, "/exact", none), V3),
        (("GET", h, "/exact/x", none), V1),
        (("GET", h, "/", &[("version", "two")][..]), V2),
        (("GET", h, "/q?animal=whale", none), V3),
        (("GET", h, "/q?animal=dolphin", none), V1),
        (("POST", h, "/m", none), V2),
        (("GET", h, "/m", none), V1),
        (("GET", h, "/re", &[("x-ver", "v12")][..]), V3),
        (("GET", h, "/re", &[("x-ver", "vx")][..]), V1),
        (("GET", h, "/regex/123", none), V2),
        (("GET", h, "/regex/abc", none), V1),
        // Most header matches win.
        (("GET", h, "/order", &[("a", "1")][..]), V1),
        (
            (
                "GET",
                h,
                "/order",
                &[("a", "1"), ("b", "2"), ("c", "3")][..],
            ),
            V3,
        ),
        // Across routes (matching-part1/2).
        (("GET", "example.com", "/", none), V1),
        (("GET", "example.com", "/example", none), V1),
        (("GET", "example.net", "/example", none), V1),
        (
            ("GET", "example.com", "/example", &[("version", "one")][..]),
            V1,
        ),
        (("GET", "example.com", "/v2", none), V2),
        (("GET", "example.net", "/v2", none), V1),
        (("GET", "example.com", "/v2/example", none), V2),
        (("GET", "example.com", "/", &[("version", "two")][..]), V2),
    ] {
        expect(&mut f, &t, case, want).await;
    }
    f.assert_none();
}

/// httproute-hostname-intersection, httproute-listener-hostname-matching,
/// httproute-listener-port-matching,
/// httproute-invalid-parentref-not-matching-section-name,
/// httproute-invalid-parentref-not-matching-listener-port.
#[tokio::test]
async fn hostnames_sections_and_ports() {
    let echo = infra_echo().await;
    let gw = gateway(
        INFRA,
        "multi",
        "[{name: specific, port: 80, protocol: HTTP, hostname: very.specific.com},
  {name: wild, port: 80, protocol: HTTP, hostname: '*.wildcard.io'},
  {name: alt, port: 8080, protocol: HTTP, hostname: alt.example},
  {name: other, port: 80, protocol: HTTP, hostname: other.example}]",
    );
    let route = |name: &str, spec: &str, svc: &str| {
        http_route(
            INFRA,
            name,
            &format!("{spec}\nrules: [{{backendRefs: [{{name: {svc}, port: 8080}}]}}]"),
        )
    };
    let docs = infra(
        &echo,
        vec![
            gw,
            route(
                "specific",
                "parentRefs: [{name: multi}]\nhostnames: [non.matching.com, '*.specific.com']",
                "infra-backend-v1",
            ),
            route(
                "wild",
                "parentRefs: [{name: multi}]\nhostnames: [foo.wildcard.io, bar.nonwildcard.io]",
                "infra-backend-v2",
            ),
            route(
                "by-port",
                "parentRefs: [{name: multi, port: 8080}]",
                "infra-backend-v3",
            ),
            route(
                "by-section",
                "parentRefs: [{name: multi, sectionName: other}]",
                "infra-backend-v1",
            ),
            route(
                "no-section",
                "parentRefs: [{name: multi, sectionName: missing}]\nhostnames: [nosection.example]",
                "infra-backend-v1",
            ),
            route(
                "no-port",
                "parentRefs: [{name: multi, port: 9999}]\nhostnames: [noport.example]",
                "infra-backend-v1",
            ),
        ],
    );
    let t = Tollgate::with_docs(&docs).await;
    let mut f = Failures::default();
    let none: &[(&str, &str)] = &[];
    for (host, want) in [
        ("very.specific.com", V1),
        ("non.matching.com", Err(404)),
        ("foo.wildcard.io", V2),
        ("bar.nonwildcard.io", Err(404)),
        ("alt.example", V3),
        ("other.example", V1),
        ("nosection.example", Err(404)),
        ("noport.example", Err(404)),
        ("unknown.example", Err(404)),
    ] {
        expect(&mut f, &t, ("GET", host, "/", none), want).await;
    }
    f.assert_none();
}

/// httproute-cross-namespace (allowedRoutes All and Selector),
/// httproute-invalid-cross-namespace-parent-ref, httproute-reference-grant,
/// httproute-invalid-cross-namespace-backend-ref,
/// httproute-invalid-nonexistent-backendref,
/// httproute-invalid-backendref-unknown-kind, httproute-omitted-backendrefs,
/// httproute-partially-invalid-via-invalid-reference-grant,
/// httproute-disallowed-kind.
#[tokio::test]
async fn namespaces_grants_and_invalid_references() {
    let echo = Echo::services(&["infra-backend-v1", "web-backend", "app-backend"]).await;
    let mut extra = vec![
        namespace(APP_BACKEND, &[("gateway-conformance", "backend")]),
        namespace(WEB_BACKEND, &[]),
        gateway(
            INFRA,
            "all-namespaces",
            "[{name: http, port: 80, protocol: HTTP, hostname: all.example, allowedRoutes: {namespaces: {from: All}}}]",
        ),
        gateway(
            INFRA,
            "backend-namespaces",
            "[{name: http, port: 80, protocol: HTTP, hostname: selected.example, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {gateway-conformance: backend}}}}}]",
        ),
        gateway(
            INFRA,
            "grpc-only",
            "[{name: http, port: 80, protocol: HTTP, hostname: kinds.example, allowedRoutes: {kinds: [{kind: GRPCRoute}]}}]",
        ),
    ];
    extra.extend(echo.backends(WEB_BACKEND));
    extra.extend(echo.backends(APP_BACKEND));
    let route = |ns: &str, name: &str, parent: &str, host: &str, backends: &str| {
        http_route(
            ns,
            name,
            &format!(
                "parentRefs: [{parent}]\nhostnames: [{host}]\nrules: [{{backendRefs: {backends}}}]"
            ),
        )
    };
    let all = "{name: all-namespaces, namespace: gateway-conformance-infra}";
    let selected = "{name: backend-namespaces, namespace: gateway-conformance-infra}";
    let same = "{name: same-namespace, namespace: gateway-conformance-infra}";
    extra.extend([
        route(WEB_BACKEND, "web", all, "all.example", "[{name: web-backend, port: 8080}]"),
        route(APP_BACKEND, "app", selected, "selected.example", "[{name: app-backend, port: 8080}]"),
        route(WEB_BACKEND, "not-selected", selected, "notselected.example", "[{name: web-backend, port: 8080}]"),
        route(WEB_BACKEND, "not-same", same, "notsame.example", "[{name: web-backend, port: 8080}]"),
        route(INFRA, "kinds", "{name: grpc-only}", "kinds.example", "[{name: infra-backend-v1, port: 8080}]"),
        route(
            INFRA,
            "cross-denied",
            "{name: same-namespace}",
            "crossdenied.example",
            "[{name: web-backend, namespace: gateway-conformance-web-backend, port: 8080}]",
        ),
        route(
            INFRA,
            "cross-granted",
            "{name: same-namespace}",
            "crossgranted.example",
            "[{name: app-backend, namespace: gateway-conformance-app-backend, port: 8080}]",
        ),
        route(INFRA, "nonexistent", "{name: same-namespace}", "nonexistent.example", "[{name: nothere, port: 8080}]"),
        route(
            INFRA,
            "unknown-kind",
            "{name: same-namespace}",
            "unknownkind.example",
            "[{group: unknown.example.com, kind: Bucket, name: b, port: 8080}]",
        ),
        route(
            INFRA,
            "partial",
            "{name: same-namespace}",
            "partial.example",
            "[{name: infra-backend-v1, port: 8080}, {name: web-backend, namespace: gateway-conformance-web-backend, port: 8080}]",
        ),
        http_route(
            INFRA,
            "omitted",
            "parentRefs: [{name: same-namespace}]\nhostnames: [omitted.example]\nrules: [{matches: [{path: {value: /}}]}]",
        ),
        service_grant(APP_BACKEND, "grant", INFRA, Some("app-backend")),
    ]);
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;
    let mut f = Failures::default();
    let none: &[(&str, &str)] = &[];
    for (host, want) in [
        ("all.example", Ok("web-backend")),
        ("selected.example", Ok("app-backend")),
        ("notselected.example", Err(404)),
        ("notsame.example", Err(404)),
        ("kinds.example", Err(404)),
        ("crossdenied.example", Err(500)),
        ("crossgranted.example", Ok("app-backend")),
        ("nonexistent.example", Err(500)),
        ("unknownkind.example", Err(500)),
        ("omitted.example", Err(500)),
    ] {
        expect(&mut f, &t, ("GET", host, "/", none), want).await;
    }
    // Partially invalid: the invalid half of the weight answers 500.
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..40 {
        match call(&t, "GET", "partial.example", "/", none).await.status {
            200 => ok += 1,
            500 => failed += 1,
            s => f.push(format!("partial.example: unexpected status {s}")),
        }
    }
    f.check(ok > 0 && failed > 0, || {
        format!("partial.example: want both 200 and 500, got {ok} and {failed}")
    });
    f.assert_none();
}

/// httproute-weight: 70/30/0 over three backends.
#[tokio::test]
async fn weights_split_traffic() {
    let echo = infra_echo().await;
    let route = http_route(
        INFRA,
        "weighted",
        "parentRefs: [{name: same-namespace}]
rules:
- backendRefs:
  - {name: infra-backend-v1, port: 8080, weight: 70}
  - {name: infra-backend-v2, port: 8080, weight: 30}
  - {name: infra-backend-v3, port: 8080, weight: 0}",
    );
    let t = Tollgate::with_docs(&infra(&echo, vec![route])).await;
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..200 {
        let r = t.get("weight.example", "/").await;
        assert_eq!(r.status, 200, "{}", r.summary());
        *counts.entry(r.echo().service()).or_default() += 1;
    }
    let v1 = counts.get("infra-backend-v1").copied().unwrap_or(0);
    let v2 = counts.get("infra-backend-v2").copied().unwrap_or(0);
    assert!(!counts.contains_key("infra-backend-v3"), "{counts:?}");
    assert!((110..=170).contains(&v1) && v1 + v2 == 200, "{counts:?}");
}

/// Ingress and HTTPRoute on one host: the Ingress keeps its paths, the
/// HTTPRoute serves the others; `tollgate check` names both sources.
#[tokio::test]
async fn ingress_and_httproute_share_a_host() {
    let echo = infra_echo().await;
    let extra = vec![
        ingress_class("tollgate", false),
        ingress(
            INFRA,
            "ing",
            "ingressClassName: tollgate
rules:
- host: shared.example
  http:
    paths:
    - {path: /ingress, pathType: Prefix, backend: {service: {name: infra-backend-v1, port: {number: 8080}}}}",
        ),
        http_route(
            INFRA,
            "route",
            "parentRefs: [{name: same-namespace}]
hostnames: [shared.example]
rules:
- matches: [{path: {value: /route}}]
  backendRefs: [{name: infra-backend-v2, port: 8080}]
- matches: [{path: {value: /ingress}}]
  backendRefs: [{name: infra-backend-v3, port: 8080}]",
        ),
    ];
    let docs = infra(&echo, extra);
    let t = Tollgate::with_docs(&docs).await;
    let mut f = Failures::default();
    let none: &[(&str, &str)] = &[];
    expect(
        &mut f,
        &t,
        ("GET", "shared.example", "/ingress/a", none),
        V1,
    )
    .await;
    expect(&mut f, &t, ("GET", "shared.example", "/route/a", none), V2).await;
    f.assert_none();
    let (code, out, err) = check(&t.manifests_dir(), &["--output", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let sources: Vec<&str> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["source"].as_str())
        .collect();
    assert!(
        sources.contains(&"Ingress gateway-conformance-infra/ing"),
        "{sources:?}"
    );
    assert!(
        sources.contains(&"HTTPRoute gateway-conformance-infra/route"),
        "{sources:?}"
    );
    let shadowed = report["diagnostics"].as_array().unwrap().iter().any(|d| {
        d["kind"] == "HTTPRoute" && d["reason"].as_str().unwrap_or("").contains("Ingress")
    });
    assert!(shadowed, "{out}");
}

/// `tollgate check` reports the conditions kube mode would write, with
/// their reasons, in text and JSON; a route that is not accepted rejects.
#[tokio::test]
async fn check_reports_conditions() {
    let dir = TempDir::new("gw-check");
    let docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "gw",
            "[{name: http, port: 80, protocol: HTTP}, {name: tcp, port: 9000, protocol: TCP}]",
        ),
        http_route(
            INFRA,
            "good",
            "parentRefs: [{name: gw, sectionName: http}]\nrules: [{backendRefs: [{name: missing, port: 8080}]}]",
        ),
        http_route(
            INFRA,
            "lost",
            "parentRefs: [{name: gw, sectionName: nope}]\nrules: [{backendRefs: [{name: missing, port: 8080}]}]",
        ),
    ];
    dir.write("gw.yaml", &yaml_docs(&docs));
    let (code, out, err) = check(dir.path(), &["--output", "json"]).await;
    assert_eq!(code, 1, "a route that is not accepted rejects: {out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let conditions = report["conditions"].as_array().unwrap();
    let find = |kind: &str, name: &str, scope: &str, type_: &str| {
        conditions
            .iter()
            .find(|c| {
                c["kind"] == kind
                    && c["name"] == name
                    && c["type"] == type_
                    && c["scope"].as_str().unwrap_or("").starts_with(scope)
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name} {scope} {type_} in {out}"))
    };
    assert_eq!(
        find("GatewayClass", "tollgate", "", "Accepted")["status"],
        "True"
    );
    assert_eq!(find("Gateway", "gw", "", "Programmed")["status"], "True");
    assert_eq!(
        find("Gateway", "gw", "listener tcp", "Accepted")["reason"],
        "UnsupportedProtocol"
    );
    assert_eq!(
        find("HTTPRoute", "good", "parent", "Accepted")["status"],
        "True"
    );
    let refs = find("HTTPRoute", "good", "parent", "ResolvedRefs");
    assert_eq!(refs["reason"], "BackendNotFound");
    assert!(
        refs["message"].as_str().unwrap().contains("missing"),
        "{refs}"
    );
    assert!(refs["observedGeneration"].is_null() || refs["observedGeneration"].is_number());
    assert_eq!(
        find("HTTPRoute", "lost", "parent", "Accepted")["reason"],
        "NoMatchingParent"
    );
    let http = report["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["gateway"] == "gw" && l["name"] == "http")
        .cloned()
        .unwrap_or_else(|| panic!("no listener http in {out}"));
    assert_eq!(http["attachedRoutes"], 1, "{http}");
    assert_eq!(
        http["supportedKinds"],
        serde_json::json!(["HTTPRoute", "GRPCRoute"])
    );
    let (code, text, _) = check(dir.path(), &[]).await;
    assert_eq!(code, 1);
    assert!(text.contains("HTTPRoute gateway-conformance-infra/lost parent gateway-conformance-infra/gw/nope: Accepted=False NoMatchingParent"), "{text}");
    assert!(
        text.contains("Gateway gateway-conformance-infra/gw listener http: attachedRoutes=1"),
        "{text}"
    );
    assert!(
        text.contains("HTTPRoute gateway-conformance-infra/good"),
        "{text}"
    );
}

/// `examples/gateway-api`: its manifests load and answer as its README
/// shows (the EndpointSlices' ports moved to this test's echo backends).
#[tokio::test]
async fn the_example_serves_as_documented() {
    let echo = Echo::services(&["store-v1", "store-v2"]).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway-api");
    let mut builder = Tollgate::builder();
    for name in [
        "gateway-class.yaml",
        "gateway.yaml",
        "backends.yaml",
        "route.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap()
            .replace("9601", &echo.port("store-v1").to_string())
            .replace("9602", &echo.port("store-v2").to_string());
        builder = builder.file(name, &text);
    }
    let t = builder.start().await;
    let host = "store.example.com";
    let r = t.get(host, "/cart").await;
    assert_eq!(r.service().as_deref(), Some("store-v1"), "{}", r.summary());
    let r = call(&t, "GET", host, "/cart", &[("env", "canary")]).await;
    assert_eq!(r.service().as_deref(), Some("store-v2"), "{}", r.summary());
    let e = t.get(host, "/v2/cart").await.echo();
    assert_eq!((e.service(), e.path()), ("store-v2".into(), "/cart".into()));
    assert_eq!(e.header("x-gateway").as_deref(), Some("tollgate"));
    let r = t.get(host, "/old/cart").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://store.example.com/new/cart")
    );
    let (code, out, err) = check(&dir, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("HTTPRoute gateway-demo/store") && out.contains("no diagnostics"),
        "{out}"
    );
}

/// Route changes apply without a restart: a new HTTPRoute file is served,
/// an edit moves traffic, a removal answers 404 again (the route
/// propagation the upstream suite waits for after every apply).
#[tokio::test]
async fn route_changes_apply_live() {
    let echo = infra_echo().await;
    let t = Tollgate::builder()
        .file("infra.yaml", &yaml_docs(&infra(&echo, vec![])))
        .start()
        .await;
    let route = |svc: &str| {
        yaml_docs(&[http_route(
            INFRA,
            "live",
            &format!(
                "parentRefs: [{{name: same-namespace}}]\nhostnames: [live.example]\nrules: [{{backendRefs: [{{name: {svc}, port: 8080}}]}}]"
            ),
        )])
    };
    assert_eq!(t.get("live.example", "/").await.status, 404);
    t.write("route.yaml", &route("infra-backend-v1"));
    let r = t
        .eventually("live.example", "/", |r| {
            r.service().as_deref() == Some("infra-backend-v1")
        })
        .await;
    assert_eq!(
        r.service().as_deref(),
        Some("infra-backend-v1"),
        "{}",
        r.summary()
    );
    t.write("route.yaml", &route("infra-backend-v2"));
    let r = t
        .eventually("live.example", "/", |r| {
            r.service().as_deref() == Some("infra-backend-v2")
        })
        .await;
    assert_eq!(
        r.service().as_deref(),
        Some("infra-backend-v2"),
        "{}",
        r.summary()
    );
    t.remove("route.yaml");
    let r = t.eventually("live.example", "/", |r| r.status == 404).await;
    assert_eq!(r.status, 404, "{}", r.summary());
}

/// httproute-service-types (HTTPRouteServiceTypes): one route to a
/// Service whose EndpointSlices were written by hand, a headless Service
/// (`clusterIP: None`) with a selector (its slices written as the
/// EndpointSlice controller does) and a headless Service with hand-written
/// slices; the Service port (8080) differs from the target port, and the
/// IPv6 slices stay empty, as upstream leaves them on an IPv4 cluster. An
/// ExternalName Service is refused (the spec: implementations SHOULD NOT
/// forward to them): `ResolvedRefs: False, InvalidKind`, its share 500.
#[tokio::test]
async fn service_types() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let port = echo.port("infra-backend-v1");
    let service = |name: &str, headless: bool| {
        let mut s = yaml(&format!(
            "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {INFRA}}}
spec:
  ports: [{{name: first-port, protocol: TCP, port: 8080, targetPort: 3000}}]"
        ));
        if headless {
            s["spec"]["clusterIP"] = "None".into();
        }
        s
    };
    let slice = |service: &str, name: &str, family: &str, addresses: &[&str]| {
        let endpoints: Vec<Value> = addresses
            .iter()
            .map(|a| {
                serde_json::json!({
                    "addresses": [a],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                    "targetRef": {"kind": "Pod", "name": "infra-backend-v1-0", "namespace": INFRA},
                })
            })
            .collect();
        serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": INFRA,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": family,
            "ports": [{"name": "first-port", "port": port, "protocol": "TCP"}],
            "endpoints": endpoints,
        })
    };
    let mut headless = service("headless", true);
    headless["spec"]["selector"] = serde_json::json!({"app": "infra-backend-v1"});
    let extra = vec![
        http_route(
            INFRA,
            "service-types",
            "parentRefs: [{name: same-namespace}]
rules:
- matches: [{path: {type: Exact, value: /manual-endpointslices}}]
  backendRefs: [{name: manual-endpointslices, port: 8080}]
- matches: [{path: {type: Exact, value: /headless}}]
  backendRefs: [{name: headless, port: 8080}]
- matches: [{path: {type: Exact, value: /headless-manual-endpointslices}}]
  backendRefs: [{name: headless-manual-endpointslices, port: 8080}]
- matches: [{path: {type: Exact, value: /external-name}}]
  backendRefs: [{name: external-name, port: 8080}]",
        ),
        service("manual-endpointslices", false),
        slice(
            "manual-endpointslices",
            "manual-endpointslices-ip4",
            "IPv4",
            &["127.0.0.1"],
        ),
        slice(
            "manual-endpointslices",
            "manual-endpointslices-ip6",
            "IPv6",
            &[],
        ),
        headless,
        slice("headless", "headless-7xk2p", "IPv4", &["127.0.0.1"]),
        service("headless-manual-endpointslices", true),
        slice(
            "headless-manual-endpointslices",
            "headless-manual-endpointslices-ip4",
            "IPv4",
            &["127.0.0.1"],
        ),
        slice(
            "headless-manual-endpointslices",
            "headless-manual-endpointslices-ip6",
            "IPv6",
            &[],
        ),
        yaml(&format!(
            "apiVersion: v1
kind: Service
metadata: {{name: external-name, namespace: {INFRA}}}
spec: {{type: ExternalName, externalName: localhost, ports: [{{name: http, port: 8080}}]}}"
        )),
    ];
    let docs = infra(&echo, extra);
    let t = Tollgate::with_docs(&docs).await;
    for path in [
        "/manual-endpointslices",
        "/headless",
        "/headless-manual-endpointslices",
    ] {
        let r = t.get("service-types.example", path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.summary());
        assert_eq!(r.service().as_deref(), Some("infra-backend-v1"), "{path}");
        assert_eq!(r.echo().path(), path);
    }
    let r = t.get("service-types.example", "/external-name").await;
    assert_eq!(r.status, 500, "{}", r.summary());
    let (_, out, err) = check(&t.manifests_dir(), &["--output", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let refs = report["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "service-types" && c["type"] == "ResolvedRefs")
        .cloned()
        .unwrap_or_else(|| panic!("no ResolvedRefs in {out}"));
    assert_eq!(refs["status"], "False", "{refs}");
    assert_eq!(refs["reason"], "InvalidKind", "{refs}");
    assert!(
        refs["message"]
            .as_str()
            .unwrap_or("")
            .contains("ExternalName"),
        "{refs}"
    );
}

/// gateway-invalid-route-kind (GatewayInvalidRouteKind), through `tollgate
/// check` and `run`: a listener whose `allowedRoutes.kinds` names only a
/// kind tollgate does not serve has `ResolvedRefs: False,
/// InvalidRouteKinds`, no supported kinds and no attached routes; one
/// naming HTTPRoute too keeps HTTPRoute in its supported kinds. An
/// HTTPRoute naming the first Gateway is not served.
#[tokio::test]
async fn gateway_invalid_route_kind() {
    let echo = infra_echo().await;
    let gateway = |name: &str, kinds: &str| {
        yaml(&format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
  namespace: {INFRA}
  annotations: {{gateway-api/skip-this-for-readiness: 'true'}}
spec:
  gatewayClassName: tollgate
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces: {{from: All}}
      kinds: {kinds}"
        ))
    };
    let extra = vec![
        gateway("gateway-only-invalid-route-kind", "[{kind: InvalidRoute}]"),
        gateway(
            "gateway-supported-and-invalid-route-kind",
            "[{kind: InvalidRoute}, {kind: HTTPRoute}]",
        ),
        http_route(
            INFRA,
            "to-invalid-kinds",
            "parentRefs: [{name: gateway-only-invalid-route-kind}]
hostnames: [invalid-kinds.example]
rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]",
        ),
    ];
    let docs = infra(&echo, extra);
    let dir = TempDir::new("gw-kinds");
    dir.write("gw.yaml", &yaml_docs(&docs));
    let (_, out, err) = check(dir.path(), &["--output", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let listener = |gw: &str| {
        report["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["gateway"] == gw && l["name"] == "http")
            .cloned()
            .unwrap_or_else(|| panic!("no listener of {gw} in {out}"))
    };
    let resolved = |gw: &str| {
        report["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["kind"] == "Gateway"
                    && c["name"] == gw
                    && c["scope"] == "listener http"
                    && c["type"] == "ResolvedRefs"
            })
            .cloned()
            .unwrap_or_else(|| panic!("no listener ResolvedRefs of {gw} in {out}"))
    };
    for (gw, kinds) in [
        ("gateway-only-invalid-route-kind", serde_json::json!([])),
        (
            "gateway-supported-and-invalid-route-kind",
            serde_json::json!(["HTTPRoute"]),
        ),
    ] {
        let l = listener(gw);
        assert_eq!(l["supportedKinds"], kinds, "{gw}: {l}");
        assert_eq!(l["attachedRoutes"], 0, "{gw}: {l}");
        let c = resolved(gw);
        assert_eq!(c["status"], "False", "{gw}: {c}");
        assert_eq!(c["reason"], "InvalidRouteKinds", "{gw}: {c}");
    }
    let t = Tollgate::with_docs(&docs).await;
    assert_eq!(t.get("invalid-kinds.example", "/").await.status, 404);
}

/// httproute-invalid-reference-grant (HTTPRouteInvalidReferenceGrant):
/// ReferenceGrants that are each wrong in one way (namespace, from group,
/// from kind, from namespace, to group, to kind, to name) permit nothing:
/// `ResolvedRefs: False, RefNotPermitted`, and the route answers 500.
/// httproute-invalid-parentref-section-name-not-matching-port: a parentRef
/// whose sectionName names a listener on another port than its `port` is
/// `NoMatchingParent`, and the Gateway has no attached route.
#[tokio::test]
async fn invalid_reference_grants_and_section_name_not_matching_port() {
    let echo = Echo::services(&["infra-backend-v1", "web-backend"]).await;
    let grant = |ns: &str, name: &str, from: (&str, &str, &str), to: (&str, &str, &str)| {
        serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "ReferenceGrant",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "from": [{"group": from.0, "kind": from.1, "namespace": from.2}],
                "to": [{"group": to.0, "kind": to.1, "name": to.2}],
            },
        })
    };
    let gw = "gateway.networking.k8s.io";
    let route_from = (gw, "HTTPRoute", INFRA);
    let web = ("", "Service", "web-backend");
    let mut extra = vec![
        namespace(WEB_BACKEND, &[]),
        grant(INFRA, "reference-grant-wrong-namespace", route_from, web),
        grant(
            WEB_BACKEND,
            "reference-grant-wrong-from-group",
            ("not-the-group-youre-looking-for", "HTTPRoute", INFRA),
            web,
        ),
        grant(
            WEB_BACKEND,
            "reference-grant-wrong-from-kind",
            (gw, "Gateway", INFRA),
            web,
        ),
        grant(
            WEB_BACKEND,
            "reference-grant-wrong-from-namespace",
            (gw, "HTTPRoute", "not-the-namespace-youre-looking-for"),
            web,
        ),
        grant(
            WEB_BACKEND,
            "reference-grant-wrong-to-group",
            route_from,
            ("not-the-group-youre-looking-for", "Service", "web-backend"),
        ),
        grant(
            WEB_BACKEND,
            "reference-grant-wrong-to-kind",
            route_from,
            ("", "Secret", "web-backend"),
        ),
        grant(
            WEB_BACKEND,
            "reference-grant-wrong-to-name",
            route_from,
            ("", "Secret", "not-the-service-youre-looking-for"),
        ),
        http_route(
            INFRA,
            "reference-grant",
            &format!(
                "parentRefs: [{{name: same-namespace}}]\nhostnames: [grant.example]\nrules: [{{backendRefs: [{{name: web-backend, namespace: {WEB_BACKEND}, port: 8080}}]}}]"
            ),
        ),
        gateway(
            INFRA,
            "gateway-with-one-not-matching-port-and-section-name-route",
            "[{name: http, port: 80, protocol: HTTP, hostname: port.example, allowedRoutes: {kinds: [{kind: HTTPRoute}], namespaces: {from: All}}}]",
        ),
        http_route(
            INFRA,
            "httproute-listener-section-name-not-matching-port",
            &format!(
                "parentRefs: [{{name: gateway-with-one-not-matching-port-and-section-name-route, namespace: {INFRA}, sectionName: http, port: 81}}]\nrules: [{{backendRefs: [{{name: infra-backend-v1, kind: Service, port: 8080}}]}}]"
            ),
        ),
    ];
    extra.extend(echo.backends(WEB_BACKEND));
    let docs = infra(&echo, extra);
    let t = Tollgate::with_docs(&docs).await;
    let r = t.get("grant.example", "/").await;
    assert_eq!(r.status, 500, "{}", r.summary());
    assert_eq!(t.get("port.example", "/").await.status, 404);
    let (_, out, err) = check(&t.manifests_dir(), &["--output", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let condition = |name: &str, type_: &str| {
        report["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "HTTPRoute" && c["name"] == name && c["type"] == type_)
            .cloned()
            .unwrap_or_else(|| panic!("no {type_} of {name} in {out}"))
    };
    let refs = condition("reference-grant", "ResolvedRefs");
    assert_eq!(
        (refs["status"].as_str(), refs["reason"].as_str()),
        (Some("False"), Some("RefNotPermitted")),
        "{refs}"
    );
    let accepted = condition(
        "httproute-listener-section-name-not-matching-port",
        "Accepted",
    );
    assert_eq!(
        (accepted["status"].as_str(), accepted["reason"].as_str()),
        (Some("False"), Some("NoMatchingParent")),
        "{accepted}"
    );
    let listener = report["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["gateway"] == "gateway-with-one-not-matching-port-and-section-name-route")
        .cloned()
        .unwrap_or_else(|| panic!("no listener in {out}"));
    assert_eq!(listener["attachedRoutes"], 0, "{listener}");
}
