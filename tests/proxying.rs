//! Data-plane behaviour of `tollgate run`: header rewriting, upgrades,
//! protocol edge cases, streaming, live reloads, graceful shutdown, the
//! `check` command, load balancing and metrics.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::ws::{ws_echo_backend, WsBackend};
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "proxy";

// ---------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_request_headers_are_removed() {
    let echo = Echo::services(&["hop"]).await;
    let tg = Tollgate::with_docs(&routed(NS, "hop.test", "hop", &echo.ports("hop"))).await;

    let request = "GET /hop HTTP/1.1\r\n\
        Host: hop.test\r\n\
        Connection: keep-alive, X-Custom-Hop\r\n\
        X-Custom-Hop: must-not-pass\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Connection: keep-alive\r\n\
        TE: gzip\r\n\
        Upgrade: foo/1\r\n\
        X-End-To-End: kept\r\n\
        \r\n";
    let r = raw(tg.http_addr(), request.as_bytes())
        .await
        .expect("raw request");
    assert_eq!(r.status, 200, "{}", r.text());
    let e = r.echo();
    assert_eq!(e.service(), "hop");
    assert_eq!(
        e.header("X-End-To-End").as_deref(),
        Some("kept"),
        "end-to-end header lost: {}",
        e.0
    );
    for h in ["X-Custom-Hop", "Keep-Alive", "Proxy-Connection", "Upgrade"] {
        assert_eq!(
            e.header(h),
            None,
            "hop-by-hop header {h} reached the backend: {}",
            e.0
        );
    }
    if let Some(te) = e.header("TE") {
        assert!(
            !te.to_ascii_lowercase().contains("gzip"),
            "TE: gzip reached the backend: {te}"
        );
    }
    if let Some(c) = e.header("Connection") {
        assert!(
            !c.to_ascii_lowercase().contains("x-custom-hop"),
            "client's Connection header was forwarded: {c}"
        );
    }

    // `TE: trailers` is the one TE value that is forwarded.
    let request = "GET /te HTTP/1.1\r\nHost: hop.test\r\nTE: trailers\r\n\r\n";
    let r = raw(tg.http_addr(), request.as_bytes())
        .await
        .expect("raw request");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.echo().header("TE").as_deref(),
        Some("trailers"),
        "TE: trailers must pass: {}",
        r.echo().0
    );
}

/// A raw HTTP/1.1 backend answering every request with a fixed response
/// carrying hop-by-hop headers.
async fn hop_response_backend() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let resp = "HTTP/1.1 200 OK\r\n\
                        Content-Length: 2\r\n\
                        Connection: X-Resp-Hop\r\n\
                        X-Resp-Hop: must-not-pass\r\n\
                        Keep-Alive: timeout=9\r\n\
                        X-Resp-Keep: yes\r\n\
                        \r\n\
                        ok";
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_response_headers_are_removed() {
    let (port, task) = hop_response_backend().await;
    let tg = Tollgate::with_docs(&routed(NS, "hopresp.test", "hopresp", &[port])).await;
    let r = tg.get("hopresp.test", "/").await;
    task.abort();
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("x-resp-keep").as_deref(), Some("yes"));
    assert_eq!(
        r.header("x-resp-hop"),
        None,
        "header named in upstream Connection reached the client"
    );
    assert_eq!(
        r.header("keep-alive"),
        None,
        "upstream Keep-Alive reached the client"
    );
    if let Some(c) = r.header("connection") {
        assert!(
            !c.to_ascii_lowercase().contains("x-resp-hop"),
            "upstream Connection forwarded: {c}"
        );
    }
}

