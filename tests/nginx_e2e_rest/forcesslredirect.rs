//! Ported from ingress-nginx `test/e2e/annotations/forcesslredirect.go`.

use crate::{single, Site};

/// Go: "should redirect to https". ingress-nginx drops the trailing `/` of
/// the request URI unless `preserve-trailing-slash` is set, so `/` goes to
/// `https://forcesslredirect.bar.com`; tollgate keeps the path as requested
/// (`https://forcesslredirect.bar.com/`, the same resource): the
/// documented difference (docs/annotations.md, `force-ssl-redirect`).
#[tokio::test]
async fn should_redirect_to_https() {
    let host = "forcesslredirect.bar.com";
    let site = Site::start(vec![single(
        host,
        "/",
        host,
        &[("force-ssl-redirect", "true")],
    )])
    .await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 308, "{}", r.summary());
    // Difference: ingress-nginx answers `https://forcesslredirect.bar.com`.
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://forcesslredirect.bar.com/")
    );
}
