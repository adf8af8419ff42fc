//! HTTP/2 edge hardening (issue 17, item 5): each known HTTP/2 attack sent
//! frame by frame over a real socket ([`common::h2raw`]), asserting what a
//! user would notice: the attacking connection ends with a GOAWAY
//! (`ENHANCE_YOUR_CALM` or `PROTOCOL_ERROR`) within a bounded number of
//! frames, the backend sees a bounded number of requests, other clients
//! are still served, and the process's memory stays bounded. Each test
//! prints its measured count (`counts measured` in docs/security.md).
//! Then the HTTP/2 request rules: pseudo-headers, `Host` vs `:authority`,
//! connection-specific headers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::h2raw::*;
use common::*;
use http::Response;

const NS: &str = "h2";
const HOST: &str = "h2.test";
const WAIT: Duration = Duration::from_secs(5);

/// A tollgate routing `h2.test` to a backend that counts its requests.
struct Setup {
    tg: Tollgate,
    requests: Arc<AtomicUsize>,
    _backend: Backend,
}

async fn setup(args: &[&str]) -> Setup {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let backend = serve(move |_req| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            Response::new(full("ok"))
        }
    })
    .await;
    let tg = Tollgate::builder()
        .docs("manifests.yaml", &routed(NS, HOST, "app", &[backend.port]))
        .args(args)
        .start()
        .await;
    Setup {
        tg,
        requests,
        _backend: backend,
    }
}

impl Setup {
    /// Other clients are still served, over HTTP/2 and HTTP/1.1.
    async fn assert_serves_others(&self) {
        let mut sender = h2c_connect(self.tg.http_addr()).await.expect("h2c");
        let req = http::Request::builder()
            .uri(format!("http://{HOST}/"))
            .version(http::Version::HTTP_2)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(req))
            .await
            .expect("h2 request in time")
            .expect("h2 request");
        assert_eq!(resp.status(), 200);
        assert_eq!(self.tg.get(HOST, "/").await.status, 200);
    }

    fn rss_kb(&self) -> u64 {
        vm_rss_kb(self.tg.pid()).unwrap_or(0)
    }
}

/// The outcome of one attack on one connection.
#[derive(Debug)]
struct Flood {
    /// Attack units written (a unit may be several frames).
    sent: usize,
    goaway: Option<(u32, u32)>,
    closed: bool,
}

/// Writes `unit(i)` for i = 0.. until the server answers with a GOAWAY,
/// closes, stops reading for 2 s, or `max` units went out. `batch` units go
/// in one write; with `pace`, the writer waits that long between writes
/// (so the count is exact for small limits).
async fn flood<F: Fn(usize) -> Vec<u8>>(
    conn: &mut H2Raw,
    max: usize,
    batch: usize,
    pace: Option<Duration>,
    unit: F,
) -> Flood {
    let mut sent = 0;
    while sent < max {
        if conn.goaway().is_some() || conn.closed() {
            break;
        }
        let mut bytes = Vec::new();
        let n = batch.min(max - sent);
        for i in sent..sent + n {
            bytes.extend(unit(i));
        }
        match conn.send_within(&bytes, Duration::from_secs(2)).await {
            Ok(true) => sent += n,
            Ok(false) | Err(_) => break,
        }
        if let Some(pace) = pace {
            tokio::time::sleep(pace).await;
        }
    }
    let goaway = conn.wait_goaway_or_close(WAIT).await;
    Flood {
        sent,
        goaway,
        closed: conn.closed(),
    }
}

fn describe(f: &Flood) -> String {
    match f.goaway {
        Some((last, code)) => format!(
            "GOAWAY {} (last stream {last}) after {} sent",
            error_name(code),
            f.sent
        ),
        None if f.closed => format!("closed without GOAWAY after {} sent", f.sent),
        None => format!("still open after {} sent", f.sent),
    }
}

/// The frame after a request's HEADERS that makes h2 reset its stream.
type Provoke = Box<dyn Fn(u32) -> Vec<u8>>;

