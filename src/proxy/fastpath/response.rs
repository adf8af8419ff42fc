//! The upstream's response head on the fast path: parsed, and written for
//! the client as the hyper path writes it; and the response body's
//! framing, with the incremental chunked decoder.
//!
//! Invariants:
//! - The client gets what the hyper path sends for the same upstream
//!   response: the status line with the upstream's reason phrase,
//!   header names in lowercase, hop-by-hop headers (and those named in
//!   `Connection`) removed, a `Server` header when the upstream sent none,
//!   `content-length` for a body of known length, a chunked body
//!   (re-encoded) for a chunked or close-delimited one, `content-length: 0`
//!   where an empty body may carry it, and `date` when the upstream sent
//!   none.
//! - Informational (1xx) responses are skipped, as hyper's client does; a
//!   `101` was not asked for (the fast path never forwards an upgrade)
//!   and is an error.
//! - Parses untrusted bytes with httparse and checked arithmetic only:
//!   never panics, and a head or chunk it cannot read is an error (502 or
//!   a cut connection, as on the hyper path).

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::SystemTime;

use http::HeaderValue;

use super::names::Name;

/// Most response header fields read (hyper's client default).
const MAX_HEADERS: usize = 100;

/// What the response side adds to every response (as
/// [`crate::proxy::response::finish`]): `Server` when the response has
/// none, and HSTS on HTTPS.
#[derive(Debug)]
pub struct Added<'a> {
    pub server: &'a HeaderValue,
    pub hsts: Option<&'a HeaderValue>,
}

impl Added<'_> {
    /// Writes the fields (`server` only when `server`); returns their size
    /// as the record counts it.
    pub fn write(&self, out: &mut Vec<u8>, server: bool) -> u64 {
        let mut counted = 0;
        if server {
            out.extend_from_slice(b"server: ");
            out.extend_from_slice(self.server.as_bytes());
            out.extend_from_slice(b"\r\n");
            counted += 6 + self.server.len() + 4;
        }
        if let Some(hsts) = self.hsts {
            out.extend_from_slice(b"strict-transport-security: ");
            out.extend_from_slice(hsts.as_bytes());
            out.extend_from_slice(b"\r\n");
            counted += 25 + hsts.len() + 4;
        }
        counted as u64
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (204, 304, a zero length).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes.
    Close,
}

/// A response head read and written for the client.
#[derive(Debug)]
pub struct Head {
    /// Bytes of the upstream buffer the head (and any skipped 1xx) took.
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The upstream connection may carry another request after this one.
    pub keep_alive: bool,
    /// The size of the head as the access log and metrics count it (the
    /// fields kept plus `Server`, as [`crate::proxy::record::Record::respond`]).
    pub counted: u64,
}

/// Why a response head could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x, or a head httparse refuses, or an invalid length.
    Malformed,
    /// A `101` nobody asked for.
    UnaskedUpgrade,
}

/// Parses the response head at the start of `buf`, skipping 1xx heads,
/// and writes the client's head into `out`: `Ok(None)` when more bytes are
/// needed. `added` are the fields the response side adds.
pub fn parse(buf: &[u8], out: &mut Vec<u8>, added: &Added<'_>) -> Result<Option<Head>, HeadError> {
    let mut skipped = 0usize;
    loop {
        let rest = buf.get(skipped..).unwrap_or_default();
        let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            rest,
            &mut fields,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(HeadError::Malformed),
        };
        let status = response.code.ok_or(HeadError::Malformed)?;
        if status == 101 {
            return Err(HeadError::UnaskedUpgrade);
        }
        if (100..200).contains(&status) {
            skipped += len;
            continue;
        }
        let version = response.version.ok_or(HeadError::Malformed)?;
        let reason = response.reason.unwrap_or("");
        let head = write(out, status, reason, version, response.headers, added)?;
        return Ok(Some(Head {
            len: skipped + len,
            ..head
        }));
    }
}

