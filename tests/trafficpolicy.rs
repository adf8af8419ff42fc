//! TrafficPolicy and Opaque Secrets in standalone mode, through the real
//! binary: `tollgate check` reports what a cluster's API server (the CRD
//! schema) would refuse, naming the file, the policy and the field, and a
//! running `tollgate run --manifests` keeps serving around a bad policy.

mod common;

use common::*;
use serde_json::{json, Value};

const NS: &str = "shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_invalid_policy_field_and_exits_1() {
    let echo = Echo::services(&["web"]).await;
    let dir = TempDir::new("check-policy");
    let mut docs = echo.backends(NS);
    docs.push(ingress(NS, "web", &simple_spec("web.example", "web")));
    docs.push(policy(
        "limits",
        &["web"],
        json!({"rateLimit": {"requestsPerSecond": 0}, "ipAllow": ["10.0.0.0/8", "10.0.0.300"]}),
    ));
    docs.push(policy(
        "fine",
        &["web"],
        json!({"timeouts": {"connect": "2s"}}),
    ));
    dir.write("app.yaml", &yaml_docs(&docs));

    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 1, "an invalid policy is a rejection\n{all}");
    for needed in [
        "TrafficPolicy shop/limits: spec.rateLimit.requestsPerSecond: 0 is not in 1..",
        "TrafficPolicy shop/limits: spec.ipAllow[1]: `10.0.0.300` is not an IP address or CIDR",
        "app.yaml:",
    ] {
        assert!(all.contains(needed), "missing `{needed}` in:\n{all}");
    }
    // The valid policy is not reported: it is the one that applies.
    assert!(!all.contains("shop/fine"), "{all}");
    // The route is still there.
    assert!(all.contains("web.example"), "{all}");

    // JSON output carries the same diagnostics, as structured fields.
    let (_, out, _) = check(dir.path(), &["--output", "json"]).await;
    let report: Value = serde_json::from_str(&out).expect("check JSON");
    let fields: Vec<&str> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["kind"] == "TrafficPolicy" && d["name"] == "limits")
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["spec.rateLimit.requestsPerSecond", "spec.ipAllow[1]"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_unknown_policy_fields_and_idle_policies() {
    let echo = Echo::services(&["web"]).await;
    let dir = TempDir::new("check-policy-fields");
    let mut docs = echo.backends(NS);
    docs.push(ingress(NS, "web", &simple_spec("web.example", "web")));
    docs.push(policy("lost", &["gone"], json!({})));
    dir.write("app.yaml", &yaml_docs(&docs));
    // A typo in another file: that file is refused as a whole, as
    // `kubectl apply` would refuse it.
    dir.write(
        "typo.yaml",
        &yaml_docs(&[policy(
            "typo",
            &["web"],
            json!({"rateLimit": {"requestPerSecond": 5}}),
        )]),
    );

    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("TrafficPolicy typo: field `spec.rateLimit.requestPerSecond`: unknown field"),
        "{all}"
    );
    assert!(
        all.contains("warning: TrafficPolicy shop/lost: spec.targetRefs: TargetNotFound"),
        "{all}"
    );
}

/// An Opaque Secret is read (for basic auth) but never serves as a
/// certificate: naming it in `spec.tls` says so, instead of "not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_secret_is_read_but_never_used_as_a_certificate() {
    let echo = Echo::services(&["web"]).await;
    let dir = TempDir::new("opaque");
    let mut docs = echo.backends(NS);
    let mut site = ingress(NS, "site", &simple_spec("secure.example", "web"));
    site["spec"]["tls"] = json!([{"hosts": ["secure.example"], "secretName": "htpasswd"}]);
    docs.push(site);
    docs.push(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "htpasswd", "namespace": NS},
        "type": "Opaque",
        "stringData": {"auth": "user:$apr1$x$y"},
    }));
    dir.write("site.yaml", &yaml_docs(&docs));
    let (_, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert!(
        all.contains(
            "Secret shop/htpasswd: type: the Secret is of type `Opaque`, not kubernetes.io/tls"
        ),
        "{all}"
    );
    assert!(!all.contains("not found"), "{all}");
}

