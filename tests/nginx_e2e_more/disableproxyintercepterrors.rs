//! Ported from ingress-nginx
//! `test/e2e/annotations/disableproxyintercepterrors.go` (the echo
//! backend's `?status=404` stands for httpbun's `/status/404`).

use crate::{single, Site, ECHO};

const HOST: &str = "pie.foo.com";

fn ingress(disable: &str) -> serde_json::Value {
    single(
        HOST,
        "/",
        HOST,
        &[
            ("custom-http-errors", "404"),
            ("disable-proxy-intercept-errors", disable),
            ("default-backend", ECHO),
        ],
    )
}

/// "configures Nginx correctly", first half: with intercept disabled the
/// upstream's 404 reaches the client as the upstream sent it.
#[tokio::test]
async fn configures_nginx_correctly_intercept_disabled() {
    let site = Site::start(vec![ingress("true")]).await;
    let r = site
        .get(
            HOST,
            "/status?status=404",
            &[("x-request-id", "proxy_intercept_errors")],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.summary());
    // The upstream's own answer: no error-page headers reached a backend.
    let echoed = r.echo();
    assert_eq!(echoed.header("x-code"), None);
    assert_eq!(echoed.path(), "/status?status=404");
}

/// Second half: with intercept enabled the default backend answers, told
/// the code, the Ingress, the Service and the request id.
#[tokio::test]
async fn configures_nginx_correctly_intercept_enabled() {
    let site = Site::start(vec![ingress("false")]).await;
    let r = site
        .get(
            HOST,
            "/status?status=404",
            &[("x-request-id", "proxy_intercept_errors")],
        )
        .await;
    let echoed = r.echo();
    assert_eq!(
        echoed.header("x-code").as_deref(),
        Some("404"),
        "{}",
        r.summary()
    );
    assert_eq!(echoed.header("x-ingress-name").as_deref(), Some(HOST));
    assert_eq!(echoed.header("x-service-name").as_deref(), Some(ECHO));
    assert_eq!(
        echoed.header("x-request-id").as_deref(),
        Some("proxy_intercept_errors")
    );
}
