//! The access log: fields in JSON and text, custom templates, the
//! per-Ingress switch, the skip list, and lines dropped when stdout does
//! not keep up (counted, never silent).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use serde_json::Value;

use super::common::*;
use super::{annotated, base, log_line, metric_at_least, NS};

/// `req` with its User-Agent replaced (the helper's client sets one).
fn with_agent(
    mut req: http::Request<Full<bytes::Bytes>>,
    agent: &'static str,
) -> http::Request<Full<bytes::Bytes>> {
    req.headers_mut()
        .insert("user-agent", http::HeaderValue::from_static(agent));
    req
}

fn tls_docs(echo: &Echo) -> (Vec<Value>, TestCa) {
    let ca = TestCa::new("obs CA");
    let leaf = ca.leaf("app", &["app.test"]);
    let mut docs = base(echo, &["main"]);
    let mut spec = simple_spec("app.test", "main");
    spec.push_str("tls:\n- hosts: [app.test]\n  secretName: app-tls\n");
    let mut main = ingress(NS, "main", &spec);
    main["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] =
        Value::String("false".into());
    docs.push(main);
    docs.push(tls_secret(NS, "app-tls", &leaf.chain_pem, &leaf.key_pem));
    (docs, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_line_has_every_field() {
    let echo = Echo::services(&["main"]).await;
    let (docs, _ca) = tls_docs(&echo);
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--log-format", "json"])
        .start()
        .await;
    let r = send(
        tg.http_addr(),
        with_agent(
            req("POST", "app.test", "/json?x=1")
                .header("referer", "https://from.test/page")
                .header("x-request-id", "json-1")
                .body(Full::new(bytes::Bytes::from_static(b"hello")))
                .unwrap(),
            "obs-agent/1.0",
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let line = log_line(&tg, "json-1").await;
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["target"], "access");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/json?x=1");
    assert_eq!(v["host"], "app.test");
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["scheme"], "http");
    assert_eq!(v["tls_version"], Value::Null);
    assert_eq!(v["status"], 200);
    assert_eq!(v["user_agent"], "obs-agent/1.0");
    assert_eq!(v["referer"], "https://from.test/page");
    assert_eq!(v["client"], "127.0.0.1");
    assert_eq!(v["route_kind"], "Ingress");
    assert_eq!(v["route"], "obs/main");
    assert_eq!(v["ingress"], "obs/main");
    assert!(
        v["service"].as_str().unwrap().starts_with("obs/main:"),
        "{line}"
    );
    assert_eq!(v["canary"], false);
    assert_eq!(v["upstream"], format!("127.0.0.1:{}", echo.port("main")));
    assert_eq!(v["upstream_status"], 200);
    // Request line + headers + the 5-byte body.
    let request_bytes = v["request_bytes"].as_u64().unwrap();
    assert!((60..400).contains(&request_bytes), "{line}");
    let body = v["body_bytes"].as_u64().unwrap();
    assert_eq!(body, r.body.len() as u64, "{line}");
    assert!(v["response_bytes"].as_u64().unwrap() > body, "{line}");
    let upstream_ms = v["upstream_response_ms"].as_f64().unwrap();
    let total_ms = v["duration_ms"].as_f64().unwrap();
    assert!(upstream_ms > 0.0 && upstream_ms <= total_ms, "{line}");
    assert!(
        v["upstream_connect_ms"].as_f64().is_some(),
        "a new connection: {line}"
    );

    // Over HTTPS: the TLS version and scheme.
    let (r, _) = https_get(tg.https_addr(), Some("app.test"), "app.test", "/over-tls")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let line = log_line(&tg, "/over-tls").await;
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["tls_version"], "TLSv1.3", "{line}");
    assert_eq!(v["scheme"], "https", "{line}");
    // An unrouted request names no route.
    assert_eq!(tg.get("nowhere.test", "/unrouted-json").await.status, 404);
    let v: Value = serde_json::from_str(&log_line(&tg, "/unrouted-json").await).unwrap();
    assert_eq!(
        (v["route"].as_str(), v["status"].as_u64()),
        (Some(""), Some(404))
    );
    assert_eq!(v["upstream_status"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_default_and_custom_templates() {
    let echo = Echo::services(&["main"]).await;
    let mut docs = base(&echo, &["main"]);
    docs.push(annotated("main", "app.test", "main", &[]));
    // Default text: ingress-nginx's `upstreaminfo`.
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;
    let r = send(
        tg.http_addr(),
        with_agent(
            req("GET", "app.test", "/plain?x=1")
                .header("x-request-id", "txt-1")
                .body(Full::default())
                .unwrap(),
            "ua \"quoted\"",
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let line = log_line(&tg, "txt-1").await;
    let port = echo.port("main");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("] \"GET /plain?x=1 HTTP/1.1\" 200 ")
            && line.contains(" \"-\" \"ua \\x22quoted\\x22\" ")
            && line.contains(&format!(" [upstream-obs-main-8080] [] 127.0.0.1:{port} "))
            && line.ends_with(" 200 txt-1"),
        "{line}"
    );
    drop(tg);

    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&[
            "--access-log-format",
            "$remote_addr|$status|$http_user_agent|$upstream_status|$route_kind|$route|$request_method|$uri|$args|$server_protocol|$ssl_protocol|$req_id",
        ])
        .start()
        .await;
    let r = send(
        tg.http_addr(),
        with_agent(
            req("GET", "app.test", "/c?q=1")
                .header("x-request-id", "cus-1")
                .body(Full::default())
                .unwrap(),
            "ua-x",
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        log_line(&tg, "cus-1").await,
        "127.0.0.1|200|ua-x|200|Ingress|obs/main|GET|/c|q=1|HTTP/1.1|-|cus-1"
    );

    // An unknown variable is refused at start, naming it.
    let dir = TempDir::new("badfmt");
    dir.write("m.yaml", &yaml_docs(&docs));
    let (code, _, stderr) = run_cmd(&[
        "run".into(),
        "--manifests".into(),
        dir.path().to_string_lossy().into_owned(),
        "--access-log-format".into(),
        "$status $nope".into(),
    ])
    .await;
    assert_ne!(code, 0);
    assert!(stderr.contains("$nope"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ingress_switch_and_skip_list() {
    let echo = Echo::services(&["main"]).await;
    let mut docs = base(&echo, &["main"]);
    docs.push(annotated("on", "on.test", "main", &[]));
    docs.push(annotated(
        "off1",
        "off1.test",
        "main",
        &[("tollgate.dev/enable-access-log", "false")],
    ));
    docs.push(annotated(
        "off2",
        "off2.test",
        "main",
        &[("nginx.ingress.kubernetes.io/enable-access-log", "false")],
    ));
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&[
            "--log-format",
            "json",
            "--threads",
            "1",
            "--access-log-skip-path",
            "/healthz,/ping/*",
        ])
        .start()
        .await;
    let get = |host: &'static str, path: &'static str, id: &'static str| {
        let addr = tg.http_addr();
        async move {
            let r = send(
                addr,
                req("GET", host, path)
                    .header("x-request-id", id)
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
            assert_eq!(r.status, 200, "{host}{path}");
        }
    };
    get("off1.test", "/", "off-one").await;
    get("off2.test", "/", "off-two").await;
    get("on.test", "/healthz", "skip-one").await;
    get("on.test", "/ping/x", "skip-two").await;
    get("on.test", "/", "on-one").await;
    log_line(&tg, "on-one").await;
    let out = tg.proc_.stdout_text();
    for id in ["off-one", "off-two", "skip-one", "skip-two"] {
        assert!(!out.contains(id), "{id} logged:\n{out}");
    }
    // Not logged, still counted.
    metric_at_least(
        &tg,
        "tollgate_requests_total",
        &[("ingress", "obs/off1")],
        1.0,
    )
    .await;
}

/// A process that kills its child on drop (the child's stdout is a pipe
/// the test reads, or not).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With stdout not read, the writer's queue fills: the proxy keeps
/// serving, and every line that could not be written is counted; once
/// stdout is read again, lines written + lines dropped = requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_dropped_when_stdout_stalls_are_counted() {
    const REQUESTS: usize = 1000;
    let echo = Echo::services(&["main"]).await;
    let mut docs = base(&echo, &["main"]);
    docs.push(annotated("main", "app.test", "main", &[]));
    let dir = TempDir::new("drop");
    dir.write("m.yaml", &yaml_docs(&docs));
    let (http, https, admin) = (free_port(), free_port(), free_port());
    let mut child = Child(
        Command::new(BIN)
            .args(["run", "--manifests"])
            .arg(dir.path())
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--https-addr", &format!("127.0.0.1:{https}")])
            .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
            .args(["--log-format", "json", "--threads", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    let metrics = || async move {
        send(
            admin_addr,
            req("GET", "admin", "/metrics")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .map(|r| r.text())
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let ready = send(
            admin_addr,
            req("GET", "admin", "/readyz")
                .body(Full::default())
                .unwrap(),
        )
        .await;
        if ready.is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], http));
    let mut conn = Conn::open(addr).await.unwrap();
    for i in 0..REQUESTS {
        let r = conn
            .send(
                req("GET", "app.test", &format!("/n{i}"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            r.status, 200,
            "request {i}: the proxy never waits for the log"
        );
    }
    // The worker hands its last lines over when it goes idle, so the count
    // settles a moment after the last response: read it until it holds.
    let dropped_count =
        |m: &str| metric_sum(m, "tollgate_access_log_dropped_total", &[]).unwrap_or(0.0) as usize;
    let mut m = metrics().await.unwrap();
    let settle = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = metrics().await.unwrap();
        let settled = dropped_count(&again) == dropped_count(&m);
        m = again;
        if settled || Instant::now() > settle {
            break;
        }
    }
    let dropped = dropped_count(&m);
    assert!(dropped > 0, "nothing dropped with stdout stalled:\n{m}");
    eprintln!("stdout stalled: {REQUESTS} requests served, {dropped} lines dropped and counted");

    // Read stdout again: what was queued is written, the rest was counted.
    let stdout = child.0.stdout.take().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("\"target\":\"access\"") {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while written.load(Ordering::Relaxed) + dropped < REQUESTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = metrics().await.unwrap();
    let dropped_now =
        metric_sum(&m, "tollgate_access_log_dropped_total", &[]).unwrap_or(0.0) as usize;
    assert_eq!(dropped_now, dropped, "nothing dropped after stdout drained");
    assert_eq!(written.load(Ordering::Relaxed) + dropped, REQUESTS);
    drop(child);
}