/// An Ingress `name` for `host` → `/` → `svc`:8080 with annotations.
fn policy(name: &str, targets: &[&str], extra: Value) -> Value {
    traffic_policy(NS, name, targets, extra)
}

fn annotated_ingress(name: &str, host: &str, svc: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": {"ingressClassName": "tollgate", "rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": svc, "port": {"number": 8080}}}
        }]}}]}
    })
}

async fn get_from(tg: &Tollgate, src: &str, host: &str, target: &str) -> Resp {
    send_from(
        src.parse().unwrap(),
        tg.http_addr(),
        req("GET", host, target)
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("GET http://{host}{target} from {src}: {e}"))
}

#[tokio::test]
async fn a_policy_applies_on_the_request_path_and_wins_over_annotations() {
    let echo = Echo::replicas("app", 3).await;
    let mut docs = echo.backends(NS);
    docs.push(annotated_ingress(
        "web",
        "web.test",
        "app",
        json!({
            "nginx.ingress.kubernetes.io/whitelist-source-range": "127.0.0.9",
            "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
        }),
    ));
    docs.push(policy(
        "web-policy",
        &["web"],
        json!({
            "ipAllow": ["127.0.0.0/30"],
            "ipDeny": ["127.0.0.3"],
            "maxRequestBodyBytes": 16,
            "rateLimit": {"requestsPerSecond": 1, "burst": 4},
            "loadBalancer": {"algorithm": "consistent-hash", "hashBy": {"header": "X-User"}},
            "cors": {"allowOrigins": ["https://ui.example"], "allowCredentials": false},
            "timeouts": {"responseHeaders": "1s"},
        }),
    ));
    let dir = TempDir::new("check");
    dir.write("m.yaml", &yaml_docs(&docs));
    let (_, out, err) = check(dir.path(), &[]).await;
    assert!(
        format!("{out}{err}").contains("TrafficPolicy shop/web-policy overrides these annotations"),
        "{out}{err}"
    );
    // The route's POLICY column shows what took effect.
    assert!(
        out.contains("rate 1/s burst 4 (429)")
            && out.contains("allow 127.0.0.0/30")
            && out.contains("max-body 16"),
        "{out}"
    );

    let tg = Tollgate::builder()
        .file("m.yaml", &yaml_docs(&docs))
        .start()
        .await;
    // ipAllow replaced the annotation's allow list; ipDeny refuses .3.
    assert_eq!(
        get_from(&tg, "127.0.0.9", "web.test", "/").await.status,
        403
    );
    assert_eq!(
        get_from(&tg, "127.0.0.3", "web.test", "/").await.status,
        403
    );
    // The body limit is the policy's 16 bytes, not the annotation's 1m.
    let big = send_from(
        "127.0.0.2".parse().unwrap(),
        tg.http_addr(),
        req("POST", "web.test", "/")
            .body(http_body_util::Full::new(bytes::Bytes::from(vec![
                b'x';
                17
            ])))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(big.status, 413);
    // Consistent hashing by X-User, CORS, the response timeout.
    let mut b = req("GET", "web.test", "/a")
        .header("x-user", "alice")
        .header("origin", "https://ui.example");
    let first = send_from(
        "127.0.0.1".parse().unwrap(),
        tg.http_addr(),
        b.body(Default::default()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(first.status, 200, "{}", first.summary());
    assert_eq!(
        first.header("access-control-allow-origin").as_deref(),
        Some("https://ui.example")
    );
    for i in 0..3 {
        b = req("GET", "web.test", &format!("/{i}")).header("x-user", "alice");
        let r = send_from(
            "127.0.0.1".parse().unwrap(),
            tg.http_addr(),
            b.body(Default::default()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(r.echo().pod(), first.echo().pod(), "hashed by X-User");
    }
    // Rate: client .1 has used 4 (its burst): the next is 429.
    let r = get_from(&tg, "127.0.0.1", "web.test", "/").await;
    assert_eq!(r.status, 429, "{}", r.summary());
    assert!(r.header("retry-after").is_some());
    let slow = get_from(&tg, "127.0.0.2", "web.test", "/?delay=2500").await;
    assert_eq!(slow.status, 504, "responseHeaders 1s");
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_valid_policy_applying() {
    let echo = Echo::services(&["app"]).await;
    let mut docs = echo.backends(NS);
    docs.push(annotated_ingress("web", "web.test", "app", json!({})));
    let valid = policy("guard", &["web"], json!({"ipAllow": ["127.0.0.2"]}));
    let tg = Tollgate::builder()
        .file("m.yaml", &yaml_docs(&docs))
        .file("p.yaml", &yaml_docs(&[valid]))
        .start()
        .await;
    assert_eq!(
        get_from(&tg, "127.0.0.5", "web.test", "/").await.status,
        403
    );
    // The edit is invalid (a bad CIDR): the allow list must not open.
    let broken = policy("guard", &["web"], json!({"ipAllow": ["127.0.0.2/99"]}));
    tg.write("p.yaml", &yaml_docs(&[broken]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !tg
        .proc_
        .logs()
        .contains("its last valid version keeps applying")
    {
        assert!(std::time::Instant::now() < deadline, "{}", tg.proc_.logs());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        get_from(&tg, "127.0.0.5", "web.test", "/").await.status,
        403
    );
    assert_eq!(
        get_from(&tg, "127.0.0.2", "web.test", "/").await.status,
        200
    );
    // Deleting the policy is an explicit choice: the Ingress opens.
    tg.write("p.yaml", "");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while get_from(&tg, "127.0.0.5", "web.test", "/").await.status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never applied the deletion"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn policy_affinity_retries_connections_and_hashing() {
    let echo = Echo::replicas("app", 3).await;
    let mut docs = echo.backends(NS);
    // `flaky`: 127.0.0.1 is the echo, 127.0.0.2 on the same port answers
    // every request with 503.
    let port = echo.ports("app")[0];
    let _flaky = serve_on(
        std::net::SocketAddr::from(([127, 0, 0, 2], port)),
        |_req| async {
            let mut r = http::Response::new(full(bytes::Bytes::new()));
            *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            r
        },
    )
    .await;
    docs.extend(multi_address_backend(
        NS,
        "flaky",
        port,
        &["127.0.0.1", "127.0.0.2"],
    ));
    for (name, host, svc) in [
        ("sticky", "sticky.test", "app"),
        ("retry", "retry.test", "flaky"),
        ("conns", "conns.test", "app"),
        ("ckhash", "ckhash.test", "app"),
        ("iphash", "iphash.test", "app"),
    ] {
        docs.push(annotated_ingress(name, host, svc, json!({})));
    }
    docs.push(policy(
        "sticky",
        &["sticky"],
        json!({"sessionAffinity": {"cookieName": "SRV", "mode": "persistent", "maxAge": "1h"}}),
    ));
    docs.push(policy(
        "retry",
        &["retry"],
        json!({"retries": {"attempts": 2, "retryOn": ["5xx", "connect-failure"]}}),
    ));
    docs.push(policy(
        "conns",
        &["conns"],
        json!({"rateLimit": {"connections": 1}}),
    ));
    docs.push(policy(
        "ckhash",
        &["ckhash"],
        json!({"loadBalancer": {"algorithm": "consistent-hash", "hashBy": {"cookie": "sid"}}}),
    ));
    docs.push(policy(
        "iphash",
        &["iphash"],
        json!({"loadBalancer": {"algorithm": "consistent-hash", "hashBy": {"clientIP": true}}}),
    ));
    let tg = Tollgate::builder()
        .file("m.yaml", &yaml_docs(&docs))
        .start()
        .await;

    let first = tg.get("sticky.test", "/").await;
    let cookie = first.header("set-cookie").expect("SRV cookie");
    assert!(
        cookie.starts_with("SRV=") && cookie.contains("Max-Age=3600"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    for _ in 0..6 {
        let mut b = req("GET", "sticky.test", "/");
        b = b.header("cookie", pair.as_str());
        let r = send(tg.http_addr(), b.body(Default::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.echo().pod(), first.echo().pod());
    }

    for i in 0..12 {
        let r = tg.get("retry.test", &format!("/{i}")).await;
        assert_eq!(
            r.status,
            200,
            "5xx retried on the other endpoint: {}",
            r.summary()
        );
    }

    let addr = tg.http_addr();
    let held = tokio::spawn(async move {
        send(
            addr,
            req("GET", "conns.test", "/?delay=700")
                .body(Default::default())
                .unwrap(),
        )
        .await
        .map(|r| r.status)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        tg.get("conns.test", "/").await.status,
        429,
        "a second concurrent request"
    );
    assert_eq!(held.await.unwrap(), Ok(200));

    let with_cookie = |target: &str| {
        req("GET", "ckhash.test", target)
            .header("cookie", "sid=abc")
            .body(http_body_util::Full::default())
            .unwrap()
    };
    let pod = send(addr, with_cookie("/1")).await.unwrap().echo().pod();
    for t in ["/2", "/3", "/4"] {
        assert_eq!(send(addr, with_cookie(t)).await.unwrap().echo().pod(), pod);
    }
    let pod = get_from(&tg, "127.0.0.7", "iphash.test", "/1")
        .await
        .echo()
        .pod();
    for t in ["/2", "/3"] {
        assert_eq!(
            get_from(&tg, "127.0.0.7", "iphash.test", t)
                .await
                .echo()
                .pod(),
            pod
        );
    }
}

#[tokio::test]
async fn policy_headers_edit_requests_and_responses_and_a_bad_edit_keeps_the_last_valid() {
    let echo = Echo::services(&["app"]).await;
    let mut docs = echo.backends(NS);
    docs.push(annotated_ingress("web", "web.test", "app", json!({})));
    let headers = |set_value: &str| {
        json!({"headers": {
            "request": {
                "set": [{"name": "X-Env", "value": set_value}],
                "add": [{"name": "X-Tag", "value": "added"}],
                "remove": ["X-Debug"],
            },
            "response": {
                "set": [{"name": "Cache-Control", "value": "no-store"}],
                "add": [{"name": "X-Served-By", "value": "tollgate"}],
                "remove": ["Content-Type"],
            },
        }})
    };
    let tg = Tollgate::builder()
        .file("m.yaml", &yaml_docs(&docs))
        .file(
            "p.yaml",
            &yaml_docs(&[policy("hdr", &["web"], headers("prod"))]),
        )
        .start()
        .await;
    let call = || async {
        send(
            tg.http_addr(),
            req("GET", "web.test", "/")
                .header("x-env", "client")
                .header("x-tag", "client")
                .header("x-debug", "1")
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await
        .unwrap()
    };
    let r = call().await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let seen = r.echo();
    assert_eq!(seen.header_values("x-env"), ["prod"]);
    assert_eq!(seen.header_values("x-tag"), ["client", "added"]);
    assert!(seen.header_values("x-debug").is_empty());
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("x-served-by").as_deref(), Some("tollgate"));
    assert_eq!(r.header("content-type"), None);

    // A Host edit and a value with a line break are refused, naming the
    // fields; the last valid version keeps applying.
    let mut broken = headers("prod");
    broken["headers"]["request"]["set"] = json!([{"name": "Host", "value": "evil.test"}]);
    broken["headers"]["response"]["add"] = json!([{"name": "X-A", "value": "a\r\nb"}]);
    tg.write("p.yaml", &yaml_docs(&[policy("hdr", &["web"], broken)]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !tg
        .proc_
        .logs()
        .contains("its last valid version keeps applying")
    {
        assert!(std::time::Instant::now() < deadline, "{}", tg.proc_.logs());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logs = tg.proc_.logs();
    for field in [
        "spec.headers.request.set[0].name",
        "spec.headers.response.add[0].value",
    ] {
        assert!(logs.contains(field), "{field} not named in:\n{logs}");
    }
    let r = call().await;
    assert_eq!(r.echo().header_values("x-env"), ["prod"]);
    assert_eq!(r.echo().host(), "web.test");
    assert_eq!(r.header("x-served-by").as_deref(), Some("tollgate"));
}
