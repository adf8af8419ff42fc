//! Ported from ingress-nginx `test/e2e/annotations/default_backend.go`
//! (its `x-code=503` body checks are the headers the echo backend saw).

use crate::{single, Site, ECHO};

#[tokio::test]
async fn should_use_a_custom_default_backend_as_upstream() {
    let host = "default-backend";
    let mut ing = single(host, "/", host, &[("default-backend", ECHO)]);
    ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "invalid".into();
    let site = Site::start(vec![ing]).await;
    let r = site
        .get(host, "/alma/armud", &[("x-request-id", "something-unique")])
        .await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let seen = r.echo();
    assert_eq!(seen.header("x-code").as_deref(), Some("503"));
    assert_eq!(seen.header("x-ingress-name").as_deref(), Some(host));
    assert_eq!(seen.header("x-service-name").as_deref(), Some("invalid"));
    assert_eq!(
        seen.header("x-request-id").as_deref(),
        Some("something-unique")
    );
}
