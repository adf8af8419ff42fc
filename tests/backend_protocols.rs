//! How `tollgate run` speaks to backends, chosen per Ingress by the
//! `backend-protocol` annotation: HTTP/1.1 inside TLS, HTTP/2 in cleartext
//! (H2C, GRPC) and inside TLS (GRPCS); gRPC unary, server-streaming and
//! error calls end to end with their trailers; WebSocket upgrades on the
//! HTTPS port; an unknown value as a warning that falls back to HTTP.
//!
//! Every backend here speaks exactly one protocol (see the backend
//! protocol helpers in `common`), so a response at all proves the wire
//! protocol; the backends also report what they saw (version, authority,
//! TLS handshakes) for the finer points.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::ws::{ws_echo_backend, WsBackend};
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "protocols";

const ANNOTATION: &str = "tollgate.dev/backend-protocol";
const NGINX_ANNOTATION: &str = "nginx.ingress.kubernetes.io/backend-protocol";

/// IngressClass, Ingress `host` (Prefix /) → `svc` port 8080 annotated
/// `annotation: protocol` (no annotation when `protocol` is empty), and the
/// Service with one endpoint 127.0.0.1:`port`.
fn route(annotation: &str, protocol: &str, host: &str, svc: &str, port: u16) -> Vec<Value> {
    let mut ing = ingress(NS, &format!("{svc}-ing"), &simple_spec(host, svc));
    if !protocol.is_empty() {
        ing["metadata"]["annotations"] = json!({ annotation: protocol });
    }
    let mut docs = vec![ingress_class("tollgate", false), ing];
    docs.extend(backend(NS, svc, &[port]));
    docs
}

/// Adds a `tls` entry for `host` with a Secret holding a fresh leaf from
/// `ca` to the Ingress in `docs`.
fn with_tls(mut docs: Vec<Value>, ca: &TestCa, host: &str) -> Vec<Value> {
    let leaf = ca.leaf(&format!("leaf {host}"), &[host]);
    let secret = format!("{}-tls", host.replace('.', "-"));
    for d in docs.iter_mut().filter(|d| d["kind"] == "Ingress") {
        d["spec"]["tls"] = json!([{"hosts": [host], "secretName": secret}]);
    }
    docs.push(tls_secret(NS, &secret, &leaf.chain_pem, &leaf.key_pem));
    docs
}

/// A JSON response describing the request as a backend saw it.
async fn describe_request(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body_bytes = match body.collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => usize::MAX,
    };
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let v = json!({
        "version": format!("{:?}", parts.version),
        "authority": parts.uri.authority().map(|a| a.to_string()),
        "host": header("host"),
        "path": parts.uri.path_and_query().map(|p| p.to_string()),
        "method": parts.method.as_str(),
        "bodyBytes": body_bytes,
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(full(v.to_string()))
        .unwrap()
}

fn json_body(r: &Resp) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "status {}: body is not JSON ({e}): {:?}",
            r.status,
            r.text()
        )
    })
}

/// What a gRPC backend saw of one call.
#[derive(Debug)]
struct GrpcSeen {
    path: String,
    version: Version,
    authority: Option<String>,
    content_type: Option<String>,
    te: Option<String>,
    messages: Result<Vec<Bytes>, String>,
}

impl GrpcSeen {
    async fn of(req: Request<Incoming>) -> GrpcSeen {
        let (parts, body) = req.into_parts();
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let messages = match body.collect().await {
            Ok(b) => grpc_messages(&b.to_bytes()),
            Err(e) => Err(format!("reading the request body: {e}")),
        };
        GrpcSeen {
            path: parts.uri.path().to_string(),
            version: parts.version,
            authority: parts.uri.authority().map(|a| a.to_string()),
            content_type: header("content-type"),
            te: header("te"),
            messages,
        }
    }
}

