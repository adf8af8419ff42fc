//! Ported from ingress-nginx `test/e2e/annotations/limitrate.go` ("Check
//! limit-rate annotation", with `proxy-buffering: on` as there): where the
//! Go case reads `limit_rate 1k;` in nginx.conf, the port downloads through
//! the route and times it. The echo backend's `?bytes=N` answers N bytes.

use std::time::{Duration, Instant};

use crate::{single, Site};

const HOST: &str = "limit-rate-annotation";

async fn download(site: &Site, bytes: u64) -> Duration {
    let start = Instant::now();
    let r = site.get(HOST, &format!("/?bytes={bytes}"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, bytes);
    start.elapsed()
}

#[tokio::test]
async fn check_limit_rate_annotation() {
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[("proxy-buffering", "on"), ("limit-rate", "1")],
    )])
    .await;
    // 3 KiB at 1 KiB/s: the last slice leaves after about 2.9 s.
    let took = download(&site, 3 * 1024).await;
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// `limit-rate-after`: the first kilobytes go at full speed.
#[tokio::test]
async fn limit_rate_after_sends_the_first_kilobytes_at_once() {
    let site = Site::start(vec![single(
        HOST,
        "/",
        HOST,
        &[
            ("proxy-buffering", "on"),
            ("limit-rate", "1"),
            ("limit-rate-after", "64"),
        ],
    )])
    .await;
    let took = download(&site, 64 * 1024).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    let took = download(&site, 64 * 1024 + 2048).await;
    assert!(took >= Duration::from_millis(1500), "{took:?}");
}

/// As ingress-nginx documents: without proxy buffering, no effect.
#[tokio::test]
async fn no_effect_without_proxy_buffering() {
    let site = Site::start(vec![single(HOST, "/", HOST, &[("limit-rate", "1")])]).await;
    let took = download(&site, 64 * 1024).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
}
