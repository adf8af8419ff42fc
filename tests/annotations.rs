//! ingress-nginx annotations end to end: a real `tollgate run` from
//! manifests, real echo backends, requests from several client addresses
//! (127.0.0.x source addresses) through real sockets.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::{json, Value};

const NS: &str = "default";

/// An Ingress `name` for `host` → Prefix `path` → `svc`:8080, annotated.
fn annotated(name: &str, host: &str, path: &str, svc: &str, annotations: &[(&str, &str)]) -> Value {
    annotated_typed(name, host, path, "Prefix", svc, annotations)
}

fn annotated_typed(
    name: &str,
    host: &str,
    path: &str,
    path_type: &str,
    svc: &str,
    annotations: &[(&str, &str)],
) -> Value {
    common::annotated_ingress(NS, name, host, (path, path_type), svc, annotations)
}

async fn start(echo: &Echo, ingresses: Vec<Value>, args: &[&str]) -> Tollgate {
    let mut docs = echo.backends(NS);
    docs.extend(ingresses);
    Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(&docs))
        .args(args)
        .start()
        .await
}

/// Waits (bounded) until the process log mentions `needle`.
async fn wait_for_log(tg: &Tollgate, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !tg.proc_.logs().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "the log never mentioned {needle}:\n{}",
            tg.proc_.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn get_from(tg: &Tollgate, src: &str, host: &str, target: &str) -> Resp {
    send_from(
        ip(src),
        tg.http_addr(),
        req("GET", host, target).body(Full::default()).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("GET http://{host}{target} from {src}: {e}"))
}

async fn get_with(tg: &Tollgate, host: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = req("GET", host, target);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(tg.http_addr(), b.body(Full::default()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("GET http://{host}{target}: {e}"))
}

#[tokio::test]
async fn source_ranges_allow_and_deny_by_client_address() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![
            annotated(
                "allow",
                "allow.test",
                "/",
                "app",
                &[("whitelist-source-range", "127.0.0.2/32, 127.0.1.0/24")],
            ),
            annotated(
                "deny",
                "deny.test",
                "/",
                "app",
                &[("denylist-source-range", "127.0.0.3")],
            ),
        ],
        &[],
    )
    .await;
    assert_eq!(
        get_from(&tg, "127.0.0.2", "allow.test", "/").await.status,
        200
    );
    assert_eq!(
        get_from(&tg, "127.0.1.9", "allow.test", "/").await.status,
        200
    );
    let refused = get_from(&tg, "127.0.0.3", "allow.test", "/").await;
    assert_eq!(refused.status, 403, "{}", refused.summary());
    assert_eq!(
        get_from(&tg, "127.0.0.3", "deny.test", "/").await.status,
        403
    );
    assert_eq!(
        get_from(&tg, "127.0.0.4", "deny.test", "/").await.status,
        200
    );
}

#[tokio::test]
async fn a_broken_allow_list_fails_closed_and_keeps_the_last_good_version() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![
            annotated(
                "good",
                "good.test",
                "/",
                "app",
                &[("whitelist-source-range", "127.0.0.2")],
            ),
            annotated(
                "bad",
                "bad.test",
                "/",
                "app",
                &[("whitelist-source-range", "127.0.0.0/99")],
            ),
        ],
        &[],
    )
    .await;
    // Never good: not served at all (never opened).
    assert_eq!(
        get_from(&tg, "127.0.0.2", "bad.test", "/").await.status,
        404
    );
    // Good, then broken: the last good version (allowing only 127.0.0.2) stays.
    let mut docs = echo.backends(NS);
    docs.push(annotated(
        "good",
        "good.test",
        "/",
        "app",
        &[("whitelist-source-range", "not-a-cidr")],
    ));
    tg.write("manifests.yaml", &yaml_docs(&docs));
    wait_for_log(&tg, "not-a-cidr").await;
    assert_eq!(
        get_from(&tg, "127.0.0.2", "good.test", "/").await.status,
        200
    );
    assert_eq!(
        get_from(&tg, "127.0.0.5", "good.test", "/").await.status,
        403
    );
    assert!(
        tg.proc_.logs().contains("whitelist-source-range"),
        "the rejection names the annotation:\n{}",
        tg.proc_.logs()
    );
}

#[tokio::test]
async fn snippets_are_refused_and_unknown_annotations_warned() {
    let echo = Echo::services(&["app"]).await;
    let dir = TempDir::new("check");
    let mut docs = echo.backends(NS);
    docs.push(annotated(
        "snippet",
        "snippet.test",
        "/",
        "app",
        &[("configuration-snippet", "allow 10.0.0.0/8; deny all;")],
    ));
    docs.push(annotated(
        "unknown",
        "unknown.test",
        "/",
        "app",
        &[("frobnicate-level", "9")],
    ));
    dir.write("m.yaml", &yaml_docs(&docs));
    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}{err}");
    assert_ne!(code, 0, "a refused annotation is a rejection:\n{all}");
    assert!(
        all.contains("configuration-snippet") && all.contains("never executed"),
        "{all}"
    );
    assert!(all.contains("frobnicate-level"), "{all}");

    let tg = start(&echo, docs[docs.len() - 2..].to_vec(), &[]).await;
    assert_eq!(
        tg.get("snippet.test", "/").await.status,
        404,
        "a snippet Ingress is not served"
    );
    assert_eq!(
        tg.get("unknown.test", "/").await.status,
        200,
        "unknown annotations do not block"
    );
}