/// A header-list case: name, header block, status, GOAWAY code.
type HeaderCase = (&'static str, Vec<u8>, Option<u16>, Option<u32>);

fn stream_id(i: usize) -> u32 {
    (2 * i + 1) as u32
}

/// The control-frame budget per watchdog period with the defaults: 200
/// per second × 2.5 s (a quarter of the 10 s header timeout).
const CONTROL_BUDGET: usize = 500;

// ---------------------------------------------------------------------------
// Attacks
// ---------------------------------------------------------------------------

/// CVE-2023-44487: HEADERS then RST_STREAM(CANCEL) at once, stream after
/// stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off() {
    let s = setup(&[]).await;
    let rss_before = s.rss_kb();
    let mut conn = H2Raw::connect(s.tg.http_addr()).await;
    let block = get_block(HOST, "/", &[]);
    let f = flood(&mut conn, 20_000, 50, None, |i| {
        let mut b = frame(HEADERS, END_HEADERS | END_STREAM, stream_id(i), &block);
        b.extend(frame(RST_STREAM, 0, stream_id(i), &CANCEL.to_be_bytes()));
        b
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backend = s.requests.load(Ordering::Relaxed);
    let rss_after = s.rss_kb();
    println!(
        "counts measured: rapid reset: {}; backend saw {backend} requests; rss {rss_before} -> {rss_after} kB",
        describe(&f)
    );
    // h2's limit on resets of streams not yet accepted fires first (the
    // pairs arrive in batches); a client slow enough for every stream to
    // be accepted first meets the control-frame budget (RST_STREAM counts).
    let (last, code) = f.goaway.expect("GOAWAY");
    assert!(
        code == ENHANCE_YOUR_CALM || code == PROTOCOL_ERROR,
        "{}",
        describe(&f)
    );
    let bound = 2 * CONTROL_BUDGET + 256;
    assert!((last as usize) < 2 * bound, "streams: {}", describe(&f));
    assert!(backend < bound, "backend saw {backend}");
    assert!(
        rss_after < rss_before + 20_000,
        "{rss_before} -> {rss_after} kB"
    );
    s.assert_serves_others().await;
}

/// CVE-2025-8671 (MadeYouReset): requests whose streams the server itself
/// must reset: DATA after END_STREAM (STREAM_CLOSED), a WINDOW_UPDATE
/// that overflows the stream's window (FLOW_CONTROL_ERROR). A WINDOW_UPDATE
/// of 0 is a connection error for h2 (GOAWAY PROTOCOL_ERROR at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_you_reset_is_cut_off() {
    let s = setup(&[]).await;
    let block = get_block(HOST, "/", &[]);
    let vectors: [(&str, Provoke); 3] = [
        (
            "DATA after END_STREAM",
            Box::new(|id| frame(DATA, 0, id, b"x")),
        ),
        (
            "WINDOW_UPDATE overflow",
            Box::new(|id| frame(WINDOW_UPDATE, 0, id, &0x7fff_ffffu32.to_be_bytes())),
        ),
        (
            "WINDOW_UPDATE of 0",
            Box::new(|id| frame(WINDOW_UPDATE, 0, id, &0u32.to_be_bytes())),
        ),
    ];
    for (name, provoke) in vectors {
        let before = s.requests.load(Ordering::Relaxed);
        let mut conn = H2Raw::connect(s.tg.http_addr()).await;
        let f = flood(&mut conn, 20_000, 20, None, |i| {
            let mut b = frame(HEADERS, END_HEADERS | END_STREAM, stream_id(i), &block);
            b.extend(provoke(stream_id(i)));
            b
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let backend = s.requests.load(Ordering::Relaxed) - before;
        let resets = conn.count(RST_STREAM, 0);
        println!(
            "counts measured: MadeYouReset ({name}): {}; server resets {resets}; backend saw {backend}",
            describe(&f),
        );
        let (_, code) = f.goaway.expect("GOAWAY");
        assert!(
            code == ENHANCE_YOUR_CALM || code == PROTOCOL_ERROR,
            "{name}: {}",
            describe(&f)
        );
        assert!(resets <= 128, "{name}: {resets} resets");
        assert!(backend <= 128 + 256, "{name}: backend saw {backend}");
    }
    s.assert_serves_others().await;
}

/// CONTINUATION flood (the 2024 class): a header block that never ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_cut_off() {
    let s = setup(&[]).await;
    for (name, payload) in [
        ("empty CONTINUATION", Vec::new()),
        ("CONTINUATION of 100-byte fields", {
            let mut b = Vec::new();
            hpack_literal("x-flood", &"a".repeat(90), &mut b);
            b
        }),
    ] {
        let mut conn = H2Raw::connect(s.tg.http_addr()).await;
        conn.send(&frame(HEADERS, 0, 1, &get_block(HOST, "/", &[])))
            .await
            .unwrap();
        let f = flood(
            &mut conn,
            100_000,
            1,
            Some(Duration::from_millis(2)),
            |_| frame(CONTINUATION, 0, 1, &payload),
        )
        .await;
        println!("counts measured: {name}: {}", describe(&f));
        assert_eq!(f.goaway.map(|g| g.1), Some(ENHANCE_YOUR_CALM), "{name}");
        assert!(f.sent <= 10, "{name}: {}", describe(&f));
    }
    assert_eq!(s.requests.load(Ordering::Relaxed), 0);
    s.assert_serves_others().await;
}

/// Floods of frames h2 answers or ignores without a limit of its own
/// (CVE-2019-9512 PING, CVE-2019-9515 SETTINGS, CVE-2019-9516-like
/// PRIORITY, unknown frame types), with the client reading every answer:
/// cut at the control-frame budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_frame_floods_are_cut_off() {
    let s = setup(&[]).await;
    let rss_before = s.rss_kb();
    let floods: [(&str, u8, Vec<u8>, u8); 4] = [
        ("SETTINGS", SETTINGS, vec![0, 3, 0, 0, 0, 100], SETTINGS),
        ("PING", PING, vec![0; 8], PING),
        ("PRIORITY", PRIORITY, vec![0, 0, 0, 0, 16], 0),
        ("unknown type 0x42", 0x42, vec![1, 2, 3], 0),
    ];
    for (name, kind, payload, acked) in floods {
        let mut conn = H2Raw::connect(s.tg.http_addr()).await;
        let stream = if kind == PRIORITY { 1 } else { 0 };
        let f = flood(&mut conn, 200_000, 10, None, |_| {
            frame(kind, 0, stream, &payload)
        })
        .await;
        let answers = if acked != 0 {
            conn.count(acked, ACK)
        } else {
            0
        };
        println!(
            "counts measured: {name} flood: {}; answered {answers}",
            describe(&f)
        );
        assert_eq!(
            f.goaway.map(|g| g.1),
            Some(PROTOCOL_ERROR),
            "{name}: {}",
            describe(&f)
        );
        // One budget, or two when the flood spans a watchdog tick; the
        // initial SETTINGS is acknowledged too.
        assert!(answers <= 2 * CONTROL_BUDGET + 1, "{name}: {answers}");
        // The writer's count includes what sat in the socket buffers.
        assert!(f.sent < 200_000, "{name}: {}", describe(&f));
    }
    // A client that never reads the PONGs: the same cut, and the server's
    // writes stay in the socket buffers.
    let mut conn = H2Raw::connect_unread(s.tg.http_addr()).await;
    let f = flood(&mut conn, 200_000, 10, None, |i| {
        frame(PING, 0, 0, &(i as u64).to_be_bytes())
    })
    .await;
    let rss_after = s.rss_kb();
    println!(
        "counts measured: PING flood, PONGs unread: {} (the writer's view); rss {rss_before} -> {rss_after} kB",
        describe(&f),
    );
    assert!(f.sent < 200_000, "{}", describe(&f));
    assert!(
        rss_after < rss_before + 20_000,
        "{rss_before} -> {rss_after} kB"
    );
    s.assert_serves_others().await;
}

/// The budget is exact: with 20 frames a second over a 15 s watchdog
/// period (a quarter of the 60 s timeouts), a connection may send 300
/// control frames (its first SETTINGS included) and the 301st closes it.
/// Attempted twice: a watchdog tick between the two halves resets the
/// count (then the 301st is allowed, and the attempt does not count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_frame_budget_is_exact() {
    const BUDGET: usize = 300;
    let s = setup(&[
        "--client-header-timeout",
        "60s",
        "--idle-timeout",
        "60s",
        "--http2-max-control-frames",
        "20",
    ])
    .await;
    let kinds: [(&str, u8, u32, Vec<u8>); 4] = [
        ("SETTINGS", SETTINGS, 0, vec![0, 3, 0, 0, 0, 100]),
        ("PING", PING, 0, vec![0; 8]),
        ("PRIORITY", PRIORITY, 1, vec![0, 0, 0, 0, 16]),
        ("unknown type 0x42", 0x42, 0, vec![1, 2, 3]),
    ];
    for (name, kind, stream, payload) in kinds {
        let mut measured = None;
        for _attempt in 0..2 {
            let mut conn = H2Raw::connect(s.tg.http_addr()).await;
            // The client's first SETTINGS, BUDGET - 2 frames, a probe PING.
            let mut bytes = Vec::new();
            for _ in 0..BUDGET - 2 {
                bytes.extend(frame(kind, 0, stream, &payload));
            }
            bytes.extend(frame(PING, 0, 0, b"probe!!!"));
            conn.send(&bytes).await.expect("send");
            let answered = conn
                .wait_for(WAIT, |frames, closed| {
                    closed
                        || frames.iter().any(|f| {
                            f.kind == GOAWAY || (f.kind == PING && f.payload == b"probe!!!")
                        })
                })
                .await;
            assert!(
                answered && conn.goaway().is_none(),
                "{name}: cut within the budget"
            );
            // One more.
            conn.send(&frame(kind, 0, stream, &payload))
                .await
                .expect("send");
            let goaway = conn.wait_goaway_or_close(Duration::from_secs(2)).await;
            if goaway.is_some() {
                measured = goaway;
                break;
            }
        }
        println!(
            "counts measured: {name}: {BUDGET} control frames accepted (first SETTINGS and a PING included), frame {} refused: {:?}",
            BUDGET + 1,
            measured.map(|(_, c)| error_name(c))
        );
        assert_eq!(measured.map(|g| g.1), Some(PROTOCOL_ERROR), "{name}");
    }
}

