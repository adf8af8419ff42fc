//! Gateway API cases at the edges of HTTP, standalone mode, through the
//! real binary: WebSocket to a backend whose Service port says
//! `appProtocol: kubernetes.io/ws` (httproute-backend-protocol-websocket),
//! 421 for a request whose host another HTTPS listener's certificate serves
//! (httproute-https-listener-detect-misdirected-requests), route
//! hostnames checked as the CRD schema checks them, and experimental
//! `retry` on connection errors, backend timeouts and with `backoff`
//! (httproute-retry-connection-error, httproute-retry-with-timeouts).

mod common;

use common::gateway::*;
use common::ws::{ws_echo_backend, WsBackend};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// httproute-backend-protocol-websocket: the Service port's appProtocol is
/// `kubernetes.io/ws`; the upgrade reaches the backend and messages flow
/// both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type
async fn websocket_to_an_app_protocol_ws_backend() {
    let WsBackend {
        port,
        seen: seen_rx,
        task: server,
    } = ws_echo_backend().await;
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let mut ws_backend = backend(INFRA, "ws-backend", &[port]);
    ws_backend[0]["spec"]["ports"][0]["appProtocol"] = json!("kubernetes.io/ws");
    let mut extra = ws_backend;
    extra.push(http_route(
        INFRA,
        "backend-protocol-ws",
        "parentRefs: [{name: same-namespace}]\nhostnames: [ws.example]\nrules: [{backendRefs: [{name: ws-backend, port: 8080}]}]",
    ));
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;

    let stream = TcpStream::connect(t.http_addr()).await.unwrap();
    let (mut ws, resp) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio_tungstenite::client_async("ws://ws.example/ws?x=1", stream),
    )
    .await
    .expect("websocket handshake timed out")
    .expect("websocket handshake through the proxy");
    assert_eq!(resp.status(), 101);
    let (uri, _host) = tokio::time::timeout(REQUEST_TIMEOUT, seen_rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uri, "/ws?x=1");
    for m in [
        Message::Text("hello".into()),
        Message::Binary(vec![1, 2, 3]),
        Message::Text("again".into()),
    ] {
        ws.send(m.clone()).await.unwrap();
        let back = tokio::time::timeout(REQUEST_TIMEOUT, ws.next())
            .await
            .expect("echo timed out")
            .expect("stream ended")
            .expect("ws error");
        assert_eq!(back, m);
    }
    ws.close(None).await.unwrap();
    server.await.unwrap();
}

/// httproute-https-listener-detect-misdirected-requests: a TLS connection
/// whose SNI chose one listener's certificate, asking for a host another
/// listener's certificate serves, gets 421; its own host, 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listeners_answer_misdirected_requests_with_421() {
    let echo = Echo::services(&["infra-backend-v1", "infra-backend-v2"]).await;
    let ca = TestCa::new("gateway misdirected CA");
    let first = ca.leaf("example.org", &["example.org"]);
    let second = ca.leaf("second-example.org", &["second-example.org"]);
    let t = Tollgate::with_docs(&infra(
        &echo,
        vec![
            tls_secret(INFRA, "first-cert", &first.chain_pem, &first.key_pem),
            tls_secret(INFRA, "second-cert", &second.chain_pem, &second.key_pem),
            gateway(
                INFRA,
                "misdirected",
                "[{name: https-1, port: 443, protocol: HTTPS, hostname: example.org, tls: {certificateRefs: [{name: first-cert}]}},
  {name: https-2, port: 443, protocol: HTTPS, hostname: second-example.org, tls: {certificateRefs: [{name: second-cert}]}}]",
            ),
            http_route(
                INFRA,
                "first",
                "parentRefs: [{name: misdirected, sectionName: https-1}]\nrules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]",
            ),
            http_route(
                INFRA,
                "second",
                "parentRefs: [{name: misdirected, sectionName: https-2}]\nrules: [{backendRefs: [{name: infra-backend-v2, port: 8080}]}]",
            ),
        ],
    ))
    .await;
    let mut f = Failures::default();
    for (sni, cert, own, own_backend, other) in [
        (
            "example.org",
            &first,
            "example.org",
            "infra-backend-v1",
            "second-example.org",
        ),
        (
            "second-example.org",
            &second,
            "second-example.org",
            "infra-backend-v2",
            "example.org",
        ),
    ] {
        let mut c = HttpsConn::open(t.https_addr(), Some(sni))
            .await
            .unwrap_or_else(|e| panic!("TLS to {sni}: {e}"));
        f.check(c.cert.is(cert), || {
            format!("SNI {sni}: {}", c.cert.describe())
        });
        match c.get(own, "/").await {
            Ok(r) => f.check(r.status == 200 && r.echo().service() == own_backend, || {
                format!("SNI {sni}, Host {own}: {}", r.summary())
            }),
            Err(e) => f.push(format!("SNI {sni}, Host {own}: {e}")),
        }
        match c.get(other, "/").await {
            Ok(r) => f.check(r.status == 421, || {
                format!("SNI {sni}, Host {other}: {} (want 421)", r.summary())
            }),
            Err(e) => f.push(format!("SNI {sni}, Host {other}: {e}")),
        }
    }
    f.assert_none();
}

