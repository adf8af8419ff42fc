//! Request-framing check on the raw HTTP/1.1 byte stream: flags a request
//! head that carries both `Content-Length` and `Transfer-Encoding`, or a
//! `Transfer-Encoding` other than exactly one `chunked`.
//!
//! hyper's parser resolves the first ambiguity safely (Transfer-Encoding
//! wins, Content-Length is dropped, the connection closes after the
//! response) and accepts `chunked, chunked` or several Transfer-Encoding
//! headers ending in `chunked`, but drops the evidence. We answer such
//! requests with 400 as nginx does: they are request-smuggling attempts,
//! not clients to serve. Everything else hyper refuses itself (obs-fold,
//! whitespace before the colon, control characters in values, conflicting
//! Content-Lengths, a final coding other than `chunked`, HTTP/1.0 with
//! Transfer-Encoding, HTTP/0.9, malformed chunked bodies).
//!
//! Invariants:
//! - Reads bytes only as the connection's IO wrapper sees them; never
//!   buffers more than one line prefix ([`PREFIX`] bytes) and never panics.
//! - Follows framing exactly while it can (heads, and Content-Length
//!   bodies); on anything it cannot follow (chunked bodies, upgrades,
//!   HTTP/2, a Content-Length that is not plain digits fitting a `u64` or
//!   that is not seen whole) it switches itself off for the rest of the
//!   connection. Off only loses the 400: hyper's handling still applies.

use crate::metrics::BadRequest;

/// Bytes of a line kept to recognise header names and parse a length.
const PREFIX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before or inside a request head.
    Head,
    /// Skipping this many body bytes.
    Body(u64),
    /// Gave up following the framing.
    Off,
}

#[derive(Debug)]
pub struct FramingCheck {
    state: State,
    line: [u8; PREFIX],
    line_len: usize,
    /// The current line was longer than [`PREFIX`].
    line_cut: bool,
    in_head: bool,
    content_length: Option<u64>,
    transfer_encoding: bool,
    /// A Transfer-Encoding header other than exactly one `chunked`.
    odd_encoding: bool,
    upgrade: bool,
    heads: u64,
    /// 1-based number of the first bad head, and what was wrong with it.
    bad: Option<(u64, BadRequest)>,
}

impl Default for FramingCheck {
    fn default() -> Self {
        Self {
            state: State::Head,
            line: [0; PREFIX],
            line_len: 0,
            line_cut: false,
            in_head: false,
            content_length: None,
            transfer_encoding: false,
            odd_encoding: false,
            upgrade: false,
            heads: 0,
            bad: None,
        }
    }
}

fn strip_prefix_ignore_case<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| line.get(prefix.len()..))
        .flatten()
}

