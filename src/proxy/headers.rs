//! Header rewriting between client and upstream.
//!
//! Invariants:
//! - Hop-by-hop headers never cross the proxy: requests and responses go
//!   through [`crate::hop_by_hop`], which owns the rules.
//! - X-Forwarded-For is the client chain: an incoming value is kept (and the
//!   peer appended) only when the peer is a trusted proxy; otherwise it is
//!   replaced by the peer address. The same trust decides whether incoming
//!   X-Forwarded-Proto/Host/Port are kept. With the ConfigMap's trust
//!   ([`Forwarding`]), as ingress-nginx: the chain only with
//!   `compute-full-forwarded-for`, else the client IP alone.
//! - X-Real-IP is the request's client IP (see [`super::client_ip`]), the
//!   same address allow/deny lists and rate limits see.
//! - The peer is the connection's client address after the PROXY protocol
//!   header, when `--proxy-protocol` is on.
//! - Header names are static (`from_static`); per-connection values (peer
//!   address, port) are built once per connection, not per request.
//! - A new request id is a slice of a per-thread block of id bytes: no
//!   allocation per id.

use std::net::IpAddr;

use bytes::{BufMut, BytesMut};
use http::header::{Entry, HeaderMap, HeaderName, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The size of an HTTP/1 request head as sent in its canonical form: the
/// request line, `name: value` plus CRLF per field, and the final CRLF (a
/// client's extra whitespace around values is not counted, as the parser
/// has dropped it). One pass over the fields; no allocation.
pub fn h1_head_len<B>(req: &http::Request<B>) -> usize {
    let uri = req.uri();
    let target = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => {
            scheme.len()
                + 3
                + authority.as_str().len()
                + uri.path_and_query().map_or(0, |p| p.as_str().len())
        }
        (None, Some(authority)) => authority.as_str().len(),
        _ => uri.path_and_query().map_or(1, |p| p.as_str().len()),
    };
    // `METHOD SP target SP HTTP/1.1 CRLF`
    let line = req.method().as_str().len() + 1 + target + 1 + 8 + 2;
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + fields + 2
}

/// What the forwarding headers need to know about the client connection;
/// built once per connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The connection is TLS (HTTPS listener).
    pub tls: bool,
    /// The server name the TLS client asked for (lowercase).
    pub sni: Option<smol_str::SmolStr>,
    /// The peer's address (after PROXY protocol), canonical (IPv4-mapped
    /// IPv6 as IPv4).
    pub peer: IpAddr,
    /// `peer` as a header value.
    pub peer_ip: HeaderValue,
    /// `peer` is in `--trusted-proxies`.
    pub trusted: bool,
    pub proto: HeaderValue,
    pub port: HeaderValue,
}

/// How one request's forwarding headers are set: decided per request
/// from the trust in force (`--trusted-proxies`, or the ConfigMap's
/// `use-forwarded-headers` / `enable-real-ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// Incoming X-Forwarded-Proto/Host/Port are kept (a trusted peer).
    pub keep_forwarded: bool,
    pub xff: Xff,
}

/// What X-Forwarded-For going upstream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xff {
    /// The peer address only (an untrusted peer).
    Peer,
    /// The incoming chain plus the peer (a trusted peer; ingress-nginx's
    /// `compute-full-forwarded-for`).
    Chain,
    /// The request's client IP only (ingress-nginx's default: `$remote_addr`
    /// after the real-IP module).
    Client,
}

impl Forwarding {
    /// `--trusted-proxies`: a trusted peer's chain and X-Forwarded-* are
    /// kept, an untrusted peer's are replaced.
    pub fn of_flag(trusted: bool) -> Self {
        Forwarding {
            keep_forwarded: trusted,
            xff: if trusted { Xff::Chain } else { Xff::Peer },
        }
    }
}

/// Sets X-Forwarded-* and X-Real-IP on a request going upstream, with
/// `--trusted-proxies`' rule ([`Forwarding::of_flag`]).
/// `client_ip` is the request's client IP ([`super::client_ip`], computed
/// from these headers before the call); `host` is the request's Host (or
/// `:authority`).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: &ClientInfo,
    client_ip: IpAddr,
    host: Option<HeaderValue>,
) {
    set_forwarded_as(
        headers,
        client,
        Forwarding::of_flag(client.trusted),
        client_ip,
        host,
    );
}

/// [`set_forwarded`] with the request's own [`Forwarding`].
pub fn set_forwarded_as(
    headers: &mut HeaderMap,
    client: &ClientInfo,
    forwarding: Forwarding,
    client_ip: IpAddr,
    host: Option<HeaderValue>,
) {
    // Grow the map once rather than once per header added below.
    headers.reserve(6);
    // The peer's value is pre-built; only a client named by a trusted
    // proxy's X-Forwarded-For is formatted here.
    let real = if client_ip == client.peer {
        client.peer_ip.clone()
    } else {
        HeaderValue::from_str(&client_ip.to_string()).unwrap_or_else(|_| client.peer_ip.clone())
    };
    let incoming_xff = forwarding.xff == Xff::Chain && headers.contains_key(X_FORWARDED_FOR);
    if incoming_xff {
        let mut buf = BytesMut::with_capacity(64);
        for value in headers.get_all(X_FORWARDED_FOR) {
            if !buf.is_empty() {
                buf.put_slice(b", ");
            }
            buf.put_slice(value.as_bytes());
        }
        buf.put_slice(b", ");
        buf.put_slice(client.peer_ip.as_bytes());
        match HeaderValue::from_maybe_shared(buf.freeze()) {
            Ok(v) => {
                headers.insert(X_FORWARDED_FOR, v);
            }
            Err(_) => {
                headers.insert(X_FORWARDED_FOR, client.peer_ip.clone());
            }
        }
    } else if forwarding.xff == Xff::Client {
        headers.insert(X_FORWARDED_FOR, real.clone());
    } else {
        headers.insert(X_FORWARDED_FOR, client.peer_ip.clone());
    }
    headers.insert(X_REAL_IP, real);
    let keep = forwarding.keep_forwarded;
    if !keep || !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, client.proto.clone());
    }
    if !keep || !headers.contains_key(X_FORWARDED_HOST) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST, h);
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
    if !keep || !headers.contains_key(X_FORWARDED_PORT) {
        headers.insert(X_FORWARDED_PORT, client.port.clone());
    }
}