/// Route hostnames the CRD schema refuses (uppercase, a port, a wildcard
/// not in front, a trailing dot, more than 16): the API server would not
/// store such a route, so it is not served, gets no status, and `tollgate
/// check` rejects it naming the field. Its valid siblings are served.
#[tokio::test]
async fn route_hostnames_are_checked_like_the_crd_schema() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let route = |name: &str, hostnames: &str| {
        http_route(
            INFRA,
            name,
            &format!("parentRefs: [{{name: same-namespace}}]\nhostnames: {hostnames}\nrules: [{{backendRefs: [{{name: infra-backend-v1, port: 8080}}]}}]"),
        )
    };
    let many: Vec<String> = (0..17).map(|i| format!("h{i}.example")).collect();
    let docs = infra(
        &echo,
        vec![
            route("upper", "[ok-upper.example, Upper.example]"),
            route("port", "['port.example:8080']"),
            route("inner-wildcard", "['a.*.example']"),
            route("trailing-dot", "['dot.example.']"),
            route("too-many", &format!("[{}]", many.join(", "))),
            route("valid", "[valid.example, '*.wild.example']"),
        ],
    );
    let dir = TempDir::new("gateway-hostnames-check");
    dir.write("m.yaml", &yaml_docs(&docs));
    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 1, "{all}");
    for (name, field) in [
        ("upper", "spec.hostnames[1]"),
        ("port", "spec.hostnames[0]"),
        ("inner-wildcard", "spec.hostnames[0]"),
        ("trailing-dot", "spec.hostnames[0]"),
        ("too-many", "spec.hostnames"),
    ] {
        assert!(
            all.contains(&format!("HTTPRoute {INFRA}/{name}: {field}:")),
            "{name}: {all}"
        );
    }
    assert!(!all.contains(&format!("HTTPRoute {INFRA}/valid:")), "{all}");

    let t = Tollgate::with_docs(&docs).await;
    let mut f = Failures::default();
    for (host, want) in [
        ("ok-upper.example", 404),
        ("h0.example", 404),
        ("valid.example", 200),
        ("a.b.wild.example", 200),
    ] {
        let r = t.get(host, "/").await;
        f.check(r.status == want, || {
            format!("{host}: {} (want {want})", r.summary())
        });
    }
    f.assert_none();
}

/// The upstream retry manifests (httproute-retry-connection-error,
/// httproute-retry-with-timeouts) against a flaky `infra-backend-v3`, plus
/// a rule with `backoff`. Durations are upstream's times five (1 s for
/// 200 ms...), so that a loaded test machine's late timers cannot turn a
/// timeout into an answer; the paths keep upstream's names.
async fn retry_cluster() -> (Tollgate, RetrySim, Echo) {
    let sim = RetrySim::start("infra-backend-v3").await;
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let mut extra = backend(INFRA, "infra-backend-v3", &[sim.port]);
    extra.push(http_route(
        INFRA,
        "retries-connection-error",
        "parentRefs: [{name: same-namespace}]
rules:
- matches: [{path: {type: PathPrefix, value: /retry/no-status-code-attempts-3}}]
  retry: {attempts: 3}
  backendRefs: [{name: infra-backend-v3, port: 8080}]",
    ));
    extra.push(http_route(
        INFRA,
        "retries-with-timeouts",
        "parentRefs: [{name: same-namespace}]
rules:
- matches: [{path: {type: PathPrefix, value: /retry/backend-request-timeout-200ms}}]
  retry: {attempts: 2}
  timeouts: {backendRequest: 1s}
  backendRefs: [{name: infra-backend-v3, port: 8080}]
- matches: [{path: {type: PathPrefix, value: /retry/request-timeout-200ms}}]
  retry: {codes: [500], attempts: 5}
  timeouts: {backendRequest: 1s, request: 2s}
  backendRefs: [{name: infra-backend-v3, port: 8080}]",
    ));
    extra.push(http_route(
        INFRA,
        "retries-with-backoff",
        "parentRefs: [{name: same-namespace}]
rules:
- matches: [{path: {type: PathPrefix, value: /retry/backoff-200ms}}]
  retry: {codes: [500], attempts: 2, backoff: 200ms}
  backendRefs: [{name: infra-backend-v3, port: 8080}]
- matches: [{path: {type: PathPrefix, value: /retry/backoff-past-deadline}}]
  retry: {codes: [500], attempts: 2, backoff: 5s}
  timeouts: {request: 300ms}
  backendRefs: [{name: infra-backend-v3, port: 8080}]",
    ));
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;
    (t, sim, echo)
}