#[tokio::test]
async fn redirects_and_app_root() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![
            annotated(
                "perm",
                "perm.test",
                "/",
                "app",
                &[("permanent-redirect", "https://new.example/landing")],
            ),
            annotated(
                "perm308",
                "perm308.test",
                "/",
                "app",
                &[
                    ("permanent-redirect", "https://new.example/"),
                    ("permanent-redirect-code", "308"),
                ],
            ),
            annotated(
                "temp",
                "temp.test",
                "/",
                "app",
                &[("temporal-redirect", "https://temp.example/")],
            ),
            annotated("root", "root.test", "/", "app", &[("app-root", "/app1")]),
        ],
        &[],
    )
    .await;
    let r = tg.get("perm.test", "/anything").await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (301, Some("https://new.example/landing"))
    );
    assert_eq!(tg.get("perm308.test", "/").await.status, 308);
    let r = tg.get("temp.test", "/x").await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (302, Some("https://temp.example/"))
    );
    let r = tg.get("root.test", "/").await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        // ingress-nginx: `return 302 $scheme://$http_host/app1`.
        (302, Some("http://root.test/app1"))
    );
    let r = tg.get("root.test", "/app1/page").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.echo().path(), "/app1/page");
}

#[tokio::test]
async fn rewrite_target_with_regex_captures() {
    let echo = Echo::services(&["api", "other"]).await;
    let tg = start(
        &echo,
        vec![
            annotated_typed(
                "rw",
                "rw.test",
                "/api(/|$)(.*)",
                "ImplementationSpecific",
                "api",
                &[("rewrite-target", "/$2"), ("use-regex", "true")],
            ),
            annotated_typed(
                "re",
                "re.test",
                "/v[0-9]+/users",
                "ImplementationSpecific",
                "other",
                &[("use-regex", "true")],
            ),
            annotated(
                "plain",
                "plainrw.test",
                "/old",
                "api",
                &[("rewrite-target", "/new")],
            ),
        ],
        &[],
    )
    .await;
    let r = tg.get("rw.test", "/api/users/7?x=1").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.echo().path(), "/users/7?x=1");
    assert_eq!(tg.get("rw.test", "/api").await.echo().path(), "/");
    assert_eq!(tg.get("rw.test", "/other").await.status, 404);
    let r = tg.get("re.test", "/V12/users/me").await;
    assert_eq!(
        (r.status, r.service().as_deref()),
        (200, Some("other")),
        "case-insensitive regex"
    );
    assert_eq!(tg.get("re.test", "/vx/users").await.status, 404);
    // Without captures the whole path is replaced, as nginx's rewrite does.
    assert_eq!(
        tg.get("plainrw.test", "/old/deep/path").await.echo().path(),
        "/new"
    );
}

#[tokio::test]
async fn body_size_limit_answers_413() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![annotated(
            "body",
            "body.test",
            "/",
            "app",
            &[("proxy-body-size", "1k")],
        )],
        &[],
    )
    .await;
    let small = send(
        tg.http_addr(),
        req("POST", "body.test", "/")
            .body(Full::new(Bytes::from(vec![b'a'; 1024])))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(small.status, 200);
    assert_eq!(small.echo().body_bytes(), 1024);
    let big = send(
        tg.http_addr(),
        req("POST", "body.test", "/")
            .body(Full::new(Bytes::from(vec![b'a'; 1025])))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(big.status, 413, "{}", big.summary());
    // A chunked body that grows past the limit is cut off with 413 too.
    let chunked = chunked_post(tg.http_addr(), "body.test", &[&[b'x'; 800], &[b'y'; 800]]).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
}

/// A raw chunked POST; returns the response head and body as text.
async fn chunked_post(addr: SocketAddr, host: &str, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    for c in chunks {
        let _ = s.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await;
        let _ = s.write_all(c).await;
        let _ = s.write_all(b"\r\n").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn read_timeout_per_ingress() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![annotated(
            "slow",
            "slow.test",
            "/",
            "app",
            &[("proxy-read-timeout", "1")],
        )],
        &[],
    )
    .await;
    assert_eq!(tg.get("slow.test", "/?delay=100").await.status, 200);
    let started = std::time::Instant::now();
    let r = tg.get("slow.test", "/?delay=3000").await;
    assert_eq!(r.status, 504, "{}", r.summary());
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn forwarded_prefix_upstream_vhost_and_server_alias() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![annotated(
            "h",
            "main.test",
            "/",
            "app",
            &[
                ("x-forwarded-prefix", "/svc"),
                ("upstream-vhost", "internal.local"),
                ("server-alias", "alias.test, other-alias.test"),
            ],
        )],
        &[],
    )
    .await;
    let r = tg.get("main.test", "/p").await;
    let e = r.echo();
    assert_eq!(e.header("X-Forwarded-Prefix").as_deref(), Some("/svc"));
    assert_eq!(e.host(), "internal.local");
    assert_eq!(
        e.header("X-Forwarded-Host").as_deref(),
        Some("main.test"),
        "the client's host is still forwarded"
    );
    assert_eq!(tg.get("alias.test", "/p").await.status, 200);
    assert_eq!(tg.get("other-alias.test", "/p").await.status, 200);
    assert_eq!(tg.get("nope.test", "/p").await.status, 404);
}