/// The budget is a rate: a connection sending a PING a second and a
/// thousand requests (each with its own WINDOW_UPDATE) is never cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_well_behaved_connection_is_not_cut() {
    let s = setup(&["--http2-max-control-frames", "20"]).await;
    let mut conn = H2Raw::connect(s.tg.http_addr()).await;
    let block = get_block(HOST, "/", &[]);
    for i in 0..1000usize {
        let mut b = frame(HEADERS, END_HEADERS | END_STREAM, stream_id(i), &block);
        b.extend(frame(WINDOW_UPDATE, 0, 0, &1000u32.to_be_bytes()));
        if i % 100 == 0 {
            b.extend(frame(PING, 0, 0, &[1; 8]));
        }
        conn.send(&b).await.expect("send");
        if i % 50 == 49 {
            let last = stream_id(i);
            let got = conn.wait_stream(last, WAIT).await;
            assert_eq!(got, (Some(200), None), "request {i}");
        }
    }
    assert_eq!(conn.goaway(), None);
    assert_eq!(s.requests.load(Ordering::Relaxed), 1000);
}

/// Empty DATA frames (RUSTSEC-2026-0258): a body that never moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_data_flood_is_cut_off() {
    let s = setup(&[]).await;
    let mut conn = H2Raw::connect(s.tg.http_addr()).await;
    let block = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", HOST),
    ]);
    conn.send(&frame(HEADERS, END_HEADERS, 1, &block))
        .await
        .unwrap();
    let f = flood(
        &mut conn,
        100_000,
        1,
        Some(Duration::from_millis(1)),
        |_| frame(DATA, 0, 1, &[]),
    )
    .await;
    println!("counts measured: empty DATA: {}", describe(&f));
    assert_eq!(f.goaway.map(|g| g.1), Some(ENHANCE_YOUR_CALM));
    assert!(f.sent <= 110, "{}", describe(&f));
    s.assert_serves_others().await;
}

