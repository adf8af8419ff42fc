//! Ported from ingress-nginx `test/e2e/annotations/xforwardedprefix.go`.

use crate::{single, Site};

/// Go: "should set the X-Forwarded-Prefix to the annotation value". The
/// backend gets `X-Forwarded-Prefix: /test/value` (and the rewritten path).
#[tokio::test]
async fn should_set_the_x_forwarded_prefix_to_the_annotation_value() {
    let host = "xfp.baz.com";
    let site = Site::start(vec![single(
        host,
        "/",
        host,
        &[
            ("x-forwarded-prefix", "/test/value"),
            ("rewrite-target", "/foo"),
        ],
    )])
    .await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let seen = r.echo();
    assert_eq!(
        seen.header("x-forwarded-prefix").as_deref(),
        Some("/test/value")
    );
    assert_eq!(seen.path(), "/foo");
}

/// Go: "should not add X-Forwarded-Prefix if the annotation value is empty".
#[tokio::test]
async fn should_not_add_x_forwarded_prefix_if_the_annotation_value_is_empty() {
    let host = "noxfp.baz.com";
    let site = Site::start(vec![single(
        host,
        "/",
        host,
        &[("x-forwarded-prefix", ""), ("rewrite-target", "/foo")],
    )])
    .await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(
        !r.text().to_ascii_lowercase().contains("x-forwarded-prefix"),
        "{}",
        r.text()
    );
}