#[tokio::test]
async fn cors_preflight_and_response_headers() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![
            annotated(
                "any",
                "any.test",
                "/",
                "app",
                &[("enable-cors", "true"), ("cors-allow-credentials", "false")],
            ),
            annotated(
                "list",
                "list.test",
                "/",
                "app",
                &[
                    ("enable-cors", "true"),
                    (
                        "cors-allow-origin",
                        "https://app.example.com, https://*.corp.example",
                    ),
                    ("cors-expose-headers", "X-Total"),
                    ("cors-max-age", "600"),
                ],
            ),
        ],
        &[],
    )
    .await;
    let pre = send(
        tg.http_addr(),
        req("OPTIONS", "list.test", "/api")
            .header("origin", "https://a.corp.example")
            .header("access-control-request-method", "PUT")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some("https://a.corp.example")
    );
    assert_eq!(pre.header("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        pre.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(pre
        .header("access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    let r = get_with(
        &tg,
        "list.test",
        "/",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-expose-headers").as_deref(),
        Some("X-Total")
    );
    let r = get_with(&tg, "list.test", "/", &[("origin", "https://evil.example")]).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = get_with(&tg, "any.test", "/", &[("origin", "https://x.example")]).await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[tokio::test]
async fn session_affinity_cookie_balanced_and_persistent() {
    let echo = Echo::replicas("app", 4).await;
    let tg = start(
        &echo,
        vec![
            annotated(
                "bal",
                "bal.test",
                "/",
                "app",
                &[
                    ("affinity", "cookie"),
                    ("session-cookie-name", "route"),
                    ("session-cookie-max-age", "3600"),
                ],
            ),
            annotated(
                "per",
                "per.test",
                "/",
                "app",
                &[("affinity", "cookie"), ("affinity-mode", "persistent")],
            ),
        ],
        &[],
    )
    .await;
    for host in ["bal.test", "per.test"] {
        let first = tg.get(host, "/").await;
        let set = first
            .header("set-cookie")
            .unwrap_or_else(|| panic!("{host}: no Set-Cookie: {}", first.summary()));
        let pair = set.split(';').next().unwrap().to_string();
        if host == "bal.test" {
            assert!(
                pair.starts_with("route=") && set.contains("Max-Age=3600"),
                "{set}"
            );
        } else {
            assert!(pair.starts_with("INGRESSCOOKIE="), "{set}");
        }
        let pod = first.echo().pod();
        for _ in 0..12 {
            let r = get_with(&tg, host, "/", &[("cookie", &pair)]).await;
            assert_eq!(r.echo().pod(), pod, "{host}: sticky");
            assert_eq!(
                r.header("set-cookie"),
                None,
                "{host}: a valid cookie is not replaced"
            );
        }
    }
    // Without the cookie, requests spread.
    let mut pods = std::collections::HashSet::new();
    for _ in 0..16 {
        pods.insert(tg.get("per.test", "/").await.echo().pod());
    }
    assert!(pods.len() > 1, "{pods:?}");
}

#[tokio::test]
async fn upstream_hash_by_keeps_a_key_on_one_endpoint() {
    let echo = Echo::replicas("app", 4).await;
    let tg = start(
        &echo,
        vec![
            annotated(
                "uri",
                "uri.test",
                "/",
                "app",
                &[("upstream-hash-by", "$request_uri")],
            ),
            annotated(
                "hdr",
                "hdr.test",
                "/",
                "app",
                &[("upstream-hash-by", "$http_x_user")],
            ),
        ],
        &[],
    )
    .await;
    let mut pods = std::collections::HashSet::new();
    for i in 0..12 {
        let target = format!("/item/{i}");
        let a = tg.get("uri.test", &target).await.echo().pod();
        let b = tg.get("uri.test", &target).await.echo().pod();
        assert_eq!(a, b, "{target}");
        pods.insert(a);
    }
    assert!(pods.len() > 1, "keys spread over endpoints: {pods:?}");
    let a = get_with(&tg, "hdr.test", "/1", &[("x-user", "alice")])
        .await
        .echo()
        .pod();
    for i in 0..6 {
        let r = get_with(&tg, "hdr.test", &format!("/{i}"), &[("x-user", "alice")]).await;
        assert_eq!(r.echo().pod(), a);
    }
}

/// A server on `addr` answering every request with `status`; counts them.
async fn status_server(addr: SocketAddr, status: u16) -> (Backend, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let backend = serve_on(addr, move |_req| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut r = http::Response::new(full(Bytes::from_static(b"down\n")));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            r
        }
    })
    .await;
    (backend, hits)
}

