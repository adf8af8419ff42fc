//! Ported from ingress-nginx `test/e2e/annotations/customheaders.go`
//! (`DescribeAnnotation("custom-headers-*")`), with `--configmap
//! default/nginx` as ingress-nginx's controller ConfigMap. (The same
//! cases, in one test, are in `tests/migration/headers.rs`.)

use crate::common::*;
use crate::{check_docs, config_map, single, Site, CONFIGMAP};

const HOST: &str = "custom-headers";

async fn start(docs: Vec<serde_json::Value>) -> Site {
    Site::with(
        Echo::services(&[crate::ECHO]).await,
        docs,
        &["--configmap", CONFIGMAP],
    )
    .await
}

/// Go: "should return status code 200 when no custom-headers is configured".
#[tokio::test]
async fn should_return_status_code_200_when_no_custom_headers_is_configured() {
    let site = start(vec![single(HOST, "/", HOST, &[])]).await;
    let r = site.get(HOST, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.echo().host(), HOST);
}

/// Go: "should return status code 503 when custom-headers is configured
/// with an invalid secret". tollgate fails closed too, earlier: the
/// Ingress naming a missing ConfigMap is rejected (`check` says so) and
/// its host is not served (404 where ingress-nginx answers 503: the
/// documented difference); it is never served without its headers.
#[tokio::test]
async fn should_return_status_code_503_when_custom_headers_is_configured_with_an_invalid_secret() {
    let docs = vec![single(
        HOST,
        "/",
        HOST,
        &[("custom-headers", "default/custom-headers")],
    )];
    let (code, out) = check_docs(&docs, &["--configmap", CONFIGMAP]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ConfigMap default/custom-headers not found"),
        "{out}"
    );
    let site = start(docs).await;
    let r = site.get(HOST, "/", &[]).await;
    assert_eq!(r.status, 404, "{}", r.summary());
    assert_eq!(r.service(), None);
}

/// Go: `should set "more_set_headers 'My-Custom-Header' '42';" when
/// custom-headers are set`. Values are literal: `$remote_addr` is sent as
/// written, as in ingress-nginx.
#[tokio::test]
async fn should_set_more_set_headers_my_custom_header_42_when_custom_headers_are_set() {
    let site = start(vec![
        config_map(
            "custom-headers",
            &[
                ("My-Custom-Header", "42"),
                ("My-Custom-Header-Dollar", "$remote_addr"),
            ],
        ),
        config_map(
            "nginx",
            &[(
                "global-allowed-response-headers",
                "My-Custom-Header,My-Custom-Header-Dollar",
            )],
        ),
        single(
            HOST,
            "/",
            HOST,
            &[("custom-headers", "default/custom-headers")],
        ),
    ])
    .await;
    let r = site.get(HOST, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("my-custom-header").as_deref(), Some("42"));
    assert_eq!(
        r.header("my-custom-header-dollar").as_deref(),
        Some("$remote_addr")
    );
}
