//! GRPCRoute end to end, standalone mode: method (Exact and
//! RegularExpression) and header matching, weights and header filters, to
//! in-test gRPC-style HTTP/2 cleartext backends that answer with the path
//! they saw and their name. Expectations follow upstream's
//! `conformance/tests/grpcroute-exact-method-matching` (its whole matrix),
//! `grpcroute-listener-hostname-matching`, `grpcroute-header-matching`,
//! `grpcroute-weight` and `grpcroute-request-header-modifier` (written
//! anew).

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::gateway::*;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// An h2c backend named `name`: answers every call with `x-backend`,
/// `x-path` and (when sent) `x-seen` = the request's `x-added` header.
async fn grpc_backend(name: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(
                    move |req: http::Request<hyper::body::Incoming>| async move {
                        let seen = req
                            .headers()
                            .get("x-added")
                            .map(|v| v.to_str().unwrap_or("").to_string())
                            .unwrap_or_default();
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .header("grpc-status", "0")
                                .header("x-backend", name)
                                .header("x-path", req.uri().path())
                                .header("x-seen", seen)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(executor())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, task)
}

/// Service `name` (port 8080) whose one endpoint is 127.0.0.1:`port`.
fn grpc_service(name: &str, port: u16) -> Vec<Value> {
    backend(INFRA, name, &[port])
}

fn grpc_route(name: &str, spec: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": yaml(spec),
    })
}

/// One unary-style call over h2c; (backend, path seen, x-seen) or the
/// HTTP status when no backend answered.
async fn call(
    t: &Tollgate,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(String, String, String), u16> {
    let mut client = h2c_connect(t.http_addr()).await.expect("h2c connect");
    let mut r = http::Request::post(format!("http://{host}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = client
        .send_request(
            r.body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
                .unwrap(),
        )
        .await
        .expect("send");
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap_or("").to_string())
    };
    match h("x-backend") {
        Some(b) => Ok((
            b,
            h("x-path").unwrap_or_default(),
            h("x-seen").unwrap_or_default(),
        )),
        None => Err(resp.status().as_u16()),
    }
}

#[tokio::test]
async fn grpc_routes_match_methods_and_headers() {
    let (p1, _b1) = grpc_backend("grpc-v1").await;
    let (p2, _b2) = grpc_backend("grpc-v2").await;
    let (p3, _b3) = grpc_backend("grpc-v3").await;
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "same-namespace",
            "[{name: http, port: 80, protocol: HTTP}]",
        ),
    ];
    docs.extend(grpc_service("grpc-v1", p1));
    docs.extend(grpc_service("grpc-v2", p2));
    docs.extend(grpc_service("grpc-v3", p3));
    docs.push(grpc_route(
        "methods",
        "parentRefs: [{name: same-namespace}]
hostnames: [grpc.example]
rules:
- matches: [{method: {service: echo.Echo, method: Unary}}]
  backendRefs: [{name: grpc-v1, port: 8080}]
- matches: [{method: {service: echo.Echo}}]
  backendRefs: [{name: grpc-v2, port: 8080}]
- matches: [{method: {type: RegularExpression, service: 'other\\..*', method: 'Get.*'}}]
  filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-added, value: yes}]}}]
  backendRefs: [{name: grpc-v3, port: 8080}]