#[tokio::test]
async fn next_upstream_retries_listed_statuses_on_another_endpoint() {
    // Endpoint 127.0.0.1 is the echo; 127.0.0.2 on the same port answers 503.
    let echo = Echo::services(&["app"]).await;
    let port = echo.port("app");
    let (_failing_server, failing) =
        status_server(SocketAddr::from(([127, 0, 0, 2], port)), 503).await;
    let mut docs = multi_address_backend(NS, "mixed", port, &["127.0.0.1", "127.0.0.2"]);
    docs.push(annotated(
        "retry",
        "retry.test",
        "/",
        "mixed",
        &[
            ("proxy-next-upstream", "error timeout http_503"),
            ("proxy-next-upstream-tries", "2"),
        ],
    ));
    docs.push(annotated(
        "noretry",
        "noretry.test",
        "/",
        "mixed",
        &[("proxy-next-upstream", "off")],
    ));
    let tg = Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(&docs))
        .start()
        .await;
    for i in 0..20 {
        let r = tg.get("retry.test", &format!("/{i}")).await;
        assert_eq!(
            r.status,
            200,
            "request {i} retried on the other endpoint: {}",
            r.summary()
        );
    }
    assert!(
        failing.load(Ordering::SeqCst) > 0,
        "the failing endpoint was tried"
    );
    let mut failed = 0;
    for i in 0..20 {
        if tg.get("noretry.test", &format!("/{i}")).await.status == 503 {
            failed += 1;
        }
    }
    assert!(failed > 0, "without retries the 503s reach the client");
    // A POST with a body is never sent twice.
    let before = failing.load(Ordering::SeqCst);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = send(
            tg.http_addr(),
            req("POST", "retry.test", "/")
                .body(Full::new(Bytes::from_static(b"x")))
                .unwrap(),
        )
        .await
        .unwrap();
        statuses.push(r.status);
    }
    let hits = failing.load(Ordering::SeqCst) - before;
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        hits,
        "every POST the failing endpoint got came back as its 503: {statuses:?}"
    );
}

