//! The PROXY protocol (HAProxy, versions 1 and 2): the header a load
//! balancer puts in front of a TCP connection to tell the real client
//! address (`--proxy-protocol`).
//!
//! This module owns reading that header off a freshly accepted connection,
//! before TLS or HTTP sees a byte.
//!
//! Invariants:
//! - Fail closed: a connection with `--proxy-protocol` must start with a
//!   complete, valid v1 (text) or v2 (binary) header; anything else is an
//!   error and the caller closes the connection. There is no fallback to
//!   "maybe it is HTTP".
//! - Not one byte past the header is consumed: [`read_header`] only peeks
//!   at the socket and then reads exactly the bytes that belong to the
//!   header, so a TLS ClientHello or a pipelined request that arrived in
//!   the same packet stays in the socket for the next reader.
//! - [`parse`] never panics on any input (no indexing, only `get` and
//!   iterators) and decides from a bounded prefix: at most 107 bytes for
//!   v1, 16 + 36 for v2 (TLVs after the addresses are skipped unread).
//! - v2 `LOCAL` (the balancer's own health checks), v2 `UNSPEC`/`UNIX`
//!   addresses and v1 `UNKNOWN` keep the TCP peer ([`Header::source`] is
//!   `None`).
//!
//! Why a parser here rather than the `ppp` crate: the reader has to know,
//! from a partial buffer, whether more bytes can still make a valid header
//! and exactly where the header ends, without consuming anything after it.
//! ppp's partial-input detection for v1 is heuristic (it depends on which
//! field is missing), it validates v2 address families we ignore, and it
//! brings a second major version of thiserror. The format is small and
//! fixed; this parser is ~150 lines, framed first and parsed second, and
//! covered by truncation and random-input tests below.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The 12-byte signature that starts every v2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Fixed part of a v2 header: signature, version/command, family/protocol,
/// length.
const V2_FIXED: usize = 16;
/// Longest v1 header, CRLF included (spec §2.1).
const V1_MAX: usize = 107;
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// Peek buffer: holds a whole v1 header and a v2 header up to its
/// addresses; also the chunk size for skipping v2 TLVs.
const PEEK_BUF: usize = 256;

/// Why a connection's PROXY protocol header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(&'static str),
    #[error("connection closed before a complete PROXY protocol header")]
    Closed,
    #[error("reading the PROXY protocol header")]
    Io(#[source] std::io::Error),
}

/// A complete header, as far as the reader needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Length of the whole header on the wire. For v2 this can exceed the
    /// bytes given to [`parse`]: the TLVs after the addresses are not
    /// needed to decide, only skipped.
    pub len: usize,
    /// The client address the balancer reports; `None` keeps the TCP peer
    /// (v2 `LOCAL`, v2 `UNSPEC` or `UNIX` family, v1 `UNKNOWN`).
    pub source: Option<SocketAddr>,
}

/// What a prefix of the connection's bytes says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Every byte so far belongs to a header that is not complete yet.
    Incomplete,
    Done(Header),
}

/// Decides whether `input` (the first bytes of a connection) starts with a
/// PROXY protocol header. Never panics.
pub fn parse(input: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    match input.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'P') => parse_v1(input),
        Some(b'\r') => parse_v2(input),
        Some(_) => Err(ProxyHeaderError::Invalid("no PROXY protocol signature")),
    }
}

/// Whether `input` and `expected` agree on their common length.
fn agrees(input: &[u8], expected: &[u8]) -> bool {
    input.iter().zip(expected).all(|(a, b)| a == b)
}

fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let invalid = ProxyHeaderError::Invalid;
    if !agrees(input, V1_PREFIX) {
        return Err(invalid("no PROXY protocol signature"));
    }
    let window = input.get(..V1_MAX).unwrap_or(input);
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        // A CR may only be the last byte seen so far (its LF pending).
        // Checked before the length, so the reason for a refusal does not
        // depend on how many bytes had arrived.
        if let Some(cr) = window.iter().position(|&b| b == b'\r') {
            if cr + 1 != window.len() {
                return Err(invalid("v1 header: CR not followed by LF"));
            }
        }
        if window.len() >= V1_MAX {
            return Err(invalid("v1 header longer than 107 bytes"));
        }
        return Ok(Parsed::Incomplete);
    };
    let line = window
        .get(..lf)
        .and_then(|l| l.strip_suffix(b"\r"))
        .ok_or(invalid("v1 header does not end in CRLF"))?;
    if line.contains(&b'\r') {
        return Err(invalid("v1 header: CR not followed by LF"));
    }
    let line = std::str::from_utf8(line).map_err(|_| invalid("v1 header is not ASCII"))?;
    let rest = line
        .strip_prefix("PROXY ")
        .ok_or(invalid("no PROXY protocol signature"))?;
    let len = lf + 1;
    if rest == "UNKNOWN" || rest.starts_with("UNKNOWN ") {
        // Spec: the receiver ignores anything after UNKNOWN.
        return Ok(Parsed::Done(Header { len, source: None }));
    }
    let mut fields = rest.split(' ');
    let family = fields.next().unwrap_or_default();
    let (src, dst, sport, dport) = match (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) {
        (Some(s), Some(d), Some(sp), Some(dp), None) => (s, d, sp, dp),
        _ => return Err(invalid("v1 header: wrong number of fields")),
    };
    let (src_ip, dst_ok) = match family {
        "TCP4" => (
            src.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            dst.parse::<Ipv4Addr>().is_ok(),
        ),
        "TCP6" => (
            src.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            dst.parse::<Ipv6Addr>().is_ok(),
        ),
        _ => return Err(invalid("v1 header: unknown protocol family")),
    };
    let src_ip = src_ip.ok_or(invalid("v1 header: bad source address"))?;
    if !dst_ok {
        return Err(invalid("v1 header: bad destination address"));
    }
    let sport = v1_port(sport).ok_or(invalid("v1 header: bad source port"))?;
    v1_port(dport).ok_or(invalid("v1 header: bad destination port"))?;
    Ok(Parsed::Done(Header {
        len,
        source: Some(SocketAddr::new(src_ip, sport)),
    }))
}