fn spoofing_request(host: &str) -> Request<Full<Bytes>> {
    req("GET", host, "/xff")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.test")
        .header("x-forwarded-port", "1")
        .body(Full::default())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_from_untrusted_peer_are_replaced() {
    let echo = Echo::services(&["xff"]).await;
    // Loopback is not in the trusted list.
    let tg = Tollgate::builder()
        .docs("m.yaml", &routed(NS, "xff.test", "xff", &echo.ports("xff")))
        .args(&["--trusted-proxies", "10.0.0.0/8,192.168.0.0/16"])
        .start()
        .await;

    let r = send(tg.http_addr(), spoofing_request("xff.test"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());
    let e = r.echo();
    let port = tg.http_port.to_string();
    let expected = [
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Real-IP", "127.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "xff.test"),
        ("X-Forwarded-Port", port.as_str()),
    ];
    let mut f = Failures::default();
    for (h, want) in expected {
        let got = e.header(h);
        f.check(got.as_deref() == Some(want), || {
            format!("{h}: got {got:?}, want {want:?}")
        });
    }
    // Without any incoming X-Forwarded-For.
    let r = tg.get("xff.test", "/plain").await;
    let got = r.echo().header("X-Forwarded-For");
    f.check(got.as_deref() == Some("127.0.0.1"), || {
        format!("fresh X-Forwarded-For: {got:?}")
    });
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_trusted_peer_is_appended() {
    let echo = Echo::services(&["xff"]).await;
    let tg = Tollgate::builder()
        .docs("m.yaml", &routed(NS, "xff.test", "xff", &echo.ports("xff")))
        .args(&["--trusted-proxies", "127.0.0.0/8"])
        .start()
        .await;

    let r = send(tg.http_addr(), spoofing_request("xff.test"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());
    let xff = r.echo().header("X-Forwarded-For");
    assert_eq!(
        xff.as_deref(),
        Some("203.0.113.9, 127.0.0.1"),
        "trusted X-Forwarded-For must be appended to"
    );

    let r = tg.get("xff.test", "/plain").await;
    assert_eq!(
        r.echo().header("X-Forwarded-For").as_deref(),
        Some("127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_kept_or_generated() {
    let echo = Echo::services(&["rid"]).await;
    let tg = Tollgate::with_docs(&routed(NS, "rid.test", "rid", &echo.ports("rid"))).await;

    let id = "3f1c2f4e-8d7a-4b2c-9e55-1a2b3c4d5e6f";
    let r = send(
        tg.http_addr(),
        req("GET", "rid.test", "/")
            .header("x-request-id", id)
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(
        r.echo().header_values("X-Request-Id"),
        vec![id.to_string()],
        "valid incoming id must be kept"
    );

    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = tg.get("rid.test", "/").await;
        let ids = r.echo().header_values("X-Request-Id");
        assert_eq!(
            ids.len(),
            1,
            "exactly one generated X-Request-Id expected: {ids:?}"
        );
        assert!(ids[0].len() >= 8, "generated id too short: {:?}", ids[0]);
        assert!(
            !seen.contains(&ids[0]),
            "generated id repeated: {:?}",
            ids[0]
        );
        seen.push(ids[0].clone());
    }
}

// ---------------------------------------------------------------------------
// Upgrades and protocol edge cases
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type
async fn websocket_upgrade_passes_through() {
    let WsBackend {
        port,
        seen: seen_rx,
        task: server,
    } = ws_echo_backend().await;

    let tg = Tollgate::with_docs(&routed(NS, "ws.test", "ws", &[port])).await;
    let stream = TcpStream::connect(tg.http_addr()).await.unwrap();
    let (mut ws, resp) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio_tungstenite::client_async("ws://ws.test/chat?room=1", stream),
    )
    .await
    .expect("websocket handshake timed out")
    .expect("websocket handshake through the proxy");
    assert_eq!(resp.status(), 101);
    let (uri, host) = tokio::time::timeout(REQUEST_TIMEOUT, seen_rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uri, "/chat?room=1");
    assert_eq!(host, "ws.test");

    let big = vec![7u8; 100 * 1024];
    let msgs = vec![
        Message::Text("hello".into()),
        Message::Binary(vec![1, 2, 3]),
        Message::Text("second".into()),
        Message::Binary(big),
    ];
    for m in msgs {
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

/// Sends a request with one header of `size` bytes; Ok(status) or Err when
/// the connection was reset before a response could be read.
async fn big_header_status(addr: std::net::SocketAddr, size: usize) -> Result<u16, String> {
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = s.into_split();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: big.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(size)
    );
    // Write concurrently: the proxy may answer before reading everything.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(request.as_bytes()).await;
        wr // keep the write side open until the response has been read
    });
    let r = tokio::time::timeout(REQUEST_TIMEOUT, read_response(&mut rd))
        .await
        .map_err(|_| "timed out".to_string())?;
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    r.map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_header_gets_431() {
    let echo = Echo::services(&["big"]).await;
    let tg = Tollgate::with_docs(&routed(NS, "big.test", "big", &echo.ports("big"))).await;

    // The limit is not part of the contract: grow the header until the
    // proxy refuses it. A small header must pass, and refusing must be 431.
    assert_eq!(big_header_status(tg.http_addr(), 100).await, Ok(200));
    let mut outcomes = Vec::new();
    for size in [48 * 1024, 128 * 1024, 512 * 1024, 1024 * 1024] {
        for _attempt in 0..2 {
            let got = big_header_status(tg.http_addr(), size).await;
            outcomes.push((size, got.clone()));
            match got {
                Ok(431) => return,
                Ok(200) => break, // not too large yet
                Ok(other) => panic!("header of {size} bytes: want 431, got {other}"),
                Err(_) => continue, // reset before the response could be read
            }
        }
    }
    panic!("no 431 for header sizes up to 1 MiB: {outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_gets_400() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let backend = serve(move |_req| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            Response::new(full("reached"))
        }
    })
    .await;
    let tg = Tollgate::with_docs(&routed(NS, "clte.test", "clte", &[backend.port])).await;

    let smuggle = "POST /clte HTTP/1.1\r\n\
        Host: clte.test\r\n\
        Content-Length: 30\r\n\
        Transfer-Encoding: chunked\r\n\
        \r\n\
        0\r\n\
        \r\n\
        GET /smuggled HTTP/1.1\r\n\r\n";
    let r = raw(tg.http_addr(), smuggle.as_bytes())
        .await
        .expect("raw request");
    assert_eq!(r.status, 400, "CL+TE: {}", r.text());
    // Give a wrongly forwarded request time to arrive before asserting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a CL+TE request reached the backend"
    );

    // Sanity: the backend is routable.
    let r = tg.get("clte.test", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_needs_exactly_one_host_header() {
    let echo = Echo::services(&["hosts", "anyhost"]).await;
    let mut docs = routed(NS, "hosts.test", "hosts", &echo.ports("hosts"));
    // A hostless rule, which a request without a usable host would reach.
    docs.push(ingress(NS, "anyhost-ing", &simple_spec("", "anyhost")));
    docs.extend(backend(NS, "anyhost", &echo.ports("anyhost")));
    let tg = Tollgate::with_docs(&docs).await;

    let missing = raw(tg.http_addr(), b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("raw request");
    assert_eq!(
        missing.status,
        400,
        "HTTP/1.1 without Host: {}",
        missing.text()
    );
    let twice = raw(
        tg.http_addr(),
        b"GET / HTTP/1.1\r\nHost: hosts.test\r\nHost: other.test\r\n\r\n",
    )
    .await
    .expect("raw request");
    assert_eq!(twice.status, 400, "two Host headers: {}", twice.text());
    // HTTP/1.0 may omit Host: the hostless rules serve it.
    let old = raw(tg.http_addr(), b"GET / HTTP/1.0\r\n\r\n")
        .await
        .expect("raw request");
    assert_eq!(old.status, 200, "HTTP/1.0 without Host: {}", old.text());
    assert!(
        old.text().contains("\"service\": \"anyhost\""),
        "{}",
        old.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_is_routed() {
    let echo = Echo::services(&["h2"]).await;
    let tg = Tollgate::with_docs(&routed(NS, "h2.test", "h2", &echo.ports("h2"))).await;

    let stream = TcpStream::connect(tg.http_addr()).await.unwrap();
    let (mut sender, conn) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        hyper::client::conn::http2::handshake(executor(), TokioIo::new(stream)),
    )
    .await
    .expect("h2 handshake timed out")
    .expect("h2c prior-knowledge handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });

    for (method, target, body) in [("GET", "/h2/a?x=1", 0usize), ("POST", "/h2/b", 1000)] {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://h2.test{target}"))
            .header("user-agent", "h2-test")
            .body(Full::new(Bytes::from(vec![b'x'; body])))
            .unwrap();
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(req))
            .await
            .expect("h2 request timed out")
            .expect("h2 request");
        let r = collect(resp).await.unwrap();
        assert_eq!(r.status, 200, "{method} {target}: {}", r.summary());
        assert_eq!(r.version, Version::HTTP_2);
        let e = r.echo();
        assert_eq!(e.service(), "h2");
        assert_eq!(
            e.host(),
            "h2.test",
            "authority must become the upstream Host"
        );
        assert_eq!(e.path(), target);
        assert_eq!(e.method(), method);
        assert_eq!(e.body_bytes(), body as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let echo = Echo::services(&["slow"]).await;
    let tg = Tollgate::builder()
        .docs(
            "m.yaml",
            &routed(NS, "slow.test", "slow", &echo.ports("slow")),
        )
        .args(&[
            "--client-header-timeout",
            "300ms",
            "--idle-timeout",
            "500ms",
        ])
        .start()
        .await;

    // A request head that never completes.
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: slow.test\r\nX-Partial: ")
        .await
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    let took = t.elapsed();
    assert!(
        closed.is_ok(),
        "connection with an incomplete request head still open after 3 s"
    );
    assert!(
        took >= Duration::from_millis(250),
        "closed after {took:?}, before the 300ms header timeout"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer to slow headers: {text:?}"
    );

    // An idle keep-alive connection after a completed request.
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s).await.expect("first response");
    assert_eq!(r.status, 200);
    let t = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
    let took = t.elapsed();
    assert!(
        closed.is_ok(),
        "idle keep-alive connection still open after 3 s with --idle-timeout 500ms"
    );
    assert!(
        took >= Duration::from_millis(400),
        "idle connection closed after {took:?}, before the 500ms timeout"
    );
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

const BIG: usize = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const RSS_LIMIT_KB: u64 = 60 * 1024;

fn pattern_byte(offset: usize) -> u8 {
    ((offset / CHUNK) % 251) as u8
}

fn big_stream() -> Body {
    let s = futures_util::stream::unfold(0usize, |i| async move {
        if i * CHUNK >= BIG {
            return None;
        }
        let frame = Frame::data(Bytes::from(vec![pattern_byte(i * CHUNK); CHUNK]));
        Some((Ok::<_, BoxError>(frame), i + 1))
    });
    BodyExt::boxed(StreamBody::new(s))
}

/// Samples the proxy's VmRSS until `stop`; returns the maximum (kB).
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut max = 0;
        // Bounded: at most 60 s of samples.
        for _ in 0..3000 {
            if let Some(kb) = vm_rss_kb(pid) {
                max = max.max(kb);
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        max
    })
}

/// Reads a body to its end, checking length and pattern; returns bytes.
async fn drain_checked(mut body: Incoming) -> Result<usize, String> {
    let mut offset = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body error at {offset}: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if let Some(&b) = data.first() {
                if b != pattern_byte(offset) {
                    return Err(format!("corrupt byte at offset {offset}"));
                }
            }
            if let Some(&b) = data.last() {
                if b != pattern_byte(offset + data.len() - 1) {
                    return Err(format!(
                        "corrupt byte before offset {}",
                        offset + data.len()
                    ));
                }
            }
            offset += data.len();
        }
    }
    Ok(offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_streams_with_bounded_memory() {
    let backend = serve(|_req| async move {
        Response::builder()
            .header("content-length", BIG.to_string())
            .body(big_stream())
            .unwrap()
    })
    .await;
    let tg = Tollgate::with_docs(&routed(NS, "down.test", "down", &[backend.port])).await;
    let baseline = vm_rss_kb(tg.pid()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(tg.pid(), stop.clone());
    let result = tokio::time::timeout(Duration::from_secs(60), async {
        let stream = TcpStream::connect(tg.http_addr()).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = sender
            .send_request(
                req("GET", "down.test", "/big")
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("status {}", resp.status()));
        }
        // Stall for a while: a proxy without backpressure would now pull the
        // whole body from the fast backend into memory.
        tokio::time::sleep(Duration::from_millis(700)).await;
        drain_checked(resp.into_body()).await
    })
    .await
    .expect("64 MiB download did not finish in 60 s");
    stop.store(true, Ordering::SeqCst);
    let max = sampler.await.unwrap();
    eprintln!("download: proxy VmRSS baseline {baseline} kB, max {max} kB");
    assert_eq!(result, Ok(BIG), "download through the proxy");
    assert!(
        max < RSS_LIMIT_KB,
        "proxy VmRSS reached {max} kB (baseline {baseline} kB) while streaming 64 MiB"
    );
    assert!(
        max.saturating_sub(baseline) < 32 * 1024,
        "proxy VmRSS grew by {} kB (baseline {baseline} kB, max {max} kB): body buffered?",
        max.saturating_sub(baseline)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_streams_with_bounded_memory() {
    let backend = serve(|req: Request<Incoming>| async move {
        // Do not read for a while: a proxy without backpressure would now
        // buffer the whole upload.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let text = match drain_checked(req.into_body()).await {
            Ok(n) => n.to_string(),
            Err(e) => e,
        };
        Response::new(full(text))
    })
    .await;
    let tg = Tollgate::with_docs(&routed(NS, "up.test", "up", &[backend.port])).await;
    let baseline = vm_rss_kb(tg.pid()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(tg.pid(), stop.clone());
    let result = tokio::time::timeout(Duration::from_secs(60), async {
        let stream = TcpStream::connect(tg.http_addr()).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = Request::builder()
            .method("POST")
            .uri("/upload")
            .header("host", "up.test")
            .body(big_stream())
            .unwrap();
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        collect(resp).await
    })
    .await
    .expect("64 MiB upload did not finish in 60 s");
    stop.store(true, Ordering::SeqCst);
    let max = sampler.await.unwrap();
    eprintln!("upload: proxy VmRSS baseline {baseline} kB, max {max} kB");
    let r = result.expect("upload through the proxy");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), BIG.to_string(), "backend received");
    assert!(
        max < RSS_LIMIT_KB,
        "proxy VmRSS reached {max} kB (baseline {baseline} kB) while streaming a 64 MiB upload"
    );
    assert!(
        max.saturating_sub(baseline) < 32 * 1024,
        "proxy VmRSS grew by {} kB (baseline {baseline} kB, max {max} kB): body buffered?",
        max.saturating_sub(baseline)
    );
}

// ---------------------------------------------------------------------------
// Live reloads
// ---------------------------------------------------------------------------

fn reload_ingress(extra_path: &str) -> String {
    let spec = format!(
        "ingressClassName: tollgate
rules:
  - host: reload.test
    http:
      paths:
      - path: /stable
        pathType: Prefix
        backend:
          service:
            name: stable
            port:
              number: 8080
      - path: {extra_path}
        pathType: Prefix
        backend:
          service:
            name: new
            port:
              number: 8080
"
    );
    yaml_docs(&[ingress(NS, "reload", &spec)])
}

fn reload_backends(stable_ports: &[u16], new_port: u16) -> String {
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(backend(NS, "stable", stable_ports));
    docs.extend(backend(NS, "new", &[new_port]));
    yaml_docs(&docs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_request() {
    let echo = Echo::start(vec![
        (free_port(), "stable".to_string()),
        (free_port(), "stable".to_string()),
        (free_port(), "new".to_string()),
    ])
    .await;
    let stable = echo.ports("stable");
    let new_port = echo.port("new");
    let tg = Tollgate::builder()
        .file("backends.yaml", &reload_backends(&stable, new_port))
        .file("ingress.yaml", &reload_ingress("/gen-initial"))
        .start()
        .await;
    let tg = Arc::new(tg);
    let gen_before = metric_sum(&tg.metrics().await, "tollgate_table_generation", &[])
        .expect("tollgate_table_generation");
    let reloads_before =
        metric_sum(&tg.metrics().await, "tollgate_reloads_total", &[]).unwrap_or(0.0);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for k in 0..4 {
        let (tg, stop, ok) = (tg.clone(), stop.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            let keep_alive = k % 2 == 0;
            let mut conn: Option<Conn> = None;
            let mut failures = Vec::new();
            for i in 0..5000 {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let request = req("GET", "reload.test", &format!("/stable/{k}/{i}"))
                    .body(Full::default())
                    .unwrap();
                let result = if keep_alive {
                    if conn.is_none() {
                        conn = Some(Conn::open(tg.http_addr()).await.unwrap());
                    }
                    let r = conn.as_mut().unwrap().send(request).await;
                    if r.is_err() {
                        conn = None;
                    }
                    r
                } else {
                    send(tg.http_addr(), request).await
                };
                match result {
                    Ok(r) if r.status == 200 && r.service().as_deref() == Some("stable") => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("client {k} request {i}: {}", r.summary())),
                    Err(e) => failures.push(format!("client {k} request {i}: {e}")),
                }
            }
            failures
        }));
    }

    // ~3 s of rewrites: routes every time, endpoints every third time.
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tg.write("ingress.yaml", &reload_ingress(&format!("/gen-{i}")));
        if i % 3 == 0 {
            let ports: Vec<u16> = match (i / 3) % 3 {
                0 => vec![stable[1]],
                1 => vec![stable[0]],
                _ => stable.clone(),
            };
            tg.write("backends.yaml", &reload_backends(&ports, new_port));
        }
    }
    tg.write("ingress.yaml", &reload_ingress("/gen-final"));
    let r = tg
        .eventually("reload.test", "/gen-final", |r| {
            r.service().as_deref() == Some("new")
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    assert_eq!(
        r.service().as_deref(),
        Some("new"),
        "final route not visible: {}",
        r.summary()
    );
    let old = tg.get("reload.test", "/gen-0").await;
    assert_eq!(
        old.status,
        404,
        "removed route still served: {}",
        old.summary()
    );
    let n_ok = ok.load(Ordering::Relaxed);
    eprintln!(
        "reload under load: {n_ok} successful requests, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed requests (of {}) during reloads; first: {:?}",
        failures.len(),
        failures.len() as u64 + n_ok,
        &failures[..failures.len().min(5)]
    );
    assert!(n_ok >= 40, "load generator made only {n_ok} requests");

    let m = tg.metrics().await;
    let gen_after = metric_sum(&m, "tollgate_table_generation", &[]).unwrap();
    let reloads_after =
        metric_sum(&m, "tollgate_reloads_total", &[]).expect("tollgate_reloads_total");
    assert!(
        gen_after > gen_before,
        "table generation {gen_before} -> {gen_after}"
    );
    assert!(
        reloads_after > reloads_before,
        "reloads_total {reloads_before} -> {reloads_after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_file_keeps_last_good_objects() {
    let echo = Echo::services(&["svc-a", "svc-b"]).await;
    let mut backends = vec![ingress_class("tollgate", false)];
    backends.extend(echo.backends(NS));
    let ing = |name: &str, host: &str, svc: &str| {
        yaml_docs(&[ingress(NS, name, &simple_spec(host, svc))])
    };
    let tg = Tollgate::builder()
        .docs("backends.yaml", &backends)
        .file("a.yaml", &ing("a", "a.test", "svc-a"))
        .file("b.yaml", &ing("b", "b.test", "svc-b"))
        .start()
        .await;
    assert_eq!(
        tg.get("a.test", "/").await.service().as_deref(),
        Some("svc-a")
    );
    assert_eq!(
        tg.get("b.test", "/").await.service().as_deref(),
        Some("svc-b")
    );

    // Break a.yaml (in place, as an editor would), then change b.yaml.
    tg.write_in_place(
        "a.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: [unclosed\n  name: a\n",
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    tg.write("b.yaml", &ing("b", "b2.test", "svc-b"));
    let r = tg.eventually("b2.test", "/", |r| r.status == 200).await;
    assert_eq!(
        r.service().as_deref(),
        Some("svc-b"),
        "change of b.yaml not applied: {}",
        r.summary()
    );
    let r = tg.eventually("b.test", "/", |r| r.status == 404).await;
    assert_eq!(r.status, 404, "old host of b.yaml still served");
    for i in 0..5 {
        let r = tg.get("a.test", "/").await;
        assert_eq!(
            r.service().as_deref(),
            Some("svc-a"),
            "check {i}: a.yaml's last good Ingress lost: {}",
            r.summary()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Fixing the file applies its new content.
    tg.write("a.yaml", &ing("a", "a2.test", "svc-a"));
    let r = tg.eventually("a2.test", "/", |r| r.status == 200).await;
    assert_eq!(
        r.service().as_deref(),
        Some("svc-a"),
        "fixed a.yaml not applied: {}",
        r.summary()
    );
    let r = tg.eventually("a.test", "/", |r| r.status == 404).await;
    assert_eq!(
        r.status, 404,
        "a.yaml's previous host still served after the fix"
    );
}

// ---------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let (got_tx, mut got_rx) = tokio::sync::mpsc::channel::<()>(4);
    let backend = serve(move |_req| {
        let got_tx = got_tx.clone();
        async move {
            let _ = got_tx.send(()).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Response::new(full("slow-done"))
        }
    })
    .await;
    let mut tg = Tollgate::builder()
        .docs("m.yaml", &routed(NS, "drain.test", "slow", &[backend.port]))
        .args(&["--shutdown-grace", "5s"])
        .start()
        .await;
    let addr = tg.http_addr();
    let in_flight = tokio::spawn(async move { get(addr, "drain.test", "/slow").await });
    tokio::time::timeout(Duration::from_secs(5), got_rx.recv())
        .await
        .expect("slow request did not reach the backend");

    let sigterm_at = Instant::now();
    tg.proc_.signal("TERM");

    // New connections are refused.
    let mut refused = false;
    let deadline = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Readiness reports 503 for the whole drain: probe well after the
    // signal was handled, while the slow request (1.5 s) is still running.
    let probe_at = sigterm_at + Duration::from_millis(400);
    tokio::time::sleep_until(probe_at.into()).await;
    let mut readyz = Vec::new();
    for _ in 0..3 {
        readyz.push(tg.admin("/readyz").await.map(|r| r.status));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let still_in_flight = !in_flight.is_finished();

    let r = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in-flight request never finished")
        .unwrap();
    let status = tg.proc_.wait_exit(Duration::from_secs(8)).await;
    let exited_after = sigterm_at.elapsed();

    // Collect every violation so that one failing aspect does not hide the
    // others.
    let mut f = Failures::default();
    f.check(r.status == 200 && r.text() == "slow-done", || {
        format!(
            "in-flight request should complete with 200: {}",
            r.summary()
        )
    });
    f.check(readyz.iter().all(|s| *s == Ok(503)), || {
        format!("/readyz 0.4-0.5 s into the drain should be 503, saw {readyz:?}")
    });
    f.check(refused, || {
        "new connections still accepted 1 s after SIGTERM".to_string()
    });
    f.check(still_in_flight, || {
        "test timing: the slow request ended before the checks".to_string()
    });
    match status {
        None => f.push("tollgate did not exit within 8 s of the in-flight request ending".into()),
        Some(st) => {
            f.check(st.code() == Some(0), || {
                format!("exit status after SIGTERM: {st}")
            });
            f.check(exited_after < Duration::from_millis(4500), || {
                format!(
                    "exit took {exited_after:?}; the only in-flight request finished after ~1.5 s"
                )
            });
        }
    }
    f.assert_none();
}

// ---------------------------------------------------------------------------
// `tollgate check`
// ---------------------------------------------------------------------------

fn valid_check_docs() -> Vec<Value> {
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(NS, "check-ok", &simple_spec("check.test", "check-svc")),
    ];
    docs.extend(backend(NS, "check-svc", &[9101]));
    docs
}

fn invalid_ingress() -> Value {
    ingress(
        NS,
        "bad-path-type",
        "ingressClassName: tollgate
rules:
  - host: bad.test
    http:
      paths:
      - path: /x
        pathType: Bogus
        backend:
          service:
            name: check-svc
            port:
              number: 8080
",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_valid_manifests_exits_0_and_prints_table() {
    let dir = TempDir::new("check-ok");
    dir.write("ok.yaml", &yaml_docs(&valid_check_docs()));

    let (code, out, err) = check(dir.path(), &[]).await;
    assert_eq!(
        code, 0,
        "check on valid manifests\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        out.contains("check.test"),
        "routing table should list the host:\n{out}"
    );
    assert!(
        out.contains("check-svc"),
        "routing table should list the service:\n{out}"
    );

    let (code, out, err) = check(dir.path(), &["--output", "json"]).await;
    assert_eq!(
        code, 0,
        "check --output json\nstdout:\n{out}\nstderr:\n{err}"
    );
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("--output json is not JSON ({e}):\n{out}"));
    let text = v.to_string();
    assert!(
        text.contains("check.test"),
        "JSON table should contain the host: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_rejected_object_exits_1_with_diagnostic() {
    let dir = TempDir::new("check-bad");
    dir.write("ok.yaml", &yaml_docs(&valid_check_docs()));
    dir.write("nested/bad.yaml", &yaml_docs(&[invalid_ingress()]));

    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 1, "check with an invalid pathType must exit 1\n{all}");
    for needle in ["bad.yaml", "proxy/bad-path-type", "pathType"] {
        assert!(
            all.contains(needle),
            "diagnostic should mention {needle:?}:\n{all}"
        );
    }

    let (code, out, err) = check(dir.path(), &["--output", "json"]).await;
    assert_eq!(
        code, 1,
        "check --output json with an invalid object\nstdout:\n{out}\nstderr:\n{err}"
    );
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("--output json is not JSON ({e}):\n{out}"));
    let text = v.to_string();
    assert!(
        text.contains("bad-path-type"),
        "JSON should carry the diagnostic: {text}"
    );
    assert!(
        text.contains("check.test"),
        "JSON should still carry the valid route: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_unparseable_file_exits_1_naming_it() {
    let dir = TempDir::new("check-yaml");
    dir.write("ok.yaml", &yaml_docs(&valid_check_docs()));
    dir.write("broken.yml", "kind: Ingress\nmetadata: [unclosed\n");
    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 1, "check with an unparseable file must exit 1\n{all}");
    assert!(
        all.contains("broken.yml"),
        "diagnostic should name the file:\n{all}"
    );
}

// ---------------------------------------------------------------------------
// Load balancing
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly() {
    let echo = Echo::replicas("rr", 3).await;
    let tg = Tollgate::builder()
        .docs("m.yaml", &routed(NS, "rr.test", "rr", &echo.ports("rr")))
        .args(&["--threads", "1"])
        .start()
        .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..60 {
        let r = tg.get("rr.test", "/").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.summary());
        *counts.entry(r.echo().pod()).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    let (min, max) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert!(
        max - min <= 1,
        "round robin over 3 endpoints, 60 requests: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_endpoint_is_skipped() {
    let echo = Echo::replicas("ph", 2).await;
    let mut ports = echo.ports("ph");
    let closed = free_port();
    ports.insert(1, closed);
    let tg = Tollgate::with_docs(&routed(NS, "ph.test", "ph", &ports)).await;

    let started = Instant::now();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..30 {
        let r = tg.get("ph.test", "/").await;
        assert_eq!(
            r.status,
            200,
            "request {i} with one endpoint refusing: {}",
            r.summary()
        );
        *counts.entry(r.echo().pod()).or_default() += 1;
    }
    assert_eq!(
        counts.len(),
        2,
        "both live endpoints should be used: {counts:?}"
    );
    assert!(!counts.contains_key(&format!("ph@127.0.0.1:{closed}")));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "30 requests took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_ewma_avoids_slow_endpoint() {
    let echo = Echo::replicas("lb", 2).await;
    let slow = serve(|_req| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Response::builder()
            .header("content-type", "application/json")
            .body(full(json!({"service": "lb", "pod": "slow"}).to_string()))
            .unwrap()
    })
    .await;
    let mut ports = echo.ports("lb");
    ports.push(slow.port);
    let mut docs = routed(NS, "lb.test", "lb", &ports);
    docs[1]["metadata"]["annotations"] = json!({"tollgate.dev/load-balance": "p2c-ewma"});
    let tg = Tollgate::with_docs(&docs).await;

    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..45 {
        let r = tg.get("lb.test", "/").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.summary());
        let pod = serde_json::from_slice::<Value>(&r.body).unwrap()["pod"]
            .as_str()
            .unwrap()
            .to_string();
        *counts.entry(pod).or_default() += 1;
    }
    let slow_hits = counts.get("slow").copied().unwrap_or(0);
    // Round robin would send exactly 15 of 45 to the slow endpoint.
    assert!(
        slow_hits <= 8,
        "p2c-ewma sent {slow_hits}/45 requests to the slow endpoint: {counts:?}"
    );
    assert_eq!(
        counts.keys().filter(|k| *k != "slow").count(),
        2,
        "both fast endpoints used: {counts:?}"
    );
}

// ---------------------------------------------------------------------------
// Admin endpoints
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_health_and_request_metrics() {
    let echo = Echo::services(&["msvc"]).await;
    let tg = Tollgate::with_docs(&routed(NS, "metrics.test", "msvc", &echo.ports("msvc"))).await;
    let health = tg.admin("/healthz").await.unwrap();
    assert_eq!(health.status, 200);

    for _ in 0..5 {
        assert_eq!(tg.get("metrics.test", "/").await.status, 200);
    }
    let m = tg.metrics().await;
    let ok = metric_sum(
        &m,
        "tollgate_requests_total",
        &[
            ("ingress", "proxy/msvc-ing"),
            ("status", "200"),
            ("method", "GET"),
        ],
    );
    assert!(
        ok.unwrap_or(0.0) >= 5.0,
        "tollgate_requests_total 200 GET for proxy/msvc-ing: {ok:?}\n{m}"
    );
    assert!(
        m.lines().any(|l| l.starts_with("tollgate_requests_total{")
            && l.contains("ingress=\"proxy/msvc-ing\"")
            && l.contains("service=\"proxy/msvc:")),
        "service label should be ns/svc:port:\n{m}"
    );
    for name in [
        "tollgate_table_generation",
        "tollgate_reloads_total",
        "tollgate_compile_failures_total",
    ] {
        assert!(
            m.lines().any(|l| l.starts_with(name)),
            "{name} missing from /metrics"
        );
    }
}

// ---------------------------------------------------------------------------
// Upload timing: the response timeout does not count upload time
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upload_longer_than_response_timeout_succeeds() {
    let echo = Echo::services(&["slowup"]).await;
    let tg = Tollgate::builder()
        .docs(
            "m.yaml",
            &routed(NS, "slowup.test", "slowup", &echo.ports("slowup")),
        )
        .args(&["--upstream-response-timeout", "300ms"])
        .start()
        .await;
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: slowup.test\r\nContent-Length: 60\r\n\r\n")
        .await
        .unwrap();
    // 60 bytes over ~1 s, in steps shorter than the timeout: the whole
    // upload outlasts the response timeout more than three times.
    for _ in 0..6 {
        s.write_all(&[b'x'; 10]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(170)).await;
    }
    let r = tokio::time::timeout(Duration::from_secs(5), read_response(&mut s))
        .await
        .expect("response in time")
        .expect("response");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        String::from_utf8_lossy(&r.body).contains("\"bodyBytes\": 60"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upload_gets_408() {
    let echo = Echo::services(&["stall"]).await;
    let tg = Tollgate::builder()
        .docs(
            "m.yaml",
            &routed(NS, "stall.test", "stall", &echo.ports("stall")),
        )
        .args(&["--upstream-response-timeout", "300ms"])
        .start()
        .await;
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: stall.test\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), read_response(&mut s))
        .await
        .expect("response in time")
        .expect("response");
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "408 after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_has_one_line_per_request() {
    let echo = Echo::services(&["logged"]).await;
    let tg = Tollgate::builder()
        .docs(
            "m.yaml",
            &routed(NS, "logged.test", "logged", &echo.ports("logged")),
        )
        .args(&["--log-format", "json"])
        .start()
        .await;
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    s.write_all(
        b"GET /seen?x=1 HTTP/1.1\r\nHost: logged.test\r\nX-Request-Id: log-test-42\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_response(&mut s).await.expect("response");
    assert_eq!(r.status, 200);

    // The log is written off the request path; wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let out = tg.proc_.stdout_text();
        if let Some(line) = out.lines().find(|l| l.contains("log-test-42")) {
            break line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no access log line for the request:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["target"], "access", "{line}");
    assert_eq!(v["request_id"], "log-test-42", "{line}");
    assert_eq!(v["status"], 200, "{line}");
    assert_eq!(v["host"], "logged.test", "{line}");
    assert_eq!(v["path"], "/seen?x=1", "{line}");
    assert_eq!(v["ingress"], format!("{NS}/logged-ing"), "{line}");
    assert!(
        v["upstream"]
            .as_str()
            .is_some_and(|u| u.starts_with("127.0.0.1:")),
        "{line}"
    );
    assert!(v["duration_ms"].as_f64().is_some(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_does_not_grow_memory() {
    let echo = Echo::services(&["churn"]).await;
    // Long timeouts: the watchdog ticks rarely, so nothing but eager
    // cleanup can release finished connections during the test.
    let tg = Tollgate::builder()
        .docs(
            "m.yaml",
            &routed(NS, "churn.test", "churn", &echo.ports("churn")),
        )
        .args(&["--client-header-timeout", "60s", "--idle-timeout", "600s"])
        .start()
        .await;
    let warm = async {
        for _ in 0..200 {
            let r = raw(
                tg.http_addr(),
                b"GET / HTTP/1.1\r\nHost: churn.test\r\nConnection: close\r\n\r\n",
            )
            .await;
            assert_eq!(r.expect("response").status, 200);
        }
    };
    warm.await;
    let before = vm_rss_kb(tg.pid()).expect("VmRSS");
    // 12,000 short connections (bounded: 4 at a time, at most 60 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done = 0;
    while done < 12_000 && Instant::now() < deadline {
        let batch: Vec<_> = (0..4)
            .map(|_| {
                raw(
                    tg.http_addr(),
                    b"GET / HTTP/1.1\r\nHost: churn.test\r\nConnection: close\r\n\r\n",
                )
            })
            .collect();
        for r in futures_util::future::join_all(batch).await {
            assert_eq!(r.expect("response").status, 200);
        }
        done += 4;
    }
    assert_eq!(done, 12_000, "churn did not finish in time");
    let after = vm_rss_kb(tg.pid()).expect("VmRSS");
    // Finished connections must not keep their memory until the watchdog
    // tick (a waker kept each finished connection task alive).
    assert!(
        after < before + 2_500,
        "RSS grew from {before} kB to {after} kB over 12,000 connections"
    );
}
