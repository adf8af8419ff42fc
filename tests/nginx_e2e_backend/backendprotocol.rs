//! Ported from ingress-nginx `test/e2e/annotations/backendprotocol.go`
//! (`DescribeAnnotation("backend-protocol")`). The Go cases check the
//! `proxy_pass` / `grpc_pass` / `fastcgi_pass` line; the ports check that
//! the backend is spoken to that way (a backend speaking only that
//! protocol answers), or, for the values tollgate does not implement,
//! what it does instead.

use crate::common::*;
use crate::*;

const HOST: &str = "backendprotocol.foo.com";

/// One Ingress to a TLS backend (HTTP/1.1 inside TLS) with
/// `backend-protocol: value`; the backend saw HTTP/1.1 inside TLS.
async fn https_backend_case(value: &str) {
    let ca = TestCa::new("backend CA");
    let b = TlsBackend::start(&ca.leaf("backend", &["backend.test"]), false).await;
    let mut docs = service_at("echo", b.port);
    docs.push(single(
        HOST,
        "/",
        HOST,
        "echo",
        8080,
        &[("backend-protocol", value)],
    ));
    let tg = start(&docs, &[]).await;
    let r = tg.get(HOST, "/").await;
    assert_eq!(r.status, 200, "via a TLS-only backend: {}", r.summary());
    let v = json_of(&r);
    assert_eq!(v["version"], "HTTP/1.1", "{v}");
    assert_eq!(v["host"], HOST, "{v}");
    assert!(
        b.connections() > 0 && !b.snis().is_empty(),
        "no TLS handshake"
    );
}

/// Go: "should set backend protocol to https:// and use proxy_pass".
/// Instead of `proxy_pass https://upstream_balancer;`: a backend that only
/// speaks TLS answers, over HTTP/1.1 inside TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_backend_protocol_to_https_and_use_proxy_pass() {
    https_backend_case("HTTPS").await;
}

/// Go: "should set backend protocol to https:// and use proxy_pass with
/// lowercase annotation". As above with `https`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_backend_protocol_to_https_and_use_proxy_pass_with_lowercase_annotation() {
    https_backend_case("https").await;
}

/// Go: "should set backend protocol to $scheme:// and use proxy_pass".
/// Instead of `proxy_pass $scheme://upstream_balancer;`: with `AUTO_HTTP`
/// the backend (which speaks both on one port) gets a request that came
/// over HTTP in cleartext and one that came over HTTPS inside TLS, on
/// connections of its own (a pooled cleartext connection never carries
/// an HTTPS client's request), and `tollgate check` reports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_backend_protocol_to_scheme_and_use_proxy_pass() {
    let ca = TestCa::new("ingress CA");
    let b = DualBackend::start(&ca.leaf("backend", &["backend.test"])).await;
    let mut docs = service_at("echo", b.port);
    docs.push(single_tls(
        HOST,
        "/",
        HOST,
        "echo",
        8080,
        HOST,
        &[("backend-protocol", "AUTO_HTTP"), ("ssl-redirect", "false")],
    ));
    docs.push(host_secret(&ca, HOST, HOST));

    let (code, out) = check_docs(&docs).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.lines()
            .any(|l| l.contains("backend-protocol")
                && (l.contains("warning") || l.contains("rejected"))),
        "no diagnostic:\n{out}"
    );

    let tg = start(&docs, &[]).await;
    for round in 0..2 {
        let r = tg.get(HOST, "/").await;
        assert_eq!(r.status, 200, "HTTP client: {}", r.summary());
        assert_eq!(json_of(&r)["tls"], false, "round {round}: HTTP client");
        let (r, _) = https_get(tg.https_addr(), Some(HOST), HOST, "/")
            .await
            .expect("HTTPS client");
        assert_eq!(r.status, 200, "HTTPS client: {}", r.summary());
        let v = json_of(&r);
        assert_eq!(v["tls"], true, "round {round}: HTTPS client");
        assert_eq!(v["host"], HOST, "{v}");
    }
}

/// Go: "should set backend protocol to grpc:// and use grpc_pass".
/// Instead of `grpc_pass grpc://`: a gRPC call reaches a backend that only
/// speaks cleartext HTTP/2, as gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_backend_protocol_to_grpc_and_use_grpc_pass() {
    let b = serve_proto(Wire::H2c, grpcbin).await;
    let mut docs = service_at("echo", b.port);
    docs.push(single(
        HOST,
        "/",
        HOST,
        "echo",
        8080,
        &[("backend-protocol", "GRPC")],
    ));
    let tg = start(&docs, &[]).await;
    let reply = grpc_cleartext(&tg, HOST, b"")
        .await
        .unwrap_or_else(|e| panic!("gRPC call: {e}; {}", b.describe()));
    assert_eq!(reply.grpc_status().as_deref(), Some("0"), "{reply:?}");
    let m = metadata(&reply);
    assert_eq!(m["version"], "HTTP/2.0", "{m}");
    assert_eq!(m["content-type"], "application/grpc", "{m}");
    assert!(b.handshakes().is_empty(), "cleartext: {}", b.describe());
}

/// Go: "should set backend protocol to grpcs:// and use grpc_pass".
/// Instead of `grpc_pass grpcs://`: a gRPC call reaches a backend that only
/// speaks HTTP/2 inside TLS (ALPN h2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_backend_protocol_to_grpcs_and_use_grpc_pass() {
    let b = serve_proto(Wire::H2Tls, grpcbin).await;
    let mut docs = service_at("echo", b.port);
    docs.push(single(
        HOST,
        "/",
        HOST,
        "echo",
        8080,
        &[("backend-protocol", "GRPCS")],
    ));
    let tg = start(&docs, &[]).await;
    let reply = grpc_cleartext(&tg, HOST, b"")
        .await
        .unwrap_or_else(|e| panic!("gRPC call: {e}; {}", b.describe()));
    assert_eq!(reply.grpc_status().as_deref(), Some("0"), "{reply:?}");
    assert_eq!(metadata(&reply)["content-type"], "application/grpc");
    let hs = b.handshakes();
    assert!(
        !hs.is_empty() && hs.iter().all(|h| h.alpn.as_deref() == Some("h2")),
        "{}",
        b.describe()
    );
}

/// Go: "should set backend protocol to '' and use fastcgi_pass".
/// tollgate has no FastCGI client (the `fastcgi-*` annotations are refused
/// too): `backend-protocol: FCGI` rejects the Ingress with a diagnostic
/// naming the value (it used to warn and speak HTTP to the FastCGI
/// server), and the host is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_backend_protocol_to_empty_and_use_fastcgi_pass() {
    let echo = Echo::services(&["echo"]).await;
    let mut docs = echo.backends(NS);
    docs.push(single(
        HOST,
        "/",
        HOST,
        "echo",
        8080,
        &[("backend-protocol", "FCGI")],
    ));
    let (code, out) = check_docs(&docs).await;
    assert_eq!(code, 1, "FCGI rejects the Ingress:\n{out}");
    let line = out
        .lines()
        .find(|l| l.contains("backend-protocol"))
        .unwrap_or_else(|| panic!("no diagnostic on backend-protocol:\n{out}"));
    assert!(line.contains("FCGI") && line.contains("FastCGI"), "{line}");

    let tg = start(&docs, &[]).await;
    let r = tg.get(HOST, "/").await;
    assert_eq!(
        r.status,
        404,
        "a rejected Ingress is not served: {}",
        r.summary()
    );
}
