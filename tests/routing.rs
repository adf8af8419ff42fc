//! Routing semantics of `tollgate run` in standalone (manifest file) mode:
//! host and path matching, merging and conflicts between Ingresses,
//! default backends, ingress class selection, endpoint resolution and the
//! statuses returned when a request cannot be forwarded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// One path entry of an Ingress rule as YAML (indented for `paths:`).
fn path(p: &str, ty: &str, svc: &str) -> String {
    format!(
        "      - path: {p}\n        pathType: {ty}\n        backend:\n          service:\n            name: {svc}\n            port:\n              number: 8080\n"
    )
}

/// A rule (host may be empty) with the given path entries.
fn rule(host: &str, paths: &[String]) -> String {
    let head = if host.is_empty() {
        "  - http:\n".to_string()
    } else {
        format!("  - host: \"{host}\"\n    http:\n")
    };
    format!("{head}      paths:\n{}", paths.concat())
}

/// A spec with `ingressClassName: tollgate` and the given rules.
fn spec(rules: &[String]) -> String {
    format!("ingressClassName: tollgate\nrules:\n{}", rules.concat())
}

fn expect(f: &mut Failures, host: &str, target: &str, r: &Resp, want: Option<&str>) {
    match want {
        Some(svc) => f.check(
            r.status == 200 && r.service().as_deref() == Some(svc),
            || {
                format!(
                    "http://{host}{target}: want 200 from {svc}, got {}",
                    r.summary()
                )
            },
        ),
        None => f.check(r.status == 404, || {
            format!("http://{host}{target}: want 404, got {}", r.summary())
        }),
    }
}