/// A decimal port without sign or leading zeros.
fn v1_port(s: &str) -> Option<u16> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn parse_v2(input: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let invalid = ProxyHeaderError::Invalid;
    if !agrees(input, V2_SIGNATURE) {
        return Err(invalid("no PROXY protocol signature"));
    }
    let Some(fixed) = input.get(..V2_FIXED) else {
        return Ok(Parsed::Incomplete);
    };
    let &[.., ver_cmd, fam_proto, len_hi, len_lo] = fixed else {
        return Ok(Parsed::Incomplete);
    };
    if ver_cmd >> 4 != 2 {
        return Err(invalid("v2 header: version is not 2"));
    }
    let body_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let len = V2_FIXED + body_len;
    match ver_cmd & 0x0f {
        // LOCAL: the balancer's own connection; the address block, family
        // included, is ignored (spec §2.2).
        0 => return Ok(Parsed::Done(Header { len, source: None })),
        1 => {}
        _ => return Err(invalid("v2 header: unknown command")),
    }
    if fam_proto & 0x0f > 2 {
        return Err(invalid("v2 header: unknown transport protocol"));
    }
    let addr_len = match fam_proto >> 4 {
        0 => 0,   // UNSPEC
        1 => 12,  // INET: 4 + 4 + 2 + 2
        2 => 36,  // INET6: 16 + 16 + 2 + 2
        3 => 216, // UNIX: 108 + 108
        _ => return Err(invalid("v2 header: unknown address family")),
    };
    if body_len < addr_len {
        return Err(invalid("v2 header: address block too short"));
    }
    let source = match fam_proto >> 4 {
        1 | 2 => {
            let Some(block) = input.get(V2_FIXED..V2_FIXED + addr_len) else {
                return Ok(Parsed::Incomplete);
            };
            Some(v2_source(block).ok_or(invalid("v2 header: bad address block"))?)
        }
        // UNSPEC or UNIX: nothing to learn; keep the TCP peer.
        _ => None,
    };
    Ok(Parsed::Done(Header { len, source }))
}

/// The source address of an INET (12 bytes) or INET6 (36 bytes) block.
fn v2_source(block: &[u8]) -> Option<SocketAddr> {
    let port = |at: usize| {
        let b = block.get(at..at + 2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    };
    match block.len() {
        12 => {
            let ip: [u8; 4] = block.get(..4)?.try_into().ok()?;
            Some(SocketAddr::new(Ipv4Addr::from(ip).into(), port(8)?))
        }
        36 => {
            let ip: [u8; 16] = block.get(..16)?.try_into().ok()?;
            Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port(32)?))
        }
        _ => None,
    }
}

/// Reads the PROXY protocol header that must start `stream`, consuming
/// exactly its bytes. `Ok(None)`: a valid header that keeps the TCP peer.
///
/// The caller bounds the time (`--client-header-timeout`). The loop is
/// bounded too: every round consumes at least one byte of a header whose
/// decisive part is at most 107 bytes, and TLVs are skipped in chunks of
/// 256 bytes (at most 65,535 bytes).
pub async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = [0u8; PEEK_BUF];
    let mut have = 0;
    loop {
        let free = buf
            .get_mut(have..)
            .filter(|b| !b.is_empty())
            .ok_or(ProxyHeaderError::Invalid("header too long"))?;
        // Waits for at least one unread byte; consumes nothing.
        let n = stream.peek(free).await.map_err(ProxyHeaderError::Io)?;
        if n == 0 {
            return Err(ProxyHeaderError::Closed);
        }
        let seen = (have + n).min(PEEK_BUF);
        match parse(buf.get(..seen).unwrap_or_default())? {
            Parsed::Incomplete => {
                // All of it is header: consume it, so the next peek waits
                // for new bytes instead of returning these again.
                consume(stream, &mut buf, have, seen).await?;
                have = seen;
            }
            Parsed::Done(header) => {
                let in_buf = header.len.min(seen);
                consume(stream, &mut buf, have, in_buf).await?;
                let mut rest = header.len - in_buf;
                while rest > 0 {
                    let chunk = rest.min(PEEK_BUF);
                    consume(stream, &mut buf, 0, chunk).await?;
                    rest -= chunk;
                }
                return Ok(header.source);
            }
        }
    }
}

/// Reads `buf[from..to]` from the stream (bytes known to be header).
async fn consume(
    stream: &mut TcpStream,
    buf: &mut [u8; PEEK_BUF],
    from: usize,
    to: usize,
) -> Result<(), ProxyHeaderError> {
    let Some(target) = buf.get_mut(from..to) else {
        return Err(ProxyHeaderError::Invalid("header too long"));
    };
    match stream.read_exact(target).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyHeaderError::Closed),
        Err(e) => Err(ProxyHeaderError::Io(e)),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
