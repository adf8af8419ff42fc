//! Observability through the real binary (issue 18): every metric
//! `/metrics` exposes, with its labels, after real traffic (canary, Gateway
//! API routes, unrouted requests, a client that closes early, per-host
//! labels), the README's metric table against the code, and the access
//! log (JSON, the ingress-nginx text format, custom templates, the
//! per-Ingress switch, the skip list, the drop counter).

mod common;

#[path = "observability/access_log.rs"]
mod access_log;
#[path = "observability/metrics.rs"]
mod metrics;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const NS: &str = "obs";

/// An Ingress `name` for `host` Prefix `/` → `svc`, with annotations.
fn annotated(name: &str, host: &str, svc: &str, annotations: &[(&str, &str)]) -> Value {
    let mut v = ingress(NS, name, &simple_spec(host, svc));
    for (k, val) in annotations {
        v["metadata"]["annotations"][*k] = Value::String(val.to_string());
    }
    v
}

/// Our IngressClass plus the backends of `echo`'s services in [`NS`].
fn base(echo: &Echo, svcs: &[&str]) -> Vec<Value> {
    let mut docs = vec![ingress_class("tollgate", false)];
    for svc in svcs {
        docs.extend(backend(NS, svc, &echo.ports(svc)));
    }
    docs
}

/// Waits (bounded) until the process's stdout has a line containing
/// `needle`, and returns it.
async fn log_line(tg: &Tollgate, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = tg.proc_.stdout_text();
        if let Some(line) = out.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no line with {needle:?}:\n{out}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits (bounded) until `metric{labels}` reaches `at_least`; returns the
/// last `/metrics` text.
async fn metric_at_least(
    tg: &Tollgate,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = tg.metrics().await;
        if metric_sum(&m, name, labels).unwrap_or(0.0) >= at_least {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} stayed below {at_least}:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