/// One probe as upstream's `assertConsistentRetryBehaviour` sends it: a
/// fresh uuid; returns the response and how many attempts reached the
/// backend.
async fn retry_probe(t: &Tollgate, sim: &RetrySim, path: &str, query: &str) -> (Resp, u32) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let uuid = format!(
        "probe-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let r = t
        .get("retry.example", &format!("{path}?{query}&uuid={uuid}"))
        .await;
    // A timed-out attempt may still be on its way in: wait for it.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    (r, sim.attempts(&uuid))
}

/// httproute-retry-connection-error (HTTPRouteRetryConnectionError): a
/// reset connection is retried on the same (only) endpoint up to
/// `attempts` times; past them the answer is 503 (upstream accepts 500 or
/// 503).
#[tokio::test]
async fn retries_on_connection_errors() {
    let (t, sim, _echo) = retry_cluster().await;
    let path = "/retry/no-status-code-attempts-3";
    let (r, n) = retry_probe(&t, &sim, path, "succeedAfter=2").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.service().as_deref(), Some("infra-backend-v3"));
    assert_eq!(n, 3, "two resets, then the answer");
    let (r, n) = retry_probe(&t, &sim, path, "succeedAfter=4").await;
    assert!([500, 503].contains(&r.status), "{}", r.summary());
    assert_eq!(n, 4, "the first try and three retries");
}

/// httproute-retry-with-timeouts (HTTPRouteRetryBackendTimeout): an
/// attempt past `timeouts.backendRequest` is retried (no `codes` needed),
/// and `timeouts.request` bounds the attempts and their retries together.
#[tokio::test]
async fn retries_on_backend_timeouts_within_the_request_timeout() {
    let (t, sim, _echo) = retry_cluster().await;
    let backend_timeout = "/retry/backend-request-timeout-200ms";
    let request_timeout = "/retry/request-timeout-200ms";
    for (path, query, want) in [
        (
            backend_timeout,
            "responseCode=500&succeedAfter=2&delayRetry=1500ms",
            200,
        ),
        (
            backend_timeout,
            "responseCode=500&succeedAfter=3&delayRetry=1500ms",
            504,
        ),
        (request_timeout, "responseCode=500&succeedAfter=1", 200),
        (
            request_timeout,
            "responseCode=500&succeedAfter=4&delayRetry=500ms",
            504,
        ),
    ] {
        let (r, n) = retry_probe(&t, &sim, path, query).await;
        assert_eq!(
            r.status,
            want,
            "{path}?{query}: {} after {n} attempts",
            r.summary()
        );
        if want == 200 {
            assert_eq!(r.service().as_deref(), Some("infra-backend-v3"));
        }
    }
}

/// `retry.backoff`: each retry waits at least the backoff (doubling: 200
/// ms, then 400 ms), and a request deadline that comes first ends the
/// request with 504 at the deadline, not after the wait.
#[tokio::test]
async fn retry_backoff_waits_between_attempts_and_the_deadline_wins() {
    let (t, sim, _echo) = retry_cluster().await;
    let started = std::time::Instant::now();
    let (r, n) = retry_probe(
        &t,
        &sim,
        "/retry/backoff-200ms",
        "responseCode=500&succeedAfter=2",
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(n, 3);
    assert!(
        elapsed >= std::time::Duration::from_millis(600),
        "two retries wait 200 ms and 400 ms: {elapsed:?}"
    );
    let started = std::time::Instant::now();
    let (r, n) = retry_probe(
        &t,
        &sim,
        "/retry/backoff-past-deadline",
        "responseCode=500&succeedAfter=1",
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.summary());
    assert_eq!(n, 1, "the retry would start after the deadline");
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "504 at the 300 ms deadline, not after the 5 s backoff: {elapsed:?}"
    );
}
