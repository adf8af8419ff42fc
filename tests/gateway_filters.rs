//! Gateway API filters end to end, standalone mode: HTTPRoute filters
//! (header modifiers at rule and backend level, redirects, URL rewrites,
//! mirrors, CORS), timeouts, and HTTPS listeners, through the real binary
//! to `tollgate echo`. Expectations follow the upstream conformance cases
//! named on each test (written anew for these fixtures).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::gateway::*;
use common::*;
use http_body_util::Full;
use serde_json::Value;

/// An HTTPRoute on `same-namespace` for `host` with one rule: `filters`
/// (YAML flow), to infra-backend-v1 unless `backends` says otherwise.
fn filtered(name: &str, host: &str, rule: &str) -> Value {
    http_route(
        INFRA,
        name,
        &format!("parentRefs: [{{name: same-namespace}}]\nhostnames: [{host}]\nrules:\n- {rule}"),
    )
}

const TO_V1: &str = "backendRefs: [{name: infra-backend-v1, port: 8080}]";

async fn call(
    t: &Tollgate,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut r = req(method, host, target);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    send(t.http_addr(), r.body(Full::<Bytes>::default()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {host}{target}: {e}"))
}

/// httproute-request-header-modifier, httproute-response-header-modifier,
/// httproute-request-header-modifier-backend(-weights).
#[tokio::test]
async fn header_modifiers() {
    let echo = Echo::services(&["infra-backend-v1", "infra-backend-v2"]).await;
    let t = Tollgate::with_docs(&infra(
        &echo,
        vec![
            filtered(
                "request",
                "request.example",
                &format!(
                    "filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: X-Header-Set, value: set-overwrites-values}}], add: [{{name: X-Header-Add, value: add-appends-values}}], remove: [X-Header-Remove]}}}}]\n  {TO_V1}"
                ),
            ),
            filtered(
                "response",
                "response.example",
                &format!(
                    "filters: [{{type: ResponseHeaderModifier, responseHeaderModifier: {{set: [{{name: X-Header-Set, value: set}}], add: [{{name: X-Header-Add, value: add}}], remove: [content-type]}}}}]\n  {TO_V1}"
                ),
            ),
            filtered(
                "backend",
                "backend.example",
                "backendRefs:
  - {name: infra-backend-v1, port: 8080, weight: 1, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Backend, value: one}]}}]}
  - {name: infra-backend-v2, port: 8080, weight: 1, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Backend, value: two}]}}]}",
            ),
        ],
    ))
    .await;
    let mut f = Failures::default();
    let r = call(
        &t,
        "GET",
        "request.example",
        "/",
        &[
            ("X-Header-Set", "some-other-value"),
            ("X-Header-Add", "original"),
            ("X-Header-Remove", "gone"),
        ],
    )
    .await;
    let e = r.echo();
    f.check(
        e.header_values("x-header-set") == ["set-overwrites-values"],
        || format!("set: {}", e.0),
    );
    f.check(
        e.header_values("x-header-add") == ["original", "add-appends-values"],
        || format!("add: {}", e.0),
    );
    f.check(e.header("x-header-remove").is_none(), || {
        format!("remove: {}", e.0)
    });

    let r = t.get("response.example", "/").await;
    f.check(r.status == 200, || r.summary());
    f.check(r.header("x-header-set").as_deref() == Some("set"), || {
        format!("{:?}", r.headers)
    });
    f.check(r.header("x-header-add").as_deref() == Some("add"), || {
        format!("{:?}", r.headers)
    });
    f.check(r.header("content-type").is_none(), || {
        format!("{:?}", r.headers)
    });

    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let e = t.get("backend.example", "/").await.echo();
        let want = if e.service() == "infra-backend-v1" {
            "one"
        } else {
            "two"
        };
        f.check(e.header("x-backend").as_deref() == Some(want), || {
            format!("{}", e.0)
        });
        seen.insert(e.service());
    }
    f.check(seen.len() == 2, || format!("both backends: {seen:?}"));
    f.assert_none();
}

