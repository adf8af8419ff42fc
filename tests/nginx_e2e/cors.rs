//! Ported from ingress-nginx `test/e2e/annotations/cors.go`. Where the Go
//! case checks the generated `more_set_headers` lines, the port checks the
//! headers those lines put on a response.

use crate::common::Resp;
use crate::{single, Site};

const HOST: &str = "cors.foo.com";

/// One Ingress with `enable-cors` and `extra`; the response to `GET /`
/// with `Origin: origin` (none when `None`).
async fn cors_get(extra: &[(&str, &str)], origin: Option<&str>) -> Resp {
    let site = cors_site(extra).await;
    get(&site, origin).await
}

async fn cors_site(extra: &[(&str, &str)]) -> Site {
    let mut annotations = vec![("enable-cors", "true")];
    annotations.extend_from_slice(extra);
    Site::start(vec![single(HOST, "/", HOST, &annotations)]).await
}

async fn get(site: &Site, origin: Option<&str>) -> Resp {
    match origin {
        Some(o) => site.get(HOST, "/", &[("Origin", o)]).await,
        None => site.get(HOST, "/", &[]).await,
    }
}

/// Asserts `Access-Control-Allow-Origin: want` (and a 200).
fn allowed(r: &Resp, want: &str) {
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(want),
        "{:?}",
        r.headers
    );
}

/// Asserts no `Access-Control-Allow-Origin` (the browser then blocks).
fn refused(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "{:?}",
        r.headers
    );
}

#[tokio::test]
async fn should_enable_cors() {
    let r = cors_get(&[], None).await;
    allowed(&r, "*");
    assert_eq!(
        r.header("access-control-allow-methods").as_deref(),
        Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
    );
    assert_eq!(
        r.header("access-control-allow-headers").as_deref(),
        Some("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization")
    );
    assert_eq!(
        r.header("access-control-max-age").as_deref(),
        Some("1728000")
    );
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn should_set_cors_methods_to_only_allow_post_get() {
    let r = cors_get(&[("cors-allow-methods", "POST, GET")], None).await;
    assert_eq!(
        r.header("access-control-allow-methods").as_deref(),
        Some("POST, GET")
    );
}

#[tokio::test]
async fn should_set_cors_max_age() {
    let r = cors_get(&[("cors-max-age", "200")], None).await;
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("200"));
}