/// Keeps a valid incoming X-Request-Id or sets a new one; returns it as
/// stored in `headers` (one lookup, no clone).
pub fn ensure_request_id(headers: &mut HeaderMap) -> &HeaderValue {
    match headers.entry(X_REQUEST_ID) {
        Entry::Occupied(mut entry) => {
            if !valid_request_id(entry.get().as_bytes()) {
                entry.insert(new_request_id());
            }
            entry.into_mut()
        }
        Entry::Vacant(entry) => entry.insert(new_request_id()),
    }
}

/// 1..=128 characters of `[A-Za-z0-9._-]`.
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Bytes of request ids carved from one allocation (per worker thread).
const ID_ARENA: usize = 4096;

thread_local! {
    /// Where this thread writes new request ids: each id is a slice of a
    /// shared block (a reference count, no allocation), and a new block is
    /// taken every `ID_ARENA / 32` ids.
    static ID_BLOCK: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// A random 128-bit id as 32 lowercase hex digits (like ingress-nginx's `$req_id`).
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut out = [0u8; 32];
    for digit in &mut out {
        *digit = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    let shared = ID_BLOCK.try_with(|block| {
        let mut block = block.try_borrow_mut().ok()?;
        if block.capacity() - block.len() < out.len() {
            *block = BytesMut::with_capacity(ID_ARENA);
        }
        block.put_slice(&out);
        Some(block.split().freeze())
    });
    match shared {
        Ok(Some(bytes)) => HeaderValue::from_maybe_shared(bytes),
        _ => HeaderValue::from_bytes(&out),
    }
    .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn h1_head_len_counts_the_canonical_head() {
        let req = http::Request::get("/abc?q")
            .header("host", "a.test")
            .header("x-pad", "ppp")
            .body(())
            .unwrap();
        let raw = "GET /abc?q HTTP/1.1\r\nhost: a.test\r\nx-pad: ppp\r\n\r\n";
        assert_eq!(super::h1_head_len(&req), raw.len());
        let absolute = http::Request::get("http://a.test:8080/x").body(()).unwrap();
        let raw = "GET http://a.test:8080/x HTTP/1.1\r\n\r\n";
        assert_eq!(super::h1_head_len(&absolute), raw.len());
    }

    use super::*;
    use crate::proxy::client_ip::client_ip;

    /// Loopback (the test peer) and 10/8 are trusted proxies.
    fn trusted() -> Vec<ipnet::IpNet> {
        vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]
    }

    fn client(trusted: bool) -> ClientInfo {
        ClientInfo {
            tls: false,
            sni: None,
            peer: IpAddr::from([127, 0, 0, 9]),
            peer_ip: HeaderValue::from_static("127.0.0.9"),
            trusted,
            proto: HeaderValue::from_static("http"),
            port: HeaderValue::from_static("8080"),
        }
    }

    #[test]
    fn untrusted_forwarded_for_is_replaced() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        let c = client(false);
        let ip = client_ip(c.peer, &[], &h);
        set_forwarded(&mut h, &c, ip, Some(HeaderValue::from_static("a.com")));
        assert_eq!(h.get(X_FORWARDED_FOR).unwrap(), "127.0.0.9");
        assert_eq!(h.get(X_REAL_IP).unwrap(), "127.0.0.9");
        assert_eq!(h.get(X_FORWARDED_PROTO).unwrap(), "http");
        assert_eq!(h.get(X_FORWARDED_HOST).unwrap(), "a.com");
        assert_eq!(h.get(X_FORWARDED_PORT).unwrap(), "8080");
        assert_eq!(ensure_request_id(&mut h).len(), 32);
        assert_eq!(h.get(X_REQUEST_ID).unwrap().len(), 32);
    }

    #[test]
    fn trusted_forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.0.0.1"),
        );
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        let c = client(true);
        let ip = client_ip(c.peer, &trusted(), &h);
        set_forwarded(&mut h, &c, ip, None);
        assert_eq!(
            h.get(X_FORWARDED_FOR).unwrap(),
            "6.6.6.6, 1.2.3.4, 10.0.0.1, 10.0.0.2, 127.0.0.9"
        );
        // The right-most address no trusted proxy vouches for, not the
        // left-most (which the client wrote itself).
        assert_eq!(h.get(X_REAL_IP).unwrap(), "1.2.3.4");
        assert_eq!(ensure_request_id(&mut h), "abc-123");
    }

    #[test]
    fn trusted_peer_without_forwarded_for_is_the_real_ip() {
        let mut h = HeaderMap::new();
        let c = client(true);
        let ip = client_ip(c.peer, &trusted(), &h);
        set_forwarded(&mut h, &c, ip, None);
        assert_eq!(h.get(X_FORWARDED_FOR).unwrap(), "127.0.0.9");
        assert_eq!(h.get(X_REAL_IP).unwrap(), "127.0.0.9");
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(b"abc-DEF_1.2"));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"a b"));
        assert!(!valid_request_id(&[b'a'; 129]));
        assert_ne!(new_request_id(), new_request_id());
    }
}

#[cfg(test)]
mod fuzz;
