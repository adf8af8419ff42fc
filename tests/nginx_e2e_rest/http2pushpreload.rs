//! Ported from ingress-nginx `test/e2e/annotations/http2pushpreload.go`.
//! `http2-push-preload` is a no-op in tollgate (HTTP/2 server push is
//! obsolete: browsers removed it).

use crate::{assert_no_op, single, Site};

/// Go: "enable the http2-push-preload directive". The Go case reads
/// `http2_push_preload on;` in nginx.conf; the port asserts the request is
/// served and `check` reports the no-op.
#[tokio::test]
async fn enable_the_http2_push_preload_directive() {
    let host = "http2pp.foo.com";
    let docs = vec![single(host, "/", host, &[("http2-push-preload", "true")])];
    assert_no_op(&docs, "http2-push-preload").await;
    let site = Site::start(docs).await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
}
