//! The HTTP/1.1 fast path is invisible: a differential test through real
//! sockets. Every scenario plays the same raw client bytes (keep-alive,
//! several requests per connection, pipelined where it makes sense)
//! against two `tollgate run` processes from the same manifests, one with
//! `--http1-fast-path true` and one with `false`, in front of one raw
//! scripted backend, and asserts (see [`pair::Pair::run`]) that both give
//! the client the same status lines, header multisets, de-chunked bodies,
//! framing and connection state; that the backend receives the same
//! request lines, header multisets and bodies (and, in the scenarios about
//! upstream keep-alive, on the same upstream connections); that the
//! access-log lines and the `tollgate_requests_total` series are the same.
//! Each scenario also checks the expected statuses, so that a scenario
//! that stopped exercising what it names fails rather than comparing two
//! identical errors.
//!
//! The same over HTTPS (TLS terminated by both proxies, a chosen server
//! name) is [`tls`]'s.
//!
//! The proxies run one worker each (`--threads 1`) unless a test says
//! otherwise: upstream pools are per worker, so with one worker the
//! upstream connections a run uses repeat from run to run.

// The scripted backend's request log is test scaffolding, not the proxy.
#![allow(clippy::disallowed_types)]

mod common;

#[path = "fast_path/backend.rs"]
mod backend;
#[path = "fast_path/pair.rs"]
mod pair;
#[path = "fast_path/tls.rs"]
mod tls;
#[path = "fast_path/wire.rs"]
mod wire;

use std::time::Duration;

use backend::Action;
use pair::{get, paused, pipe, raw, seq, ConnResult, Pair, Run};
use wire::{Framing, BACKEND_DATE};

/// `200 OK` with `extra` fields and a Content-Length body.
fn ok(extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The backend's answers, by request path.
fn script(path: &str) -> Action {
    let fixed = |bytes: &[u8]| Action::Reply(bytes.to_vec());
    match path {
        "/chunked" => fixed(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
              Trailer: X-Checksum\r\n\r\n5;name=value\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n\
              0\r\nX-Checksum: 42\r\n\r\n",
        ),
        "/chunked-plain" => {
            fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        }
        "/eof" => Action::ReplyClose(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the backend closes".to_vec(),
        ),
        "/204" => fixed(b"HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n"),
        "/304" => fixed(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 11\r\n\r\n"),
        "/empty" => Action::Reply(ok("", "")),
        "/hop" => Action::Reply(ok(
            &format!(
                "Connection: x-foo, keep-alive\r\nX-Foo: bar\r\nKeep-Alive: timeout=5\r\n\
                 Proxy-Connection: keep-alive\r\nX-Kept: yes\r\nServer: backend/1\r\n\
                 Date: {BACKEND_DATE}\r\n"
            ),
            "hop",
        )),
        "/fine" => fixed(b"HTTP/1.1 200 Fine\r\nContent-Length: 4\r\n\r\nfine"),
        "/299" => fixed(b"HTTP/1.1 299 Custom\r\nContent-Length: 3\r\n\r\n299"),
        "/599" => fixed(b"HTTP/1.1 599 Network Whatever\r\nContent-Length: 3\r\n\r\n599"),
        "/close-header" => Action::ReplyClose(ok("Connection: close\r\n", "last")),
        "/close-silently" => Action::ReplyClose(ok("", "closed after")),
        "/close-idle" => Action::ReplyIdleClose(Duration::from_millis(50), ok("", "idle closed")),
        "/no-answer" => Action::Close,
        "/slow" => Action::Delay(Duration::from_secs(3), ok("", "too late")),
        p => Action::Reply(ok("Content-Type: text/plain\r\n", &format!("path {p}"))),
    }
}

/// Asserts the statuses of each connection of a run.
fn assert_statuses(run: &Run, want: &[&[u16]]) {
    let results = &run.conns;
    let got: Vec<Vec<u16>> = results.iter().map(ConnResult::statuses).collect();
    let want: Vec<Vec<u16>> = want.iter().map(|w| w.to_vec()).collect();
    let transcripts: Vec<String> = results
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            let lines = c.responses.iter().map(move |r| match r {
                Ok(got) => format!("conn {i}: {}", got.transcript()),
                Err(e) => format!("conn {i}: error {e}"),
            });
            lines.chain([format!("conn {i}: end {}", c.end)])
        })
        .collect();
    assert_eq!(
        got,
        want,
        "statuses per connection:\n{}",
        transcripts.join("\n")
    );
}

