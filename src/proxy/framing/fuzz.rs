//! Fuzz target: the request-framing check ([`super::FramingCheck`]).
//!
//! Invariants: on generated streams of requests (every combination of
//! Content-Length and Transfer-Encoding lines, valid, repeated, padded past
//! the check's line prefix, malformed; Upgrade; bare-LF line endings;
//! bodies that look like request heads; the HTTP/2 preface; byte
//! mutations), the check's verdict and whether it gave up agree with a
//! reference model that reads the whole stream at once, and neither
//! depends on how the stream is split into reads.

use proptest::prelude::*;

use super::{FramingCheck, PREFIX};
use crate::fuzzing::{self, mutate, mutations};
use crate::metrics::BadRequest;

/// What the model says about a stream: the first bad head, and whether
/// the check can no longer follow the framing.
type Verdict = (Option<(u64, BadRequest)>, bool);

/// Reference model: reads whole lines of the complete stream.
fn model(stream: &[u8]) -> Verdict {
    let mut rest = stream;
    let mut bad = None;
    let mut heads = 0u64;
    let mut in_head = false;
    let (mut length, mut chunked, mut odd, mut upgrade) = (None::<u64>, false, false, false);
    loop {
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return (bad, false);
        };
        let raw = &rest[..nl];
        rest = &rest[nl + 1..];
        let cut = raw.len() > PREFIX;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if !in_head {
            if !line.is_empty() {
                if line.starts_with(b"PRI ") {
                    return (bad, true);
                }
                in_head = true;
            }
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if line.is_empty() {
            heads += 1;
            if bad.is_none() {
                if chunked && length.is_some() {
                    bad = Some((heads, BadRequest::FramingConflict));
                } else if odd {
                    bad = Some((heads, BadRequest::TransferEncoding));
                }
            }
            if chunked || upgrade {
                return (bad, true);
            }
            let body = length.unwrap_or(0);
            if body > rest.len() as u64 {
                return (bad, false);
            }
            rest = &rest[body as usize..];
            (length, chunked, odd, upgrade) = (None, false, false, false);
            in_head = false;
        } else if let Some(value) = lower.strip_prefix(b"content-length:") {
            // Exactly a decimal number that fits, seen whole; else give up.
            let digits = value.trim_ascii();
            let number = (!cut && !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
                .flatten();
            match number {
                Some(n) => length = Some(n),
                None => return (bad, true),
            }
        } else if let Some(value) = lower.strip_prefix(b"transfer-encoding:") {
            odd |= chunked || cut || value.trim_ascii() != b"chunked";
            chunked = true;
        } else if lower.starts_with(b"upgrade:") {
            upgrade = true;
        }
    }
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

/// One header line that matters to framing (without its line ending).
fn framing_line() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        (0u64..64).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_string()),
        (0usize..60, 0u64..64).prop_map(|(z, n)| format!("{}{n}", "0".repeat(z))),
        Just("+5".to_string()),
        Just("-1".to_string()),
        Just("5, 5".to_string()),
        Just("0x10".to_string()),
        Just(String::new()),
    ];
    let name_cl = prop_oneof![
        Just("Content-Length"),
        Just("content-length"),
        Just("CONTENT-LENGTH"),
        Just("Content-Length ")
    ];
    let name_te = prop_oneof![
        Just("Transfer-Encoding"),
        Just("transfer-encoding"),
        Just("Transfer-Encoding ")
    ];
    let coding = prop_oneof![
        Just("chunked"),
        Just("Chunked"),
        Just("chunked, chunked"),
        Just("gzip, chunked"),
        Just("identity"),
        Just("chunked\r"),
        Just("")
    ];
    prop_oneof![
        3 => (name_cl, 0usize..70, number, 0usize..4)
            .prop_map(|(n, before, v, after)| format!("{n}:{}{v}{}", pad(before), pad(after))),
        3 => (name_te, 0usize..70, coding)
            .prop_map(|(n, before, v)| format!("{n}:{}{v}", pad(before))),
        1 => Just("Upgrade: websocket".to_string()),
        1 => Just("Host: a".to_string()),
        1 => "X-[a-z]{1,3}: [ -~]{0,80}",
    ]
}

/// One request: leading empty lines, request line, headers, body.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let start = prop_oneof![
        8 => Just("POST / HTTP/1.1"),
        1 => Just("PRI * HTTP/2.0"),
        1 => Just("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1"),
    ];
    let eol = prop_oneof![4 => Just("\r\n"), 1 => Just("\n")];
    let body = prop_oneof![
        Just(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    (
        0usize..2,
        start,
        proptest::collection::vec((framing_line(), eol.clone()), 0..5),
        eol,
        body,
        0usize..80,
    )
        .prop_map(|(empty, start, lines, eol, body, len)| {
            let mut out = "\r\n".repeat(empty).into_bytes();
            out.extend_from_slice(format!("{start}{eol}").as_bytes());
            for (line, end) in &lines {
                out.extend_from_slice(format!("{line}{end}").as_bytes());
            }
            out.extend_from_slice(eol.as_bytes());
            // As many body bytes as the last plain Content-Length asks
            // (up to the generated body), so later requests line up.
            let wanted = lines
                .iter()
                .rev()
                .find_map(|(l, _)| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().ok())
                })
                .flatten()
                .unwrap_or(0)
                .min(len);
            out.extend(
                body.iter()
                    .copied()
                    .cycle()
                    .take(if body.is_empty() { 0 } else { wanted }),
            );
            out
        })
}

fn streams() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    let stream = proptest::collection::vec(request(), 1..5)
        .prop_map(|r| r.concat())
        .boxed();
    let stream = prop_oneof![
        3 => stream.clone(),
        1 => (stream, mutations()).prop_map(|(s, m)| mutate(s, &m)),
    ];
    (stream, proptest::collection::vec(1usize..40, 1..8))
}

fn check((stream, splits): (Vec<u8>, Vec<usize>)) -> Result<(), TestCaseError> {
    let expected = model(&stream);
    let mut whole = FramingCheck::default();
    whole.feed(&stream);
    prop_assert_eq!(
        (whole.bad_head(), whole.is_off()),
        expected,
        "{:?}",
        String::from_utf8_lossy(&stream)
    );
    let mut pieces = FramingCheck::default();
    let mut rest = stream.as_slice();
    for &n in splits.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(n.min(rest.len()));
        pieces.feed(head);
        rest = tail;
    }
    prop_assert_eq!(
        (pieces.bad_head(), pieces.is_off()),
        expected,
        "split {:?}",
        splits
    );
    Ok(())
}

#[test]
fn framing_check_agrees_with_the_model() {
    fuzzing::run("proxy::framing", 600, streams(), check);
}