/// Header lists over the limit (`--max-header-bytes`, sent as
/// SETTINGS_MAX_HEADER_LIST_SIZE): h2 answers 431 itself while the list is
/// decoded; GOAWAY `ENHANCE_YOUR_CALM` when one frame decodes to more than
/// four times the limit, `COMPRESSION_ERROR` when CONTINUATION frames carry
/// more than the limit past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_lists() {
    let s = setup(&["--max-header-bytes", "4096"]).await;
    let big = |size: usize| {
        // Fields of 1000 bytes; 15 of them fit one frame.
        let mut block = get_block(HOST, "/", &[]);
        for i in 0..size / 1000 {
            hpack_literal(&format!("x-big-{i:02}"), &"b".repeat(990), &mut block);
        }
        block
    };
    let mut small = get_block(HOST, "/", &[]);
    for i in 0..900 {
        hpack_literal(&format!("x-{i:03}"), "12345678", &mut small);
    }
    // HPACK bomb: one 4000-byte value in the dynamic table (literal with
    // incremental indexing), then referenced by its 1-byte index 62.
    let mut bomb = get_block(HOST, "/", &[]);
    bomb.push(0x40);
    bomb.push(6);
    bomb.extend_from_slice(b"x-bomb");
    bomb.extend([0x7f, 0x81, 0x1e]); // 127 + 3841 = 3968
    bomb.extend(std::iter::repeat_n(b'b', 3968));
    bomb.extend(std::iter::repeat_n(0xbe, 200));
    let cases: [HeaderCase; 6] = [
        ("3 fields of 1000 bytes", big(3000), Some(200), None),
        ("6 fields of 1000 bytes", big(6000), Some(431), None),
        ("15 fields of 1000 bytes", big(15_000), Some(431), None),
        (
            "900 fields of 14 bytes",
            small,
            None,
            Some(ENHANCE_YOUR_CALM),
        ),
        (
            "HPACK bomb: 200 x 4 KB",
            bomb,
            None,
            Some(ENHANCE_YOUR_CALM),
        ),
        (
            "30 fields of 1000 bytes",
            big(30_000),
            None,
            Some(COMPRESSION_ERROR),
        ),
    ];
    for (name, block, want_status, want_goaway) in cases {
        let mut conn = H2Raw::connect(s.tg.http_addr()).await;
        let chunks: Vec<&[u8]> = block.chunks(16_000).collect();
        let mut bytes = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let (kind, flags) = match (i, last) {
                (0, true) => (HEADERS, END_HEADERS | END_STREAM),
                (0, false) => (HEADERS, END_STREAM),
                (_, true) => (CONTINUATION, END_HEADERS),
                (_, false) => (CONTINUATION, 0),
            };
            bytes.extend(frame(kind, flags, 1, chunk));
        }
        let _ = conn.send(&bytes).await;
        let (status, _) = conn.wait_stream(1, WAIT).await;
        let goaway = conn.goaway().map(|g| g.1);
        println!(
            "counts measured: header list {name} ({} bytes in {} frames, limit 4096): status {status:?}, GOAWAY {:?}",
            block.len(),
            chunks.len(),
            goaway.map(error_name)
        );
        assert_eq!((status, goaway), (want_status, want_goaway), "{name}");
    }
    s.assert_serves_others().await;
}

