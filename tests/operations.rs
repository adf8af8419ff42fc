//! Running it in production (issue 18): the validating admission webhook
//! over HTTPS, the live diagnostics endpoints, Events re-published while a
//! problem stands, `tollgate version`, and dual-stack listeners.
//!
//! Everything goes through the real binary and real sockets on 127.0.0.1
//! (and ::1 where the host has it).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

use common::cluster::{Cluster, CHANGE_TIMEOUT};
use common::*;

/// The namespace of the webhook's certificate Secret.
const CERT_NS: &str = "tollgate";
const CERT_NAME: &str = "admission-tls";

/// A tollgate serving the webhook with a certificate for `localhost`
/// issued by `ca`, plus `docs`.
async fn with_webhook(ca: &TestCa, docs: &[Value]) -> (Tollgate, SocketAddr, TestCert) {
    let cert = ca.leaf("tollgate-admission", &["localhost"]);
    let mut all = docs.to_vec();
    all.push(tls_secret(
        CERT_NS,
        CERT_NAME,
        &cert.chain_pem,
        &cert.key_pem,
    ));
    let port = free_port();
    let tg = Tollgate::builder()
        .docs("manifests.yaml", &all)
        .args(&[
            "--admission-addr",
            &format!("127.0.0.1:{port}"),
            "--admission-certificate",
            &format!("{CERT_NS}/{CERT_NAME}"),
        ])
        .start()
        .await;
    (tg, SocketAddr::from(([127, 0, 0, 1], port)), cert)
}

/// An AdmissionReview for `object`.
fn review(uid: &str, operation: &str, object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "resource": {"group": group, "version": version, "resource": "things"},
            "namespace": object["metadata"]["namespace"],
            "name": object["metadata"]["name"],
            "operation": operation,
            "userInfo": {"username": "test"},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": Value::Null,
            "dryRun": false,
        }
    })
}

