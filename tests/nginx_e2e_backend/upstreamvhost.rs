//! Ported from ingress-nginx `test/e2e/annotations/upstreamvhost.go`
//! (`DescribeAnnotation("upstream-vhost")`). The Go case reads
//! `proxy_set_header Host "upstreamvhost.bar.com";`; the port checks the
//! Host the backend receives, and (no Go case) the `:authority` a gRPC
//! backend receives.

use crate::common::*;
use crate::*;

/// Go: "set host to upstreamvhost.bar.com".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_host_to_upstreamvhost_bar_com() {
    let echo = Echo::services(&["echo"]).await;
    let host = "upstreamvhost.foo.com";
    let mut docs = echo.backends(NS);
    docs.push(single(
        host,
        "/",
        host,
        "echo",
        8080,
        &[("upstream-vhost", "upstreamvhost.bar.com")],
    ));
    let tg = start(&docs, &[]).await;
    let r = tg.get(host, "/").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.echo().host(), "upstreamvhost.bar.com");
}

/// Not a Go case: `upstream-vhost` with `backend-protocol: GRPC` sets the
/// `:authority` of the HTTP/2 request (nginx's `grpc_set_header Host`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_vhost_sets_the_grpc_authority() {
    let b = serve_proto(Wire::H2c, grpcbin).await;
    let host = "upstreamvhost.foo.com";
    let mut docs = service_at("grpcbin", b.port);
    docs.push(single(
        host,
        "/",
        host,
        "grpcbin",
        8080,
        &[
            ("backend-protocol", "GRPC"),
            ("upstream-vhost", "upstreamvhost.bar.com"),
        ],
    ));
    let tg = start(&docs, &[]).await;
    let reply = grpc_cleartext(&tg, host, b"")
        .await
        .unwrap_or_else(|e| panic!("gRPC call: {e}; {}", b.describe()));
    assert_eq!(reply.grpc_status().as_deref(), Some("0"), "{reply:?}");
    let m = metadata(&reply);
    assert_eq!(m[":authority"], "upstreamvhost.bar.com", "{m}");
}