#[tokio::test]
async fn canary_by_header_cookie_and_weight() {
    let echo = Echo::services(&["main", "canary"]).await;
    let main = annotated("main", "app.test", "/", "main", &[]);
    let by_header = annotated(
        "canary",
        "app.test",
        "/",
        "canary",
        &[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-cookie", "canary"),
        ],
    );
    let tg = start(&echo, vec![main.clone(), by_header], &[]).await;
    assert_eq!(
        tg.get("app.test", "/").await.service().as_deref(),
        Some("main"),
        "weight 0"
    );
    let svc = |r: Resp| r.service().unwrap_or_default();
    assert_eq!(
        svc(get_with(&tg, "app.test", "/", &[("x-canary", "always")]).await),
        "canary"
    );
    assert_eq!(
        svc(get_with(
            &tg,
            "app.test",
            "/",
            &[("x-canary", "never"), ("cookie", "canary=always")]
        )
        .await),
        "main",
        "header beats cookie"
    );
    assert_eq!(
        svc(get_with(&tg, "app.test", "/", &[("cookie", "canary=always")]).await),
        "canary"
    );
    assert_eq!(
        svc(get_with(
            &tg,
            "app.test",
            "/",
            &[("x-canary", "maybe"), ("cookie", "canary=always")]
        )
        .await),
        "canary",
        "other header values fall through"
    );

    let mut docs = echo.backends(NS);
    docs.push(main.clone());
    docs.push(annotated(
        "canary",
        "app.test",
        "/",
        "canary",
        &[
            ("canary", "true"),
            ("canary-by-header", "X-Env"),
            ("canary-by-header-value", "staging"),
        ],
    ));
    docs.push(annotated(
        "canary2",
        "other.test",
        "/",
        "canary",
        &[("canary", "true"), ("canary-weight", "100")],
    ));
    tg.write("manifests.yaml", &yaml_docs(&docs));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while svc(get_with(&tg, "app.test", "/", &[("x-env", "staging")]).await) != "canary" {
        assert!(
            std::time::Instant::now() < deadline,
            "the new canary settings never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        svc(get_with(&tg, "app.test", "/", &[("x-env", "prod")]).await),
        "main"
    );
    // A canary without a main Ingress for its host serves nothing.
    assert_eq!(tg.get("other.test", "/").await.status, 404);

    // Weight: 30 of 100, measured over 400 requests.
    let mut docs = echo.backends(NS);
    docs.push(main);
    docs.push(annotated(
        "canary",
        "app.test",
        "/",
        "canary",
        &[("canary", "true"), ("canary-weight", "30")],
    ));
    tg.write("manifests.yaml", &yaml_docs(&docs));
    // The header rule is gone once the new version is installed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tg
        .metrics()
        .await
        .lines()
        .all(|l| !l.starts_with("tollgate_table_generation 3"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the weight change never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut canary = 0;
    for _ in 0..400 {
        if tg.get("app.test", "/").await.service().as_deref() == Some("canary") {
            canary += 1;
        }
    }
    assert!(
        (80..=160).contains(&canary),
        "30% of 400 ≈ 120, got {canary}"
    );
}

#[tokio::test]
async fn default_backend_and_custom_http_errors() {
    let echo = Echo::services(&["app", "errors"]).await;
    let mut docs = echo.backends(NS);
    // `empty` has no endpoints: the default-backend annotation serves it.
    docs.push(service(NS, "empty", &[("http", 8080)]));
    docs.push(annotated(
        "fb",
        "fb.test",
        "/",
        "empty",
        &[("default-backend", "errors")],
    ));
    docs.push(annotated(
        "ce",
        "ce.test",
        "/",
        "app",
        &[
            ("default-backend", "errors"),
            ("custom-http-errors", "404,503"),
        ],
    ));
    let tg = Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(&docs))
        .start()
        .await;
    let r = tg.get("fb.test", "/x").await;
    assert_eq!(
        (r.status, r.service().as_deref()),
        (200, Some("errors")),
        "{}",
        r.summary()
    );
    let r = get_with(
        &tg,
        "ce.test",
        "/missing?status=404",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(r.status, 404, "the original status is kept");
    let e = r.echo();
    assert_eq!(e.service(), "errors");
    assert_eq!(e.header("X-Code").as_deref(), Some("404"));
    assert_eq!(e.header("X-Format").as_deref(), Some("application/json"));
    assert_eq!(
        e.header("X-Original-Uri").as_deref(),
        Some("/missing?status=404")
    );
    assert_eq!(e.header("X-Namespace").as_deref(), Some(NS));
    assert_eq!(e.header("X-Ingress-Name").as_deref(), Some("ce"));
    assert_eq!(e.header("X-Service-Name").as_deref(), Some("app"));
    let r = tg.get("ce.test", "/ok?status=418").await;
    assert_eq!(
        (r.status, r.service().as_deref()),
        (418, Some("app")),
        "other statuses pass"
    );
}

#[tokio::test]
async fn tollgate_rate_limit_answers_429_with_retry_after_per_client() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![annotated(
            "rl",
            "rl.test",
            "/",
            "app",
            &[
                ("tollgate.dev/limit-rps", "2"),
                ("tollgate.dev/limit-burst", "3"),
            ],
        )],
        &[],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get_from(&tg, "127.0.0.2", "rl.test", "/").await.status);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    let r = get_from(&tg, "127.0.0.2", "rl.test", "/").await;
    assert_eq!(r.status, 429, "{}", r.summary());
    let retry_after: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another client has its own budget.
    assert_eq!(get_from(&tg, "127.0.0.3", "rl.test", "/").await.status, 200);
    // Every 429 is counted, under its route.
    let refused = statuses.iter().filter(|s| **s == 429).count() + 1;
    let metrics = tg.metrics().await;
    assert_eq!(
        metric_sum(
            &metrics,
            "tollgate_limited_requests_total",
            &[("limit", "rate"), ("ingress", "default/rl")]
        ),
        Some(refused as f64),
        "{refused} refused: {metrics}"
    );
    // The budget refills at the rate (2/s).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get_from(&tg, "127.0.0.2", "rl.test", "/").await.status, 200);
}

#[tokio::test]
async fn nginx_rate_limit_keeps_ingress_nginx_burst_and_503() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![
            annotated(
                "rl",
                "nginx-rl.test",
                "/",
                "app",
                &[("limit-rps", "1"), ("limit-burst-multiplier", "2")],
            ),
            annotated(
                "wl",
                "wl.test",
                "/",
                "app",
                &[
                    ("limit-rps", "1"),
                    ("limit-burst-multiplier", "1"),
                    ("limit-whitelist", "127.0.0.7"),
                ],
            ),
        ],
        &[],
    )
    .await;
    // burst = 1 × 2; nginx passes burst + 1 at once.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            get_from(&tg, "127.0.0.2", "nginx-rl.test", "/")
                .await
                .status,
        );
    }
    assert_eq!(statuses, vec![200, 200, 200, 503, 503]);
    for _ in 0..6 {
        assert_eq!(
            get_from(&tg, "127.0.0.7", "wl.test", "/").await.status,
            200,
            "whitelisted"
        );
    }
    let limited: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(get_from(&tg, "127.0.0.8", "wl.test", "/").await.status);
        }
        v
    };
    assert!(limited.contains(&503), "{limited:?}");
}

#[tokio::test]
async fn limit_status_flags_set_either_status() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![
            annotated(
                "t",
                "t.test",
                "/",
                "app",
                &[("tollgate.dev/limit-rpm", "1")],
            ),
            annotated(
                "n",
                "n.test",
                "/",
                "app",
                &[("limit-rpm", "1"), ("limit-burst-multiplier", "1")],
            ),
        ],
        &["--limit-status", "503", "--nginx-limit-status", "429"],
    )
    .await;
    let mut t = Vec::new();
    let mut n = Vec::new();
    for _ in 0..3 {
        t.push(tg.get("t.test", "/").await.status);
        n.push(tg.get("n.test", "/").await.status);
    }
    assert_eq!(t, vec![200, 503, 503]);
    assert_eq!(n, vec![200, 200, 429]);
}