- matches: [{headers: [{name: x-route, value: v3}]}]
  backendRefs: [{name: grpc-v3, port: 8080}]",
    ));
    docs.push(grpc_route(
        "weighted",
        "parentRefs: [{name: same-namespace}]
hostnames: [weighted.example]
rules:
- backendRefs: [{name: grpc-v1, port: 8080, weight: 1}, {name: grpc-v2, port: 8080, weight: 0}]",
    ));
    let t = Tollgate::with_docs(&docs).await;
    let mut f = Failures::default();
    let ok = |b: &str, p: &str, seen: &str| Ok((b.to_string(), p.to_string(), seen.to_string()));
    for (host, path, headers, want) in [
        (
            "grpc.example",
            "/echo.Echo/Unary",
            &[][..],
            ok("grpc-v1", "/echo.Echo/Unary", ""),
        ),
        (
            "grpc.example",
            "/echo.Echo/Stream",
            &[][..],
            ok("grpc-v2", "/echo.Echo/Stream", ""),
        ),
        (
            "grpc.example",
            "/other.Svc/GetThing",
            &[][..],
            ok("grpc-v3", "/other.Svc/GetThing", "yes"),
        ),
        ("grpc.example", "/other.Svc/Put", &[][..], Err(404)),
        (
            "grpc.example",
            "/any.Svc/Any",
            &[("x-route", "v3")][..],
            ok("grpc-v3", "/any.Svc/Any", ""),
        ),
        (
            "weighted.example",
            "/a.B/C",
            &[][..],
            ok("grpc-v1", "/a.B/C", ""),
        ),
    ] {
        let got = call(&t, host, path, headers).await;
        f.check(got == want, || {
            format!("{host}{path} {headers:?}: want {want:?}, got {got:?}")
        });
    }
    f.assert_none();
    let (code, out, err) = check(&t.manifests_dir(), &["--output", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("GRPCRoute gateway-conformance-infra/methods"),
        "{out}"
    );
}

/// httproute-backend-protocol-h2c: a Service port with `appProtocol:
/// kubernetes.io/h2c` is spoken to over HTTP/2 cleartext (the backend here
/// speaks nothing else), whatever the client spoke.
#[tokio::test]
async fn app_protocol_h2c_backend() {
    let (port, _b) = grpc_backend("h2c-only").await;
    let mut docs = vec![
        gateway_class(),
        gateway(INFRA, "same-namespace", "[{name: http, port: 80, protocol: HTTP}]"),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "h2c-only", "namespace": INFRA},
            "spec": {"ports": [{"name": "http", "port": 8080, "appProtocol": "kubernetes.io/h2c"}]},
        }),
        slice(INFRA, "h2c-only", "h2c-only-0", &[("127.0.0.1", true)], &[("http", port)]),
        common::gateway::http_route(
            INFRA,
            "h2c",
            "parentRefs: [{name: same-namespace}]\nhostnames: [h2c.example]\nrules: [{backendRefs: [{name: h2c-only, port: 8080}]}]",
        ),
    ];
    docs.push(common::gateway::http_route(
        INFRA,
        "h1",
        "parentRefs: [{name: same-namespace}]\nhostnames: [h1.example]\nrules: [{backendRefs: [{name: plain, port: 8080}]}]",
    ));
    docs.extend(backend(INFRA, "plain", &[port]));
    let t = Tollgate::with_docs(&docs).await;
    let r = t.get("h2c.example", "/over/h2c").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("x-backend").as_deref(), Some("h2c-only"));
    assert_eq!(r.header("x-path").as_deref(), Some("/over/h2c"));
    // The same backend without the appProtocol is spoken HTTP/1.1 to, which
    // it does not understand.
    let r = t.get("h1.example", "/").await;
    assert_ne!(r.status, 200, "{}", r.summary());
}

