//! Ported from ingress-nginx `test/e2e/annotations/redirect.go`, and the
//! precedence of its redirect parser (`temporal-redirect` first).

use crate::{single, Site};

const HOST: &str = "redirect";
const URL: &str = "http://redirect.example.com";

#[tokio::test]
async fn should_respond_with_a_standard_redirect_code() {
    let site = Site::start(vec![single(
        HOST,
        "/something",
        HOST,
        &[("permanent-redirect", URL)],
    )])
    .await;
    let r = site.get(HOST, "/something", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location").as_deref(), Some(URL));
}

#[tokio::test]
async fn should_respond_with_a_custom_redirect_code() {
    let site = Site::start(vec![single(
        HOST,
        "/something",
        HOST,
        &[
            ("permanent-redirect", URL),
            ("permanent-redirect-code", "302"),
        ],
    )])
    .await;
    let r = site.get(HOST, "/something", &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location").as_deref(), Some(URL));
}

/// ingress-nginx's redirect parser reads `temporal-redirect` first.
#[tokio::test]
async fn parser_temporal_redirect_wins_over_permanent_redirect() {
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[
            ("permanent-redirect", URL),
            ("temporal-redirect", "http://temporary.example.com"),
        ],
    )])
    .await;
    let r = site.get(HOST, "/x", &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://temporary.example.com")
    );
}
