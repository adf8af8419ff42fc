//! Ported from ingress-nginx `test/e2e/annotations/relativeredirects.go`.

use crate::{single, Site};

const HOST: &str = "rr.foo.com";
const REDIRECT_PATH: &str = "/something";
const RELATIVE_URL: &str = "/new-location";

/// "configures Nginx correctly": `absolute_redirect off` means the
/// redirects tollgate makes keep a relative `Location`.
#[tokio::test]
async fn configures_nginx_correctly() {
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[
            ("relative-redirects", "true"),
            ("temporal-redirect", RELATIVE_URL),
        ],
    )])
    .await;
    let r = site.get(HOST, "/any", &[]).await;
    assert_eq!(r.status, 302, "{}", r.summary());
    assert_eq!(r.header("location").as_deref(), Some(RELATIVE_URL));
}

#[tokio::test]
async fn should_respond_with_absolute_url_in_location() {
    let site = Site::start(vec![single(
        HOST,
        REDIRECT_PATH,
        HOST,
        &[
            ("permanent-redirect", RELATIVE_URL),
            ("relative-redirects", "false"),
        ],
    )])
    .await;
    let r = site.get(HOST, REDIRECT_PATH, &[]).await;
    assert_eq!(r.status, 301, "{}", r.summary());
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://rr.foo.com/new-location")
    );
}

#[tokio::test]
async fn should_respond_with_relative_url_in_location() {
    let site = Site::start(vec![single(
        HOST,
        REDIRECT_PATH,
        HOST,
        &[
            ("permanent-redirect", RELATIVE_URL),
            ("relative-redirects", "true"),
        ],
    )])
    .await;
    let r = site.get(HOST, REDIRECT_PATH, &[]).await;
    assert_eq!(r.status, 301, "{}", r.summary());
    assert_eq!(r.header("location").as_deref(), Some(RELATIVE_URL));
}