// ---------------------------------------------------------------------------
// Request rules (RFC 9113 §8.2.2, §8.3)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudo_header_and_connection_header_rules() {
    let s = setup(&[]).await;
    let req = |method: &'static str, path: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut fields = vec![
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", HOST),
        ];
        fields.extend_from_slice(extra);
        header_block(&fields)
    };
    /// What the client gets: a status, the stream reset with a code, or
    /// the connection closed with a GOAWAY and a code.
    #[derive(Debug, PartialEq)]
    enum Got {
        Status(u16),
        Reset(u32),
        GoAway(u32),
    }
    let cases: Vec<(&str, Vec<u8>, Got)> = vec![
        ("plain", req("GET", "/", &[]), Got::Status(200)),
        (
            "Host equal to :authority",
            req("GET", "/", &[("host", "H2.test")]),
            Got::Status(200),
        ),
        (
            "Host differs from :authority",
            req("GET", "/", &[("host", "other.test")]),
            Got::Status(400),
        ),
        (
            "Host with another port",
            req("GET", "/", &[("host", "h2.test:8080")]),
            Got::Status(400),
        ),
        (
            "two Host headers",
            req("GET", "/", &[("host", HOST), ("host", HOST)]),
            Got::Status(400),
        ),
        (
            "Host only",
            header_block(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("host", HOST),
            ]),
            Got::Status(200),
        ),
        (
            ":path not starting with /",
            req("GET", "x/y", &[]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (":path *", req("GET", "*", &[]), Got::Status(400)),
        ("OPTIONS *", req("OPTIONS", "*", &[]), Got::Status(200)),
        (
            ":path empty",
            req("GET", "", &[]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "no :path",
            header_block(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", HOST),
            ]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "connection",
            req("GET", "/", &[("connection", "close")]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "keep-alive",
            req("GET", "/", &[("keep-alive", "timeout=5")]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "proxy-connection",
            req("GET", "/", &[("proxy-connection", "keep-alive")]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "transfer-encoding",
            req("GET", "/", &[("transfer-encoding", "chunked")]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "upgrade",
            req("GET", "/", &[("upgrade", "websocket")]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "te: gzip",
            req("GET", "/", &[("te", "gzip")]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "te: trailers",
            req("GET", "/", &[("te", "trailers")]),
            Got::Status(200),
        ),
        (
            "uppercase name",
            req("GET", "/", &[("X-Upper", "1")]),
            Got::GoAway(PROTOCOL_ERROR),
        ),
        (
            "pseudo-header after a field",
            header_block(&[
                (":method", "GET"),
                ("x-a", "1"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", HOST),
            ]),
            Got::Reset(PROTOCOL_ERROR),
        ),
        (
            "CONNECT",
            header_block(&[(":method", "CONNECT"), (":authority", "h2.test:443")]),
            Got::Status(400),
        ),
        (
            ":scheme ftp",
            header_block(&[
                (":method", "GET"),
                (":scheme", "ftp"),
                (":path", "/"),
                (":authority", HOST),
            ]),
            Got::Status(400),
        ),
    ];
    let mut failures = Vec::new();
    let mut to_backend = 0;
    for (name, block, want) in &cases {
        // One connection per case: some are connection errors.
        let mut conn = H2Raw::connect(s.tg.http_addr()).await;
        let before = s.requests.load(Ordering::Relaxed);
        conn.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
            .await
            .expect("send");
        let got = match conn.wait_stream(1, WAIT).await {
            (Some(status), _) => Some(Got::Status(status)),
            (None, Some(code)) => Some(Got::Reset(code)),
            (None, None) => conn.goaway().map(|(_, code)| Got::GoAway(code)),
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let forwarded = s.requests.load(Ordering::Relaxed) - before;
        to_backend += forwarded;
        println!("{name:<32} {got:?} (forwarded: {forwarded})");
        if got.as_ref() != Some(want) {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
        // Everything answered 200 is forwarded, except `OPTIONS *`.
        if (matches!(want, Got::Status(200)) && *name != "OPTIONS *") != (forwarded == 1) {
            failures.push(format!("{name}: forwarded {forwarded}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(to_backend, 4);
    let metrics = s.tg.metrics().await;
    for reason in ["host", "target"] {
        let n = metric_sum(
            &metrics,
            "tollgate_bad_requests_total",
            &[("reason", reason)],
        );
        assert!(n.unwrap_or(0.0) >= 2.0, "{reason}: {n:?}");
    }
}