async fn expect_route(
    f: &mut Failures,
    tg: &Tollgate,
    host: &str,
    target: &str,
    want: Option<&str>,
) {
    let r = tg.get(host, target).await;
    expect(f, host, target, &r, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_host_beats_wildcard_and_wildcard_covers_one_label() {
    let ns = "routing";
    let echo = Echo::services(&["api", "wild"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        // The wildcard Ingress is listed (and created) first so that neither
        // order nor age can explain the exact host winning.
        {
            let mut i = ingress(
                ns,
                "wild",
                &spec(&[rule("*.example.com", &[path("/", "Prefix", "wild")])]),
            );
            i["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
            i
        },
        ingress(
            ns,
            "api",
            &spec(&[rule("api.example.com", &[path("/", "Prefix", "api")])]),
        ),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "api.example.com", "/", Some("api")).await;
    expect_route(&mut f, &tg, "api.example.com", "/v1/users", Some("api")).await;
    expect_route(&mut f, &tg, "www.example.com", "/", Some("wild")).await;
    expect_route(&mut f, &tg, "x-y.example.com", "/z", Some("wild")).await;
    expect_route(&mut f, &tg, "a.b.example.com", "/", None).await;
    expect_route(&mut f, &tg, "example.com", "/", None).await;
    expect_route(&mut f, &tg, "apiexample.com", "/", None).await;
    expect_route(&mut f, &tg, "api.example.com.evil.test", "/", None).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_matching_ignores_case_port_and_trailing_dot() {
    let ns = "routing";
    let echo = Echo::services(&["api", "wild"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "hosts",
            &spec(&[
                rule("api.example.com", &[path("/", "Prefix", "api")]),
                rule("*.wild.test", &[path("/", "Prefix", "wild")]),
            ]),
        ),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    for host in [
        "api.example.com",
        "API.EXAMPLE.COM",
        "Api.Example.Com",
        "api.example.com:8080",
        "api.example.com:80",
        "api.example.com.",
        "API.example.com.:8443",
    ] {
        let r = tg.get(host, "/").await;
        expect(&mut f, host, "/", &r, Some("api"));
        // The client's Host header is forwarded unchanged.
        if r.status == 200 {
            let got = r.echo().host();
            f.check(got == host, || {
                format!("Host {host:?} forwarded as {got:?}")
            });
        }
    }
    for host in ["X.WILD.TEST", "x.wild.test:1234", "x.wild.test."] {
        expect_route(&mut f, &tg, host, "/", Some("wild")).await;
    }
    for host in ["api.example.co", "api.example.com..", "a.b.wild.test"] {
        let r = tg.get(host, "/").await;
        f.check(r.status == 404 || r.status == 400, || {
            format!("{host:?}: want 404 (or 400), got {}", r.summary())
        });
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostless_rules_apply_when_no_host_rule_matches() {
    let ns = "routing";
    let echo = Echo::services(&["hosted", "hostless"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "mixed",
            &spec(&[
                rule("hosted.test", &[path("/", "Prefix", "hosted")]),
                rule("", &[path("/", "Prefix", "hostless")]),
            ]),
        ),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "hosted.test", "/", Some("hosted")).await;
    expect_route(&mut f, &tg, "HOSTED.test:99", "/x", Some("hosted")).await;
    expect_route(&mut f, &tg, "other.test", "/", Some("hostless")).await;
    expect_route(&mut f, &tg, "other.test", "/deep/path", Some("hostless")).await;
    let ip_host = format!("127.0.0.1:{}", tg.http_port);
    expect_route(&mut f, &tg, &ip_host, "/", Some("hostless")).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_for_the_same_host_merge() {
    let ns = "routing";
    let echo = Echo::services(&["svc-a", "svc-b", "svc-c"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "ing-a",
            &spec(&[rule("merge.test", &[path("/a", "Prefix", "svc-a")])]),
        ),
        ingress(
            ns,
            "ing-b",
            &spec(&[rule("merge.test", &[path("/b", "Prefix", "svc-b")])]),
        ),
        // Same host from another namespace, with a more specific path.
        ingress(
            "other-ns",
            "ing-c",
            &spec(&[rule("merge.test", &[path("/a/c", "Exact", "svc-c")])]),
        ),
    ];
    docs.extend(echo.backends(ns));
    docs.extend(echo.backends("other-ns"));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "merge.test", "/a", Some("svc-a")).await;
    expect_route(&mut f, &tg, "merge.test", "/a/x", Some("svc-a")).await;
    expect_route(&mut f, &tg, "merge.test", "/b/y", Some("svc-b")).await;
    expect_route(&mut f, &tg, "merge.test", "/a/c", Some("svc-c")).await;
    expect_route(&mut f, &tg, "merge.test", "/a/c/d", Some("svc-a")).await;
    expect_route(&mut f, &tg, "merge.test", "/c", None).await;
    f.assert_none();
}

fn with_created(mut v: Value, ts: &str) -> Value {
    v["metadata"]["creationTimestamp"] = json!(ts);
    v
}

fn conflict_docs(echo: &Echo) -> Vec<Value> {
    let ns = "routing";
    let mut docs = vec![
        ingress_class("tollgate", false),
        // The newer Ingress has the smaller name, so ordering by name alone
        // would pick the wrong winner.
        with_created(
            ingress(
                ns,
                "aaa-new",
                &spec(&[rule(
                    "conflict.test",
                    &[
                        path("/x", "Prefix", "new"),
                        path("/only-new", "Prefix", "new"),
                    ],
                )]),
            ),
            "2024-06-01T00:00:00Z",
        ),
        with_created(
            ingress(
                ns,
                "zzz-old",
                &spec(&[rule("conflict.test", &[path("/x", "Prefix", "old")])]),
            ),
            "2020-01-01T00:00:00Z",
        ),
        // Equal timestamps: namespace/name decides (routing/tie-a wins).
        with_created(
            ingress(
                ns,
                "tie-b",
                &spec(&[rule("tie.test", &[path("/t", "Exact", "tie-b")])]),
            ),
            "2022-01-01T00:00:00Z",
        ),
        with_created(
            ingress(
                ns,
                "tie-a",
                &spec(&[rule("tie.test", &[path("/t", "Exact", "tie-a")])]),
            ),
            "2022-01-01T00:00:00Z",
        ),
    ];
    docs.extend(echo.backends(ns));
    docs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_paths_oldest_ingress_wins() {
    let echo = Echo::services(&["new", "old", "tie-a", "tie-b"]).await;
    let docs = conflict_docs(&echo);
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "conflict.test", "/x", Some("old")).await;
    expect_route(&mut f, &tg, "conflict.test", "/x/y", Some("old")).await;
    expect_route(&mut f, &tg, "tie.test", "/t", Some("tie-a")).await;
    // Only the conflicting path is lost; the rest of the newer Ingress
    // still merges into the host.
    expect_route(&mut f, &tg, "conflict.test", "/only-new", Some("new")).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_conflict_loser_and_exits_1() {
    // `check` does not contact backends; the ports only have to be valid.
    let echo = Echo::services(&["new", "old", "tie-a", "tie-b"]).await;
    let dir = TempDir::new("check-conflict");
    dir.write("conflict.yaml", &yaml_docs(&conflict_docs(&echo)));

    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 1, "check with a conflict must exit 1\n{all}");
    assert!(
        all.contains("routing/aaa-new"),
        "diagnostic must name the loser routing/aaa-new:\n{all}"
    );
    assert!(
        all.contains("routing/tie-b"),
        "diagnostic must name the loser routing/tie-b:\n{all}"
    );
    assert!(
        all.contains("conflict.yaml"),
        "diagnostic must name the file:\n{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_matched_normalized_and_forwarded_original() {
    let ns = "routing";
    let echo = Echo::services(&["public", "admin", "a"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "norm",
            &spec(&[rule(
                "norm.test",
                &[
                    path("/public", "Prefix", "public"),
                    path("/admin", "Prefix", "admin"),
                    path("/a", "Prefix", "a"),
                    path("/impl", "ImplementationSpecific", "a"),
                ],
            )]),
        ),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    // (request target, expected service or None for 404)
    let cases: &[(&str, Option<&str>)] = &[
        ("/public/x", Some("public")),
        ("/public/./x", Some("public")),
        ("/public/../admin", Some("admin")),
        ("/public/../admin/panel", Some("admin")),
        ("/public/%2e%2e/admin", Some("admin")),
        ("/public/%2E%2E/admin", Some("admin")),
        ("/public/.%2e/admin", Some("admin")),
        ("/public/../secret", None),
        ("/public/%2e%2e/secret", None),
        ("/public/..", None),
        ("/public/x/../../secret", None),
        ("//a", Some("a")),
        ("//public//x", Some("public")),
        ("/%61dmin", Some("admin")),
        ("/%70ublic/x", Some("public")),
        ("/public/x?q=1&r=%2F&s=/../admin", Some("public")),
        ("/admin?next=/public", Some("admin")),
        // ImplementationSpecific behaves as Prefix.
        ("/impl", Some("a")),
        ("/impl/", Some("a")),
        ("/impl/deeper", Some("a")),
        ("/implx", None),
    ];
    let mut f = Failures::default();
    for (target, want) in cases {
        let r = tg.get("norm.test", target).await;
        expect(&mut f, "norm.test", target, &r, *want);
        if r.status == 200 {
            let got = r.echo().path();
            f.check(got == *target, || {
                format!("{target}: backend received target {got:?}, want it unchanged")
            });
        }
    }
    // Raw request targets hyper would not produce on its own.
    let addr = tg.http_addr();
    for (target, want) in [
        ("/public/%2e%2e/%2e%2e/admin", Some("admin")),
        ("/public/..%2f..%2fsecret", Some("public")),
    ] {
        let msg = format!("GET {target} HTTP/1.1\r\nHost: norm.test\r\nConnection: close\r\n\r\n");
        match raw(addr, msg.as_bytes()).await {
            Ok(r) => {
                let svc = serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v["service"].as_str().map(str::to_string));
                f.check(r.status == 200 && svc.as_deref() == want, || {
                    format!(
                        "raw {target}: want 200 from {want:?}, got {} from {svc:?}",
                        r.status
                    )
                });
            }
            Err(e) => f.push(format!("raw {target}: {e}")),
        }
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_backend_serves_own_hosts_and_unmatched_hosts() {
    let ns = "routing";
    let echo = Echo::services(&["app", "def", "e-app"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "with-default",
            &format!(
                "{}defaultBackend:\n  service:\n    name: def\n    port:\n      number: 8080\n",
                spec(&[rule("d.test", &[path("/app", "Prefix", "app")])])
            ),
        ),
        ingress(
            ns,
            "no-default",
            &spec(&[rule("e.test", &[path("/app", "Prefix", "e-app")])]),
        ),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "d.test", "/app/x", Some("app")).await;
    expect_route(&mut f, &tg, "d.test", "/other", Some("def")).await;
    expect_route(&mut f, &tg, "d.test", "/", Some("def")).await;
    expect_route(&mut f, &tg, "unknown.test", "/anything", Some("def")).await;
    expect_route(&mut f, &tg, "e.test", "/app", Some("e-app")).await;
    // e.test belongs to an Ingress without a default backend; the other
    // Ingress's defaultBackend does not cover it.
    expect_route(&mut f, &tg, "e.test", "/other", None).await;
    f.assert_none();
}

fn class_ingress(name: &str, host: &str, class: Option<&str>, annotation: Option<&str>) -> Value {
    let mut spec_text = String::new();
    if let Some(c) = class {
        spec_text.push_str(&format!("ingressClassName: {c}\n"));
    }
    spec_text.push_str(&format!(
        "rules:\n{}",
        rule(host, &[path("/", "Prefix", "svc")])
    ));
    let mut i = ingress("classes", name, &spec_text);
    if let Some(a) = annotation {
        i["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": a});
    }
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_class_selection() {
    let echo = Echo::services(&["svc"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        // Another name, same controller: ours too.
        ingress_class("custom", false),
        foreign_ingress_class("other"),
        class_ingress("ours", "ours.test", Some("tollgate"), None),
        class_ingress("custom", "custom.test", Some("custom"), None),
        class_ingress("foreign", "foreign.test", Some("other"), None),
        class_ingress("missing", "missing.test", Some("does-not-exist"), None),
        class_ingress("annot-ours", "annot.test", None, Some("tollgate")),
        class_ingress("annot-foreign", "annot-foreign.test", None, Some("nginx")),
    ];
    docs.extend(echo.backends("classes"));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "ours.test", "/", Some("svc")).await;
    expect_route(&mut f, &tg, "custom.test", "/", Some("svc")).await;
    expect_route(&mut f, &tg, "annot.test", "/", Some("svc")).await;
    expect_route(&mut f, &tg, "foreign.test", "/", None).await;
    expect_route(&mut f, &tg, "missing.test", "/", None).await;
    expect_route(&mut f, &tg, "annot-foreign.test", "/", None).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classless_ingress_served_only_when_our_class_is_default() {
    let echo = Echo::services(&["svc"]).await;
    let common = |default: bool| {
        let mut docs = vec![
            ingress_class("tollgate", default),
            foreign_ingress_class("other"),
            class_ingress("classless", "classless.test", None, None),
            class_ingress("foreign", "foreign.test", Some("other"), None),
            class_ingress("ours", "ours.test", Some("tollgate"), None),
        ];
        docs.extend(echo.backends("classes"));
        docs
    };
    let not_default = Tollgate::with_docs(&common(false)).await;
    let default = Tollgate::with_docs(&common(true)).await;

    let mut f = Failures::default();
    expect_route(&mut f, &default, "classless.test", "/", Some("svc")).await;
    expect_route(&mut f, &default, "ours.test", "/", Some("svc")).await;
    expect_route(&mut f, &default, "foreign.test", "/", None).await;
    expect_route(&mut f, &not_default, "classless.test", "/", None).await;
    expect_route(&mut f, &not_default, "ours.test", "/", Some("svc")).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_name_matches_flag_default_without_ingress_class_object() {
    let echo = Echo::services(&["svc"]).await;
    // No IngressClass objects at all.
    let mut docs = vec![
        class_ingress("ours", "ours.test", Some("tollgate"), None),
        class_ingress("other", "other.test", Some("something-else"), None),
    ];
    docs.extend(echo.backends("classes"));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "ours.test", "/", Some("svc")).await;
    expect_route(&mut f, &tg, "other.test", "/", None).await;

    // --ingress-class changes the class name served without an object.
    let custom = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--ingress-class", "something-else"])
        .start()
        .await;
    expect_route(&mut f, &custom, "other.test", "/", Some("svc")).await;
    expect_route(&mut f, &custom, "ours.test", "/", None).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_request_gets_short_404() {
    let echo = Echo::services(&["svc"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            "routing",
            "only",
            &spec(&[rule("only.test", &[path("/here", "Exact", "svc")])]),
        ),
    ];
    docs.extend(echo.backends("routing"));
    let tg = Tollgate::with_docs(&docs).await;

    for (host, target) in [
        ("nowhere.test", "/"),
        ("only.test", "/elsewhere"),
        ("only.test", "/here/"),
    ] {
        let r = tg.get(host, target).await;
        assert_eq!(r.status, 404, "http://{host}{target}: {}", r.summary());
        assert!(
            r.body.len() <= 512,
            "404 body should be short, got {} bytes",
            r.body.len()
        );
        assert!(
            r.service().is_none(),
            "404 must not come from a backend: {}",
            r.text()
        );
    }
    // The query is not part of the matched path; `//` is merged.
    for target in ["/here", "/here?x=1", "//here", "/x/../here"] {
        let r = tg.get("only.test", target).await;
        assert_eq!(
            r.status,
            200,
            "Exact /here, request {target}: {}",
            r.summary()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_without_ready_endpoints_gets_503() {
    let ns = "routing";
    let echo = Echo::services(&["unready", "live"]).await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "s503",
            &spec(&[rule(
                "s503.test",
                &[
                    path("/no-slices", "Prefix", "no-slices"),
                    path("/no-service", "Prefix", "ghost"),
                    path("/unready", "Prefix", "unready"),
                    path("/live", "Prefix", "live"),
                    path("/other-ns-service", "Prefix", "elsewhere"),
                    path("/other-ns-slice", "Prefix", "scoped"),
                ],
            )]),
        ),
        // A Service of that name exists only in another namespace.
        service("other", "elsewhere", &[("http", 8080)]),
        slice(
            "other",
            "elsewhere",
            "elsewhere-0",
            &[("127.0.0.1", true)],
            &[("http", echo.port("live"))],
        ),
        // The Service exists here, but its only slice lives in another
        // namespace.
        service(ns, "scoped", &[("http", 8080)]),
        slice(
            "other",
            "scoped",
            "scoped-0",
            &[("127.0.0.1", true)],
            &[("http", echo.port("live"))],
        ),
        service(ns, "no-slices", &[("http", 8080)]),
        service(ns, "unready", &[("http", 8080)]),
        // The echo behind it is up, so a 200 would mean the not-ready
        // endpoint was used.
        slice(
            ns,
            "unready",
            "unready-0",
            &[("127.0.0.1", false)],
            &[("http", echo.port("unready"))],
        ),
    ];
    docs.extend(backend(ns, "live", &echo.ports("live")));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    for target in [
        "/no-slices",
        "/no-service",
        "/unready",
        "/other-ns-service",
        "/other-ns-slice",
    ] {
        let r = tg.get("s503.test", target).await;
        f.check(r.status == 503, || {
            format!("{target}: want 503, got {}", r.summary())
        });
    }
    expect_route(&mut f, &tg, "s503.test", "/live", Some("live")).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_gets_502() {
    let ns = "routing";
    let closed = [free_port(), free_port()];
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "s502",
            &spec(&[rule("s502.test", &[path("/", "Prefix", "refused")])]),
        ),
    ];
    docs.extend(backend(ns, "refused", &closed));
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--upstream-connect-timeout", "1s"])
        .start()
        .await;

    for i in 0..3 {
        let t = Instant::now();
        let r = tg.get("s502.test", "/").await;
        assert_eq!(r.status, 502, "request {i}: {}", r.summary());
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "refused connects should fail fast, took {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_gets_504_after_response_timeout() {
    let ns = "routing";
    let hole = black_hole().await;
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "s504",
            &spec(&[rule("s504.test", &[path("/", "Prefix", "silent")])]),
        ),
    ];
    docs.extend(backend(ns, "silent", &[hole.port]));
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--upstream-response-timeout", "300ms"])
        .start()
        .await;

    let t = Instant::now();
    let r = tg.get("s504.test", "/").await;
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{}", r.summary());
    assert!(
        took >= Duration::from_millis(250),
        "504 came before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "504 took {took:?} with a 300ms timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_endpoints_are_not_used() {
    let ns = "routing";
    let echo = Echo::replicas("mixed", 2).await;
    let ports = echo.ports("mixed");
    let docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "mixed",
            &spec(&[rule("mixed.test", &[path("/", "Prefix", "mixed")])]),
        ),
        service(ns, "mixed", &[("http", 8080)]),
        slice(
            ns,
            "mixed",
            "mixed-ready",
            &[("127.0.0.1", true)],
            &[("http", ports[0])],
        ),
        slice(
            ns,
            "mixed",
            "mixed-unready",
            &[("127.0.0.1", false)],
            &[("http", ports[1])],
        ),
    ];
    let tg = Tollgate::with_docs(&docs).await;

    let want = format!("mixed@127.0.0.1:{}", ports[0]);
    for i in 0..20 {
        let r = tg.get("mixed.test", "/").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.summary());
        assert_eq!(
            r.echo().pod(),
            want,
            "request {i} went to a not-ready endpoint"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_port_name_and_number_resolve_to_endpoint_ports() {
    let ns = "routing";
    let echo = Echo::services(&["multi-http", "multi-metrics"]).await;
    let by = |p: &str, port: &str| {
        format!(
            "      - path: {p}\n        pathType: Prefix\n        backend:\n          service:\n            name: multi\n            port:\n              {port}\n"
        )
    };
    let docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "ports",
            &spec(&[rule(
                "ports.test",
                &[
                    by("/name-http", "name: http"),
                    by("/name-metrics", "name: metrics"),
                    by("/number-80", "number: 80"),
                    by("/number-9000", "number: 9000"),
                    by("/name-unknown", "name: nope"),
                ],
            )]),
        ),
        service(ns, "multi", &[("http", 80), ("metrics", 9000)]),
        slice(
            ns,
            "multi",
            "multi-0",
            &[("127.0.0.1", true)],
            &[
                ("metrics", echo.port("multi-metrics")),
                ("http", echo.port("multi-http")),
            ],
        ),
    ];
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "ports.test", "/name-http", Some("multi-http")).await;
    expect_route(&mut f, &tg, "ports.test", "/number-80", Some("multi-http")).await;
    expect_route(
        &mut f,
        &tg,
        "ports.test",
        "/name-metrics",
        Some("multi-metrics"),
    )
    .await;
    expect_route(
        &mut f,
        &tg,
        "ports.test",
        "/number-9000",
        Some("multi-metrics"),
    )
    .await;
    // A port name the Service does not have resolves to no endpoint: the
    // route may be dropped (404) or have no endpoints (503), but it must
    // never reach either port.
    let r = tg.get("ports.test", "/name-unknown").await;
    f.check(r.status == 503 || r.status == 404, || {
        format!(
            "unknown service port name: want 503 (or 404), got {}",
            r.summary()
        )
    });
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_formats_lists_json_nested_dirs_and_file_arguments() {
    let ns = "formats";
    let echo = Echo::services(&["from-list", "from-json", "from-file"]).await;
    // A `kind: List` holding two Ingresses, written by hand as YAML.
    let list = format!(
        "apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata:
    name: listed
    namespace: {ns}
  spec:
    ingressClassName: tollgate
    rules:
    - host: list.test
      http:
        paths:
        - path: /
          pathType: Prefix
          backend:
            service:
              name: from-list
              port:
                number: 8080
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata:
    name: listed-json-route
    namespace: {ns}
  spec:
    ingressClassName: tollgate
    rules:
    - host: json.test
      http:
        paths:
        - path: /
          pathType: Prefix
          backend:
            service:
              name: from-json
              port:
                number: 8080
"
    );
    // Services and slices as one JSON List in a nested directory.
    let mut backends = vec![ingress_class("tollgate", false)];
    backends.extend(backend(ns, "from-list", &echo.ports("from-list")));
    backends.extend(backend(ns, "from-json", &echo.ports("from-json")));
    let json_list = json!({"apiVersion": "v1", "kind": "List", "items": backends}).to_string();
    // A file given directly as a second --manifests argument.
    let mut file_docs = vec![ingress(
        ns,
        "from-file",
        &spec(&[rule("file.test", &[path("/", "Prefix", "from-file")])]),
    )];
    file_docs.extend(backend(ns, "from-file", &echo.ports("from-file")));

    let tg = Tollgate::builder()
        .file("routes/list.yml", &list)
        .file("a/b/c/backends.json", &json_list)
        .file("ignored.txt", "this is not a manifest: [")
        .extra_file("single.yaml", &yaml_docs(&file_docs))
        .start()
        .await;

    let mut f = Failures::default();
    expect_route(&mut f, &tg, "list.test", "/", Some("from-list")).await;
    expect_route(&mut f, &tg, "json.test", "/", Some("from-json")).await;
    expect_route(&mut f, &tg, "file.test", "/", Some("from-file")).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_file_removes_its_objects() {
    let ns = "routing";
    let echo = Echo::services(&["keep", "gone"]).await;
    let mut backends = vec![ingress_class("tollgate", false)];
    backends.extend(echo.backends(ns));
    let tg = Tollgate::builder()
        .docs("backends.yaml", &backends)
        .docs(
            "keep.yaml",
            &[ingress(
                ns,
                "keep",
                &spec(&[rule("keep.test", &[path("/", "Prefix", "keep")])]),
            )],
        )
        .docs(
            "gone.yaml",
            &[ingress(
                ns,
                "gone",
                &spec(&[rule("gone.test", &[path("/", "Prefix", "gone")])]),
            )],
        )
        .start()
        .await;
    assert_eq!(
        tg.get("gone.test", "/").await.service().as_deref(),
        Some("gone")
    );

    tg.remove("gone.yaml");
    let r = tg.eventually("gone.test", "/", |r| r.status == 404).await;
    assert_eq!(
        r.status,
        404,
        "objects of a deleted file still served: {}",
        r.summary()
    );
    let r = tg.get("keep.test", "/").await;
    assert_eq!(r.service().as_deref(), Some("keep"), "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_name_service_is_resolved_by_dns() {
    let ns = "routing";
    let echo = Echo::services(&["outside"]).await;
    let port = echo.port("outside");
    let external = serde_yaml::from_str::<Value>(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: outside, namespace: {ns}}}\nspec:\n  type: ExternalName\n  externalName: localhost\n  ports: [{{name: http, port: {port}}}]\n"
    ))
    .unwrap();
    let docs = vec![
        ingress_class("tollgate", false),
        ingress(
            ns,
            "external",
            &spec(&[rule(
                "external.test",
                &[path("/by-number", "Prefix", "outside")
                    .replace("number: 8080", &format!("number: {port}"))],
            )]),
        ),
        external,
    ];
    let tg = Tollgate::with_docs(&docs).await;
    let mut f = Failures::default();
    expect_route(&mut f, &tg, "external.test", "/by-number", Some("outside")).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_namespace_limits_what_is_served() {
    let echo = Echo::services(&["in-a", "in-b"]).await;
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.push(ingress(
        "team-a",
        "a",
        &spec(&[rule("a.test", &[path("/", "Prefix", "in-a")])]),
    ));
    docs.extend(backend("team-a", "in-a", &echo.ports("in-a")));
    docs.push(ingress(
        "team-b",
        "b",
        &spec(&[rule("b.test", &[path("/", "Prefix", "in-b")])]),
    ));
    docs.extend(backend("team-b", "in-b", &echo.ports("in-b")));
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--watch-namespace", "team-a"])
        .start()
        .await;
    let mut f = Failures::default();
    expect_route(&mut f, &tg, "a.test", "/", Some("in-a")).await;
    expect_route(&mut f, &tg, "b.test", "/", None).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_backend_service_flag_serves_unmatched_requests() {
    let echo = Echo::services(&["known", "fallback"]).await;
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.push(ingress(
        "web",
        "known",
        &spec(&[rule("known.test", &[path("/app", "Prefix", "known")])]),
    ));
    docs.extend(backend("web", "known", &echo.ports("known")));
    docs.extend(backend("infra", "fallback", &echo.ports("fallback")));
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--default-backend-service", "infra/fallback"])
        .start()
        .await;
    let mut f = Failures::default();
    expect_route(&mut f, &tg, "known.test", "/app", Some("known")).await;
    // An unknown host, and an unmatched path of a known host.
    expect_route(&mut f, &tg, "nobody.test", "/", Some("fallback")).await;
    expect_route(&mut f, &tg, "known.test", "/elsewhere", Some("fallback")).await;
    f.assert_none();
}
