//! Differential check of request framing (issue 17, items 1, 4 and 8): a
//! corpus of raw requests, hostile and plain, sent through `tollgate run`
//! to a raw-socket recording backend. For each case the test asserts what
//! the client got (status) and what the backend saw: nothing, exactly one
//! well-formed request, or never a complete request (a body error found
//! mid-stream truncates the upstream request and closes its connection).

// The recording backend's log is test scaffolding, not the proxy.
#![allow(clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NS: &str = "desync";
const HOST: &str = "d.test";

/// What the recording backend saw, in order, over all its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// One complete, well-formed request: connection number, request head
    /// (lowercased) and body length.
    Request {
        conn: usize,
        head: String,
        body: usize,
    },
    /// The connection closed with this many bytes of an incomplete request.
    Truncated { conn: usize, bytes: usize },
    /// Bytes the backend could not parse as a request.
    Malformed { conn: usize, bytes: String },
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn push(&self, seen: Seen) {
        self.0.lock().unwrap().push(seen);
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn since(&self, at: usize) -> Vec<Seen> {
        self.0.lock().unwrap()[at..].to_vec()
    }
}

/// Parses one request from the front of `buf`: `Ok(Some((head, body len,
/// consumed)))`, `Ok(None)` when incomplete, `Err` when malformed. Strict:
/// CRLF only, Content-Length digits only, chunk sizes hex only.
fn parse_request(buf: &[u8]) -> Result<Option<(String, usize, usize)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    if request_line.split(' ').count() != 3 || !request_line.ends_with("HTTP/1.1") {
        return Err(format!("request line {request_line:?}"));
    }
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header {line:?}"))?;
        if name.is_empty() || name.contains([' ', '\t', '\n', '\r']) {
            return Err(format!("header name {name:?}"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.contains(['\r', '\n', '\0']) {
            return Err(format!("header value {value:?}"));
        }
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                if length.is_some() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("content-length {value:?}"));
                }
                length = Some(value.parse::<usize>().map_err(|e| e.to_string())?);
            }
            "transfer-encoding" => {
                if chunked || !value.eq_ignore_ascii_case("chunked") {
                    return Err(format!("transfer-encoding {value:?}"));
                }
                chunked = true;
            }
            _ => {}
        }
    }
    if chunked && length.is_some() {
        return Err("both framings".into());
    }
    let mut at = end + 4;
    if !chunked {
        let n = length.unwrap_or(0);
        if buf.len() < at + n {
            return Ok(None);
        }
        return Ok(Some((head.to_ascii_lowercase(), n, at + n)));
    }
    let mut body = 0;
    loop {
        let rest = &buf[at..];
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&rest[..eol]).map_err(|e| e.to_string())?;
        if size_line.is_empty() || !size_line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("chunk size {size_line:?}"));
        }
        let size = usize::from_str_radix(size_line, 16).map_err(|e| e.to_string())?;
        at += eol + 2;
        if size == 0 {
            // No trailers expected from the proxy.
            if buf.len() < at + 2 {
                return Ok(None);
            }
            if &buf[at..at + 2] != b"\r\n" {
                return Err("trailer section".into());
            }
            return Ok(Some((head.to_ascii_lowercase(), body, at + 2)));
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        body += size;
        at += size + 2;
    }
}

/// The fixed answer of the recording backend; some paths answer a broken
/// response to exercise the response side.
fn answer(head: &str) -> &'static [u8] {
    if head.starts_with("get /bad-response-length ") {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"
    } else if head.starts_with("get /bad-response-line ") {
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok"
    } else if head.starts_with("get /bad-response-header ") {
        b"HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 2\r\n\r\nok"
    } else if head.starts_with("get /bad-response-chunk ") {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"
    } else if head.starts_with("get /smuggled ") {
        // Silent, so only the connection's reuse can show the desync.
        b""
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    }
}