/// grpcroute-exact-method-matching (GRPCExactMethodMatching), its whole
/// matrix: `Echo` and `EchoTwo` of the conformance echo service go to
/// their backends; `EchoThree`, matched by no rule, is answered 404, which
/// gRPC clients read as `UNIMPLEMENTED` (gRPC's HTTP-to-status mapping),
/// the code upstream expects.
#[tokio::test]
async fn grpc_exact_method_matching() {
    let (p1, _b1) = grpc_backend("grpc-infra-backend-v1").await;
    let (p2, _b2) = grpc_backend("grpc-infra-backend-v2").await;
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "same-namespace",
            "[{name: http, port: 80, protocol: HTTP}]",
        ),
    ];
    docs.extend(grpc_service("grpc-infra-backend-v1", p1));
    docs.extend(grpc_service("grpc-infra-backend-v2", p2));
    docs.push(grpc_route(
        "exact-matching",
        "parentRefs: [{name: same-namespace}]
rules:
- matches: [{method: {service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: Echo}}]
  backendRefs: [{name: grpc-infra-backend-v1, port: 8080}]
- matches: [{method: {service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: EchoTwo}}]
  backendRefs: [{name: grpc-infra-backend-v2, port: 8080}]",
    ));
    let t = Tollgate::with_docs(&docs).await;
    let service = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";
    let mut f = Failures::default();
    for (method, want) in [
        ("Echo", Ok("grpc-infra-backend-v1")),
        ("EchoTwo", Ok("grpc-infra-backend-v2")),
        ("EchoThree", Err(404)),
    ] {
        let path = format!("{service}/{method}");
        let got = call(&t, "grpc.example", &path, &[]).await;
        let got = got.map(|(backend, seen_path, _)| {
            f.check(seen_path == path, || {
                format!("{path}: backend saw {seen_path}")
            });
            backend
        });
        f.check(got.as_deref().map_err(|e| *e) == want, || {
            format!("{path}: want {want:?}, got {got:?}")
        });
    }
    f.assert_none();
}

/// grpcroute-listener-hostname-matching (GRPCRouteListenerHostnameMatching):
/// four HTTP listeners on one port with different hostnames, GRPCRoutes
/// attached by `sectionName`; the `:authority` picks the listener, the most
/// specific hostname first, and a host no listener has is not served
/// (404, `UNIMPLEMENTED` to a gRPC client).
#[tokio::test]
async fn grpc_listener_hostname_matching() {
    let (p1, _b1) = grpc_backend("grpc-infra-backend-v1").await;
    let (p2, _b2) = grpc_backend("grpc-infra-backend-v2").await;
    let (p3, _b3) = grpc_backend("grpc-infra-backend-v3").await;
    let gw = "grpcroute-listener-hostname-matching";
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            gw,
            "
  - {name: listener-1, port: 80, protocol: HTTP, hostname: bar.com, allowedRoutes: {namespaces: {from: Same}}}
  - {name: listener-2, port: 80, protocol: HTTP, hostname: foo.bar.com, allowedRoutes: {namespaces: {from: Same}}}
  - {name: listener-3, port: 80, protocol: HTTP, hostname: '*.bar.com', allowedRoutes: {namespaces: {from: Same}}}
  - {name: listener-4, port: 80, protocol: HTTP, hostname: '*.foo.com', allowedRoutes: {namespaces: {from: Same}}}",
        ),
    ];
    docs.extend(grpc_service("grpc-infra-backend-v1", p1));
    docs.extend(grpc_service("grpc-infra-backend-v2", p2));
    docs.extend(grpc_service("grpc-infra-backend-v3", p3));
    for (name, sections, backend) in [
        ("backend-v1", &["listener-1"][..], "grpc-infra-backend-v1"),
        ("backend-v2", &["listener-2"][..], "grpc-infra-backend-v2"),
        (
            "backend-v3",
            &["listener-3", "listener-4"][..],
            "grpc-infra-backend-v3",
        ),
    ] {
        let parents: Vec<String> = sections
            .iter()
            .map(|s| format!("{{name: {gw}, namespace: {INFRA}, sectionName: {s}}}"))
            .collect();
        docs.push(grpc_route(
            name,
            &format!(
                "parentRefs: [{}]\nrules: [{{backendRefs: [{{name: {backend}, port: 8080}}]}}]",
                parents.join(", ")
            ),
        ));
    }
    let t = Tollgate::with_docs(&docs).await;
    let path = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo";
    let mut f = Failures::default();
    for (authority, want) in [
        ("bar.com", Ok("grpc-infra-backend-v1")),
        ("foo.bar.com", Ok("grpc-infra-backend-v2")),
        ("baz.bar.com", Ok("grpc-infra-backend-v3")),
        ("boo.bar.com", Ok("grpc-infra-backend-v3")),
        ("multiple.prefixes.bar.com", Ok("grpc-infra-backend-v3")),
        ("multiple.prefixes.foo.com", Ok("grpc-infra-backend-v3")),
        ("foo.com", Err(404)),
        ("no.matching.host", Err(404)),
    ] {
        let got = call(&t, authority, path, &[])
            .await
            .map(|(backend, _, _)| backend);
        f.check(got.as_deref().map_err(|e| *e) == want, || {
            format!("{authority}: want {want:?}, got {got:?}")
        });
    }
    f.assert_none();
}

