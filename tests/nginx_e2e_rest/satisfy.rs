//! Ported from ingress-nginx `test/e2e/annotations/satisfy.go`. tollgate
//! refuses `satisfy` (docs/annotations.md: serving without it could open
//! access, since `any` lets one of two auth methods suffice): every port
//! asserts that refusal — `tollgate check` rejects the Ingress naming the
//! annotation, and the host is not served at all (404), so nothing is
//! served without its authentication.

use serde_json::json;

use crate::common::*;
use crate::{assert_refused, single, Site, NS};

/// Go: "should configure satisfy directive correctly" (`all`, then `any`).
#[tokio::test]
async fn should_configure_satisfy_directive_correctly() {
    let host = "satisfy";
    for value in ["all", "any"] {
        let docs = vec![single(host, "/", host, &[("satisfy", value)])];
        assert_refused(&docs, "satisfy").await;
        let site = Site::start(docs).await;
        let r = site.get(host, "/", &[]).await;
        assert_eq!(r.status, 404, "satisfy: {value}: {}", r.summary());
        assert_eq!(r.service(), None);
    }
}

/// Go: "should allow multiple auth with satisfy any". ingress-nginx serves
/// a client with the basic-auth password and redirects one without to
/// `auth-signin`; tollgate refuses the combination: neither client is
/// served, and nobody is redirected to a sign-in page of the Ingress.
#[tokio::test]
async fn should_allow_multiple_auth_with_satisfy_any() {
    let host = "auth";
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "basic-secret", "namespace": NS},
        "type": "Opaque",
        "data": {"auth": base64_encode(b"uname:{SHA}N/omUzCtg+qoee+x4ttjgIls9jk=\n")}
    });
    let docs = vec![
        secret,
        single(
            host,
            "/",
            host,
            &[
                ("auth-type", "basic"),
                ("auth-secret", "basic-secret"),
                ("auth-realm", "test basic auth"),
                ("auth-url", "http://127.0.0.1:9/basic-auth/user/password"),
                ("auth-signin", "http://$host/auth/start"),
                ("satisfy", "any"),
            ],
        ),
    ];
    assert_refused(&docs, "satisfy").await;
    let site = Site::start(docs).await;
    let basic = format!("Basic {}", base64_encode(b"uname:pwd"));
    let r = site.get(host, "/", &[("authorization", &basic)]).await;
    assert_eq!(r.status, 404, "with the password: {}", r.summary());
    let r = site.get(host, "/?a=b&c=d", &[]).await;
    assert_eq!(r.status, 404, "without: {}", r.summary());
    assert_eq!(r.header("location"), None);
}
