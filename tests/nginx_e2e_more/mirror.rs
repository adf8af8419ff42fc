//! Ported from ingress-nginx `test/e2e/annotations/mirror.go`. The Go
//! cases read the generated `mirror` locations; the port runs a mirror
//! backend of its own and asserts what reaches it: the target URL's path
//! (with `$request_uri`, the request target as sent), the Host nginx's
//! mirror location sets (`mirror-host`, else the target's host name) and
//! the body unless `mirror-request-body: off`.

use std::time::Duration;

use bytes::Bytes;
use common::{full, req, send, serve, Backend};
use http::Response;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

use crate::{common, single, Site};

const HOST: &str = "mirror.foo.com";

/// What the mirror backend received: target, Host, body.
type Seen = (String, String, Bytes);

async fn mirror_backend() -> (Backend, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backend = serve(move |r: http::Request<hyper::body::Incoming>| {
        let tx = tx.clone();
        async move {
            let target = r.uri().to_string();
            let host = r
                .headers()
                .get("host")
                .map(|h| h.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            let body = r
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let _ = tx.send((target, host, body));
            Response::new(full("mirror"))
        }
    })
    .await;
    (backend, rx)
}

async fn post(site: &Site, target: &str, body: &'static str) -> u16 {
    let request = req("POST", HOST, target)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    send(site.tg.http_addr(), request).await.unwrap().status
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the mirror got a copy")
        .expect("mirror backend running")
}

#[tokio::test]
async fn should_set_mirror_target_to_http_localhost_mirror() {
    let (mirror, mut rx) = mirror_backend().await;
    let target = format!("http://127.0.0.1:{}/mirror", mirror.port);
    let site = Site::start(vec![single(HOST, "/", HOST, &[("mirror-target", &target)])]).await;
    assert_eq!(post(&site, "/foo?x=1", "hello").await, 200);
    let (path, host, body) = next(&mut rx).await;
    assert_eq!(path, "/mirror?x=1");
    assert_eq!(host, "127.0.0.1", "the target's host name");
    assert_eq!(&body[..], b"hello", "mirror_request_body on by default");
}

#[tokio::test]
async fn should_set_mirror_target_to_https_test_env_com_request_uri() {
    let (mirror, mut rx) = mirror_backend().await;
    let target = format!("http://127.0.0.1:{}/$request_uri", mirror.port);
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[("mirror-target", &target), ("mirror-host", "test.env.com")],
    )])
    .await;
    assert_eq!(post(&site, "/foo?x=1", "hello").await, 200);
    let (path, host, body) = next(&mut rx).await;
    // nginx expands `/$request_uri` literally: two slashes.
    assert_eq!(path, "//foo?x=1");
    assert_eq!(host, "test.env.com");
    assert_eq!(&body[..], b"hello");
}

#[tokio::test]
async fn should_disable_mirror_request_body() {
    let (mirror, mut rx) = mirror_backend().await;
    let target = format!("http://127.0.0.1:{}/mirror", mirror.port);
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[("mirror-target", &target), ("mirror-request-body", "off")],
    )])
    .await;
    assert_eq!(post(&site, "/foo", "hello").await, 200);
    let (path, _, body) = next(&mut rx).await;
    assert_eq!(path, "/mirror");
    assert!(body.is_empty(), "{body:?}");
}

/// `$request_uri` is the target as the client sent it, also when
/// `rewrite-target` changes what the upstream gets.
#[tokio::test]
async fn request_uri_is_the_target_as_sent() {
    let (mirror, mut rx) = mirror_backend().await;
    let target = format!("http://127.0.0.1:{}$request_uri", mirror.port);
    let site = Site::start(vec![single(
        HOST,
        "/app(/|$)(.*)",
        HOST,
        &[("mirror-target", &target), ("rewrite-target", "/$2")],
    )])
    .await;
    let r = site.get(HOST, "/app/x?y=1", &[]).await;
    assert_eq!(r.echo().path(), "/x?y=1");
    let (path, _, _) = next(&mut rx).await;
    assert_eq!(path, "/app/x?y=1");
}

/// Other nginx variables are refused, naming the annotation.
#[tokio::test]
async fn other_variables_are_refused_with_a_diagnostic() {
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[("mirror-target", "http://127.0.0.1/$uri")],
    )])
    .await;
    assert_eq!(site.get(HOST, "/", &[]).await.status, 404);
    let diagnostics = site.tg.admin("/debug/diagnostics").await.unwrap().text();
    assert!(diagnostics.contains("mirror-target"), "{diagnostics}");
}