/// httproute-redirect-scheme, -redirect-host-and-status, -redirect-path,
/// -redirect-port, -redirect-port-and-scheme, httproute-303/307/308-redirect.
#[tokio::test]
async fn redirects() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let redirect = |name: &str, host: &str, spec: &str| {
        filtered(
            name,
            host,
            &format!(
                "matches: [{{path: {{type: PathPrefix, value: /prefix}}}}]\n  filters: [{{type: RequestRedirect, requestRedirect: {spec}}}]"
            ),
        )
    };
    let mut extra = vec![
        redirect("scheme", "scheme.example", "{scheme: https}"),
        redirect(
            "host-status",
            "hoststatus.example",
            "{hostname: example.org, statusCode: 301}",
        ),
        redirect(
            "full-path",
            "fullpath.example",
            "{path: {type: ReplaceFullPath, replaceFullPath: /one}}",
        ),
        redirect(
            "prefix-path",
            "prefixpath.example",
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}",
        ),
        redirect("port", "port.example", "{port: 8083}"),
        redirect(
            "port-scheme",
            "portscheme.example",
            "{scheme: https, port: 443}",
        ),
        redirect("s303", "s303.example", "{statusCode: 303}"),
        redirect("s307", "s307.example", "{statusCode: 307}"),
        redirect("s308", "s308.example", "{statusCode: 308}"),
        gateway(
            INFRA,
            "alt-port",
            "[{name: http, port: 8080, protocol: HTTP, hostname: altport.example}]",
        ),
        http_route(
            INFRA,
            "alt",
            "parentRefs: [{name: alt-port}]
rules: [{filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]}]",
        ),
    ];
    extra.push(filtered("plain", "plain.example", TO_V1));
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;
    let mut f = Failures::default();
    for (host, path, status, location) in [
        (
            "scheme.example",
            "/prefix/x?q=1",
            302,
            "https://scheme.example/prefix/x?q=1",
        ),
        (
            "hoststatus.example",
            "/prefix",
            301,
            "http://example.org/prefix",
        ),
        (
            "fullpath.example",
            "/prefix/x",
            302,
            "http://fullpath.example/one",
        ),
        (
            "prefixpath.example",
            "/prefix/x",
            302,
            "http://prefixpath.example/new/x",
        ),
        (
            "port.example",
            "/prefix",
            302,
            "http://port.example:8083/prefix",
        ),
        (
            "portscheme.example",
            "/prefix",
            302,
            "https://portscheme.example/prefix",
        ),
        ("s303.example", "/prefix", 303, "http://s303.example/prefix"),
        ("s307.example", "/prefix", 307, "http://s307.example/prefix"),
        ("s308.example", "/prefix", 308, "http://s308.example/prefix"),
        ("altport.example", "/a", 302, "http://example.org:8080/a"),
    ] {
        let r = t.get(host, path).await;
        f.check(
            r.status == status && r.header("location").as_deref() == Some(location),
            || {
                format!(
                    "{host}{path}: want {status} {location}, got {} {:?}",
                    r.status,
                    r.header("location")
                )
            },
        );
    }
    f.assert_none();
}

/// httproute-rewrite-host, httproute-rewrite-path.
#[tokio::test]
async fn url_rewrites() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let t = Tollgate::with_docs(&infra(
        &echo,
        vec![
            filtered(
                "prefix",
                "rewrite.example",
                &format!("matches: [{{path: {{value: /prefix/one}}}}]\n  filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /one}}}}}}]\n  {TO_V1}"),
            ),
            filtered(
                "strip",
                "rewrite.example",
                &format!("matches: [{{path: {{value: /strip-prefix}}}}]\n  filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}}}]\n  {TO_V1}"),
            ),
            filtered(
                "full",
                "rewrite.example",
                &format!("matches: [{{path: {{value: /full}}}}]\n  filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /one}}}}}}]\n  {TO_V1}"),
            ),
            filtered(
                "host",
                "rewritehost.example",
                &format!("filters: [{{type: URLRewrite, urlRewrite: {{hostname: one.example.org}}}}]\n  {TO_V1}"),
            ),
        ],
    ))
    .await;
    let mut f = Failures::default();
    for (host, path, want_path, want_host) in [
        (
            "rewrite.example",
            "/prefix/one/two",
            "/one/two",
            "rewrite.example",
        ),
        (
            "rewrite.example",
            "/strip-prefix/three",
            "/three",
            "rewrite.example",
        ),
        ("rewrite.example", "/strip-prefix", "/", "rewrite.example"),
        (
            "rewrite.example",
            "/full/x?q=1",
            "/one?q=1",
            "rewrite.example",
        ),
        ("rewritehost.example", "/a", "/a", "one.example.org"),
    ] {
        let r = t.get(host, path).await;
        let e = r.echo();
        f.check(
            e.path() == want_path && e.host().starts_with(want_host),
            || {
                format!(
                    "{host}{path}: want {want_host}{want_path}, got {}{}",
                    e.host(),
                    e.path()
                )
            },
        );
    }
    f.assert_none();
}

