//! Ported from ingress-nginx `test/e2e/annotations/proxy.go`. The Go
//! cases check nginx directives; the ports check what they do (limits,
//! retries), that a no-op annotation still serves, and that a refused one
//! is never served half-honoured.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;

use crate::common::*;
use crate::{single, Site, NS};

const HOST: &str = "proxy.foo.com";

#[tokio::test]
async fn should_set_proxy_client_max_body_size_to_8m() {
    let site = Site::start(vec![
        single(HOST, "/", HOST, &[("proxy-body-size", "8m")]),
        single("small", "/", "small.foo.com", &[("proxy-body-size", "1k")]),
    ])
    .await;
    let addr = site.tg.http_addr();
    let fits = req("POST", HOST, "/")
        .body(Full::new(Bytes::from(vec![b'a'; 1024 * 1024])))
        .unwrap();
    assert_eq!(send(addr, fits).await.unwrap().status, 200);
    // Over 8m by Content-Length: 413 before the body is read.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
        9 * 1024 * 1024
    );
    assert_eq!(raw(addr, head.as_bytes()).await.unwrap().status, 413);
    // The case: a chunked body over the limit is refused too.
    let chunked = format!(
        "POST / HTTP/1.1\r\nHost: small.foo.com\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        "a".repeat(2048)
    );
    assert_eq!(raw(addr, chunked.as_bytes()).await.unwrap().status, 413);
}

#[tokio::test]
async fn should_turn_on_proxy_buffering() {
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[
            ("proxy-buffering", "on"),
            ("proxy-buffers-number", "8"),
            ("proxy-buffer-size", "8k"),
            ("proxy-busy-buffers-size", "16k"),
        ],
    )])
    .await;
    // A no-op in tollgate (bodies stream): served as without them.
    assert_eq!(site.get(HOST, "/", &[]).await.status, 200);
}

#[tokio::test]
async fn should_build_proxy_next_upstream() {
    // Two endpoints answering 503 after 1.2s: with a 1s
    // proxy-next-upstream-timeout the second is never tried.
    let hits = Arc::new(AtomicUsize::new(0));
    let mut backends = Vec::new();
    for _ in 0..2 {
        let hits = hits.clone();
        backends.push(
            serve(move |_req| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1200)).await;
                    let mut r = http::Response::new(full("busy"));
                    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    r
                }
            })
            .await,
        );
    }
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let mut ing = single(
        HOST,
        "/",
        HOST,
        &[
            ("proxy-next-upstream", "error timeout http_503"),
            ("proxy-next-upstream-timeout", "1"),
            ("proxy-next-upstream-tries", "3"),
        ],
    );
    ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "slow".into();
    let site = Site::start_with(vec![ing], backend(NS, "slow", &ports)).await;
    let started = Instant::now();
    let r = site.get(HOST, "/", &[]).await;
    assert_eq!(r.status, 503, "{}", r.summary());
    assert_eq!(hits.load(Ordering::SeqCst), 1, "no retry past the timeout");
    assert!(started.elapsed() < Duration::from_millis(2300));
}

/// Once refused, now implemented: the Ingress is served with them (the
/// rewriting itself, against a backend that answers with `Location` and
/// `Set-Cookie`, is in `tests/nginx_e2e_more/proxy.rs`).
async fn served(annotations: &[(&str, &str)]) {
    let site = Site::start(vec![single(HOST, "/", HOST, annotations)]).await;
    let r = site.get(HOST, "/", &[]).await;
    assert_eq!(r.status, 200, "not served with {annotations:?}");
}

#[tokio::test]
async fn should_set_proxy_redirect_to_hello_com_goodbye_com() {
    served(&[
        ("proxy-redirect-from", "hello.com"),
        ("proxy-redirect-to", "goodbye.com"),
    ])
    .await;
}

#[tokio::test]
async fn should_setup_proxy_cookies() {
    served(&[
        ("proxy-cookie-domain", "localhost example.org"),
        ("proxy-cookie-path", "/one/ /"),
    ])
    .await;
}

#[tokio::test]
async fn should_change_the_default_proxy_http_version() {
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[("proxy-http-version", "1.0")],
    )])
    .await;
    assert_eq!(site.get(HOST, "/", &[]).await.status, 200);
}