/// A TrafficPolicy targeting a GRPCRoute (`targetRefs` kind GRPCRoute)
/// applies to it as to an HTTPRoute, over its Gateway's policy: here the
/// Gateway's policy refuses 127.0.0.1, the route's own policy allows it
/// again; another GRPCRoute of the Gateway keeps the Gateway's policy.
#[tokio::test]
async fn a_traffic_policy_targets_a_grpc_route() {
    let (p1, _b1) = grpc_backend("grpc-v1").await;
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "same-namespace",
            "[{name: http, port: 80, protocol: HTTP}]",
        ),
    ];
    docs.extend(grpc_service("grpc-v1", p1));
    for (name, host) in [("opened", "opened.example"), ("closed", "closed.example")] {
        docs.push(grpc_route(
            name,
            &format!(
                "parentRefs: [{{name: same-namespace}}]\nhostnames: [{host}]\nrules: [{{backendRefs: [{{name: grpc-v1, port: 8080}}]}}]"
            ),
        ));
    }
    let policy = |name: &str, kind: &str, target: &str, allow: &str| {
        json!({
            "apiVersion": "tollgate.dev/v1alpha1",
            "kind": "TrafficPolicy",
            "metadata": {"name": name, "namespace": INFRA},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": kind, "name": target}],
                "ipAllow": [allow],
            },
        })
    };
    docs.push(policy(
        "gateway-wide",
        "Gateway",
        "same-namespace",
        "10.0.0.0/8",
    ));
    docs.push(policy("grpc-own", "GRPCRoute", "opened", "127.0.0.0/8"));
    let t = Tollgate::with_docs(&docs).await;
    let got = call(&t, "opened.example", "/a.B/C", &[]).await;
    assert_eq!(got.map(|g| g.0), Ok("grpc-v1".to_string()));
    assert_eq!(call(&t, "closed.example", "/a.B/C", &[]).await, Err(403));
    let (code, out, err) = check(&t.manifests_dir(), &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !format!("{out}{err}").contains("TrafficPolicy gateway-conformance-infra/grpc-own:"),
        "the GRPCRoute policy applies: {out}{err}"
    );
}

/// grpcroute-named-rule (GRPCRouteNamedRule): a rule with a `name` is
/// served like any other.
#[tokio::test]
async fn grpc_named_rule() {
    let (p1, _b1) = grpc_backend("grpc-infra-backend-v1").await;
    let (p2, _b2) = grpc_backend("grpc-infra-backend-v2").await;
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "same-namespace",
            "[{name: http, port: 80, protocol: HTTP}]",
        ),
    ];
    docs.extend(grpc_service("grpc-infra-backend-v1", p1));
    docs.extend(grpc_service("grpc-infra-backend-v2", p2));
    docs.push(grpc_route(
        "grpc-named-rules",
        "parentRefs: [{name: same-namespace}]
rules:
- name: named-rule
  matches: [{method: {service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: Echo}}]
  backendRefs: [{name: grpc-infra-backend-v1, port: 8080}]
- matches: [{method: {service: gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: EchoTwo}}]
  backendRefs: [{name: grpc-infra-backend-v2, port: 8080}]",
    ));
    let t = Tollgate::with_docs(&docs).await;
    let service = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";
    for (method, want) in [
        ("Echo", "grpc-infra-backend-v1"),
        ("EchoTwo", "grpc-infra-backend-v2"),
    ] {
        let got = call(&t, "grpc.example", &format!("{service}/{method}"), &[])
            .await
            .map(|g| g.0);
        assert_eq!(got.as_deref(), Ok(want), "{method}");
    }
}
