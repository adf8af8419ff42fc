//! Ported from ingress-nginx `test/e2e/annotations/fromtowwwredirect.go`.
//! nginx's `$server_port` is the listener's port: the tests' random one
//! here, 80 and 443 in the Go cases.

use common::{https_get, tls_secret, yaml_docs, Echo, TestCa, Tollgate};
use serde_json::json;

use crate::{common, single, Site, ECHO, NS};

#[tokio::test]
async fn should_redirect_from_www_http_to_http() {
    let host = "fromtowwwredirect.bar.com";
    let site = Site::start(vec![single(
        host,
        "/",
        host,
        &[("from-to-www-redirect", "true")],
    )])
    .await;
    let r = site.get(&format!("www.{host}"), "/foo", &[]).await;
    assert_eq!(r.status, 308, "{}", r.summary());
    assert_eq!(
        r.header("location"),
        Some(format!("http://{host}:{}/foo", site.tg.http_port))
    );
    // The host itself is served.
    let r = site.get(host, "/foo", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
}

#[tokio::test]
async fn should_redirect_from_www_https_to_https() {
    let from = "fromtowww.example.test";
    let to = format!("www.{from}");
    let ca = TestCa::new("tollgate test CA");
    let cert = ca.leaf(from, &[from, &to]);
    let mut ingress = single(from, "/", from, &[("from-to-www-redirect", "true")]);
    ingress["spec"]["tls"] = json!([{"hosts": [from, to], "secretName": "www-tls"}]);
    let echo = Echo::services(&[ECHO]).await;
    let mut docs = echo.backends(NS);
    docs.push(tls_secret(NS, "www-tls", &cert.chain_pem, &cert.key_pem));
    docs.push(ingress);
    let tg = Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(&docs))
        .start()
        .await;

    let (r, served) = https_get(tg.https_addr(), Some(&to), &to, "/")
        .await
        .expect("GET https://www");
    assert!(served.is(&cert), "the certificate covers the www host");
    assert_eq!(r.status, 308, "{}", r.summary());
    assert_eq!(
        r.header("location"),
        Some(format!("https://{from}:{}", tg.https_port))
    );
    let (r, _) = https_get(tg.https_addr(), Some(from), from, "/")
        .await
        .expect("GET https://from");
    assert_eq!(
        r.status, 200,
        "sending request to domain should not redirect to www"
    );
    assert_eq!(r.echo().host(), from);
}

/// The other direction: an Ingress for `www.` makes the bare host redirect.
#[tokio::test]
async fn redirects_from_the_bare_host_to_www() {
    let host = "www.bare.example.test";
    let site = Site::start(vec![single(
        host,
        "/",
        host,
        &[("from-to-www-redirect", "true")],
    )])
    .await;
    let r = site.get("bare.example.test", "/a/", &[]).await;
    assert_eq!(r.status, 308, "{}", r.summary());
    assert_eq!(
        r.header("location"),
        Some(format!("http://{host}:{}/a", site.tg.http_port))
    );
}

/// A twin host with an Ingress of its own is served by it, not redirected.
#[tokio::test]
async fn a_www_host_with_its_own_ingress_is_not_taken_over() {
    let host = "own.example.test";
    let site = Site::start(vec![
        single(host, "/", host, &[("from-to-www-redirect", "true")]),
        single("www-own", "/", &format!("www.{host}"), &[]),
    ])
    .await;
    let r = site.get(&format!("www.{host}"), "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
}
