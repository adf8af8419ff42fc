//! `--proxy-protocol`: the PROXY protocol header a load balancer sends
//! before TLS/HTTP names the client, on both listeners; connections without
//! a valid header are closed. Also the request's client IP with
//! `--trusted-proxies` (X-Real-IP).
//!
//! Everything goes through real sockets against the binary and the echo
//! backend, which reports the headers it received.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const NS: &str = "pp";
const HOST: &str = "pp.test";
/// `--client-header-timeout` of the instances with `--proxy-protocol`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

fn route(echo: &Echo) -> Vec<Value> {
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(NS, "pp-ing", &simple_spec(HOST, "pp")),
    ];
    docs.extend(backend(NS, "pp", &echo.ports("pp")));
    docs
}

/// tollgate with `--proxy-protocol` (and 10.0.0.0/8 as trusted proxies).
async fn start_with_proxy_protocol(echo: &Echo) -> Tollgate {
    Tollgate::builder()
        .docs("m.yaml", &route(echo))
        .args(&[
            "--proxy-protocol",
            "--client-header-timeout",
            "2s",
            "--trusted-proxies",
            "10.0.0.0/8",
            "--log-format",
            "json",
        ])
        .start()
        .await
}

// ---------------------------------------------------------------------------
// Headers and requests
// ---------------------------------------------------------------------------

/// A v1 (text) header for `src` → `dst`.
fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// A v2 (binary) PROXY-command header for `src` → `dst`, with `tlvs`.
fn v2(src: SocketAddr, dst: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x11
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x21
        }
        _ => panic!("mixed address families"),
    };
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    body.extend_from_slice(tlvs);
    v2_raw(0x21, family, &body)
}

fn v2_raw(ver_cmd: u8, fam_proto: u8, body: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(ver_cmd);
    h.push(fam_proto);
    h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    h.extend_from_slice(body);
    h
}

/// AWS NLB style TLVs: a VPC endpoint id (0xEA) and a NOOP.
const TLVS: &[u8] = b"\xea\x00\x0e\x01vpce-0123abcd\x04\x00\x03\x00\x00\x00";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn get_request(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n").into_bytes()
}

/// Writes `first` in one write (the header and whatever follows it in the
/// same packet), then reads one response.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    first: &[u8],
) -> Result<RawResp, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        s.write_all(first)
            .await
            .map_err(|e| format!("write: {e}"))?;
        read_response(s).await
    })
    .await
    .map_err(|_| "exchange timed out".to_string())?
}

/// Plain HTTP: `header` and a request in the same write.
async fn plain(tg: &Tollgate, header: &[u8], extra: &str) -> Result<RawResp, String> {
    let mut s = TcpStream::connect(tg.http_addr())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut first = header.to_vec();
    first.extend(get_request("/pp", extra));
    exchange(&mut s, &first).await
}

/// HTTPS: `header`, then the TLS handshake and a request over it.
async fn tls(tg: &Tollgate, header: &[u8]) -> Result<RawResp, String> {
    let mut tcp = TcpStream::connect(tg.https_addr())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.write_all(header)
        .await
        .map_err(|e| format!("write header: {e}"))?;
    let mut s = tls_over(tcp).await?;
    exchange(&mut s, &get_request("/pp", "")).await
}