/// The `echo.Echo` service: `Unary` answers "pong:" + the request message;
/// `Stream` answers five messages 100 ms apart; `FailTrailersOnly` answers
/// with a trailers-only response (status 13 in the headers, no body);
/// `Fail` with headers, no message and status 13 in trailers. Every call
/// it sees is sent on `seen`.
async fn echo_service(
    req: Request<Incoming>,
    seen: mpsc::UnboundedSender<GrpcSeen>,
) -> Response<Body> {
    let call = GrpcSeen::of(req).await;
    let path = call.path.clone();
    let first = call
        .messages
        .as_ref()
        .ok()
        .and_then(|m| m.first().cloned())
        .unwrap_or_default();
    let _ = seen.send(call);
    let ok = header_map(&[
        ("grpc-status", "0"),
        ("grpc-message", ""),
        ("x-trailer", "yes"),
    ]);
    match path.as_str() {
        "/echo.Echo/Unary" => {
            let reply = Bytes::from([b"pong:".as_slice(), &first].concat());
            grpc_response(grpc_body(vec![reply], Duration::ZERO, ok))
        }
        "/echo.Echo/Stream" => {
            let msgs = (0..STREAM_MESSAGES)
                .map(|i| Bytes::from(format!("part-{i}")))
                .collect();
            grpc_response(grpc_body(msgs, STREAM_GAP, ok))
        }
        "/echo.Echo/FailTrailersOnly" => Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "13")
            .header("grpc-message", "boom")
            .body(full(Bytes::new()))
            .unwrap(),
        "/echo.Echo/Fail" => grpc_response(grpc_body(
            Vec::new(),
            Duration::ZERO,
            header_map(&[("grpc-status", "13"), ("grpc-message", "boom")]),
        )),
        _ => grpc_response(grpc_body(
            Vec::new(),
            Duration::ZERO,
            header_map(&[("grpc-status", "12"), ("grpc-message", "unknown method")]),
        )),
    }
}

const STREAM_MESSAGES: usize = 5;
const STREAM_GAP: Duration = Duration::from_millis(100);

/// A backend serving [`echo_service`] on `wire`, and the calls it sees.
async fn grpc_backend(wire: Wire) -> (ProtoBackend, mpsc::UnboundedReceiver<GrpcSeen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let b = serve_proto(wire, move |req| echo_service(req, tx.clone())).await;
    (b, rx)
}

/// The next call the gRPC backend saw (bounded wait).
async fn next_call(rx: &mut mpsc::UnboundedReceiver<GrpcSeen>, b: &ProtoBackend) -> GrpcSeen {
    tokio::time::timeout(REQUEST_TIMEOUT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("the backend saw no call; {}", b.describe()))
        .expect("backend channel closed")
}

/// Checks a successful `Unary` call: the reply the client got and the call
/// the backend saw.
fn check_unary(f: &mut Failures, r: &GrpcReply, call: &GrpcSeen, authority: &str) {
    f.check(r.status == 200, || format!("HTTP status {}", r.status));
    f.check(r.version == Version::HTTP_2, || {
        format!("client got {:?}, want HTTP/2", r.version)
    });
    f.check(
        r.header("content-type").as_deref() == Some("application/grpc"),
        || format!("content-type {:?}", r.header("content-type")),
    );
    f.check(r.bodies() == vec![Bytes::from_static(b"pong:ping")], || {
        format!("messages {:?}, want [\"pong:ping\"]", r.bodies())
    });
    f.check(r.trailer("grpc-status").as_deref() == Some("0"), || {
        format!(
            "trailer grpc-status {:?} (trailers {:?}, headers {:?})",
            r.trailer("grpc-status"),
            r.trailers,
            r.headers
        )
    });
    f.check(r.trailer("x-trailer").as_deref() == Some("yes"), || {
        format!(
            "trailer x-trailer {:?} (trailers {:?})",
            r.trailer("x-trailer"),
            r.trailers
        )
    });

    f.check(call.path == "/echo.Echo/Unary", || {
        format!("backend saw path {:?}", call.path)
    });
    f.check(call.version == Version::HTTP_2, || {
        format!("backend saw {:?}, want HTTP/2", call.version)
    });
    f.check(call.authority.as_deref() == Some(authority), || {
        format!(
            "backend saw :authority {:?}, want {authority:?}",
            call.authority
        )
    });
    f.check(
        call.content_type.as_deref() == Some("application/grpc"),
        || format!("backend saw content-type {:?}", call.content_type),
    );
    // gRPC over HTTP/2 requires `te: trailers` on requests; servers use it
    // to detect proxies that would drop trailers.
    f.check(call.te.as_deref() == Some("trailers"), || {
        format!(
            "backend saw te {:?}, want \"trailers\" (required by the gRPC protocol)",
            call.te
        )
    });
    f.check(
        call.messages.as_ref().ok() == Some(&vec![Bytes::from_static(b"ping")]),
        || format!("backend saw messages {:?}, want [\"ping\"]", call.messages),
    );
}

