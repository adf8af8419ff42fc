//! Ported from ingress-nginx `test/e2e/annotations/disableaccesslog.go`:
//! the ConfigMap's `disable-access-log`, `disable-http-access-log` and
//! `disable-stream-access-log` (`--configmap default/nginx`). Where the Go
//! cases read `access_log off;` in nginx.conf, the ports send a request
//! and look for its access-log line on tollgate's stdout. A control
//! Ingress with `enable-access-log: "true"` (its own annotation wins over
//! the ConfigMap's default) shows when lines have been written.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::{check_docs, config_map, single, Site, CONFIGMAP};

const CONTROL: &str = "control.foo.com";

/// tollgate with the ConfigMap `key: "true"`, `host` and the control
/// Ingress; one request to each (by request id). Returns the site and
/// whether `host`'s request was logged.
async fn logged_with(key: &str, host: &str) -> (Site, bool) {
    let docs = vec![
        config_map("nginx", &[(key, "true")]),
        single(host, "/", host, &[]),
        single(CONTROL, "/", CONTROL, &[("enable-access-log", "true")]),
    ];
    let site = Site::with(
        Echo::services(&[crate::ECHO]).await,
        docs,
        &["--configmap", CONFIGMAP],
    )
    .await;
    let r = site
        .get(host, "/", &[("x-request-id", "probe-request")])
        .await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let r = site
        .get(CONTROL, "/", &[("x-request-id", "control-request")])
        .await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let deadline = Instant::now() + Duration::from_secs(5);
    let out = loop {
        let out = site.tg.proc_.stdout_text();
        if out.contains("control-request") {
            break out;
        }
        assert!(Instant::now() < deadline, "no control line:\n{out}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let logged = out.contains("probe-request");
    (site, logged)
}

/// Go: "disable-access-log set access_log off".
#[tokio::test]
async fn disable_access_log_set_access_log_off() {
    let (_site, logged) = logged_with("disable-access-log", "disableaccesslog.foo.com").await;
    assert!(!logged, "the request was logged");
}

/// Go: "disable-http-access-log set access_log off".
#[tokio::test]
async fn disable_http_access_log_set_access_log_off() {
    let (_site, logged) =
        logged_with("disable-http-access-log", "disablehttpaccesslog.foo.com").await;
    assert!(!logged, "the request was logged");
}

/// Go: "disable-stream-access-log set access_log off". The key is about
/// nginx's stream (TCP/UDP) section, which tollgate does not have: HTTP
/// requests are still served and logged, and `check` reports the key as
/// without effect. (The Go case passes on the `access_log off;` the
/// previous cases' keys left in the shared ConfigMap.)
#[tokio::test]
async fn disable_stream_access_log_set_access_log_off() {
    let host = "disablehttpaccesslog.foo.com";
    let (_site, logged) = logged_with("disable-stream-access-log", host).await;
    assert!(logged, "HTTP requests are still logged");
    let docs = vec![
        config_map("nginx", &[("disable-stream-access-log", "true")]),
        single(host, "/", host, &[]),
    ];
    let (code, out) = check_docs(&docs, &["--configmap", CONFIGMAP]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("disable-stream-access-log") && l.contains("no TCP/UDP streams")),
        "{out}"
    );
}
