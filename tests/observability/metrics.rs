//! `/metrics` after real traffic: names, labels and values.

use std::collections::BTreeSet;
use std::time::Duration;

use http_body_util::Full;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::common::gateway::{gateway, gateway_class, http_route};
use super::common::*;
use super::{annotated, base, log_line, metric_at_least, NS};

/// Every metric family `/metrics` declares (`# TYPE name type`), with the
/// suffixes Prometheus adds to counters.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            Some(match parts.next()? {
                "counter" => format!("{name}_total"),
                _ => name.to_string(),
            })
        })
        .collect()
}

/// The metric names of the README's metric table (first column, in
/// backticks, of the rows under `## Observability`).
fn readme_metrics() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Observability")
        .nth(1)
        .expect("a `## Observability` section in README.md");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(|name| name.split('{').next().unwrap_or(name).to_string())
        .collect()
}

/// An Ingress refused for a snippet annotation.
fn rejected_ingress() -> Value {
    annotated(
        "snippet",
        "snippet.test",
        "main",
        &[(
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "return 200;",
        )],
    )
}

/// Metrics only Kubernetes mode has data for (pinned by
/// tests/kubernetes.rs and tests/kubernetes_gateway.rs).
const KUBERNETES_ONLY: [&str; 6] = [
    "tollgate_kube_watch_errors_total",
    "tollgate_kube_watch_synced",
    "tollgate_status_updates_total",
    "tollgate_status_writes_total",
    "tollgate_events_published_total",
    // Not Kubernetes-only: its series appear with the first global rate
    // limit decision (asserted in tests/global_rate_limit.rs).
    "tollgate_global_rate_limit_decisions_total",
];

fn value(m: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_sum(m, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{m}"))
}

/// Every series line of `name` (not its `_bucket`/`_sum`/`_count` lines).
fn series<'a>(m: &'a str, name: &str) -> Vec<&'a str> {
    m.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .collect()
}