/// `1*DIGIT` that fits a `u64` (RFC 9110 §8.6; no sign, unlike
/// `str::parse`).
fn content_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl FramingCheck {
    /// A check that starts at a head boundary after `heads` request heads
    /// (checked by someone else: the HTTP/1.1 fast path, which serves only
    /// heads without a body or framing headers), so the next head is
    /// numbered `heads + 1`.
    pub fn after_heads(heads: u64) -> Self {
        Self {
            heads,
            ..Self::default()
        }
    }

    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    pub fn off(&mut self) {
        self.state = State::Off;
    }

    /// The 1-based number of the first bad request head (both
    /// Content-Length and Transfer-Encoding, or a Transfer-Encoding other
    /// than one `chunked`), and what was wrong with it.
    pub fn bad_head(&self) -> Option<(u64, BadRequest)> {
        self.bad
    }

    /// Feeds bytes read from the client, in order.
    pub fn feed(&mut self, mut data: &[u8]) {
        loop {
            match self.state {
                State::Off => return,
                State::Body(remaining) => {
                    let take = remaining.min(data.len() as u64);
                    data = data.get(take as usize..).unwrap_or_default();
                    let left = remaining - take;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                    if data.is_empty() {
                        return;
                    }
                }
                State::Head => {
                    let Some(end) = memchr::memchr(b'\n', data) else {
                        self.push_line(data);
                        return;
                    };
                    self.push_line(data.get(..end).unwrap_or_default());
                    data = data.get(end + 1..).unwrap_or_default();
                    self.end_line();
                    self.line_len = 0;
                    self.line_cut = false;
                    if data.is_empty() {
                        return;
                    }
                }
            }
        }
    }

    fn push_line(&mut self, bytes: &[u8]) {
        let room = PREFIX - self.line_len;
        let take = bytes.len().min(room);
        self.line_cut |= take < bytes.len();
        if let (Some(dst), Some(src)) = (
            self.line.get_mut(self.line_len..self.line_len + take),
            bytes.get(..take),
        ) {
            dst.copy_from_slice(src);
            self.line_len += take;
        }
    }

    fn end_line(&mut self) {
        let mut line = self.line.get(..self.line_len).unwrap_or_default();
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if !self.in_head {
            // Empty lines before a request line are allowed (RFC 9112 §2.2).
            if !line.is_empty() {
                if line.starts_with(b"PRI ") {
                    self.state = State::Off; // HTTP/2 preface
                }
                self.in_head = true;
            }
            return;
        }
        if line.is_empty() {
            self.end_head();
        } else if let Some(value) = strip_prefix_ignore_case(line, b"content-length:") {
            // Only a value seen whole is followed: a cut line may have lost
            // digits (`000…05` cut to `000…0`), and a wrong length would
            // take body bytes for a head or a head for body bytes.
            match content_length(value.trim_ascii()).filter(|_| !self.line_cut) {
                Some(n) => self.content_length = Some(n),
                None => self.state = State::Off,
            }
        } else if let Some(value) = strip_prefix_ignore_case(line, b"transfer-encoding:") {
            // Exactly one `chunked` (any case); hyper refuses a final coding
            // other than chunked, this also refuses lists and repeats.
            self.odd_encoding |= self.transfer_encoding
                || self.line_cut
                || !value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            self.transfer_encoding = true;
        } else if strip_prefix_ignore_case(line, b"upgrade:").is_some() {
            self.upgrade = true;
        }
    }

    fn end_head(&mut self) {
        self.heads += 1;
        if self.bad.is_none() {
            if self.transfer_encoding && self.content_length.is_some() {
                self.bad = Some((self.heads, BadRequest::FramingConflict));
            } else if self.odd_encoding {
                self.bad = Some((self.heads, BadRequest::TransferEncoding));
            }
        }
        self.state = if self.transfer_encoding || self.upgrade {
            State::Off
        } else {
            match self.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        };
        if self.state == State::Off {
            return;
        }
        self.in_head = false;
        self.content_length = None;
        self.transfer_encoding = false;
        self.odd_encoding = false;
        self.upgrade = false;
    }
}

#[cfg(test)]
mod tests {
    use super::FramingCheck;
    use crate::metrics::BadRequest;

    fn feed_in_pieces(input: &[u8], piece: usize) -> FramingCheck {
        let mut check = FramingCheck::default();
        for chunk in input.chunks(piece) {
            check.feed(chunk);
        }
        check
    }

    #[test]
    fn flags_both_headers_in_any_split() {
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for piece in [1, 2, 3, 7, 64, 1000] {
            assert_eq!(
                feed_in_pieces(input, piece).bad_head(),
                Some((1, BadRequest::FramingConflict)),
                "piece {piece}"
            );
        }
    }