#[tokio::test]
async fn should_disable_cors_allow_credentials() {
    let r = cors_get(&[("cors-allow-credentials", "false")], None).await;
    allowed(&r, "*");
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[tokio::test]
async fn should_allow_origin_for_cors() {
    let origin = "https://origin.cors.com:8080";
    let r = cors_get(&[("cors-allow-origin", origin)], Some(origin)).await;
    allowed(&r, origin);
}

#[tokio::test]
async fn should_allow_headers_for_cors() {
    let r = cors_get(&[("cors-allow-headers", "DNT, User-Agent")], None).await;
    assert_eq!(
        r.header("access-control-allow-headers").as_deref(),
        Some("DNT, User-Agent")
    );
}

#[tokio::test]
async fn should_expose_headers_for_cors() {
    let r = cors_get(
        &[(
            "cors-expose-headers",
            "X-CustomResponseHeader, X-CustomSecondHeader",
        )],
        None,
    )
    .await;
    assert_eq!(
        r.header("access-control-expose-headers").as_deref(),
        Some("X-CustomResponseHeader, X-CustomSecondHeader")
    );
}

#[tokio::test]
async fn should_allow_single_origin_for_multiple_cors_values() {
    let origin = "https://origin.cors.com:8080";
    let r = cors_get(
        &[(
            "cors-allow-origin",
            "https://origin.cors.com:8080, https://origin2.cors.com",
        )],
        Some(origin),
    )
    .await;
    allowed(&r, origin);
}

#[tokio::test]
async fn should_not_allow_single_origin_for_multiple_cors_values() {
    let r = cors_get(
        &[(
            "cors-allow-origin",
            "http://origin2.cors.com, https://origin.com",
        )],
        Some("http://no.origin.com"),
    )
    .await;
    refused(&r);
}

#[tokio::test]
async fn should_allow_correct_origins_single_origin_for_multiple_cors_values() {
    let site = cors_site(&[(
        "cors-allow-origin",
        "origin.cors.com:8080, https://origin2.cors.com, https://origin.com",
    )])
    .await;
    refused(&get(&site, Some("origin.cors.com:8080")).await);
    allowed(
        &get(&site, Some("https://origin2.cors.com")).await,
        "https://origin2.cors.com",
    );
    allowed(
        &get(&site, Some("https://origin.com")).await,
        "https://origin.com",
    );
}

#[tokio::test]
async fn should_not_break_functionality() {
    allowed(&cors_get(&[("cors-allow-origin", "*")], None).await, "*");
}

#[tokio::test]
async fn should_not_break_functionality_without_star() {
    allowed(&cors_get(&[], None).await, "*");
}

#[tokio::test]
async fn should_not_break_functionality_with_extra_domain() {
    allowed(
        &cors_get(&[("cors-allow-origin", "*, foo.bar.com")], None).await,
        "*",
    );
}

#[tokio::test]
async fn should_not_match() {
    refused(
        &cors_get(
            &[("cors-allow-origin", "https://foo.bar.com")],
            Some("https://fooxbar.com"),
        )
        .await,
    );
}

#[tokio::test]
async fn should_allow_single_origin_with_required_port() {
    let origin = "http://origin.cors.com:8080";
    let r = cors_get(
        &[(
            "cors-allow-origin",
            "http://origin.cors.com:8080, http://origin.com:8080",
        )],
        Some(origin),
    )
    .await;
    allowed(&r, origin);
}

#[tokio::test]
async fn should_not_allow_single_origin_with_port_and_origin_without_port() {
    refused(
        &cors_get(
            &[(
                "cors-allow-origin",
                "https://origin2.cors.com, http://origin.com",
            )],
            Some("http://origin.cors.com:8080"),
        )
        .await,
    );
}

#[tokio::test]
async fn should_not_allow_single_origin_without_port_and_origin_with_required_port() {
    refused(
        &cors_get(
            &[(
                "cors-allow-origin",
                "http://origin.cors.com:8080, http://origin.com:8080",
            )],
            Some("http://origin.com"),
        )
        .await,
    );
}

#[tokio::test]
async fn should_allow_matching_origin_with_wildcard_origin_2_subdomains() {
    let site = cors_site(&[(
        "cors-allow-origin",
        "http://*.origin.cors.com, http://*.origin.com:8080",
    )])
    .await;
    for origin in [
        "http://foo.origin.cors.com",
        "http://bar-foo.origin.cors.com",
    ] {
        allowed(&get(&site, Some(origin)).await, origin);
    }
}

#[tokio::test]
async fn should_not_allow_unmatching_origin_with_wildcard_origin_2_subdomains() {
    refused(
        &cors_get(
            &[(
                "cors-allow-origin",
                "http://*.origin.cors.com, http://*.origin.com:8080",
            )],
            Some("http://bar.foo.origin.cors.com"),
        )
        .await,
    );
}

#[tokio::test]
async fn should_allow_matching_origin_port_with_wildcard_origin() {
    let origin = "http://abc.origin.com:8080";
    let r = cors_get(
        &[(
            "cors-allow-origin",
            "http://origin.cors.com:8080, http://*.origin.com:8080",
        )],
        Some(origin),
    )
    .await;
    allowed(&r, origin);
}

#[tokio::test]
async fn should_not_allow_portless_origin_with_wildcard_origin() {
    refused(
        &cors_get(
            &[(
                "cors-allow-origin",
                "http://origin.cors.com:8080, http://*.origin.com:8080",
            )],
            Some("http://abc.origin.com"),
        )
        .await,
    );
}

#[tokio::test]
async fn should_allow_correct_origins_missing_subdomain_origin_with_wildcard_origin_and_correct_origin(
) {
    let site = cors_site(&[(
        "cors-allow-origin",
        "http://origin.cors.com:8080, http://*.origin.com:8080",
    )])
    .await;
    refused(&get(&site, Some("http://origin.com:8080")).await);
    let origin = "http://bar.origin.com:8080";
    allowed(&get(&site, Some(origin)).await, origin);
}

#[tokio::test]
async fn should_allow_missing_origins_should_allow_all_origins() {
    let site = cors_site(&[("cors-allow-origin", "      ")]).await;
    for origin in [
        "http://origin.com",
        "http://book.origin.com",
        "test.origin.com",
    ] {
        allowed(&get(&site, Some(origin)).await, "*");
    }
}

#[tokio::test]
async fn should_allow_correct_origin_but_not_others_cors_allow_origin_annotations_contain_trailing_comma(
) {
    let site = cors_site(&[(
        "cors-allow-origin",
        "https://origin-123.cors.com:8080,   ,https://origin-321.cors.com:8080,",
    )])
    .await;
    let origin1 = "https://origin-123.cors.com:8080";
    allowed(&get(&site, Some(origin1)).await, origin1);
    let origin2 = "https://origin-321.cors.com:8080";
    allowed(&get(&site, Some(origin2)).await, origin2);
    refused(&get(&site, Some("https://unknown.cors.com:8080")).await);
}

#[tokio::test]
async fn should_allow_origins_with_non_http_s_protocols() {
    let site = cors_site(&[(
        "cors-allow-origin",
        "test://localhost, tauri://localhost:3000",
    )])
    .await;
    for origin in ["test://localhost", "tauri://localhost:3000"] {
        allowed(&get(&site, Some(origin)).await, origin);
    }
}

/// Not a Go case: the nginx template answers every `OPTIONS` of an
/// allowed origin with 204 and these headers (`$cors = "trueoptions"`;
/// its `Content-Length: 0` is implied by the 204, which has no body).
#[tokio::test]
async fn template_answers_options_of_an_allowed_origin() {
    let site = cors_site(&[]).await;
    let r = site.request("OPTIONS", HOST, "/", &[]).await;
    assert_eq!(r.status, 204, "{}", r.summary());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain charset=UTF-8")
    );
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
}