/// httproute-request-mirror, httproute-request-percentage-mirror (0 and
/// 100 percent).
#[tokio::test]
async fn mirrors() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let mirror = serve(move |_req| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            http::Response::new(full("mirrored"))
        }
    })
    .await;
    let mut extra = backend(INFRA, "mirror-backend", &[mirror.port]);
    extra.push(filtered(
        "mirror",
        "mirror.example",
        &format!("filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: mirror-backend, port: 8080}}}}}}]\n  {TO_V1}"),
    ));
    extra.push(filtered(
        "none",
        "nomirror.example",
        &format!("filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: mirror-backend, port: 8080}}, percent: 0}}}}]\n  {TO_V1}"),
    ));
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;
    for _ in 0..5 {
        let r = t.get("nomirror.example", "/").await;
        assert_eq!(
            r.service().as_deref(),
            Some("infra-backend-v1"),
            "{}",
            r.summary()
        );
    }
    for _ in 0..5 {
        let r = t.get("mirror.example", "/").await;
        assert_eq!(
            r.service().as_deref(),
            Some("infra-backend-v1"),
            "{}",
            r.summary()
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hits.load(Ordering::SeqCst) < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        5,
        "every mirrored request, none of the 0% route"
    );
}

/// httproute-cors (allowed origin answered, others not), and
/// httproute-timeout-request (504 after timeouts.request).
#[tokio::test]
async fn cors_and_timeouts() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let t = Tollgate::with_docs(&infra(
        &echo,
        vec![
            filtered(
                "cors",
                "cors.example",
                &format!("filters: [{{type: CORS, cors: {{allowOrigins: ['https://www.foo.com'], allowMethods: [GET, OPTIONS], allowHeaders: [x-header-1]}}}}]\n  {TO_V1}"),
            ),
            filtered(
                "timeout",
                "timeout.example",
                &format!("timeouts: {{request: 500ms}}\n  {TO_V1}"),
            ),
        ],
    ))
    .await;
    let r = call(
        &t,
        "GET",
        "cors.example",
        "/",
        &[("origin", "https://www.foo.com")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://www.foo.com")
    );
    let r = call(
        &t,
        "GET",
        "cors.example",
        "/",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "{:?}",
        r.headers
    );

    let r = t.get("timeout.example", "/?delay=100").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let started = std::time::Instant::now();
    let r = t.get("timeout.example", "/?delay=3000").await;
    assert_eq!(r.status, 504, "{}", r.summary());
    assert!(started.elapsed() < Duration::from_millis(2500));
}

/// httproute-https-listener: TLS terminated with the listener's
/// certificateRefs Secret, chosen by SNI; plain HTTP to an HTTPS-only
/// route is redirected.
#[tokio::test]
async fn https_listener() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let ca = TestCa::new("gateway test CA");
    let cert = ca.leaf("secure.example", &["secure.example"]);
    let t = Tollgate::with_docs(&infra(
        &echo,
        vec![
            tls_secret(INFRA, "secure-cert", &cert.chain_pem, &cert.key_pem),
            gateway(
                INFRA,
                "secure",
                "[{name: https, port: 443, protocol: HTTPS, hostname: secure.example, tls: {certificateRefs: [{name: secure-cert}]}}]",
            ),
            http_route(
                INFRA,
                "secure",
                "parentRefs: [{name: secure}]\nrules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]",
            ),
        ],
    ))
    .await;
    let (r, peer) = https_get(
        t.https_addr(),
        Some("secure.example"),
        "secure.example",
        "/",
    )
    .await
    .expect("HTTPS GET");
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.echo().service(), "infra-backend-v1");
    assert_eq!(peer.der, cert.der, "the listener's certificate");
    let r = t.get("secure.example", "/x").await;
    assert_eq!(
        r.status,
        308,
        "plain HTTP to an HTTPS-only route: {}",
        r.summary()
    );
}

/// httproute-timeout-backend-request (504 when one attempt is too slow),
/// httproute-request-multiple-mirrors (every mirror gets a copy), and
/// httproute-named-rule (a named rule is served like any other).
#[tokio::test]
async fn backend_timeouts_multiple_mirrors_and_named_rules() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let mut mirrors = Vec::new();
    for _ in 0..2 {
        let counter = hits.clone();
        mirrors.push(
            serve(move |_req| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    http::Response::new(full("mirrored"))
                }
            })
            .await,
        );
    }
    let mut extra = backend(INFRA, "mirror-a", &[mirrors[0].port]);
    extra.extend(backend(INFRA, "mirror-b", &[mirrors[1].port]));
    extra.push(filtered(
        "mirrors",
        "mirrors.example",
        &format!("name: two-mirrors\n  filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: mirror-a, port: 8080}}}}}}, {{type: RequestMirror, requestMirror: {{backendRef: {{name: mirror-b, port: 8080}}}}}}]\n  {TO_V1}"),
    ));
    extra.push(filtered(
        "backend-timeout",
        "backendtimeout.example",
        &format!("timeouts: {{request: 10s, backendRequest: 500ms}}\n  {TO_V1}"),
    ));
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;
    let r = t.get("mirrors.example", "/").await;
    assert_eq!(
        r.service().as_deref(),
        Some("infra-backend-v1"),
        "{}",
        r.summary()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hits.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "one copy per mirror");
    let r = t.get("backendtimeout.example", "/?delay=100").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let r = t.get("backendtimeout.example", "/?delay=3000").await;
    assert_eq!(r.status, 504, "{}", r.summary());
}