    #[test]
    fn follows_content_length_bodies_across_keep_alive() {
        // A body that looks like a bad head must not be taken for one.
        let body = b"Transfer-Encoding: x\r\nContent-Length: 1\r\n\r\n";
        let mut input = format!(
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
        input.extend_from_slice(b"GET /c HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n");
        for piece in [1, 5, 1000] {
            assert_eq!(
                feed_in_pieces(&input, piece).bad_head(),
                Some((3, BadRequest::FramingConflict)),
                "piece {piece}"
            );
        }
    }

    #[test]
    fn flags_transfer_encoding_other_than_one_chunked() {
        let long = format!("Transfer-Encoding: {}chunked\r\n", " ".repeat(80));
        for te in [
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: identity\r\n",
            long.as_str(),
        ] {
            let input = format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n0\r\n\r\n");
            for piece in [1, 3, 1000] {
                assert_eq!(
                    feed_in_pieces(input.as_bytes(), piece).bad_head(),
                    Some((1, BadRequest::TransferEncoding)),
                    "{te:?} piece {piece}"
                );
            }
        }
        for te in ["Transfer-Encoding: chunked", "transfer-encoding:\tChunked "] {
            let input = format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n\r\n0\r\n\r\n");
            assert_eq!(
                feed_in_pieces(input.as_bytes(), 2).bad_head(),
                None,
                "{te:?}"
            );
        }
    }

    #[test]
    fn clean_traffic_is_never_flagged() {
        let input = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n";
        let check = feed_in_pieces(input, 4);
        assert_eq!(check.bad_head(), None);
        assert!(!check.is_off());
    }

    #[test]
    fn gives_up_where_it_cannot_follow() {
        let mut check = FramingCheck::default();
        check.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        assert!(check.is_off());
        let mut check = FramingCheck::default();
        check.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(check.is_off());
        let mut check = FramingCheck::default();
        check.feed(b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert!(check.is_off());
    }

    /// Found by the fuzz target: a Content-Length line longer than the
    /// kept prefix was parsed from its cut prefix (`0…05` as `0…0`), so the
    /// check took the body for the next head; and `+5` was read as 5.
    #[test]
    fn a_content_length_it_cannot_see_whole_turns_it_off() {
        let zeros = "0".repeat(60);
        let body = "GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let input = format!(
            "POST / HTTP/1.1\r\nContent-Length: {zeros}{}\r\n\r\n{body}",
            body.len()
        );
        for piece in [1, 7, 1000] {
            let check = feed_in_pieces(input.as_bytes(), piece);
            assert_eq!(check.bad_head(), None, "piece {piece}: the body is no head");
            assert!(check.is_off(), "piece {piece}");
        }
        let mut check = FramingCheck::default();
        check.feed(b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n");
        assert!(check.is_off());
    }
}

#[cfg(test)]
mod properties {
    use super::FramingCheck;

    /// However a valid stream of requests is split into reads, the check
    /// reaches the same verdict.
    #[test]
    fn verdict_does_not_depend_on_read_boundaries() {
        let mut rng = fastrand::Rng::with_seed(3);
        for round in 0..2_000 {
            let mut stream = Vec::new();
            let mut expected = None;
            for i in 1..=rng.u64(1..6) {
                let body = rng.usize(0..40);
                let bad = rng.u8(..10) == 0;
                stream.extend_from_slice(
                    format!("POST /{i} HTTP/1.1\r\nHost: h\r\nContent-Length: {body}\r\n")
                        .as_bytes(),
                );
                if bad {
                    stream.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                    expected.get_or_insert(i);
                }
                stream.extend_from_slice(b"\r\n");
                stream.extend(std::iter::repeat_n(b'x', body));
                if bad {
                    break; // the connection is closed after a bad head
                }
            }
            let mut check = FramingCheck::default();
            let mut rest = stream.as_slice();
            while !rest.is_empty() {
                let take = rng.usize(1..=rest.len().min(50));
                let (head, tail) = rest.split_at(take);
                check.feed(head);
                rest = tail;
            }
            assert_eq!(
                check.bad_head().map(|(n, _)| n),
                expected,
                "round {round}: {:?}",
                String::from_utf8_lossy(&stream)
            );
        }
    }
}

#[cfg(test)]
mod fuzz;