async fn tls_over(tcp: TcpStream) -> Result<TlsStream, String> {
    let connector = tokio_rustls::TlsConnector::from(TlsClient::default().config());
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    tokio::time::timeout(REQUEST_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// The client address the backend was told: (X-Forwarded-For, X-Real-IP).
fn told(r: &RawResp) -> (Option<String>, Option<String>) {
    assert_eq!(r.status, 200, "{}", r.text());
    let e = r.echo();
    (e.header("X-Forwarded-For"), e.header("X-Real-IP"))
}

fn both(ip: &str) -> (Option<String>, Option<String>) {
    (Some(ip.to_string()), Some(ip.to_string()))
}

/// Waits until the peer closes `s`; returns the bytes it sent before, or
/// `None` when it did not close within `within`.
async fn until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_source_is_the_client_on_both_listeners() {
    let echo = Echo::services(&["pp"]).await;
    let tg = start_with_proxy_protocol(&echo).await;
    let v4 = sa("203.0.113.7:56324");
    let v4_dst = sa("192.0.2.1:443");
    let v6 = sa("[2001:db8::7]:56324");
    let v6_dst = sa("[2001:db8::1]:443");
    let mut f = Failures::default();
    let mut expect =
        |what: &str, r: Result<RawResp, String>, want: (Option<String>, Option<String>)| match r {
            Ok(r) => {
                let got = told(&r);
                f.check(got == want, || {
                    format!("{what}: backend told {got:?}, want {want:?}")
                });
            }
            Err(e) => f.push(format!("{what}: {e}")),
        };

    expect(
        "plain v1 IPv4",
        plain(&tg, &v1(v4, v4_dst), "").await,
        both("203.0.113.7"),
    );
    expect(
        "plain v1 IPv6",
        plain(&tg, &v1(v6, v6_dst), "").await,
        both("2001:db8::7"),
    );
    expect(
        "plain v2 IPv4",
        plain(&tg, &v2(v4, v4_dst, b""), "").await,
        both("203.0.113.7"),
    );
    expect(
        "plain v2 IPv6",
        plain(&tg, &v2(v6, v6_dst, b""), "").await,
        both("2001:db8::7"),
    );
    expect(
        "plain v2 IPv4 + TLVs",
        plain(&tg, &v2(v4, v4_dst, TLVS), "").await,
        both("203.0.113.7"),
    );
    expect(
        "TLS v1 IPv4",
        tls(&tg, &v1(v4, v4_dst)).await,
        both("203.0.113.7"),
    );
    expect(
        "TLS v1 IPv6",
        tls(&tg, &v1(v6, v6_dst)).await,
        both("2001:db8::7"),
    );
    expect(
        "TLS v2 IPv4 + TLVs",
        tls(&tg, &v2(v4, v4_dst, TLVS)).await,
        both("203.0.113.7"),
    );
    expect(
        "TLS v2 IPv6",
        tls(&tg, &v2(v6, v6_dst, b"")).await,
        both("2001:db8::7"),
    );

    // IPv4-mapped IPv6 sources are reported as IPv4.
    let mapped = sa("[::ffff:198.51.100.20]:1000");
    expect(
        "v1 IPv4-mapped",
        plain(&tg, &v1(mapped, v6_dst), "").await,
        both("198.51.100.20"),
    );

    // Health checks and unknown sources keep the TCP peer.
    let local = v2_raw(0x20, 0x00, b"");
    expect(
        "plain v2 LOCAL",
        plain(&tg, &local, "").await,
        both("127.0.0.1"),
    );
    expect("TLS v2 LOCAL", tls(&tg, &local).await, both("127.0.0.1"));
    expect(
        "v1 UNKNOWN",
        plain(&tg, b"PROXY UNKNOWN\r\n", "").await,
        both("127.0.0.1"),
    );

    // The source counts for trust: a client's own X-Forwarded-For is
    // replaced, a trusted balancer's (10.0.0.0/8) is kept and X-Real-IP is
    // the right-most untrusted entry.
    let spoof = "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n";
    expect(
        "untrusted source + XFF",
        plain(&tg, &v1(v4, v4_dst), spoof).await,
        both("203.0.113.7"),
    );
    let chain = "X-Forwarded-For: 6.6.6.6, 198.51.100.30, 10.9.9.9\r\n";
    expect(
        "trusted source + XFF",
        plain(&tg, &v1(sa("10.1.2.3:9999"), v4_dst), chain).await,
        (
            Some("6.6.6.6, 198.51.100.30, 10.9.9.9, 10.1.2.3".into()),
            Some("198.51.100.30".into()),
        ),
    );
    f.assert_none();

    // The access log names the header's client too.
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    let mut first = v2(sa("203.0.113.99:4000"), v4_dst, TLVS);
    first.extend(get_request("/logged", "X-Request-Id: pp-log-1\r\n"));
    assert_eq!(exchange(&mut s, &first).await.unwrap().status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let out = tg.proc_.stdout_text();
        if let Some(line) = out.lines().find(|l| l.contains("pp-log-1")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no access log line:\n{out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["client"], "203.0.113.99", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_around_the_header_are_neither_lost_nor_required_at_once() {
    let echo = Echo::services(&["pp"]).await;
    let tg = start_with_proxy_protocol(&echo).await;
    let src = sa("203.0.113.8:1234");
    let dst = sa("192.0.2.1:80");

    // Split over many small writes: the header (both versions), then the
    // request.
    for header in [v1(src, dst), v2(src, dst, TLVS)] {
        let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
        s.set_nodelay(true).unwrap();
        for chunk in header.chunks(3) {
            s.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = exchange(&mut s, &get_request("/split", "")).await.unwrap();
        assert_eq!(told(&r), both("203.0.113.8"), "split {header:?}");
    }
    // Split before a TLS handshake.
    let mut tcp = TcpStream::connect(tg.https_addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    for chunk in v2(src, dst, TLVS).chunks(7) {
        tcp.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut s = tls_over(tcp).await.unwrap();
    let r = exchange(&mut s, &get_request("/split-tls", ""))
        .await
        .unwrap();
    assert_eq!(told(&r), both("203.0.113.8"));

    // The header and a request in one packet; the connection then goes on
    // (keep-alive) with the same client.
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    let mut first = v1(src, dst);
    first.extend(get_request("/one", ""));
    let r = exchange(&mut s, &first).await.unwrap();
    assert_eq!(told(&r), both("203.0.113.8"));
    let r = exchange(&mut s, &get_request("/two", "")).await.unwrap();
    assert_eq!(told(&r), both("203.0.113.8"), "second request");
    assert_eq!(r.echo().path(), "/two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_valid_header_are_closed() {
    let echo = Echo::services(&["pp"]).await;
    let tg = start_with_proxy_protocol(&echo).await;
    let mut f = Failures::default();

    // Plain HTTP, garbage, a malformed v1 and a v2 of version 1: closed at
    // once, without a response.
    let refused: [(&str, &[u8]); 4] = [
        ("no header", b"GET /pp HTTP/1.1\r\nHost: pp.test\r\n\r\n"),
        ("garbage", b"\x00\x01hello there\r\n\r\n"),
        (
            "bad v1",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 080 80\r\nGET / HTTP/1.1\r\n\r\n",
        ),
        ("bad v2", b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c"),
    ];
    for (what, bytes) in refused {
        let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
        s.write_all(bytes).await.unwrap();
        match until_closed(&mut s, HEADER_TIMEOUT / 2).await {
            Some(got) => f.check(got.is_empty(), || {
                format!("{what}: answered {:?}", String::from_utf8_lossy(&got))
            }),
            None => f.push(format!("{what}: not closed at once")),
        }
    }
    // A TLS client without a header: no handshake.
    let r = TlsClient::default()
        .connect(tg.https_addr(), Some(HOST))
        .await;
    f.check(r.is_err(), || {
        "TLS without a PROXY header completed a handshake".into()
    });

    // Silence, or a header that never completes: closed by
    // --client-header-timeout, without a response.
    for (what, bytes) in [("silent", &b""[..]), ("partial", b"PROXY TCP4 203.0")] {
        let started = Instant::now();
        let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
        s.write_all(bytes).await.unwrap();
        match until_closed(&mut s, HEADER_TIMEOUT * 3).await {
            Some(got) => {
                let took = started.elapsed();
                f.check(got.is_empty(), || format!("{what}: answered {got:?}"));
                f.check(took >= HEADER_TIMEOUT - Duration::from_millis(200), || {
                    format!("{what}: closed after {took:?}, before the header timeout")
                });
            }
            None => f.push(format!("{what}: still open after {:?}", HEADER_TIMEOUT * 3)),
        }
    }
    f.assert_none();
    // 4 refused at once, the TLS client, 2 timed out: all counted.
    let metrics = tg.metrics().await;
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_proxy_protocol_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert_eq!(refused, 7.0, "{metrics}");
    // The listener still serves well-formed connections.
    let r = plain(&tg, &v1(sa("203.0.113.9:1"), sa("192.0.2.1:80")), "")
        .await
        .unwrap();
    assert_eq!(told(&r), both("203.0.113.9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_a_proxy_header_is_a_bad_request() {
    let echo = Echo::services(&["pp"]).await;
    let tg = Tollgate::builder()
        .docs("m.yaml", &route(&echo))
        .start()
        .await;
    let r = plain(&tg, &v1(sa("203.0.113.7:1"), sa("192.0.2.1:80")), "")
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    // Still plain HTTP without it.
    let r = plain(&tg, b"", "").await.unwrap();
    assert_eq!(told(&r), both("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_ip_is_the_right_most_untrusted_forwarded_for_entry() {
    let echo = Echo::services(&["pp"]).await;
    let tg = Tollgate::builder()
        .docs("m.yaml", &route(&echo))
        .args(&["--trusted-proxies", "127.0.0.0/8"])
        .start()
        .await;
    // The client wrote 6.6.6.6; 198.51.100.7 is what the first trusted hop
    // (127.0.0.5) saw.
    let r = plain(
        &tg,
        b"",
        "X-Forwarded-For: 6.6.6.6, 198.51.100.7\r\nX-Forwarded-For: 127.0.0.5\r\n",
    )
    .await
    .unwrap();
    assert_eq!(
        told(&r),
        (
            Some("6.6.6.6, 198.51.100.7, 127.0.0.5, 127.0.0.1".into()),
            Some("198.51.100.7".into())
        )
    );
    // An entry that is not an address stops the walk at the last good one.
    let r = plain(
        &tg,
        b"",
        "X-Forwarded-For: 198.51.100.7, bogus, 127.0.0.5\r\n",
    )
    .await
    .unwrap();
    assert_eq!(told(&r).1.as_deref(), Some("127.0.0.5"));
}