/// A raw TCP backend on 127.0.0.1 recording every request it receives.
async fn recording_backend(recorder: Recorder) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut conn = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            conn += 1;
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 16384];
                loop {
                    // A backend that answers /early without reading its
                    // body: what follows the head is its next request.
                    if buf.starts_with(b"POST /early ") {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            recorder.push(Seen::Request {
                                conn,
                                head,
                                body: 0,
                            });
                            buf.drain(..end + 4);
                            if s.write_all(answer("")).await.is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                    match parse_request(&buf) {
                        Ok(Some((head, body, consumed))) => {
                            let reply = answer(&head);
                            recorder.push(Seen::Request { conn, head, body });
                            buf.drain(..consumed);
                            if s.write_all(reply).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Ok(None) => {}
                        Err(why) => {
                            recorder.push(Seen::Malformed {
                                conn,
                                bytes: format!("{why}: {:?}", String::from_utf8_lossy(&buf)),
                            });
                            return;
                        }
                    }
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => {
                            if !buf.is_empty() {
                                recorder.push(Seen::Truncated {
                                    conn,
                                    bytes: buf.len(),
                                });
                            }
                            return;
                        }
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    port
}

/// What the client got: the final (non-1xx) status of the first response,
/// if any, and every status line seen.
#[derive(Debug)]
struct Got {
    status: Option<u16>,
    statuses: Vec<u16>,
    /// The proxy closed the connection (rather than going quiet).
    closed: bool,
}

/// Sends `bytes` on a fresh connection (then optionally half-closes) and
/// reads until the proxy closes or stays quiet.
async fn exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Got {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The proxy may answer and close before reading everything.
    let _ = s.write_all(bytes).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_millis(700), s.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Err(_) => break false,
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let text = String::from_utf8_lossy(&buf);
    let statuses: Vec<u16> = text
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("HTTP/1.1 "))
        .filter_map(|rest| rest.get(..3)?.parse().ok())
        .collect();
    let status = statuses.iter().copied().find(|s| *s >= 200);
    Got {
        status,
        statuses,
        closed,
    }
}

/// What the backend must have seen for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// No byte at all.
    Nothing,
    /// Exactly one complete request for this path, with this body length,
    /// and nothing else.
    One(&'static str, usize),
    /// Never a complete request (nothing, or a truncated one).
    NoComplete,
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    half_close: bool,
    status: u16,
    backend: Expect,
}

fn case(name: &'static str, bytes: impl Into<Vec<u8>>, status: u16, backend: Expect) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        half_close: false,
        status,
        backend,
    }
}

/// A chunked POST to /c with this raw body.
fn chunked(body: &str) -> String {
    format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
}

/// A request to /h with these extra header lines (each ending in CRLF).
fn with_headers(headers: &str) -> String {
    format!("GET /h HTTP/1.1\r\nHost: {HOST}\r\n{headers}\r\n")
}