/// POSTs a review to the webhook, trusting only `ca`; returns `response`.
async fn post_review(addr: SocketAddr, ca: &TestCa, body: &Value) -> Value {
    let client = TlsClient {
        trust: Some(ca.pem.clone()),
        ..TlsClient::default()
    };
    let mut conn = HttpsConn::open_with(&client, addr, Some("localhost"))
        .await
        .expect("TLS to the webhook, verified against the test CA");
    let r = conn
        .send(
            req("POST", "localhost", "/validate")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .expect("POST /validate");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let answer: Value = serde_json::from_slice(&r.body).expect("an AdmissionReview");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    answer["response"].clone()
}

fn web_backend() -> Vec<Value> {
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(backend("apps", "web", &[9]));
    docs.push(ingress("apps", "web", &simple_spec("web.example", "web")));
    docs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_allows_denies_and_warns_over_https() {
    let ca = TestCa::new("admission test CA");
    let (tg, addr, cert) = with_webhook(&ca, &web_backend()).await;

    // The certificate presented is the Secret's.
    let presented = served_cert(addr, Some("localhost")).await.unwrap();
    assert!(presented.is(&cert), "{}", presented.describe());

    // Valid: a new host to an existing Service.
    let valid = ingress("apps", "shop", &simple_spec("shop.example", "web"));
    let r = post_review(addr, &ca, &review("u-valid", "CREATE", &valid)).await;
    assert_eq!(r["uid"], "u-valid");
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("warnings").is_none(), "{r}");

    // Rejected: a snippet annotation is never served.
    let mut snippet = ingress("apps", "snippet", &simple_spec("snip.example", "web"));
    snippet["metadata"]["annotations"] =
        json!({"nginx.ingress.kubernetes.io/configuration-snippet": "return 200;"});
    let r = post_review(addr, &ca, &review("u-snippet", "CREATE", &snippet)).await;
    assert_eq!(r["uid"], "u-snippet");
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["status"]["code"], 422, "{r}");
    let message = r["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Ingress apps/snippet") && message.contains("snippet"),
        "{message}"
    );

    // Rejected: the same host and path as the older `web` (an UPDATE of an
    // Ingress that does not exist yet is compiled like a CREATE).
    let conflict = ingress("apps", "late", &simple_spec("web.example", "web"));
    let r = post_review(addr, &ca, &review("u-conflict", "UPDATE", &conflict)).await;
    assert_eq!(r["allowed"], false, "{r}");

    // Warning: a missing Service is served (503) with a warning.
    let orphan = ingress("apps", "orphan", &simple_spec("orphan.example", "nope"));
    let r = post_review(addr, &ca, &review("u-warn", "CREATE", &orphan)).await;
    assert_eq!(r["allowed"], true, "{r}");
    let warnings = r["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("nope"))),
        "{r}"
    );

    // Another class: not ours, allowed whatever it holds.
    let mut foreign = snippet.clone();
    foreign["metadata"]["name"] = json!("foreign");
    foreign["spec"]["ingressClassName"] = json!("nginx");
    let r = post_review(addr, &ca, &review("u-foreign", "CREATE", &foreign)).await;
    assert_eq!(r["allowed"], true, "{r}");

    // DELETE is always allowed.
    let r = post_review(addr, &ca, &review("u-delete", "DELETE", &snippet)).await;
    assert_eq!(r["allowed"], true, "{r}");

    // A TrafficPolicy whose spec breaks the CRD's rules is denied.
    let policy = traffic_policy(
        "apps",
        "bad-policy",
        &["web"],
        json!({"rateLimit": {"requestsPerSecond": 0}}),
    );
    let r = post_review(addr, &ca, &review("u-policy", "CREATE", &policy)).await;
    assert_eq!(r["allowed"], false, "{r}");

    // A schema error (a string where a list belongs) is denied with the field.
    let mut broken = valid.clone();
    broken["metadata"]["name"] = json!("broken");
    broken["spec"]["rules"] = json!("nope");
    let r = post_review(addr, &ca, &review("u-schema", "CREATE", &broken)).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.rules")),
        "{r}"
    );

    // Not an AdmissionReview: 400; another path: 404.
    let client = TlsClient {
        trust: Some(ca.pem.clone()),
        ..TlsClient::default()
    };
    let mut conn = HttpsConn::open_with(&client, addr, Some("localhost"))
        .await
        .unwrap();
    let r = conn
        .send(
            req("POST", "localhost", "/validate")
                .body(Full::new(Bytes::from_static(b"{\"kind\": 1}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = conn.get("localhost", "/").await.unwrap();
    assert_eq!(r.status, 404);

    // The certificate is re-read when its Secret changes.
    let rotated = ca.leaf("tollgate-admission-rotated", &["localhost"]);
    let mut docs = web_backend();
    docs.push(tls_secret(
        CERT_NS,
        CERT_NAME,
        &rotated.chain_pem,
        &rotated.key_pem,
    ));
    tg.write("manifests.yaml", &yaml_docs(&docs));
    let presented = eventually_cert(addr, "localhost", RELOAD_TIMEOUT, |c| c.is(&rotated))
        .await
        .unwrap();
    assert!(presented.is(&rotated), "{}", presented.describe());
    let r = post_review(addr, &ca, &review("u-after", "CREATE", &valid)).await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_reviews_gateway_api_routes() {
    let ca = TestCa::new("admission test CA");
    let mut docs = web_backend();
    docs.push(gateway::gateway_class());
    docs.push(gateway::gateway(
        "apps",
        "edge",
        "[{name: http, port: 80, protocol: HTTP}]",
    ));
    let (_tg, addr, _) = with_webhook(&ca, &docs).await;
    let route = |name: &str, hostname: &str| {
        gateway::http_route(
            "apps",
            name,
            &format!(
                "{{parentRefs: [{{name: edge}}], hostnames: [\"{hostname}\"], \
                 rules: [{{backendRefs: [{{name: web, port: 8080}}]}}]}}"
            ),
        )
    };
    let r = post_review(
        addr,
        &ca,
        &review("u-route", "CREATE", &route("ok", "ok.example")),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    let r = post_review(
        addr,
        &ca,
        &review("u-bad-route", "CREATE", &route("bad", "a.*.example")),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
}

/// Several thousand Ingresses: the webhook's answer time (p50, p99) with
/// the whole snapshot compiled per review. `cargo test --test operations
/// -- --ignored webhook_latency --nocapture` (INGRESSES=10000 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale measurement; run explicitly"]
async fn webhook_latency_at_scale() {
    let n: usize = std::env::var("INGRESSES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let ca = TestCa::new("admission test CA");
    let mut docs = vec![ingress_class("tollgate", false)];
    for i in 0..n {
        docs.extend(backend("apps", &format!("svc-{i}"), &[9]));
        docs.push(ingress(
            "apps",
            &format!("ing-{i}"),
            &simple_spec(&format!("h{i}.bench"), &format!("svc-{i}")),
        ));
    }
    let cert = ca.leaf("tollgate-admission", &["localhost"]);
    docs.push(tls_secret(
        CERT_NS,
        CERT_NAME,
        &cert.chain_pem,
        &cert.key_pem,
    ));
    let port = free_port();
    let started = Instant::now();
    let tg = Tollgate::builder()
        .docs("manifests.yaml", &docs)
        .args(&[
            "--admission-addr",
            &format!("127.0.0.1:{port}"),
            "--admission-certificate",
            &format!("{CERT_NS}/{CERT_NAME}"),
        ])
        .no_wait()
        .start()
        .await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Ok(r) = tg.admin("/readyz").await {
            if r.status == 200 {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(300), "not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut times = Vec::new();
    for i in 0..50 {
        let object = ingress(
            "apps",
            &format!("new-{i}"),
            &simple_spec("new.bench", "svc-1"),
        );
        let t = Instant::now();
        let r = post_review(addr, &ca, &review(&format!("u{i}"), "CREATE", &object)).await;
        times.push(t.elapsed());
        assert_eq!(r["allowed"], true, "{r}");
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "webhook at {n} Ingresses: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} reviews, each a new TLS connection)",
        p(0.50).as_secs_f64() * 1000.0,
        p(0.99).as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        times.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_routes_print_the_check_report_and_diagnostics_keep_their_since() {
    let mut docs = web_backend();
    docs.push(ingress(
        "apps",
        "orphan",
        &simple_spec("orphan.example", "nope"),
    ));
    let tg = Tollgate::builder()
        .docs("manifests.yaml", &docs)
        .start()
        .await;

    // /debug/routes is what `tollgate check --output json` prints.
    let r = tg.admin("/debug/routes").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let live: Value = serde_json::from_slice(&r.body).unwrap();
    let (code, out, err) = check(&tg.manifests_dir(), &["--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let checked: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(live, checked);
    assert!(live["routes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["host"] == "web.example" && r["endpoints"][0] == "127.0.0.1:9"));

    // /debug/diagnostics: object, field, reason and since when.
    let diagnostics = |r: Resp| -> Value { serde_json::from_slice(&r.body).unwrap() };
    let first = diagnostics(tg.admin("/debug/diagnostics").await.unwrap());
    let orphan = |v: &Value| -> Value {
        v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "orphan")
            .cloned()
            .unwrap_or_else(|| panic!("no diagnostic about orphan: {v}"))
    };
    let d = orphan(&first);
    assert_eq!(d["kind"], "Ingress");
    assert_eq!(d["namespace"], "apps");
    assert_eq!(d["severity"], "warning");
    assert!(d["field"].as_str().unwrap().contains("backend"), "{d}");
    assert!(d["reason"].as_str().unwrap().contains("nope"), "{d}");
    let since = d["sinceUnix"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(since <= now && now - since < 60, "{d}");
    assert!(d["since"].as_str().unwrap().ends_with('Z'), "{d}");

    // A recompile (another file) keeps the first-seen time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tg.write(
        "more.yaml",
        &yaml_docs(&[ingress("apps", "more", &simple_spec("more.example", "web"))]),
    );
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    let later = loop {
        let v = diagnostics(tg.admin("/debug/diagnostics").await.unwrap());
        if v["generation"].as_u64() > first["generation"].as_u64() || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        later["generation"].as_u64() > first["generation"].as_u64(),
        "no recompile: {later}"
    );
    assert_eq!(orphan(&later)["sinceUnix"], since, "{later}");
    let routes: Value =
        serde_json::from_slice(&tg.admin("/debug/routes").await.unwrap().body).unwrap();
    assert!(routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["host"] == "more.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_dash_dash_version_name_the_git_revision() {
    let expected = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    for args in [vec!["version".to_string()], vec!["--version".to_string()]] {
        let (code, out, err) = run_cmd(&args).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        let line = out.trim();
        assert!(
            line.starts_with(&format!(
                "tollgate {} (revision ",
                env!("CARGO_PKG_VERSION")
            )),
            "{line}"
        );
        let revision = line
            .rsplit_once("(revision ")
            .and_then(|(_, r)| r.strip_suffix(')'))
            .unwrap_or_default();
        assert!(!revision.is_empty(), "{line}");
        // The build may predate the last commit (the build script reruns
        // on changes); a hex revision of the right length, or "unknown"
        // outside git.
        match &expected {
            Some(head) => assert!(
                revision.len() == head.len() && revision.chars().all(|c| c.is_ascii_hexdigit()),
                "{line} (HEAD {head})"
            ),
            None => assert_eq!(revision, "unknown"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_problems_are_published_again_before_the_event_ttl() {
    let c = Cluster::new();
    c.api.apply_many(vec![ingress(
        "apps",
        "orphan",
        &simple_spec("orphan.example", "nope"),
    )]);
    let _tg = c
        .tollgate()
        .env("TOLLGATE_EVENT_REPUBLISH_INTERVAL", "2s")
        .start()
        .await;
    let about = || {
        c.api
            .list("events.k8s.io/v1", "Event")
            .into_iter()
            .filter(|e| e["regarding"]["name"] == "orphan")
            .count()
    };
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    while about() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = about();
    assert!(first >= 1, "no Event about orphan");
    // Not again within the interval ...
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(about(), first, "published again within the interval");
    // ... and again after it, while the problem stands.
    let deadline = Instant::now() + Duration::from_secs(5);
    while about() == first && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(about() > first, "not published again after the interval");
}

/// `FDSize` of process `pid`: the size of its file-descriptor table.
fn fd_table_size(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no FDSize in /proc/{pid}/status"))
}

/// Linux grows a process's fd table by doubling, and in a threaded process
/// each growth waits for an RCU grace period inside the `socket()` or
/// `accept4()` that crossed the boundary: the endpoint bench saw single
/// requests take 15–25 ms at each one. tollgate (and its echo backend) grow
/// the table at start-up, so a burst of 300 connections through the proxy,
/// 600 sockets in all, is served without the table growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_finds_the_fd_table_already_grown() {
    const CONNECTIONS: usize = 300;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    // tollgate holds ~2 × 300 sockets: the usual soft limit, 1,024, is enough.
    assert!(
        limit >= 1024,
        "RLIMIT_NOFILE {limit} is too low for this test: raise it"
    );
    let want = limit.min(tollgate::fdtable::RESERVE);
    let echo = Echo::services(&["fd"]).await;
    let tg = Tollgate::with_docs(&routed("ops", "fd.test", "fd", &echo.ports("fd"))).await;
    let before = fd_table_size(tg.pid());
    assert!(before >= want, "tollgate's fd table: {before} < {want}");
    assert!(
        fd_table_size(echo.proc_.pid()) >= want,
        "the echo backend's fd table"
    );

    // Every connection open at once, then a request on each: tollgate holds
    // a client and an upstream socket per request in flight.
    let addr = tg.http_addr();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        conns.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut c in conns {
        tasks.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            c.write_all(b"GET /burst HTTP/1.1\r\nHost: fd.test\r\n\r\n")
                .await?;
            let mut head = [0u8; 12];
            c.read_exact(&mut head).await?;
            // Held open until every request is answered.
            Ok::<_, std::io::Error>((head, c))
        });
    }
    let mut held = Vec::with_capacity(CONNECTIONS);
    let deadline = Duration::from_secs(30);
    while let Some(done) = tokio::time::timeout(deadline, tasks.join_next())
        .await
        .expect("300 requests answered in 30 s")
    {
        let (head, c) = done.unwrap().unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
        held.push(c);
    }
    assert_eq!(held.len(), CONNECTIONS);
    assert_eq!(
        fd_table_size(tg.pid()),
        before,
        "the burst grew tollgate's fd table"
    );
}
