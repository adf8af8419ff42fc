//! Ported from ingress-nginx `test/e2e/annotations/log.go`
//! (`DescribeAnnotation("enable-access-log enable-rewrite-log")`). Where
//! the Go cases read nginx.conf, the ports look at tollgate's access log
//! (stdout) and at what `check` reports.

use std::time::{Duration, Instant};

use crate::{assert_no_op, single, Site};

const HOST: &str = "log.foo.com";

/// Go: "set access_log off". The request is served and gets no
/// access-log line, while a request on another Ingress does.
#[tokio::test]
async fn set_access_log_off() {
    let control = "control.foo.com";
    let site = Site::start(vec![
        single(HOST, "/", HOST, &[("enable-access-log", "false")]),
        single(control, "/", control, &[]),
    ])
    .await;
    let r = site
        .get(HOST, "/", &[("x-request-id", "probe-request")])
        .await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let r = site
        .get(control, "/", &[("x-request-id", "control-request")])
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
    assert!(!out.contains("probe-request"), "logged:\n{out}");
}

/// Go: "set rewrite_log on". A no-op in tollgate (no rewrite log): served,
/// and `check` reports the no-op.
#[tokio::test]
async fn set_rewrite_log_on() {
    let docs = vec![single(HOST, "/", HOST, &[("enable-rewrite-log", "true")])];
    assert_no_op(&docs, "enable-rewrite-log").await;
    let site = Site::start(docs).await;
    let r = site.get(HOST, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
}