async fn get_with(
    tg: &Tollgate,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut b = req(method, host, target);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(tg.http_addr(), b.body(Full::default()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} http://{host}{target}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_after_real_traffic() {
    let echo = Echo::services(&["main", "canary", "gw"]).await;
    let mut docs = base(&echo, &["main", "canary", "gw"]);
    docs.push(annotated("main", "app.test", "main", &[]));
    docs.push(annotated(
        "canary",
        "app.test",
        "canary",
        &[
            ("nginx.ingress.kubernetes.io/canary", "true"),
            ("nginx.ingress.kubernetes.io/canary-by-header", "X-Canary"),
        ],
    ));
    // An Ingress whose only endpoint refuses connections (502).
    docs.push(annotated("dead", "dead.test", "dead", &[]));
    docs.extend(backend(NS, "dead", &[free_port()]));
    docs.push(gateway_class());
    docs.push(gateway(
        NS,
        "gw",
        "[{name: http, port: 80, protocol: HTTP}]",
    ));
    docs.push(http_route(
        NS,
        "web",
        "parentRefs: [{name: gw}]\nhostnames: [gw.test]\nrules:\n- backendRefs: [{name: gw, port: 8080}]",
    ));
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    for _ in 0..3 {
        assert_eq!(tg.get("app.test", "/").await.status, 200);
    }
    assert_eq!(
        get_with(&tg, "POST", "app.test", "/", &[]).await.status,
        200
    );
    let canary = get_with(&tg, "GET", "app.test", "/", &[("x-canary", "always")]).await;
    assert_eq!(canary.service().as_deref(), Some("canary"));
    assert_eq!(tg.get("nowhere.test", "/").await.status, 404);
    assert_eq!(tg.get("dead.test", "/").await.status, 502);
    let gw = tg.eventually("gw.test", "/", |r| r.status == 200).await;
    assert_eq!(gw.service().as_deref(), Some("gw"), "{}", gw.summary());

    let m = metric_at_least(
        &tg,
        "tollgate_requests_total",
        &[
            ("ingress", "obs/main"),
            ("canary", "false"),
            ("status", "200"),
            ("method", "GET"),
        ],
        3.0,
    )
    .await;
    let main = [("ingress", "obs/main"), ("canary", "false")];
    assert_eq!(
        value(
            &m,
            "tollgate_requests_total",
            &[main[0], main[1], ("method", "POST")]
        ),
        1.0
    );
    assert_eq!(
        value(&m, "tollgate_requests_total", &main),
        4.0,
        "the canary request is not the stable one's"
    );
    // Canary traffic under the canary's own Ingress and Service.
    let canary = [
        ("ingress", "obs/canary"),
        ("canary", "true"),
        ("status", "200"),
    ];
    assert_eq!(value(&m, "tollgate_requests_total", &canary), 1.0, "{m}");
    assert!(
        series(&m, "tollgate_requests_total")
            .iter()
            .any(|l| l.contains("ingress=\"obs/canary\"") && l.contains("service=\"obs/canary:")),
        "{m}"
    );
    // Gateway API routes carry `route`, not `ingress`.
    assert_eq!(
        value(
            &m,
            "tollgate_requests_total",
            &[("route", "obs/web"), ("ingress", ""), ("status", "200")]
        ),
        1.0
    );
    // Unrouted and failed requests.
    assert!(
        value(
            &m,
            "tollgate_requests_total",
            &[("ingress", ""), ("route", ""), ("status", "404")]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &m,
            "tollgate_requests_total",
            &[("ingress", "obs/dead"), ("status", "502")]
        ),
        1.0
    );
    assert!(
        value(
            &m,
            "tollgate_upstream_connect_errors_total",
            &[("service", "obs/dead:8080")]
        ) >= 1.0,
        "{m}"
    );
    // No host label without --metrics-per-host.
    assert!(!m.contains("host=\"app.test\""), "{m}");

    // The request histograms, per route.
    for name in [
        "tollgate_request_duration_seconds",
        "tollgate_request_size_bytes",
        "tollgate_response_size_bytes",
        "tollgate_upstream_response_duration_seconds",
    ] {
        let count = value(&m, &format!("{name}_count"), &main);
        assert_eq!(count, 4.0, "{name}_count:\n{m}");
        let inf = value(
            &m,
            &format!("{name}_bucket"),
            &[main[0], main[1], ("le", "+Inf")],
        );
        assert_eq!(inf, 4.0, "{name} +Inf bucket");
    }
    assert!(
        value(&m, "tollgate_response_size_bytes_sum", &main) > 4.0 * 100.0,
        "headers and body"
    );
    assert!(value(&m, "tollgate_request_size_bytes_sum", &main) > 4.0 * 30.0);
    assert!(value(&m, "tollgate_request_duration_seconds_sum", &main) > 0.0);
    // One new upstream connection at least (later requests reuse it).
    assert!(
        value(
            &m,
            "tollgate_upstream_connect_duration_seconds_count",
            &main
        ) >= 1.0
    );
    assert_eq!(
        value(&m, "tollgate_request_duration_seconds_count", &canary[..2]),
        1.0
    );

    // Configuration, build and process.
    assert_eq!(value(&m, "tollgate_config_last_apply_success", &[]), 1.0);
    assert!(value(&m, "tollgate_config_last_apply_timestamp_seconds", &[]) > 1.7e9);
    assert!(value(&m, "tollgate_compile_duration_seconds_count", &[]) >= 1.0);
    assert!(value(&m, "tollgate_reloads_total", &[]) >= 1.0);
    assert!(value(&m, "tollgate_table_generation", &[]) >= 1.0);
    assert_eq!(value(&m, "tollgate_compile_failures_total", &[]), 0.0);
    let build = series(&m, "tollgate_build_info");
    assert_eq!(build.len(), 1, "{m}");
    assert!(
        build[0].contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build[0].contains("revision=\"")
            && build[0].ends_with(" 1"),
        "{}",
        build[0]
    );
    assert!(value(&m, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&m, "process_virtual_memory_bytes", &[]) > 1e6);
    assert!(value(&m, "process_open_fds", &[]) >= 5.0);
    assert!(value(&m, "process_max_fds", &[]) >= 64.0);
    assert!(value(&m, "process_cpu_seconds_total", &[]) > 0.0);
    let start = value(&m, "process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 120.0..=now + 2.0).contains(&start),
        "start {start}, now {now}"
    );
    // The test's own keep-alive connections may be open or closing: the
    // gauge exists and is never negative.
    assert!(value(&m, "tollgate_open_connections", &[]) >= 0.0);
    assert_eq!(value(&m, "tollgate_access_log_dropped_total", &[]), 0.0);

    // An endpoint-only change takes the fast path.
    let before = value(&m, "tollgate_endpoint_updates_total", &[]);
    let mut docs2 = docs.clone();
    for d in docs2
        .iter_mut()
        .filter(|d| d["kind"] == "EndpointSlice" && d["metadata"]["name"] == "dead-0")
    {
        d["endpoints"][0]["conditions"]["ready"] = Value::Bool(false);
    }
    tg.write("m.yaml", &yaml_docs(&docs2));
    metric_at_least(&tg, "tollgate_endpoint_updates_total", &[], before + 1.0).await;

    // A manifest that cannot be read: a source error.
    tg.write("broken.yaml", "kind: [unclosed");
    let m = metric_at_least(&tg, "tollgate_source_errors_total", &[], 1.0).await;
    assert!(
        series(&m, "tollgate_source_errors_total")
            .iter()
            .any(|l| l.contains("broken.yaml")),
        "{m}"
    );
    // A rejected Ingress: a diagnostic, a failed compile, and the last
    // apply is not a success.
    tg.write("bad.yaml", &yaml_docs(&[rejected_ingress()]));
    let m = metric_at_least(
        &tg,
        "tollgate_config_diagnostics",
        &[("kind", "Ingress"), ("severity", "rejected")],
        1.0,
    )
    .await;
    assert_eq!(
        value(&m, "tollgate_config_last_apply_success", &[]),
        0.0,
        "{m}"
    );
    assert!(value(&m, "tollgate_compile_failures_total", &[]) >= 1.0);
    // Fixed again: the count of rejections goes back to 0, and the apply
    // is a success once no file is broken either.
    tg.remove("broken.yaml");
    tg.remove("bad.yaml");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = tg.metrics().await;
        let now = value(
            &m,
            "tollgate_config_diagnostics",
            &[("kind", "Ingress"), ("severity", "rejected")],
        );
        if now == 0.0 {
            assert_eq!(
                value(&m, "tollgate_config_last_apply_success", &[]),
                1.0,
                "{m}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every family `/metrics` declares is in the README's table and the other
/// way round (the table is the reference of the names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_metric_table_matches_the_binary() {
    // Traffic, a certificate, a source error and a rejected Ingress: every
    // family but Kubernetes mode's has data.
    let echo = Echo::services(&["main"]).await;
    let ca = TestCa::new("obs CA");
    let leaf = ca.leaf("app", &["app.test"]);
    let mut docs = base(&echo, &["main"]);
    let mut spec = simple_spec("app.test", "main");
    spec.push_str("tls:\n- hosts: [app.test]\n  secretName: app-tls\n");
    docs.push(ingress(NS, "main", &spec));
    docs.push(tls_secret(NS, "app-tls", &leaf.chain_pem, &leaf.key_pem));
    docs.push(rejected_ingress());
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .file("broken.yaml", "kind: [unclosed")
        .start()
        .await;
    let (r, _) = https_get(tg.https_addr(), Some("app.test"), "app.test", "/")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let m = metric_at_least(
        &tg,
        "tollgate_requests_total",
        &[("ingress", "obs/main")],
        1.0,
    )
    .await;
    let m = if m.contains("tollgate_source_errors") {
        m
    } else {
        metric_at_least(&tg, "tollgate_source_errors_total", &[], 1.0).await
    };
    let expiry = value(
        &m,
        "tollgate_certificate_expiry_timestamp_seconds",
        &[("secret", "obs/app-tls"), ("host", "app.test")],
    );
    assert!(expiry > 1.7e9, "{m}");
    let exposed = families(&m);
    let documented = readme_metrics();
    let undocumented: Vec<_> = exposed.difference(&documented).collect();
    let missing: Vec<_> = documented
        .difference(&exposed)
        .filter(|name| !KUBERNETES_ONLY.contains(&name.as_str()))
        .collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "exposed but not in README: {undocumented:?}; in README but not exposed: {missing:?}"
    );
    for name in KUBERNETES_ONLY {
        assert!(documented.contains(name), "{name} not in README");
    }
    // The README's TLS handshake results are the code's.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `tollgate_tls_handshakes_total"))
        .expect("handshake row");
    for result in tollgate::metrics::HANDSHAKE_RESULTS {
        assert!(
            row.contains(&format!("`{result}`")),
            "README lacks result {result}: {row}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_label_only_with_the_flag() {
    let echo = Echo::services(&["main"]).await;
    let mut docs = base(&echo, &["main"]);
    docs.push(annotated("main", "app.test", "main", &[]));
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .arg("--metrics-per-host")
        .start()
        .await;
    assert_eq!(tg.get("app.test", "/").await.status, 200);
    let m = metric_at_least(
        &tg,
        "tollgate_requests_total",
        &[("ingress", "obs/main"), ("host", "app.test")],
        1.0,
    )
    .await;
    assert!(
        value(
            &m,
            "tollgate_request_duration_seconds_count",
            &[("host", "app.test")]
        ) >= 1.0,
        "{m}"
    );
}

/// A client that closes before the response is counted (and logged) as
/// 499, under its route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_closing_early_is_499() {
    let echo = Echo::services(&["main"]).await;
    let mut docs = base(&echo, &["main"]);
    docs.push(annotated("main", "app.test", "main", &[]));
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--log-format", "json"])
        .start()
        .await;
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    s.write_all(b"GET /?delay=1500 HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: gone-early\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let m = metric_at_least(
        &tg,
        "tollgate_requests_total",
        &[("ingress", "obs/main"), ("status", "499")],
        1.0,
    )
    .await;
    assert_eq!(
        value(&m, "tollgate_requests_total", &[("ingress", "obs/main")]),
        1.0
    );
    let line = log_line(&tg, "gone-early").await;
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], 499, "{line}");
}
