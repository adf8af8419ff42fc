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

/// httpbin's `/basic-auth/user/password`: 200 for `user:password`, else 401.
async fn httpbin() -> crate::common::Backend {
    crate::common::serve(|req: http::Request<hyper::body::Incoming>| async move {
        let ok = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v == "Basic dXNlcjpwYXNzd29yZA==");
        let mut r = http::Response::new(crate::common::full(""));
        if !ok {
            *r.status_mut() = http::StatusCode::UNAUTHORIZED;
        }
        r
    })
    .await
}

async fn external_site(bin: &crate::common::Backend, extra: &[(&str, &str)]) -> Site {
    let url = format!("http://127.0.0.1:{}/basic-auth/user/password", bin.port);
    let mut annotations = vec![
        ("auth-url", url.as_str()),
        ("auth-signin", "http://$host/auth/start"),
    ];
    annotations.extend_from_slice(extra);
    Site::start(vec![single(HOST, "/", HOST, &annotations)]).await
}

// auth.go, "when external authentication is configured"
#[tokio::test]
async fn external_should_return_status_code_200_when_signed_in() {
    let bin = httpbin().await;
    let site = external_site(&bin, &[]).await;
    let r = site
        .get(
            HOST,
            "/",
            &[("Authorization", "Basic dXNlcjpwYXNzd29yZA==")],
        )
        .await;
    status(&r, 200);
}

// auth.go, "when external authentication is configured"
#[tokio::test]
async fn external_should_redirect_to_signin_url_when_not_signed_in() {
    let bin = httpbin().await;
    let site = external_site(&bin, &[]).await;
    let r = site.get(HOST, "/?a=b&c=d", &[]).await;
    status(&r, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://auth/auth/start?rd=http://auth%2F%3Fa%3Db%26c%3Dd")
    );
}

// auth.go, "... configured with a custom redirect param"
#[tokio::test]
async fn custom_redirect_param_should_return_status_code_200_when_signed_in() {
    let bin = httpbin().await;
    let site = external_site(&bin, &[("auth-signin-redirect-param", "orig")]).await;
    let r = site
        .get(
            HOST,
            "/",
            &[("Authorization", "Basic dXNlcjpwYXNzd29yZA==")],
        )
        .await;
    status(&r, 200);
}

// auth.go, "... configured with a custom redirect param"
#[tokio::test]
async fn custom_redirect_param_should_redirect_to_signin_url_when_not_signed_in() {
    let bin = httpbin().await;
    let site = external_site(&bin, &[("auth-signin-redirect-param", "orig")]).await;
    let r = site.get(HOST, "/?a=b&c=d", &[]).await;
    status(&r, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://auth/auth/start?orig=http://auth%2F%3Fa%3Db%26c%3Dd")
    );
}