#[tokio::test]
async fn limit_connections_caps_concurrent_requests_per_client() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![annotated(
            "lc",
            "lc.test",
            "/",
            "app",
            &[("tollgate.dev/limit-connections", "2")],
        )],
        &[],
    )
    .await;
    let addr = tg.http_addr();
    let slow = |src: &'static str| {
        tokio::spawn(async move {
            send_from(
                ip(src),
                addr,
                req("GET", "lc.test", "/?delay=800")
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .map(|r| r.status)
        })
    };
    let a = slow("127.0.0.2");
    let b = slow("127.0.0.2");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = get_from(&tg, "127.0.0.2", "lc.test", "/").await;
    assert_eq!(
        third.status,
        429,
        "a third concurrent request: {}",
        third.summary()
    );
    assert_eq!(
        get_from(&tg, "127.0.0.3", "lc.test", "/").await.status,
        200,
        "another client"
    );
    assert_eq!(a.await.unwrap(), Ok(200));
    assert_eq!(b.await.unwrap(), Ok(200));
    assert_eq!(
        metric_sum(
            &tg.metrics().await,
            "tollgate_limited_requests_total",
            &[("limit", "connections"), ("ingress", "default/lc")]
        ),
        Some(1.0)
    );
    assert_eq!(
        get_from(&tg, "127.0.0.2", "lc.test", "/").await.status,
        200,
        "released"
    );
}

