//! Ported from ingress-nginx `test/e2e/annotations/auth.go` (basic
//! authentication). The Go cases hash with bcrypt at cost 14; these use
//! `{SHA}` (also accepted by ingress-nginx) to keep the suite fast.

use crate::common::Resp;
use crate::{single, Site, NS};
use serde_json::{json, Value};

const HOST: &str = "auth";
/// `foo:bar`, the Go cases' user.
const FOO_BAR: &str = "Basic Zm9vOmJhcg==";
/// `foo:{SHA}` of `bar`.
const FOO_SHA: &str = "foo:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=\n";

fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": NS},
        "stringData": data
    })
}

async fn basic_site(extra: &[(&str, &str)], secret_doc: Value) -> Site {
    let mut annotations = vec![
        ("auth-type", "basic"),
        ("auth-secret", "test"),
        ("auth-realm", "test auth"),
    ];
    annotations.extend_from_slice(extra);
    Site::start_with(
        vec![single(HOST, "/", HOST, &annotations)],
        vec![secret_doc],
    )
    .await
}

fn status(r: &Resp, want: u16) {
    assert_eq!(r.status, want, "{}", r.summary());
}

#[tokio::test]
async fn should_return_status_code_200_when_no_authentication_is_configured() {
    let site = Site::start(vec![single(HOST, "/", HOST, &[])]).await;
    let r = site.get(HOST, "/", &[]).await;
    status(&r, 200);
    assert_eq!(r.echo().host(), HOST);
}

#[tokio::test]
async fn should_return_status_code_401_when_authentication_is_configured_but_authorization_header_is_not_configured(
) {
    let site = basic_site(&[], secret("test", &[("auth", FOO_SHA)])).await;
    let r = site.get(HOST, "/", &[]).await;
    status(&r, 401);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Basic realm=\"test auth\"")
    );
}

#[tokio::test]
async fn should_return_status_code_401_when_authentication_is_configured_and_authorization_header_is_sent_with_invalid_credentials(
) {
    let site = basic_site(&[], secret("test", &[("auth", FOO_SHA)])).await;
    let r = site
        .get(HOST, "/", &[("Authorization", "Basic dXNlcjpwYXNz")])
        .await;
    status(&r, 401);
}

#[tokio::test]
async fn should_return_status_code_401_and_cors_headers_when_authentication_and_cors_is_configured_but_authorization_header_is_not_configured(
) {
    let site = basic_site(
        &[("enable-cors", "true")],
        secret("test", &[("auth", FOO_SHA)]),
    )
    .await;
    let r = site.get(HOST, "/", &[]).await;
    status(&r, 401);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[tokio::test]
async fn should_return_status_code_200_when_authentication_is_configured_and_authorization_header_is_sent(
) {
    let site = basic_site(&[], secret("test", &[("auth", FOO_SHA)])).await;
    status(
        &site.get(HOST, "/", &[("Authorization", FOO_BAR)]).await,
        200,
    );
}

#[tokio::test]
async fn should_return_status_code_200_when_authentication_is_configured_with_a_map_and_authorization_header_is_sent(
) {
    let site = basic_site(
        &[("auth-secret-type", "auth-map")],
        secret("test", &[("foo", "{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=")]),
    )
    .await;
    status(
        &site.get(HOST, "/", &[("Authorization", FOO_BAR)]).await,
        200,
    );
}

#[tokio::test]
async fn should_return_status_code_503_when_authentication_is_configured_with_an_invalid_secret() {
    let annotations = [
        ("auth-type", "basic"),
        ("auth-secret", "something"),
        ("auth-realm", "test auth"),
    ];
    let site = Site::start(vec![single(HOST, "/", HOST, &annotations)]).await;
    status(&site.get(HOST, "/", &[]).await, 503);
}

#[tokio::test]
async fn should_return_status_code_401_when_authentication_is_configured_with_invalid_content_and_authorization_header_is_sent(
) {
    let site = basic_site(&[], secret("test", &[("auth", "foo:")])).await;
    status(
        &site.get(HOST, "/", &[("Authorization", FOO_BAR)]).await,
        401,
    );
}