fn ends(run: &Run) -> Vec<&str> {
    run.conns.iter().map(|r| r.end.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_keep_alive_and_pipelined() {
    let pair = Pair::start(script, &[]).await;
    let three = || vec![get("/a"), get("/b?x=1"), get("/c/d")];
    let r = pair
        .run_pooled("content-length", vec![seq(three()), pipe(three())])
        .await;
    assert_statuses(&r, &[&[200, 200, 200], &[200, 200, 200]]);
    assert_eq!(ends(&r), ["open", "open"]);
    let first = r.conns[0].responses[0].as_ref().unwrap();
    assert_eq!(first.framing, Framing::Length);
    assert_eq!(first.body, b"path /a");
    pair.assert_metrics_equal().await;
}

/// Two workers per proxy: the same answers, whichever worker a client
/// connection lands on (upstream connections are not compared here: the
/// pools are per worker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers() {
    let pair = Pair::start(script, &["--threads", "2"]).await;
    let mixed = || {
        vec![
            get("/a"),
            get("/chunked"),
            get("/eof"),
            get("/204"),
            get("/hop"),
        ]
    };
    let conns = (0..3)
        .map(|_| seq(mixed()))
        .chain([pipe(mixed())])
        .collect();
    let r = pair.run("two workers", conns).await;
    let statuses: &[u16] = &[200, 200, 200, 204, 200];
    assert_statuses(&r, &[statuses; 4]);
    assert_eq!(ends(&r), ["open"; 4]);
    pair.assert_metrics_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_close_delimited_bodies() {
    let pair = Pair::start(script, &[]).await;
    let te_trailers = "GET /chunked HTTP/1.1\r\nHost: fp.test\r\nTE: trailers\r\n\r\n";
    let r = pair
        .run(
            "chunked and close-delimited",
            vec![
                seq(vec![get("/chunked"), get("/chunked"), get("/after")]),
                pipe(vec![get("/chunked"), get("/after")]),
                seq(vec![raw(te_trailers), get("/after")]),
                seq(vec![
                    get("/chunked-plain"),
                    get("/after"),
                    get("/chunked-plain"),
                ]),
                seq(vec![get("/eof"), get("/after"), get("/eof")]),
                pipe(vec![get("/eof"), get("/after")]),
            ],
        )
        .await;
    for conn in &r.conns {
        assert!(conn.statuses().iter().all(|s| *s == 200), "{conn:#?}");
        assert_eq!(conn.end, "open");
    }
    let chunked = r.conns[0].responses[0].as_ref().unwrap();
    assert_eq!(chunked.framing, Framing::Chunked);
    assert_eq!(chunked.body, b"hello, world");
    let eof = r.conns[4].responses[0].as_ref().unwrap();
    assert_eq!(eof.body, b"until the backend closes");
    assert_ne!(
        eof.framing,
        Framing::Close,
        "a close-delimited body is re-framed"
    );
    pair.assert_metrics_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodyless_statuses() {
    let pair = Pair::start(script, &[]).await;
    let reqs = || vec![get("/204"), get("/304"), get("/empty"), get("/after")];
    let r = pair
        .run("204/304/empty", vec![seq(reqs()), pipe(reqs())])
        .await;
    assert_statuses(&r, &[&[204, 304, 200, 200], &[204, 304, 200, 200]]);
    assert_eq!(ends(&r), ["open", "open"]);
    pair.assert_metrics_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_server_date_and_reason_phrases() {
    let pair = Pair::start(script, &[]).await;
    let r = pair
        .run(
            "hop-by-hop and status lines",
            vec![
                seq(vec![get("/hop"), get("/plain")]),
                pipe(vec![get("/fine"), get("/299"), get("/599"), get("/hop")]),
            ],
        )
        .await;
    assert_statuses(&r, &[&[200, 200], &[200, 299, 599, 200]]);
    let hop = r.conns[0].responses[0].as_ref().unwrap();
    for gone in ["connection", "x-foo", "keep-alive", "proxy-connection"] {
        assert_eq!(hop.field(gone), None, "{gone} crossed the proxy");
    }
    assert_eq!(hop.field("x-kept"), Some("yes"));
    assert_eq!(hop.field("server"), Some("backend/1"));
    assert_eq!(hop.field("date"), Some(BACKEND_DATE));
    let plain = r.conns[0].responses[1].as_ref().unwrap();
    assert_eq!(plain.field("server"), Some("tollgate"));
    assert!(plain.field("date").is_some());
    let fine = r.conns[1].responses[0].as_ref().unwrap();
    assert_eq!(fine.head.start, "HTTP/1.1 200 Fine");
    pair.assert_metrics_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_request_ids_and_odd_targets() {
    let pair = Pair::start(script, &[]).await;
    let spoofed = "GET /echo/a%20b/%7Euser/%2F?q=1&r=%C3%A9&flag HTTP/1.1\r\n\
        host: fp.test\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\nX-REAL-IP: 203.0.113.10\r\n\
        x-forwarded-host: evil.test\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 8443\r\n\
        X-Request-Id: client-id-42.A_b\r\nAccept: text/html\r\naccept: application/json\r\n\
        Cookie: a=1\r\nCOOKIE: b=2\r\nUser-Agent: fp-test/1\r\nX-Mixed-Case: Value\r\n\r\n";
    let bad_id = "GET /bad-id HTTP/1.1\r\nHost: fp.test\r\nX-Request-Id: not valid!\r\n\r\n";
    let odd_host = "GET /x/./y/../z//w HTTP/1.1\r\nHOST: FP.test:80\r\n\r\n";
    let r = pair
        .run(
            "forwarding headers",
            vec![
                seq(vec![
                    raw(spoofed),
                    raw(bad_id),
                    raw(odd_host),
                    get("/plain"),
                ]),
                pipe(vec![raw(bad_id), raw(spoofed), raw(odd_host)]),
            ],
        )
        .await;
    assert_statuses(&r, &[&[200, 200, 200, 200], &[200, 200, 200]]);
    let spoofed_seen = &r.backend[0];
    for want in [
        "x-request-id: client-id-42.A_b",
        "x-forwarded-for: 127.0.0.1 ;",
        "x-real-ip: 127.0.0.1 ;",
        "x-forwarded-host: fp.test ;",
        "x-forwarded-proto: http ;",
        "accept: application/json ; accept: text/html",
        "cookie: a=1 ; cookie: b=2",
    ] {
        assert!(
            spoofed_seen.contains(want),
            "{want:?} not in {spoofed_seen}"
        );
    }
    assert!(
        r.backend[1].contains("x-request-id: <generated>"),
        "{}",
        r.backend[1]
    );
    pair.assert_metrics_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_fast_path_hands_to_hyper() {
    let pair = Pair::start(script, &["--max-header-bytes", "2048"]).await;
    let post = "POST /post HTTP/1.1\r\nHost: fp.test\r\nContent-Length: 5\r\n\r\nhello";
    let post_chunked = "POST /post-chunked HTTP/1.1\r\nHost: fp.test\r\n\
        Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let get_body = "GET /get-body HTTP/1.1\r\nHost: fp.test\r\nContent-Length: 3\r\n\r\nabc";
    let keep_alive = "GET /ka HTTP/1.1\r\nHost: fp.test\r\nConnection: keep-alive\r\n\r\n";
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: fp.test\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(3000)
    );
    let r = pair
        .run(
            "fallbacks",
            vec![
                seq(vec![
                    raw("HEAD /head HTTP/1.1\r\nHost: fp.test\r\n\r\n"),
                    get("/after"),
                ]),
                seq(vec![raw(get_body), raw(keep_alive), get("/after")]),
                seq(vec![raw(post), raw(post_chunked), get("/after")]),
                seq(vec![get("/first"), raw(post), get("/after")]),
                pipe(vec![get("/first"), raw(post), get("/after")]),
                seq(vec![raw(
                    "GET /close HTTP/1.1\r\nHost: fp.test\r\nConnection: close\r\n\r\n",
                )]),
                seq(vec![raw("GET /ten HTTP/1.0\r\nHost: fp.test\r\n\r\n")]),
                seq(vec![
                    raw("GET /ten-ka HTTP/1.0\r\nHost: fp.test\r\nConnection: keep-alive\r\n\r\n"),
                    get("/after"),
                ]),
                seq(vec![
                    raw("GET http://fp.test/abs?x=1 HTTP/1.1\r\nHost: fp.test\r\n\r\n"),
                    get("/after"),
                ]),
                seq(vec![raw("GET /no-host HTTP/1.1\r\n\r\n")]),
                seq(vec![raw(
                    "GET /two HTTP/1.1\r\nHost: fp.test\r\nHost: other.test\r\n\r\n",
                )]),
                seq(vec![raw(big)]),
                seq(vec![
                    raw("GET /x HTTP/1.1\r\nHost: nowhere.test\r\n\r\n"),
                    get("/after"),
                ]),
            ],
        )
        .await;
    assert_statuses(
        &r,
        &[
            &[200, 200],
            &[200, 200, 200],
            &[200, 200, 200],
            &[200, 200, 200],
            &[200, 200, 200],
            &[200],
            &[200],
            &[200, 200],
            &[200, 200],
            &[400],
            &[400],
            &[431],
            &[404, 200],
        ],
    );
    let closed = ["closed"; 5];
    assert_eq!(&ends(&r)[5..7], &closed[..2], "Connection: close, HTTP/1.0");
    assert_eq!(&ends(&r)[9..12], &closed[..3], "400, 400, 431");
    pair.assert_metrics_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures() {
    let pair = Pair::start(script, &["--upstream-response-timeout", "1s"]).await;
    let dead = "GET /dead HTTP/1.1\r\nHost: dead.test\r\n\r\n";
    let r = pair
        .run(
            "upstream failures",
            vec![
                seq(vec![get("/no-answer"), get("/after")]),
                seq(vec![get("/slow"), get("/after")]),
                seq(vec![raw(dead), get("/after")]),
                pipe(vec![get("/no-answer"), raw(dead), get("/after")]),
            ],
        )
        .await;
    assert_statuses(
        &r,
        &[&[502, 200], &[504, 200], &[502, 200], &[502, 502, 200]],
    );
    pair.assert_metrics_equal().await;
}

/// Pause between requests where upstream connections are counted: a
/// connection is checked back into its pool once its response body was
/// read to the end, which may come just after the client already has the
/// whole response; the pause keeps the count from depending on that race.
const SETTLE_POOL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_keep_alive_reuse() {
    let pair = Pair::start(script, &[]).await;
    let five = (0..5).map(|i| get(&format!("/reuse/{i}"))).collect();
    let r = pair
        .run_pooled("upstream reuse", vec![paused(five, SETTLE_POOL)])
        .await;
    assert_statuses(&r, &[&[200; 5]]);
    // The comparison checks both sides are equal; this checks the count.
    assert_eq!(
        (r.accepted, r.upstream_conns),
        (1, 1),
        "one upstream connection"
    );
    tokio::time::sleep(SETTLE_POOL).await;
    let more = (0..3).map(|i| get(&format!("/again/{i}"))).collect();
    let r = pair
        .run_pooled(
            "upstream reuse, second client",
            vec![paused(more, SETTLE_POOL)],
        )
        .await;
    assert_eq!(
        (r.accepted, r.upstream_conns),
        (0, 1),
        "the pooled one again"
    );
    pair.assert_metrics_equal().await;
}

/// A chunked response with trailers leaves its upstream connection at a
/// request boundary: both paths reuse it for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reuse_after_trailers() {
    let pair = Pair::start(script, &[]).await;
    let r = pair
        .run_pooled(
            "upstream reuse after trailers",
            vec![paused(vec![get("/chunked"), get("/after")], SETTLE_POOL)],
        )
        .await;
    assert_statuses(&r, &[&[200, 200]]);
    assert_eq!(
        (r.accepted, r.upstream_conns),
        (1, 1),
        "one upstream connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_closing_keep_alive_connections() {
    let pair = Pair::start(script, &[]).await;
    let closing = |path: &str| vec![get(path), get("/after"), get(path), get("/after")];
    let r = pair
        .run(
            "backend closes",
            vec![
                seq(closing("/close-header")),
                seq(closing("/close-silently")),
                paused(closing("/close-silently"), SETTLE_POOL),
                seq(closing("/close-idle")),
                paused(closing("/close-idle"), SETTLE_POOL),
            ],
        )
        .await;
    let four_ok: &[u16] = &[200; 4];
    assert_statuses(&r, &[four_ok; 5]);
    assert_eq!(ends(&r), ["open"; 5]);
    pair.assert_metrics_equal().await;
}