// ---------------------------------------------------------------------------
// HTTPS and H2C
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backend_is_spoken_to_over_tls_without_verification() {
    let b = serve_proto(Wire::Https, describe_request).await;
    let tg = Tollgate::with_docs(&route(ANNOTATION, "HTTPS", "tls.test", "secure", b.port)).await;

    let r = tg.get("tls.test", "/secure/x?y=1").await;
    assert_eq!(
        r.status,
        200,
        "GET via an HTTPS backend: {}; {}",
        r.summary(),
        b.describe()
    );
    let v = json_body(&r);
    let mut f = Failures::default();
    f.check(v["version"] == "HTTP/1.1", || {
        format!("backend saw {}", v["version"])
    });
    f.check(v["path"] == "/secure/x?y=1", || {
        format!("backend saw path {}", v["path"])
    });
    f.check(v["host"] == "tls.test", || {
        format!("backend saw Host {}", v["host"])
    });

    // A request body travels inside TLS too.
    let r = send(
        tg.http_addr(),
        req("POST", "tls.test", "/upload")
            .body(Full::new(Bytes::from(vec![b'x'; 100 * 1024])))
            .unwrap(),
    )
    .await
    .expect("POST via an HTTPS backend");
    f.check(
        r.status == 200 && json_body(&r)["bodyBytes"] == 100 * 1024,
        || format!("POST 100 KiB via an HTTPS backend: {}", r.summary()),
    );

    // The backend only speaks TLS, so the responses above prove it; the
    // handshakes show how: ALPN http/1.1, and no SNI for an IP endpoint.
    let hs = b.handshakes();
    f.check(!hs.is_empty(), || {
        format!("no TLS handshake; {}", b.describe())
    });
    for h in &hs {
        f.check(h.alpn.as_deref() == Some("http/1.1"), || {
            format!("handshake agreed ALPN {:?}, want http/1.1", h.alpn)
        });
        f.check(h.sni.is_none(), || {
            format!("handshake sent SNI {:?} for endpoint 127.0.0.1", h.sni)
        });
    }
    f.assert_none();
}

/// An H2C backend answering [`describe_request`] after 200 ms, so that
/// concurrent requests overlap in it, and the most requests it has had in
/// flight at once.
async fn overlapping_h2c_backend() -> (ProtoBackend, Arc<AtomicUsize>) {
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (cur, max) = (Arc::new(AtomicUsize::new(0)), max_in_flight.clone());
    let b = serve_proto(Wire::H2c, move |req| {
        let (cur, max) = (cur.clone(), max.clone());
        async move {
            let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            cur.fetch_sub(1, Ordering::SeqCst);
            describe_request(req).await
        }
    })
    .await;
    (b, max_in_flight)
}