fn corpus() -> Vec<Case> {
    use Expect::*;
    let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(20_000));
    let mut cases = vec![
        // Plain traffic passes untouched.
        case("plain GET", with_headers(""), 200, One("/h", 0)),
        case(
            "Content-Length body",
            format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\nhello"),
            200,
            One("/cl", 5),
        ),
        case(
            "chunked body",
            chunked("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"),
            200,
            One("/c", 11),
        ),
        case(
            "chunked body with trailers",
            chunked("5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
            200,
            One("/c", 5),
        ),
        case(
            "Transfer-Encoding: Chunked (case)",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"),
            200,
            One("/c", 0),
        ),
        case(
            "duplicate Content-Length, same value",
            format!(
                "POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
            ),
            200,
            One("/cl", 5),
        ),
        case(
            "Expect: 100-continue",
            format!(
                "POST /cl HTTP/1.1\r\nHost: {HOST}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"
            ),
            200,
            One("/cl", 5),
        ),
        // Item 1: malformed chunked bodies.
        case("chunk size overflow", chunked("fffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("chunk size 0x prefix", chunked("0x5\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("chunk size plus sign", chunked("+5\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("chunk size minus sign", chunked("-5\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("chunk size underscore", chunked("0_5\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("chunk size leading space", chunked(" 5\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("empty chunk size line", chunked("\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("non-hex chunk size", chunked("g\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("more data than the chunk size", chunked("3\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("bare LF after chunk size", chunked("5\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("bare LF after chunk data", chunked("5\r\nhello\n0\r\n\r\n"), 400, NoComplete),
        case("bare LF after last chunk", chunked("5\r\nhello\r\n0\n\n"), 400, NoComplete),
        case("bare CR in chunk extension", chunked("5;a\rb\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("bare LF in chunk extension", chunked("5;a\nb\r\nhello\r\n0\r\n\r\n"), 400, NoComplete),
        case("oversized chunk extension", chunked(&long_extension), 400, NoComplete),
        case(
            "bad chunk after a good one (mid-stream)",
            chunked("5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n"),
            400,
            NoComplete,
        ),
        case(
            "chunk smuggling a request (more data than the size)",
            chunked("2\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: d.test\r\n\r\n"),
            400,
            NoComplete,
        ),
        // Item 4: header-level desync classes.
        case("obs-fold", with_headers("X-A: a\r\n b\r\n"), 400, Nothing),
        case("whitespace before the colon", with_headers("X-A : b\r\n"), 400, Nothing),
        case(
            "whitespace before the colon of Transfer-Encoding",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),
        case("NUL in a header value", with_headers("X-A: a\0b\r\n"), 400, Nothing),
        case("bare CR in a header value", with_headers("X-A: a\rb\r\n"), 400, Nothing),
        // RFC 9112 §2.2 lets a recipient take a bare LF for a line end in
        // the head; hyper does, and the request is sent on with CRLF, so
        // the backend cannot read it otherwise.
        case("bare LF header line ending", format!("GET /h HTTP/1.1\nHost: {HOST}\n\n"), 200, One("/h", 0)),
        case(
            "duplicate Content-Length, different values",
            format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            400,
            Nothing,
        ),
        case(
            "Content-Length list",
            format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5, 6\r\n\r\nhello!"),
            400,
            Nothing,
        ),
        case(
            "Content-Length with a sign",
            format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: +5\r\n\r\nhello"),
            400,
            Nothing,
        ),
        case(
            "Content-Length in hex",
            format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0x5\r\n\r\nhello"),
            400,
            Nothing,
        ),
        case(
            "Transfer-Encoding: identity",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),
        case(
            "Transfer-Encoding: chunked, identity",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),
        case(
            "Transfer-Encoding: xchunked",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),
        case(
            "Transfer-Encoding with a vertical tab",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),
        case(
            "HTTP/1.0 with Transfer-Encoding",
            format!("POST /c HTTP/1.0\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),
        case("HTTP/0.9 request", "GET /h\r\n\r\n", 400, Nothing),
        // The classic vectors.
        case(
            "CL.TE",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"),
            400,
            Nothing,
        ),
        case(
            "TE.CL",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),
        case(
            "TE.TE (second Transfer-Encoding header)",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),
        case(
            "TE.TE (chunked twice)",
            format!("POST /c HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
            400,
            Nothing,
        ),        // Host and request target (item 2) and the head limit (item 9).
        case("invalid Host", "GET /h HTTP/1.1\r\nHost: a b\r\n\r\n", 400, Nothing),
        case("missing Host", "GET /h HTTP/1.1\r\n\r\n", 400, Nothing),
        case(
            "CONNECT",
            format!("CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n"),
            400,
            Nothing,
        ),
        case(
            "asterisk-form outside OPTIONS",
            format!("GET * HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            400,
            Nothing,
        ),
        case(
            "request head over --max-header-bytes",
            format!("GET /h HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {}\r\n\r\n", "p".repeat(40_000)),
            431,
            Nothing,
        ),
    ];
    // A Content-Length body cut short by the client's half-close.
    cases.push(Case {
        name: "Content-Length body cut short",
        bytes: format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 10\r\n\r\nhello")
            .into_bytes(),
        half_close: true,
        status: 400,
        backend: NoComplete,
    });
    cases
}

fn route_docs(port: u16) -> Vec<Value> {
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(NS, "d-ing", &simple_spec(HOST, "d")),
    ];
    docs.extend(backend(NS, "d", &[port]));
    docs
}

/// What the backend saw, in a few words.
fn summary(seen: &[Seen]) -> String {
    match seen {
        [] => "nothing".into(),
        [Seen::Request { body, .. }] => format!("one request ({body} body bytes)"),
        [Seen::Truncated { bytes, .. }] => format!("truncated ({bytes} bytes), closed"),
        other => format!("{other:?}"),
    }
}

fn check(case: &Case, got: &Got, seen: &[Seen]) -> Result<(), String> {
    if got.status != Some(case.status) {
        return Err(format!(
            "client got {:?}, want {}",
            got.statuses, case.status
        ));
    }
    if case.status == 400 && !got.closed {
        return Err("the connection stayed open after a 400".into());
    }
    let ok = match case.backend {
        Expect::Nothing => seen.is_empty(),
        Expect::NoComplete => seen.iter().all(|s| matches!(s, Seen::Truncated { .. })),
        Expect::One(path, body_len) => match seen {
            [Seen::Request { head, body, .. }] => {
                head.split(' ').nth(1) == Some(path)
                    && *body == body_len
                    && !head.contains("\r\nexpect:")
            }
            _ => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!("backend saw {seen:?}, want {:?}", case.backend))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_request_corpus() {
    let recorder = Recorder::default();
    let port = recording_backend(recorder.clone()).await;
    let tg = Tollgate::with_docs(&route_docs(port)).await;

    let cases = corpus();
    let mut failures = Vec::new();
    let mut hostile = 0;
    for case in &cases {
        if case.status != 200 {
            hostile += 1;
        }
        let at = recorder.len();
        let got = exchange(tg.http_addr(), &case.bytes, case.half_close).await;
        // Let whatever was forwarded arrive (and truncated upstream
        // connections close) before reading the record.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let seen = recorder.since(at);
        match check(case, &got, &seen) {
            Ok(()) => println!(
                "ok   {:<55} {:?} backend: {}",
                case.name,
                got.status,
                summary(&seen)
            ),
            Err(why) => failures.push(format!("{}: {why}", case.name)),
        }
    }
    println!(
        "corpus: {} cases ({hostile} hostile), {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every refusal reason the corpus exercises is counted.
    let metrics = tg.metrics().await;
    for reason in [
        "head",
        "framing_conflict",
        "transfer_encoding",
        "body_malformed",
        "body_incomplete",
        "host",
        "target",
        "headers_too_large",
    ] {
        let counted = metric_sum(
            &metrics,
            "tollgate_bad_requests_total",
            &[("reason", reason)],
        )
        .unwrap_or(0.0);
        assert!(
            counted >= 1.0,
            "{reason} not counted: {}",
            metrics
                .lines()
                .filter(|l| l.contains("bad_requests"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The connection number on which the backend saw a request for `path`.
fn conn_of(seen: &[Seen], path: &str) -> Option<usize> {
    seen.iter().find_map(|s| match s {
        Seen::Request { conn, head, .. } if head.split(' ').nth(1) == Some(path) => Some(*conn),
        _ => None,
    })
}

/// A malformed upstream response is a 502 and its connection is never
/// used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_upstream_response_is_502_and_not_reused() {
    let recorder = Recorder::default();
    let port = recording_backend(recorder.clone()).await;
    let tg = Tollgate::with_docs(&route_docs(port)).await;
    for bad in [
        "/bad-response-length",
        "/bad-response-line",
        "/bad-response-header",
        "/bad-response-chunk",
    ] {
        // Warm the pool so the bad response comes on a reused connection.
        assert_eq!(tg.get(HOST, "/warm").await.status, 200);
        let at = recorder.len();
        let request = format!("GET {bad} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
        let got = exchange(tg.http_addr(), request.as_bytes(), false).await;
        // A broken body can only be cut off: its head was already sent on.
        let want = if bad.ends_with("chunk") { 200 } else { 502 };
        assert_eq!(got.status, Some(want), "{bad}: {got:?}");
        let r = tg.get(HOST, "/after").await;
        assert_eq!(r.status, 200, "after {bad}: {}", r.text());
        let seen = recorder.since(at);
        let (Some(bad_conn), Some(after_conn)) = (conn_of(&seen, bad), conn_of(&seen, "/after"))
        else {
            panic!("{bad}: backend saw {seen:?}");
        };
        assert_ne!(
            bad_conn, after_conn,
            "{bad}: the connection of a malformed response was reused: {seen:?}"
        );
    }
}

/// 0.CL: a backend that answers before reading the request body (and then
/// reads the body as its next request) must not get another request on
/// that connection: the body's bytes would answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_response_connection_is_not_reused() {
    let recorder = Recorder::default();
    let port = recording_backend(recorder.clone()).await;
    let tg = Tollgate::with_docs(&route_docs(port)).await;
    let smuggled = format!("GET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let at = recorder.len();
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    let head = format!(
        "POST /early HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The answer comes before the body is sent.
    let r = tokio::time::timeout(REQUEST_TIMEOUT, read_response(&mut s))
        .await
        .expect("early response")
        .expect("early response");
    assert_eq!(r.status, 200);
    s.write_all(smuggled.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let r = tg.get(HOST, "/after").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let seen = recorder.since(at);
    let early = conn_of(&seen, "/early").expect("backend saw /early");
    let reused: Vec<&Seen> = seen
        .iter()
        .filter(|s| matches!(s, Seen::Request { conn, head, .. } if *conn == early && head.starts_with("get /after ")))
        .collect();
    assert!(
        reused.is_empty(),
        "a request went on the connection whose body the backend did not read: {seen:?}"
    );
}

/// `Expect: 100-continue`: tollgate answers `100 Continue` itself when it
/// starts reading the body and does not forward the expectation, so a
/// backend that ignores (or mishandles) it sees one plain request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_is_answered_by_the_proxy() {
    let recorder = Recorder::default();
    let port = recording_backend(recorder.clone()).await;
    let tg = Tollgate::with_docs(&route_docs(port)).await;
    let at = recorder.len();
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    let head = format!(
        "POST /cl HTTP/1.1\r\nHost: {HOST}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(REQUEST_TIMEOUT, s.read(&mut tmp))
            .await
            .expect("100 Continue in time")
            .unwrap();
        assert!(n > 0, "closed before 100 Continue");
        buf.extend_from_slice(&tmp[..n]);
    }
    assert!(
        buf.starts_with(b"HTTP/1.1 100 "),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    s.write_all(b"hello").await.unwrap();
    let r = tokio::time::timeout(REQUEST_TIMEOUT, read_response(&mut s))
        .await
        .expect("final response")
        .expect("final response");
    assert_eq!(r.status, 200);
    let seen = recorder.since(at);
    match seen.as_slice() {
        [Seen::Request { head, body: 5, .. }] => {
            assert!(head.starts_with("post /cl "), "{head}");
            assert!(!head.contains("\r\nexpect:"), "Expect forwarded: {head}");
        }
        other => panic!("backend saw {other:?}"),
    }
}

/// Requests the HTTP/1.1 fast path serves first, then a smuggling head on
/// the same connection: the framing check picks up where the fast path
/// handed over, so the third head is refused (400) and never reaches the
/// backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_after_fast_path_requests_is_refused() {
    let recorder = Recorder::default();
    let port = recording_backend(recorder.clone()).await;
    let tg = Tollgate::with_docs(&route_docs(port)).await;
    let mut s = TcpStream::connect(tg.http_addr()).await.unwrap();
    let mut seen = Vec::new();
    let requests = [
        format!("GET /one HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        format!("GET /two HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        format!(
            "POST /smuggled HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 4\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
    ];
    for (i, request) in requests.iter().enumerate() {
        s.write_all(request.as_bytes()).await.unwrap();
        // Read until this request's response head has come.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.windows(9).filter(|w| *w == b"HTTP/1.1 ").count() <= i {
            let mut tmp = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, s.read(&mut tmp))
                .await
                .expect("a response in time")
                .unwrap();
            assert!(n > 0, "closed after {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&tmp[..n]);
        }
    }
    let text = String::from_utf8_lossy(&seen);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12))
        .collect();
    assert_eq!(statuses, ["200", "200", "400"], "{text}");
    assert!(
        conn_of(&recorder.since(0), "/smuggled").is_none(),
        "the smuggling head reached the backend"
    );
}