/// Writes the client's head for one final response.
fn write(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    version: u8,
    fields: &[httparse::Header<'_>],
    added: &Added<'_>,
) -> Result<Head, HeadError> {
    let mut chunked = false;
    let mut encoded = false;
    let mut length: Option<u64> = None;
    let mut close = version == 0;
    let mut connection = false;
    // Each field told once; the second pass reads the kinds back.
    let mut kinds = [Name::Other; MAX_HEADERS];
    for (field, slot) in fields.iter().zip(kinds.iter_mut()) {
        *slot = Name::of(field.name.as_bytes());
        match *slot {
            Name::TransferEncoding => {
                encoded = true;
                // The final coding decides (RFC 9112 §6.3).
                chunked =
                    last_token(field.value).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            }
            Name::ContentLength => {
                for value in field.value.split(|b| *b == b',') {
                    let n = digits(value.trim_ascii()).ok_or(HeadError::Malformed)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(HeadError::Malformed);
                    }
                    length = Some(n);
                }
            }
            Name::Connection => {
                connection = true;
                for token in field.value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                        close = false;
                    }
                }
            }
            _ => {}
        }
    }
    let bodiless = status == 204 || status == 304;
    let framing = if bodiless {
        Framing::Empty
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = itoa::Buffer::new();
    out.extend_from_slice(code.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut counted = 0u64;
    let mut has_server = false;
    let mut has_date = false;
    let mut wrote_length = false;
    for (field, &kind) in fields.iter().zip(kinds.iter()) {
        let name = field.name.as_bytes();
        let dropped = match kind {
            name if name.hop_by_hop() => true,
            // HSTS replaces the upstream's own (as the hyper path's `insert`).
            Name::Hsts => added.hsts.is_some(),
            _ => false,
        };
        if dropped || (connection && named_in_connection(fields, name)) {
            if kind == Name::Te && has_token(field.value, b"trailers") {
                out.extend_from_slice(b"te: trailers\r\n");
                counted += 2 + 8 + 4;
            }
            continue;
        }
        counted += (name.len() + field.value.len() + 4) as u64;
        match kind {
            Name::ContentLength => {
                // Written once, for a body of that length (hyper's rule); an
                // empty body gets its own `content-length: 0` below.
                if matches!(framing, Framing::Length(_)) && !wrote_length {
                    wrote_length = true;
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(field.value);
                    out.extend_from_slice(b"\r\n");
                }
                continue;
            }
            Name::Server => has_server = true,
            Name::Date => has_date = true,
            _ => {}
        }
        lowercase_into(out, name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value);
        out.extend_from_slice(b"\r\n");
    }
    counted += added.write(out, !has_server);
    match framing {
        Framing::Chunked | Framing::Close => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        Framing::Empty if !bodiless => out.extend_from_slice(b"content-length: 0\r\n"),
        _ => {}
    }
    if !has_date {
        date_line(out);
    }
    Ok(Head {
        len: 0,
        status,
        framing,
        keep_alive: !close && framing != Framing::Close,
        counted: counted + 19,
    })
}

/// Appends the connection-closing header a draining connection's last
/// response carries, before the head's final CRLF (which the caller adds).
pub fn finish_head(out: &mut Vec<u8>, close: bool) {
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether a `Connection` field of the head names `name`.
fn named_in_connection(fields: &[httparse::Header<'_>], name: &[u8]) -> bool {
    fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("connection"))
        .any(|f| has_token(f.value, name))
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn last_token(value: &[u8]) -> Option<&[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .next_back()
}

/// A decimal length: digits only, no sign, no overflow.
pub fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// `name` in lowercase (HTTP/1.1 names are case-insensitive; the hyper path
/// writes them in lowercase).
pub fn lowercase_into(out: &mut Vec<u8>, name: &[u8]) {
    let at = out.len();
    out.extend_from_slice(name);
    if let Some(written) = out.get_mut(at..) {
        written.make_ascii_lowercase();
    }
}

thread_local! {
    /// This thread's `Date` value and the second it is for.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [b' '; 29])) };
}

/// A `date` field with the current time.
pub fn date_line(out: &mut Vec<u8>) {
    out.extend_from_slice(b"date: ");
    date_into(out);
    out.extend_from_slice(b"\r\n");
}

/// The current `Date` value (IMF-fixdate), formatted once per second per
/// thread.
fn date_into(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let written = DATE.try_with(|cell| {
        let mut cell = cell.try_borrow_mut().ok()?;
        if cell.0 != secs {
            let text = httpdate::fmt_http_date(now);
            let bytes = text.as_bytes();
            if bytes.len() != cell.1.len() {
                return None;
            }
            cell.1.copy_from_slice(bytes);
            cell.0 = secs;
        }
        out.extend_from_slice(&cell.1);
        Some(())
    });
    if !matches!(written, Ok(Some(()))) {
        out.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
    }
}

/// Where the chunked decoder is in the upstream body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Reading a chunk-size line (size so far, digits seen, in extension).
    Size(u64, bool, bool),
    /// After the size line's CR.
    SizeLf(u64),
    /// This many data bytes left in the chunk.
    Data(u64),
    /// The CRLF after a chunk's data (`true`: CR seen).
    DataEnd(bool),
    /// In the trailer section: bytes on the current line so far, CR seen.
    Trailer(u64, bool),
    /// The body ended.
    Done,
}

/// The chunked decoder's result over one buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Bytes consumed from the input.
    Consumed(usize),
    /// The body is malformed.
    Malformed,
}

impl Chunk {
    pub fn start() -> Self {
        Chunk::Size(0, false, false)
    }

    /// Decodes from `input`, re-encoding each piece of data into `out` as a
    /// chunk (hyper's server writes one chunk per data frame too);
    /// returns how much of `input` was consumed and the data bytes written
    /// (through `data`). Stops at the end of the body.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, data: &mut u64) -> Decoded {
        let mut at = 0usize;
        while at < input.len() {
            let Some(&b) = input.get(at) else { break };
            match *self {
                Chunk::Size(n, seen, ext) => {
                    at += 1;
                    if b == b'\r' {
                        if !seen {
                            return Decoded::Malformed;
                        }
                        *self = Chunk::SizeLf(n);
                    } else if ext {
                        // A chunk extension: ignored (hyper drops them).
                    } else if let Some(d) = hex(b) {
                        let Some(next) = n.checked_mul(16).and_then(|n| n.checked_add(d)) else {
                            return Decoded::Malformed;
                        };
                        *self = Chunk::Size(next, true, false);
                    } else if (b == b';' || b == b' ' || b == b'\t') && seen {
                        *self = Chunk::Size(n, seen, true);
                    } else {
                        return Decoded::Malformed;
                    }
                }
                Chunk::SizeLf(n) => {
                    at += 1;
                    if b != b'\n' {
                        return Decoded::Malformed;
                    }
                    *self = if n == 0 {
                        Chunk::Trailer(0, false)
                    } else {
                        Chunk::Data(n)
                    };
                }
                Chunk::Data(left) => {
                    let avail = input.len() - at;
                    let take = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    let Some(piece) = input.get(at..at + take) else {
                        return Decoded::Malformed;
                    };
                    let mut size = [0u8; 16];
                    out.extend_from_slice(hex_of(take as u64, &mut size));
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                    *data += take as u64;
                    at += take;
                    let left = left - take as u64;
                    *self = if left == 0 {
                        Chunk::DataEnd(false)
                    } else {
                        Chunk::Data(left)
                    };
                }
                Chunk::DataEnd(cr) => {
                    at += 1;
                    match (cr, b) {
                        (false, b'\r') => *self = Chunk::DataEnd(true),
                        (true, b'\n') => *self = Chunk::start(),
                        _ => return Decoded::Malformed,
                    }
                }
                Chunk::Trailer(line, cr) => {
                    at += 1;
                    match (cr, b) {
                        (false, b'\r') => *self = Chunk::Trailer(line, true),
                        (true, b'\n') if line == 0 => {
                            *self = Chunk::Done;
                            return Decoded::Consumed(at);
                        }
                        (true, b'\n') => *self = Chunk::Trailer(0, false),
                        (true, _) => return Decoded::Malformed,
                        (false, _) => {
                            // Trailer fields are dropped, as the hyper path
                            // does for a client that did not ask for them.
                            if line > 64 * 1024 {
                                return Decoded::Malformed;
                            }
                            *self = Chunk::Trailer(line + 1, false);
                        }
                    }
                }
                Chunk::Done => return Decoded::Consumed(at),
            }
        }
        Decoded::Consumed(at)
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// `n` in lowercase hex, in `buf`.
pub fn hex_of(mut n: u64, buf: &mut [u8; 16]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(slot) = buf.get_mut(at) {
            *slot = HEX.get((n & 0xf) as usize).copied().unwrap_or(b'0');
        }
        n >>= 4;
        if n == 0 || at == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or_default()
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
