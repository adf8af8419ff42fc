//! Ported from ingress-nginx `test/e2e/annotations/approot.go`.

use crate::{single, Site};

#[tokio::test]
async fn should_redirect_to_foo() {
    let host = "approot.bar.com";
    let site = Site::start(vec![single(host, "/", host, &[("app-root", "/foo")])]).await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://approot.bar.com/foo")
    );
}
