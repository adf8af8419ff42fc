//! Ported from ingress-nginx `test/e2e/annotations/connection.go`
//! (`DescribeAnnotation("connection-proxy-header")`). A no-op in tollgate:
//! it manages its upstream connections, and their `Connection` header,
//! itself (docs/annotations.md).

use crate::{assert_no_op, single, Site};

/// Go: "set connection header to keep-alive". ingress-nginx's backend
/// sees `Connection: keep-alive`; tollgate's sees HTTP/1.1 requests on a
/// pooled, persistent connection and no `Connection` header (the
/// difference, documented): the port asserts the request is served over
/// HTTP/1.1 without that header, and `check` reports the no-op.
#[tokio::test]
async fn set_connection_header_to_keep_alive() {
    let host = "connection.foo.com";
    let docs = vec![single(
        host,
        "/",
        host,
        &[("connection-proxy-header", "keep-alive")],
    )];
    assert_no_op(&docs, "connection-proxy-header").await;
    let site = Site::start(docs).await;
    let first = site.get(host, "/", &[]).await;
    assert_eq!(first.status, 200, "{}", first.summary());
    let seen = first.echo();
    assert_eq!(seen.header("connection"), None, "{}", first.text());
    assert_eq!(seen.proto(), "HTTP/1.1", "{}", first.text());
}