/// An Opaque Secret with `data` (values as given, base64-encoded here).
fn opaque_secret(name: &str, data: &[(&str, &str)]) -> Value {
    use base64::Engine;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": NS},
        "data": data,
    })
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn basic_auth_with_bcrypt_sha1_and_apr1_users() {
    use sha1::Digest;
    let echo = Echo::services(&["app"]).await;
    let bcrypt_hash = bcrypt::hash("b-pass", 4).unwrap();
    let sha = {
        use base64::Engine;
        let digest = sha1::Sha1::digest(b"s-pass");
        format!(
            "{{SHA}}{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    };
    // `openssl passwd -apr1 -salt tollgate s3cret`
    let apr1 = "$apr1$tollgate$Ho2fslnWul1eeb2bmhg5b.";
    let htpasswd = format!("# users\nbob:{bcrypt_hash}\nsam:{sha}\nann:{apr1}\n");
    let mut docs = echo.backends(NS);
    docs.push(opaque_secret("users", &[("auth", &htpasswd)]));
    docs.push(opaque_secret("map", &[("zoe", apr1)]));
    docs.push(annotated(
        "auth",
        "auth.test",
        "/",
        "app",
        &[
            ("auth-type", "basic"),
            ("auth-secret", "users"),
            ("auth-realm", "Staff only"),
        ],
    ));
    docs.push(annotated(
        "map",
        "map.test",
        "/",
        "app",
        &[
            ("auth-type", "basic"),
            ("auth-secret", "map"),
            ("auth-secret-type", "auth-map"),
        ],
    ));
    // Fail closed: a missing Secret or an unsupported scheme is not served.
    docs.push(annotated(
        "missing",
        "missing.test",
        "/",
        "app",
        &[("auth-type", "basic"), ("auth-secret", "nope")],
    ));
    docs.push(opaque_secret("plain", &[("auth", "eve:plaintext\n")]));
    docs.push(annotated(
        "plain",
        "plain.test",
        "/",
        "app",
        &[("auth-type", "basic"), ("auth-secret", "plain")],
    ));
    let tg = Tollgate::builder()
        .file("m.yaml", &yaml_docs(&docs))
        .start()
        .await;

    let none = tg.get("auth.test", "/").await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate").as_deref(),
        Some("Basic realm=\"Staff only\"")
    );
    for (user, pass) in [("bob", "b-pass"), ("sam", "s-pass"), ("ann", "s3cret")] {
        let r = get_with(
            &tg,
            "auth.test",
            "/",
            &[("authorization", &basic(user, pass))],
        )
        .await;
        assert_eq!(r.status, 200, "{user}: {}", r.summary());
        // Twice: the second is answered from the success cache.
        let r = get_with(
            &tg,
            "auth.test",
            "/",
            &[("authorization", &basic(user, pass))],
        )
        .await;
        assert_eq!(r.status, 200, "{user} again");
        let wrong = get_with(
            &tg,
            "auth.test",
            "/",
            &[("authorization", &basic(user, "wrong"))],
        )
        .await;
        assert_eq!(wrong.status, 401, "{user} with a wrong password");
    }
    assert_eq!(
        get_with(
            &tg,
            "map.test",
            "/",
            &[("authorization", &basic("zoe", "s3cret"))]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get_with(&tg, "auth.test", "/", &[("authorization", "Basic !!!")])
            .await
            .status,
        401
    );
    // As ingress-nginx: never served unauthenticated; a missing Secret
    // answers 503, unusable content lets nobody in.
    assert_eq!(
        tg.get("missing.test", "/").await.status,
        503,
        "never served without its Secret"
    );
    assert_eq!(
        get_with(
            &tg,
            "plain.test",
            "/",
            &[("authorization", &basic("eve", "plaintext"))]
        )
        .await
        .status,
        401,
        "plain-text passwords are refused"
    );

    // A broken edit of the Secret: its last good users keep working.
    let broken: Vec<Value> = docs
        .iter()
        .map(|d| {
            if d["metadata"]["name"] == "users" && d["kind"] == "Secret" {
                opaque_secret("users", &[("auth", "bob:not-a-hash\n")])
            } else {
                d.clone()
            }
        })
        .collect();
    tg.write("m.yaml", &yaml_docs(&broken));
    wait_for_log(&tg, "Secret default/users: line 1").await;
    let r = get_with(
        &tg,
        "auth.test",
        "/",
        &[("authorization", &basic("bob", "b-pass"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(tg.get("auth.test", "/").await.status, 401);
}

/// An external auth service: allows `Authorization: Bearer good` (with an
/// `X-Auth-User` header), answers 403 for `Bearer forbidden`, else 401.
/// Reports the original URL it was asked about on `seen`.
async fn auth_service(seen: tokio::sync::mpsc::UnboundedSender<String>) -> Backend {
    serve(move |req: http::Request<hyper::body::Incoming>| {
        let h = req.headers();
        if let Some(url) = h.get("x-original-url") {
            let _ = seen.send(url.to_str().unwrap_or("").to_string());
        }
        let auth = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (status, user) = match auth {
            "Bearer good" => (200, Some("alice")),
            "Bearer forbidden" => (403, None),
            _ => (401, None),
        };
        let mut r = http::Response::new(full(Bytes::new()));
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
        if let Some(user) = user {
            r.headers_mut()
                .insert("x-auth-user", http::HeaderValue::from_static(user));
            r.headers_mut()
                .insert("x-not-listed", http::HeaderValue::from_static("leak"));
        }
        async move { r }
    })
    .await
}

#[tokio::test]
async fn external_auth_allows_denies_and_redirects_to_signin() {
    let echo = Echo::services(&["app"]).await;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let auth = auth_service(seen_tx).await;
    let url = format!("http://127.0.0.1:{}/check?host=$host", auth.port);
    let tg = start(
        &echo,
        vec![
            annotated(
                "ext",
                "ext.test",
                "/",
                "app",
                &[("auth-url", &url), ("auth-response-headers", "X-Auth-User")],
            ),
            annotated(
                "signin",
                "signin.test",
                "/",
                "app",
                &[
                    ("auth-url", &url),
                    ("auth-signin", "https://login.example/start"),
                ],
            ),
            annotated(
                "extrw",
                "extrw.test",
                "/app",
                "app",
                &[
                    ("auth-url", &url),
                    ("rewrite-target", "/"),
                    ("auth-response-headers", "X-Auth-User"),
                ],
            ),
            annotated(
                "down",
                "down.test",
                "/",
                "app",
                &[("auth-url", "http://127.0.0.1:9/check")],
            ),
            annotated(
                "badvar",
                "badvar.test",
                "/",
                "app",
                &[("auth-url", "http://127.0.0.1:9/$document_root")],
            ),
        ],
        &[],
    )
    .await;
    let ok = get_with(
        &tg,
        "ext.test",
        "/page?q=1",
        &[("authorization", "Bearer good"), ("x-auth-user", "mallory")],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.summary());
    let e = ok.echo();
    assert_eq!(
        e.header("X-Auth-User").as_deref(),
        Some("alice"),
        "the auth service's value, not the client's"
    );
    assert_eq!(e.header("X-Not-Listed"), None);
    // With a rewrite, the auth service sees the URL as the client sent it
    // and the upstream the rewritten path.
    let rw = get_with(
        &tg,
        "extrw.test",
        "/app/deep?q=2",
        &[("authorization", "Bearer good")],
    )
    .await;
    assert_eq!(rw.status, 200, "{}", rw.summary());
    assert_eq!(rw.echo().path(), "/?q=2");
    let mut seen = Vec::new();
    while let Ok(url) = seen_rx.try_recv() {
        seen.push(url);
    }
    assert!(
        seen.iter().any(|u| u == "http://extrw.test/app/deep?q=2"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|u| u == "http://ext.test/page?q=1"),
        "{seen:?}"
    );
    assert_eq!(
        get_with(
            &tg,
            "ext.test",
            "/",
            &[("authorization", "Bearer forbidden")]
        )
        .await
        .status,
        403
    );
    assert_eq!(tg.get("ext.test", "/").await.status, 401);
    let r = tg.get("signin.test", "/deep?x=1").await;
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    assert!(
        location.starts_with("https://login.example/start?rd="),
        "{location}"
    );
    assert!(location.contains("signin.test"), "{location}");
    assert_eq!(
        tg.get("down.test", "/").await.status,
        500,
        "an unreachable auth service fails closed"
    );
    assert_eq!(
        tg.get("badvar.test", "/").await.status,
        404,
        "a variable outside the whitelist rejects the Ingress"
    );
}

#[tokio::test]
async fn limits_run_before_authentication_so_password_guessing_is_limited() {
    let echo = Echo::services(&["app"]).await;
    let hash = bcrypt::hash("right", 4).unwrap();
    let mut docs = echo.backends(NS);
    docs.push(opaque_secret(
        "users",
        &[("auth", &format!("bob:{hash}\n"))],
    ));
    docs.push(annotated(
        "guarded",
        "guarded.test",
        "/",
        "app",
        &[
            ("auth-type", "basic"),
            ("auth-secret", "users"),
            ("tollgate.dev/limit-rpm", "3"),
        ],
    ));
    let tg = Tollgate::builder()
        .file("m.yaml", &yaml_docs(&docs))
        .start()
        .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = get_with(
            &tg,
            "guarded.test",
            "/",
            &[("authorization", &basic("bob", "guess"))],
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn send_timeout_cookie_path_header_pattern_weight_total_and_redirect_code() {
    let echo = Echo::replicas("app", 3).await;
    let mut docs = echo.backends(NS);
    let canary = Echo::services(&["canary"]).await;
    docs.extend(canary.backends(NS));
    docs.push(annotated(
        "send",
        "send.test",
        "/",
        "app",
        &[("proxy-send-timeout", "1")],
    ));
    docs.push(annotated(
        "path",
        "path.test",
        "/",
        "app",
        &[("affinity", "cookie"), ("session-cookie-path", "/shop")],
    ));
    docs.push(annotated("main", "pat.test", "/", "app", &[]));
    docs.push(annotated(
        "pat",
        "pat.test",
        "/",
        "canary",
        &[
            ("canary", "true"),
            ("canary-by-header", "X-Build"),
            ("canary-by-header-pattern", "^v2\\.[0-9]+$"),
            ("canary-weight", "1"),
            ("canary-weight-total", "1"),
        ],
    ));
    docs.push(annotated(
        "tmp",
        "tmp.test",
        "/",
        "app",
        &[
            ("temporal-redirect", "https://elsewhere.example/"),
            ("temporal-redirect-code", "307"),
        ],
    ));
    docs.push(annotated(
        "hashc",
        "hashc.test",
        "/",
        "app",
        &[("upstream-hash-by", "$cookie_sid")],
    ));
    docs.push(annotated(
        "haship",
        "haship.test",
        "/",
        "app",
        &[("upstream-hash-by", "$remote_addr")],
    ));
    let tg = Tollgate::builder()
        .file("m.yaml", &yaml_docs(&docs))
        .start()
        .await;

    // proxy-send-timeout: a client pausing 2.5 s mid-body gets 408.
    let started = std::time::Instant::now();
    let stalled =
        chunked_post_pausing(tg.http_addr(), "send.test", Duration::from_millis(2500)).await;
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    assert!(
        started.elapsed() < Duration::from_millis(2400),
        "{:?}",
        started.elapsed()
    );

    let r = tg.get("path.test", "/").await;
    assert!(
        r.header("set-cookie").unwrap().contains("Path=/shop"),
        "{:?}",
        r.header("set-cookie")
    );

    // Pattern match → canary; weight 1 of 1 → everything else too.
    let svc = |r: Resp| r.service().unwrap_or_default();
    assert_eq!(
        svc(get_with(&tg, "pat.test", "/", &[("x-build", "v2.17")]).await),
        "canary"
    );
    assert_eq!(
        svc(tg.get("pat.test", "/").await),
        "canary",
        "weight 1 of total 1"
    );

    let r = tg.get("tmp.test", "/").await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (307, Some("https://elsewhere.example/"))
    );

    let pod = get_with(&tg, "hashc.test", "/a", &[("cookie", "sid=s-1")])
        .await
        .echo()
        .pod();
    for target in ["/b", "/c", "/d"] {
        assert_eq!(
            get_with(&tg, "hashc.test", target, &[("cookie", "sid=s-1")])
                .await
                .echo()
                .pod(),
            pod
        );
    }
    let mut pods = std::collections::HashSet::new();
    for i in 2..14 {
        let src = format!("127.0.0.{i}");
        let a = get_from(&tg, &src, "haship.test", "/x").await.echo().pod();
        let b = get_from(&tg, &src, "haship.test", "/y").await.echo().pod();
        assert_eq!(a, b, "{src} sticks");
        pods.insert(a);
    }
    assert!(pods.len() > 1, "client addresses spread: {pods:?}");
}

/// A chunked POST that sends one chunk, pauses, then finishes; returns the
/// response text.
async fn chunked_post_pausing(addr: SocketAddr, host: &str, pause: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(pause, s.read_to_end(&mut out)).await;
    if read.is_err() {
        let _ = s.write_all(b"0\r\n\r\n").await;
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, s.read_to_end(&mut out)).await;
    }
    String::from_utf8_lossy(&out).into_owned()
}
