//! Ported from ingress-nginx `test/e2e/annotations/proxy.go`: the
//! `proxy_redirect` cases and "should setup proxy cookies". A backend of
//! the test's own answers with a `Location`, a `Refresh` and a
//! `Set-Cookie` naming `hello.com` and `localhost`, so that the rewriting
//! nginx's directives do is seen by the client.

use common::{full, multi_address_backend, serve, yaml_docs, Backend, Tollgate};
use http::Response;
use serde_json::Value;

use crate::{common, single_to, NS};

const HOST: &str = "proxy.foo.com";
const SVC: &str = "redirecting";
const TO: &str = "goodbye.com";

/// The backend: `Location: http://hello.com/a/b`, `Refresh` to the same,
/// and a cookie for `localhost` under `/one/`.
async fn backend() -> Backend {
    serve(|_req| async {
        Response::builder()
            .status(302)
            .header("location", "http://hello.com/a/b")
            .header("refresh", "0; url=http://hello.com/a/b")
            .header(
                "set-cookie",
                "s=1; Domain=localhost; Path=/one/two; HttpOnly",
            )
            .header("set-cookie", "t=2; Path=/other")
            .body(full(""))
            .unwrap()
    })
    .await
}

async fn start(annotations: &[(&str, &str)]) -> (Tollgate, Backend) {
    let be = backend().await;
    let mut docs: Vec<Value> = multi_address_backend(NS, SVC, be.port, &["127.0.0.1"]);
    docs.push(single_to(HOST, "/", HOST, SVC, annotations));
    let tg = Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(&docs))
        .start()
        .await;
    (tg, be)
}

#[tokio::test]
async fn should_set_proxy_redirect_to_off() {
    let (tg, _be) = start(&[("proxy-redirect-from", "off"), ("proxy-redirect-to", TO)]).await;
    let r = tg.get(HOST, "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://hello.com/a/b")
    );
}

/// `default` rewrites nginx's own `proxy_pass` URL, which no upstream
/// answer names: the `Location` is left alone.
#[tokio::test]
async fn should_set_proxy_redirect_to_default() {
    let (tg, _be) = start(&[
        ("proxy-redirect-from", "default"),
        ("proxy-redirect-to", TO),
    ])
    .await;
    let r = tg.get(HOST, "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://hello.com/a/b")
    );
}

#[tokio::test]
async fn should_set_proxy_redirect_to_hello_com_goodbye_com() {
    let (tg, _be) = start(&[
        ("proxy-redirect-from", "http://hello.com/"),
        ("proxy-redirect-to", "http://goodbye.com/"),
    ])
    .await;
    let r = tg.get(HOST, "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://goodbye.com/a/b")
    );
    assert_eq!(
        r.header("refresh").as_deref(),
        Some("0; url=http://goodbye.com/a/b")
    );
    // The proxy-redirect annotations leave cookies alone.
    let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies[0], "s=1; Domain=localhost; Path=/one/two; HttpOnly");
}

#[tokio::test]
async fn should_setup_proxy_cookies() {
    let (tg, _be) = start(&[
        ("proxy-cookie-domain", "localhost example.org"),
        ("proxy-cookie-path", "/one/ /"),
    ])
    .await;
    let r = tg.get(HOST, "/").await;
    let cookies: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cookies,
        [
            "s=1; Domain=example.org; Path=/two; HttpOnly",
            "t=2; Path=/other"
        ]
    );
    // proxy_redirect is off by default (ingress-nginx's ConfigMap default).
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://hello.com/a/b")
    );
}

/// A value nginx would have to expand is refused, naming the annotation;
/// the Ingress is not served as written.
#[tokio::test]
async fn variables_are_refused_with_a_diagnostic() {
    let (tg, _be) = start(&[
        ("proxy-redirect-from", "http://hello.com/"),
        ("proxy-redirect-to", "http://$host/"),
    ])
    .await;
    let r = tg.get(HOST, "/").await;
    assert_eq!(r.status, 404, "a refused Ingress is not served");
    let diagnostics = tg.admin("/debug/diagnostics").await.unwrap().text();
    assert!(diagnostics.contains("proxy-redirect-to"), "{diagnostics}");
}
