//! Numbers and addresses of access-log lines written as text straight into
//! the line buffer, without `core::fmt`: the formatting machinery
//! (`write!`) costs a few hundred instructions per call, and a line has a
//! dozen numbers.
//!
//! Invariant: the output is byte for byte what `write!` with `{}` (or the
//! stated zero padding) would produce; no allocation beyond the caller's
//! buffer growing.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// Where digits go: a line buffer, or a small stack buffer ([`Fixed`]).
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A stack buffer of `N` bytes (what does not fit is cut off).
pub struct Fixed<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Fixed<N> {
    pub fn new() -> Self {
        Fixed {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl<const N: usize> Default for Fixed<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Sink for Fixed<N> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(N);
        if let (Some(slot), Some(src)) =
            (self.buf.get_mut(self.len..end), bytes.get(..end - self.len))
        {
            slot.copy_from_slice(src);
            self.len = end;
        }
    }
}

/// `n` in decimal (as `{}`).
#[inline]
pub fn dec(out: &mut impl Sink, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        start -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put(buf.get(start..).unwrap_or_default());
}

/// `n` in decimal, at least `width` digits, zero-padded (as `{:0width$}`).
#[inline]
pub fn dec_padded(out: &mut impl Sink, n: u64, width: usize) {
    let digits = digits(n);
    for _ in digits..width {
        out.put(b"0");
    }
    dec(out, n);
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// `secs.mmm` of a duration in whole milliseconds (nginx's `$request_time`).
#[inline]
pub fn seconds_millis(out: &mut Vec<u8>, d: Duration) {
    let millis = d.as_millis();
    dec(out, u64::try_from(millis / 1000).unwrap_or(u64::MAX));
    out.push(b'.');
    dec_padded(out, (millis % 1000) as u64, 3);
}

/// An IPv4 address as dotted decimal (as `{}`).
#[inline]
pub fn ipv4(out: &mut impl Sink, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.put(b".");
        }
        dec(out, u64::from(octet));
    }
}

/// `a.b.c.d:port` (as `{}`).
#[inline]
pub fn socket_v4(out: &mut impl Sink, addr: &SocketAddrV4) {
    ipv4(out, *addr.ip());
    out.put(b":");
    dec(out, u64::from(addr.port()));
}

/// An IP address (as `{}`): IPv4 directly, IPv6 through `Display`.
#[inline]
pub fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => ipv4(out, v4),
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// A socket address (as `{}`): `a.b.c.d:port` directly, IPv6 through
/// `Display`.
#[inline]
pub fn socket(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => socket_v4(out, v4),
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_as_fmt() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(text(|o| dec(o, n)), n.to_string());
            assert_eq!(text(|o| dec_padded(o, n, 3)), format!("{n:03}"));
            assert_eq!(text(|o| dec_padded(o, n, 2)), format!("{n:02}"));
        }
        for ms in [0u64, 7, 999, 1_000, 12_345, 86_400_123] {
            let d = Duration::from_micros(ms * 1000 + 456);
            let millis = d.as_millis();
            let want = format!("{}.{:03}", millis / 1000, millis % 1000);
            assert_eq!(text(|o| seconds_millis(o, d)), want);
        }
        for a in [
            "0.0.0.0",
            "203.0.113.7",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let addr: IpAddr = a.parse().unwrap();
            assert_eq!(text(|o| ip(o, addr)), addr.to_string());
        }
        for a in ["10.0.0.5:8080", "127.0.0.1:1", "[2001:db8::7]:443"] {
            let addr: SocketAddr = a.parse().unwrap();
            assert_eq!(text(|o| socket(o, &addr)), addr.to_string());
        }
        let mut fixed = Fixed::<21>::new();
        socket_v4(&mut fixed, &"255.255.255.255:65535".parse().unwrap());
        assert_eq!(fixed.as_bytes(), b"255.255.255.255:65535");
        let mut short = Fixed::<4>::new();
        dec(&mut short, 123_456);
        assert_eq!(short.as_bytes(), b"1234");
    }
}