/// httproute-retry: with `retry.codes` and `attempts`, a request answered
/// with a listed status by one endpoint is retried on another (without the
/// retry, round robin would answer 500 every other request).
#[tokio::test]
async fn retry_on_listed_statuses() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let failing = serve(|_req| async {
        let mut r = http::Response::new(full("boom"));
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
    .await;
    let ports = [failing.port, echo.port("infra-backend-v1")];
    let mut extra = backend(INFRA, "flaky", &ports);
    extra.extend(backend(INFRA, "flaky-plain", &ports));
    extra.push(filtered(
        "retry",
        "retry.example",
        "retry: {codes: [500], attempts: 2}\n  backendRefs: [{name: flaky, port: 8080}]",
    ));
    extra.push(filtered(
        "no-retry",
        "noretry.example",
        "backendRefs: [{name: flaky-plain, port: 8080}]",
    ));
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;
    for i in 0..10 {
        let r = t.get("retry.example", "/").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.summary());
    }
    let mut failed = 0;
    for _ in 0..10 {
        if t.get("noretry.example", "/").await.status == 500 {
            failed += 1;
        }
    }
    assert!(failed > 0, "without retry some requests see the 500");
}

/// RequestMirror with a body: each mirror gets the request's body too
/// (teed as the main request streams it), and a mirror that never reads
/// never slows the main request: its copy is abandoned (an aborted
/// request, never a truncated one) once it is 1 MiB behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_get_the_body_and_a_stalled_mirror_never_slows_the_request() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let small = 64 * 1024;
    // 16 MiB: far more than the stalled mirror's socket buffers and queue.
    let big = 16 * 1024 * 1024;
    // What the reading mirror saw: complete bodies of each size, complete
    // bodies of any other size (truncated: must never happen), aborted ones.
    let seen: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    let record = seen.clone();
    let reading = serve(move |req| {
        let record = record.clone();
        async move {
            use http_body_util::BodyExt;
            let slot = match req.into_body().collect().await.map(|b| b.to_bytes().len()) {
                Ok(n) if n == small => 0,
                Ok(n) if n == big => 1,
                Ok(_) => 2,
                Err(_) => 3,
            };
            record[slot].fetch_add(1, Ordering::SeqCst);
            http::Response::new(full("mirrored"))
        }
    })
    .await;
    // Accepts connections and never reads from them.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_port = stalled.local_addr().unwrap().port();
    let _stalled = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stalled.accept().await {
            held.push(s);
        }
    });
    let mut extra = backend(INFRA, "reading-mirror", &[reading.port]);
    extra.extend(backend(INFRA, "stalled-mirror", &[stalled_port]));
    extra.push(filtered(
        "mirror-body",
        "mirrorbody.example",
        &format!(
            "filters:
  - {{type: RequestMirror, requestMirror: {{backendRef: {{name: reading-mirror, port: 8080}}}}}}
  - {{type: RequestMirror, requestMirror: {{backendRef: {{name: stalled-mirror, port: 8080}}}}}}
  {TO_V1}"
        ),
    ));
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;
    let post = |size: usize| {
        req("POST", "mirrorbody.example", "/upload")
            .body(Full::new(Bytes::from(vec![b'x'; size])))
            .unwrap()
    };
    let r = send(t.http_addr(), post(small)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.echo().body_bytes(), small as u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seen[0].load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen[0].load(Ordering::SeqCst), 1, "the mirror got the body");

    for _ in 0..2 {
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(20), send(t.http_addr(), post(big)))
            .await
            .expect("the main request must not wait for the stalled mirror")
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.summary());
        assert_eq!(r.echo().body_bytes(), big as u64);
        assert!(started.elapsed() < Duration::from_secs(15));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let count = || seen.iter().map(|n| n.load(Ordering::SeqCst)).sum::<usize>();
    while count() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen[2].load(Ordering::SeqCst),
        0,
        "a mirror never gets a truncated body as if complete"
    );
}