/// `n` concurrent GETs for `host`, each on its own client connection;
/// failures go to `f`.
async fn concurrent_gets(f: &mut Failures, addr: SocketAddr, host: &str, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let host = host.to_string();
            tokio::spawn(async move {
                let target = format!("/many/{i}");
                send(
                    addr,
                    req("GET", &host, &target).body(Full::default()).unwrap(),
                )
                .await
            })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        match c.await.unwrap() {
            Ok(r) => f.check(r.status == 200, || {
                format!("concurrent GET {i}: {}", r.summary())
            }),
            Err(e) => f.push(format!("concurrent GET {i}: {e}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_backend_gets_http2_with_the_client_host_as_authority() {
    let (b, max_in_flight) = overlapping_h2c_backend().await;
    // The nginx spelling, lower case; one worker, so one upstream connection.
    let tg = Tollgate::builder()
        .docs(
            "m.yaml",
            &route(NGINX_ANNOTATION, "h2c", "h2c.test", "plain2", b.port),
        )
        .args(&["--threads", "1"])
        .start()
        .await;

    let r = tg.get("h2c.test", "/h2/a?x=1").await;
    assert_eq!(
        r.status,
        200,
        "GET via an H2C backend: {}; {}",
        r.summary(),
        b.describe()
    );
    let v = json_body(&r);
    let mut f = Failures::default();
    f.check(r.version == Version::HTTP_11, || {
        format!("client (HTTP/1.1) got {:?}", r.version)
    });
    f.check(v["version"] == "HTTP/2.0", || {
        format!("backend saw {}", v["version"])
    });
    f.check(v["authority"] == "h2c.test", || {
        format!(
            "backend saw :authority {}, want the client's Host h2c.test",
            v["authority"]
        )
    });
    f.check(v["path"] == "/h2/a?x=1", || {
        format!("backend saw path {}", v["path"])
    });

    // Concurrent client connections share the one HTTP/2 connection.
    concurrent_gets(&mut f, tg.http_addr(), "h2c.test", 6).await;
    f.check(b.connections() == 1, || {
        format!(
            "want one multiplexed upstream connection with --threads 1; {}",
            b.describe()
        )
    });
    f.check(max_in_flight.load(Ordering::SeqCst) > 1, || {
        format!(
            "at most {} request(s) in flight at the backend: not multiplexed",
            max_in_flight.load(Ordering::SeqCst)
        )
    });
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_connection_is_shared_by_a_cold_burst() {
    let (b, max_in_flight) = overlapping_h2c_backend().await;
    let tg = Tollgate::builder()
        .docs(
            "m.yaml",
            &route(ANNOTATION, "H2C", "burst.test", "burst", b.port),
        )
        .args(&["--threads", "1"])
        .start()
        .await;

    // No warm-up request: the first requests arrive together, while no
    // upstream connection exists yet. One worker, so one connection.
    let mut f = Failures::default();
    concurrent_gets(&mut f, tg.http_addr(), "burst.test", 6).await;
    f.check(b.connections() == 1, || {
        format!(
            "want one multiplexed upstream connection with --threads 1, also for requests that arrive before it is open; {}",
            b.describe()
        )
    });
    f.check(max_in_flight.load(Ordering::SeqCst) > 1, || {
        format!(
            "at most {} request(s) in flight at the backend",
            max_in_flight.load(Ordering::SeqCst)
        )
    });
    f.assert_none();
}

// ---------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_call_carries_message_and_trailers() {
    let (b, mut calls) = grpc_backend(Wire::H2c).await;
    let tg =
        Tollgate::with_docs(&route(ANNOTATION, "GRPC", "grpc.test", "echo-grpc", b.port)).await;

    let mut client = h2c_connect(tg.http_addr()).await.expect("h2c to tollgate");
    let r = grpc_call(&mut client, "http://grpc.test/echo.Echo/Unary", b"ping")
        .await
        .unwrap_or_else(|e| panic!("unary call: {e}; {}", b.describe()));
    let call = next_call(&mut calls, &b).await;
    let mut f = Failures::default();
    check_unary(&mut f, &r, &call, "grpc.test");
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_server_streaming_is_not_buffered() {
    let (b, _calls) = grpc_backend(Wire::H2c).await;
    let tg = Tollgate::with_docs(&route(
        ANNOTATION,
        "grpc",
        "stream.test",
        "stream-grpc",
        b.port,
    ))
    .await;

    let mut client = h2c_connect(tg.http_addr()).await.expect("h2c to tollgate");
    let r = grpc_call(&mut client, "http://stream.test/echo.Echo/Stream", b"go")
        .await
        .unwrap_or_else(|e| panic!("streaming call: {e}; {}", b.describe()));
    let mut f = Failures::default();
    f.check(r.status == 200, || format!("HTTP status {}", r.status));
    let want: Vec<Bytes> = (0..STREAM_MESSAGES)
        .map(|i| Bytes::from(format!("part-{i}")))
        .collect();
    f.check(r.bodies() == want, || {
        format!("messages {:?}, want {want:?}", r.bodies())
    });
    // The backend spends 400 ms between the first message and the last; a
    // proxy that buffered the body would deliver them together.
    if let (Some((first, _)), Some((last, _))) = (r.messages.first(), r.messages.last()) {
        f.check(*last >= *first + Duration::from_millis(250), || {
            format!(
                "first message after {first:?}, last after {last:?}: want them at least 250 ms apart (arrivals {:?})",
                r.messages.iter().map(|(t, _)| *t).collect::<Vec<_>>()
            )
        });
    }
    f.check(r.trailer("grpc-status").as_deref() == Some("0"), || {
        format!(
            "trailer grpc-status {:?} (trailers {:?})",
            r.trailer("grpc-status"),
            r.trailers
        )
    });
    f.check(r.trailer("x-trailer").as_deref() == Some("yes"), || {
        format!(
            "trailer x-trailer {:?} (trailers {:?})",
            r.trailer("x-trailer"),
            r.trailers
        )
    });
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_error_status_reaches_the_client() {
    let (b, _calls) = grpc_backend(Wire::H2c).await;
    let tg =
        Tollgate::with_docs(&route(ANNOTATION, "GRPC", "fail.test", "fail-grpc", b.port)).await;

    let mut client = h2c_connect(tg.http_addr()).await.expect("h2c to tollgate");
    let mut f = Failures::default();
    for method in ["FailTrailersOnly", "Fail"] {
        let uri = format!("http://fail.test/echo.Echo/{method}");
        let r = match grpc_call(&mut client, &uri, b"x").await {
            Ok(r) => r,
            Err(e) => {
                f.push(format!("{method}: {e}; {}", b.describe()));
                continue;
            }
        };
        f.check(r.status == 200, || {
            format!("{method}: HTTP status {}", r.status)
        });
        f.check(r.messages.is_empty(), || {
            format!("{method}: messages {:?}", r.bodies())
        });
        f.check(r.grpc_status().as_deref() == Some("13"), || {
            format!(
                "{method}: grpc-status {:?}, want 13 (headers {:?}, trailers {:?})",
                r.grpc_status(),
                r.headers,
                r.trailers
            )
        });
        f.check(r.grpc_message().as_deref() == Some("boom"), || {
            format!("{method}: grpc-message {:?}", r.grpc_message())
        });
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_backend_over_tls_h2_from_a_tls_h2_client() {
    let (b, mut calls) = grpc_backend(Wire::H2Tls).await;
    let ca = TestCa::new("tollgate test CA");
    let docs = with_tls(
        route(ANNOTATION, "GRPCS", "grpcs.test", "echo-grpcs", b.port),
        &ca,
        "grpcs.test",
    );
    let tg = Tollgate::with_docs(&docs).await;

    let verifying = TlsClient {
        trust: Some(ca.pem.clone()),
        ..TlsClient::default()
    };
    let mut client = h2_tls_connect(&verifying, tg.https_addr(), "grpcs.test")
        .await
        .expect("TLS with ALPN h2 to tollgate's HTTPS port");
    let r = grpc_call(&mut client, "https://grpcs.test/echo.Echo/Unary", b"ping")
        .await
        .unwrap_or_else(|e| panic!("unary call: {e}; {}", b.describe()));
    let call = next_call(&mut calls, &b).await;
    let mut f = Failures::default();
    check_unary(&mut f, &r, &call, "grpcs.test");
    let hs = b.handshakes();
    f.check(!hs.is_empty(), || {
        format!("no TLS handshake; {}", b.describe())
    });
    for h in &hs {
        f.check(h.alpn.as_deref() == Some("h2"), || {
            format!("handshake agreed ALPN {:?}, want h2", h.alpn)
        });
        f.check(h.sni.is_none(), || {
            format!("handshake sent SNI {:?} for endpoint 127.0.0.1", h.sni)
        });
    }
    f.assert_none();
}

// ---------------------------------------------------------------------------
// WebSocket on the HTTPS port
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type
async fn websocket_upgrade_over_tls_reaches_a_plain_backend() {
    let WsBackend {
        port,
        seen: seen_rx,
        task: server,
    } = ws_echo_backend().await;
    let ca = TestCa::new("tollgate test CA");
    let docs = with_tls(
        route(ANNOTATION, "", "wss.test", "ws", port),
        &ca,
        "wss.test",
    );
    let tg = Tollgate::with_docs(&docs).await;

    let verifying = TlsClient {
        trust: Some(ca.pem.clone()),
        ..TlsClient::alpn(&["http/1.1"])
    };
    let tls = verifying
        .connect(tg.https_addr(), Some("wss.test"))
        .await
        .expect("TLS to tollgate's HTTPS port");
    let (mut ws, resp) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio_tungstenite::client_async("wss://wss.test/chat?room=1", tls),
    )
    .await
    .expect("websocket handshake timed out")
    .expect("websocket handshake over TLS through the proxy");
    assert_eq!(resp.status(), 101);
    let (uri, host) = tokio::time::timeout(REQUEST_TIMEOUT, seen_rx)
        .await
        .expect("backend saw no handshake")
        .unwrap();
    assert_eq!(uri, "/chat?room=1");
    assert_eq!(host, "wss.test");

    for m in [
        Message::Text("hello".into()),
        Message::Binary(vec![1, 2, 3]),
        Message::Binary(vec![9u8; 64 * 1024]),
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
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}

// ---------------------------------------------------------------------------
// Unknown values
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_backend_protocol_warns_and_falls_back_to_http() {
    let echo = Echo::services(&["odd"]).await;
    let mut docs = route(ANNOTATION, "SPDY", "odd.test", "odd", echo.port("odd"));
    // A known value in another spelling must not warn.
    let mut fine = ingress(NS, "fine-ing", &simple_spec("fine.test", "odd"));
    fine["metadata"]["annotations"] = json!({ NGINX_ANNOTATION: "grpcs" });
    docs.push(fine);

    let dir = TempDir::new("check-protocol");
    dir.write("m.yaml", &yaml_docs(&docs));
    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(
        code, 0,
        "an unknown backend-protocol is a warning only\n{all}"
    );
    let lines: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("backend-protocol"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "want one diagnostic naming the annotation (none for `grpcs`):\n{all}"
    );
    let line = lines[0].to_ascii_lowercase();
    for needle in ["warning", ANNOTATION, "spdy", "odd-ing"] {
        assert!(
            line.contains(needle),
            "diagnostic should mention {needle:?}: {}",
            lines[0]
        );
    }

    let (code, out, err) = check(dir.path(), &["--output", "json"]).await;
    assert_eq!(
        code, 0,
        "check --output json\nstdout:\n{out}\nstderr:\n{err}"
    );
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("--output json is not JSON ({e}):\n{out}"));
    let diags = v["diagnostics"].as_array().cloned().unwrap_or_default();
    assert!(
        diags.iter().any(|d| d["severity"] == "warning"
            && d["field"].as_str().is_some_and(|s| s.contains(ANNOTATION))),
        "JSON should carry a warning on the annotation: {v}"
    );

    // Served over plain HTTP/1.1 as if the annotation were absent.
    let tg = Tollgate::with_docs(&docs).await;
    let r = tg.get("odd.test", "/p").await;
    assert_eq!(
        r.status,
        200,
        "GET with an unknown backend-protocol: {}",
        r.summary()
    );
    let e = r.echo();
    assert_eq!(e.service(), "odd");
    assert_eq!(e.proto(), "HTTP/1.1", "fallback must speak HTTP/1.1");
}

/// An HTTPS backend presenting `leaf` (issued by a test CA); answers
/// "verified backend".
async fn https_backend_with(leaf: &TestCert) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(leaf.server_config(&[b"http/1.1"]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"verified backend",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backend_verified_against_a_ca_secret_fails_closed() {
    let ca = TestCa::new("backend CA");
    let leaf = ca.leaf("backend", &["api.internal.test"]);
    let port = https_backend_with(&leaf).await;
    let mut docs = vec![ingress_class("tollgate", false)];
    for (host, svc, ca_secret, name) in [
        ("ok.test", "ok", "backend-ca", "api.internal.test"),
        (
            "badname.test",
            "badname",
            "backend-ca",
            "other.internal.test",
        ),
        ("missing.test", "missing", "no-such-ca", "api.internal.test"),
    ] {
        let mut ing = ingress(NS, &format!("{svc}-ing"), &simple_spec(host, svc));
        ing["metadata"]["annotations"] = json!({
            ANNOTATION: "HTTPS",
            "tollgate.dev/backend-ca-secret": ca_secret,
            "tollgate.dev/backend-tls-name": name,
        });
        docs.push(ing);
        docs.extend(backend(NS, svc, &[port]));
    }
    let mut ca_secret = tls_secret(NS, "backend-ca", &leaf.chain_pem, &leaf.key_pem);
    ca_secret["stringData"]["ca.crt"] = json!(ca.pem);
    docs.push(ca_secret);
    let tg = Tollgate::with_docs(&docs).await;

    let r = tg.get("ok.test", "/").await;
    assert_eq!(r.status, 200, "verified backend: {}", r.summary());
    assert_eq!(r.text(), "verified backend");
    // The certificate is not valid for the configured name: no connection.
    let r = tg.get("badname.test", "/").await;
    assert_eq!(
        r.status,
        502,
        "name mismatch must not connect: {}",
        r.summary()
    );
    // The CA cannot be loaded: fail closed (503), never unverified.
    let r = tg.get("missing.test", "/").await;
    assert_eq!(
        r.status,
        503,
        "missing CA must fail closed: {}",
        r.summary()
    );

    let (code, out, err) = check(&tg.manifests_dir(), &[]).await;
    assert_eq!(code, 1, "a missing CA Secret is a rejection:\n{out}\n{err}");
    assert!(
        out.contains("no-such-ca"),
        "check should name the CA Secret:\n{out}"
    );
}
