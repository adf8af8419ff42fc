//! The client's request head on the fast path: parsed, qualified (only
//! heads the fast path serves exactly as the hyper path does), and written
//! for the upstream.
//!
//! Invariants:
//! - Qualifies only a keep-alive HTTP/1.1 `GET` without a body: an
//!   origin-form target of plain URI characters, exactly one valid `Host`,
//!   none of `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`,
//!   `Transfer-Encoding`, `Upgrade`, `Expect`, `Content-Length`,
//!   `HTTP2-Settings`, at most one `X-Request-Id`, and no more than
//!   [`MAX_HEADERS`] fields. Anything else is [`NotFast`]: the hyper path
//!   serves it from the same bytes.
//! - The upstream head is the hyper path's for such a request from an
//!   untrusted client: the client's fields (names in lowercase) minus its
//!   forwarding headers, which are replaced by the connection's
//!   (`X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto`/`-Host`/`-Port`),
//!   and an `X-Request-Id` added when the client sent none or an invalid
//!   one.
//! - Never panics on client bytes: httparse parses, slices are checked.

use std::mem::MaybeUninit;

use http::HeaderValue;

use super::names::Name;
use crate::proxy::headers::{valid_request_id, ClientInfo};

/// Most request header fields the fast path reads; a head with more goes
/// to hyper (whose limit is 100).
pub const MAX_HEADERS: usize = 64;

/// A head the fast path does not serve (the hyper path does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFast;

/// A qualified request head, borrowed from the connection's buffer.
#[derive(Debug)]
pub struct Head<'b> {
    /// Bytes the head took in the buffer.
    pub len: usize,
    /// The request target (origin-form), and its path (before `?`).
    pub target: &'b str,
    pub path: &'b str,
    /// The `Host` field's value.
    pub host: &'b str,
    /// A valid `X-Request-Id` from the client, forwarded as it is.
    pub request_id: Option<&'b [u8]>,
    pub user_agent: &'b [u8],
    pub referer: &'b [u8],
    /// The head's size in canonical form, as the hyper path counts it
    /// ([`crate::proxy::headers::h1_head_len`]).
    pub canonical_len: usize,
    /// The fields, as parsed, and what each one's name is (told once, for
    /// the qualification and the upstream head alike).
    pub fields: &'b [httparse::Header<'b>],
    pub names: [Name; MAX_HEADERS],
}

/// Parses the request head at the start of `buf` into `fields` (left
/// uninitialised by the caller: httparse writes only what it parses):
/// `Ok(None)` when more bytes are needed.
pub fn parse<'b>(
    buf: &'b [u8],
    fields: &'b mut [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS],
) -> Result<Option<Head<'b>>, NotFast> {
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(buf, fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(NotFast),
    };
    if request.method != Some("GET") || request.version != Some(1) {
        return Err(NotFast);
    }
    let target = request.path.ok_or(NotFast)?;
    if !target.starts_with('/') || !target.bytes().all(uri_byte) {
        return Err(NotFast);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let mut host = None;
    let mut request_id = None;
    let mut user_agent: Option<&[u8]> = None;
    let mut referer: Option<&[u8]> = None;
    let mut field_bytes = 0usize;
    let parsed: &'b [httparse::Header<'b>] = request.headers;
    let mut names = [Name::Other; MAX_HEADERS];
    for (field, slot) in parsed.iter().zip(names.iter_mut()) {
        field_bytes += field.name.len() + field.value.len() + 4;
        let name = Name::of(field.name.as_bytes());
        *slot = name;
        if name.hop_by_hop() || name == Name::ContentLength || name == Name::Http2Settings {
            return Err(NotFast);
        }
        match name {
            Name::Host => {
                if host.is_some() {
                    return Err(NotFast);
                }
                host = Some(field.value);
            }
            Name::RequestId => {
                if request_id.is_some() {
                    return Err(NotFast);
                }
                request_id = Some(field.value);
            }
            Name::UserAgent => {
                user_agent.get_or_insert(field.value);
            }
            Name::Referer => {
                referer.get_or_insert(field.value);
            }
            _ => {}
        }
    }
    let host = host
        .and_then(|h| std::str::from_utf8(h).ok())
        .filter(|h| crate::table::host::is_valid(h))
        .ok_or(NotFast)?;
    Ok(Some(Head {
        len,
        target,
        path,
        host,
        request_id: request_id.filter(|id| valid_request_id(id)),
        user_agent: user_agent.unwrap_or_default(),
        referer: referer.unwrap_or_default(),
        // `GET SP target SP HTTP/1.1 CRLF`, the fields, the final CRLF.
        canonical_len: 3 + 1 + target.len() + 1 + 8 + 2 + field_bytes + 2,
        fields: parsed,
        names,
    }))
}

/// Bytes of an origin-form target the fast path takes as they are
/// (RFC 3986 unreserved, sub-delims, `:@/?%`); anything else goes to the
/// hyper path, whose URI parser decides.
fn uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'%'
        )
}

/// Writes the upstream's head for `head` into `out` (cleared first):
/// `new_id` is the request id generated for a client that sent no valid one.
pub fn write_upstream(
    out: &mut Vec<u8>,
    head: &Head<'_>,
    client: &ClientInfo,
    new_id: Option<&HeaderValue>,
) {
    out.clear();
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (field, &kind) in head.fields.iter().zip(head.names.iter()) {
        let name = field.name.as_bytes();
        let keep = match kind {
            Name::RequestId => new_id.is_none(),
            other => !other.forwarding(),
        };
        if keep {
            super::response::lowercase_into(out, name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(field.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(id) = new_id {
        line(out, b"x-request-id: ", id.as_bytes());
    }
    line(out, b"x-forwarded-for: ", client.peer_ip.as_bytes());
    line(out, b"x-real-ip: ", client.peer_ip.as_bytes());
    line(out, b"x-forwarded-proto: ", client.proto.as_bytes());
    line(out, b"x-forwarded-host: ", head.host.as_bytes());
    line(out, b"x-forwarded-port: ", client.port.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
