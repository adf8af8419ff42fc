//! Numbers and addresses of access-log lines written as text straight into
//! the line buffer, without `core::fmt`: the formatting machinery
//! (`write!`) costs a few hundred instructions per call, and a line has a
//! dozen numbers. Digits are produced two at a time from a table into a
//! small stack array, and the array goes into the buffer in one copy.
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

    /// One byte (dropped when full).
    #[inline]
    pub fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }
}

impl<const N: usize> Default for Fixed<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Sink for Fixed<N> {
    /// Byte by byte: the pieces are a few bytes long, and a `memcpy` call
    /// costs more than the loop.
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

/// `00` to `99`, two bytes each.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The two digits of `n % 100`.
#[inline]
fn pair(n: u64) -> [u8; 2] {
    let i = (n % 100) as usize * 2;
    match PAIRS.get(i..i + 2) {
        Some(&[a, b]) => [a, b],
        _ => [b'0', b'0'],
    }
}

/// Digits of a number, right-aligned in a stack array.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    /// `n` in decimal, at least `width` digits (at most 20).
    #[inline]
    fn of(mut n: u64, width: usize) -> Self {
        let mut d = Digits {
            buf: [b'0'; 20],
            start: 20,
        };
        while n >= 100 {
            let [a, b] = pair(n);
            d.start -= 2;
            if let Some(slot) = d.buf.get_mut(d.start..d.start + 2) {
                slot.copy_from_slice(&[a, b]);
            }
            n /= 100;
        }
        if n >= 10 {
            let [a, b] = pair(n);
            d.start -= 2;
            if let Some(slot) = d.buf.get_mut(d.start..d.start + 2) {
                slot.copy_from_slice(&[a, b]);
            }
        } else {
            d.start -= 1;
            if let Some(slot) = d.buf.get_mut(d.start) {
                *slot = b'0' + n as u8;
            }
        }
        // The array starts as zeros: padding is moving the start back.
        d.start = d.start.min(20 - width.min(20));
        d
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

/// `n` in decimal (as `{}`).
#[inline]
pub fn dec(out: &mut impl Sink, n: u64) {
    if n < 10 {
        out.put(&[b'0' + n as u8]);
    } else if n < 100 {
        out.put(&pair(n));
    } else {
        out.put(Digits::of(n, 0).as_bytes());
    }
}

/// `n` in decimal, at least `width` digits, zero-padded (as `{:0width$}`).
#[inline]
pub fn dec_padded(out: &mut impl Sink, n: u64, width: usize) {
    // Past 20 digits (more than a u64 has), the padding comes first.
    for _ in 20..width {
        out.put(b"0");
    }
    out.put(Digits::of(n, width).as_bytes());
}

/// `secs.mmm` of a duration in whole milliseconds (nginx's `$request_time`).
#[inline]
pub fn seconds_millis(out: &mut Vec<u8>, d: Duration) {
    thousandths(out, d.as_millis());
}

/// `n / 1000` `.` `n % 1000` (three digits): seconds from milliseconds,
/// milliseconds from microseconds.
#[inline]
pub fn thousandths(out: &mut Vec<u8>, n: u128) {
    let whole = u64::try_from(n / 1000).unwrap_or(u64::MAX);
    let frac = (n % 1000) as u64;
    let mut text = Fixed::<25>::new();
    dec(&mut text, whole);
    let [a, b] = pair(frac);
    text.push(b'.');
    text.push(b'0' + (frac / 100) as u8);
    text.push(a);
    text.push(b);
    out.put(text.as_bytes());
}

/// An IPv4 address as dotted decimal into `out` (at most 15 bytes).
#[inline]
fn ipv4_text(out: &mut Fixed<21>, ip: Ipv4Addr) {
    let [a, b, c, d] = ip.octets();
    octet(out, a);
    out.push(b'.');
    octet(out, b);
    out.push(b'.');
    octet(out, c);
    out.push(b'.');
    octet(out, d);
}

#[inline]
fn octet<const N: usize>(out: &mut Fixed<N>, n: u8) {
    if n >= 100 {
        out.push(b'0' + n / 100);
    }
    if n >= 10 {
        out.push(b'0' + n / 10 % 10);
    }
    out.push(b'0' + n % 10);
}

/// An IPv4 address as dotted decimal (as `{}`).
#[inline]
pub fn ipv4(out: &mut impl Sink, ip: Ipv4Addr) {
    let mut text = Fixed::<21>::new();
    ipv4_text(&mut text, ip);
    out.put(text.as_bytes());
}

/// `a.b.c.d:port` (as `{}`).
#[inline]
pub fn socket_v4(out: &mut impl Sink, addr: &SocketAddrV4) {
    let mut text = Fixed::<21>::new();
    ipv4_text(&mut text, *addr.ip());
    text.push(b':');
    dec(&mut text, u64::from(addr.port()));
    out.put(text.as_bytes());
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
        let mut numbers = vec![12_345, u64::from(u32::MAX), u64::MAX, u64::MAX - 1];
        numbers.extend(0..=1_100);
        numbers.extend((1..20).map(|e| 10u64.pow(e)));
        numbers.extend((1..20).map(|e| 10u64.pow(e) - 1));
        for n in numbers {
            assert_eq!(text(|o| dec(o, n)), n.to_string());
            assert_eq!(text(|o| dec_padded(o, n, 3)), format!("{n:03}"));
            assert_eq!(text(|o| dec_padded(o, n, 2)), format!("{n:02}"));
            assert_eq!(text(|o| dec_padded(o, n, 1)), format!("{n:01}"));
            assert_eq!(text(|o| dec_padded(o, n, 20)), format!("{n:020}"));
            assert_eq!(text(|o| dec_padded(o, n, 23)), format!("{n:023}"));
        }
        for octet in 0..=255u8 {
            let addr = Ipv4Addr::new(octet, 255 - octet, octet / 3, 7);
            assert_eq!(text(|o| ipv4(o, addr)), addr.to_string());
        }
        for ms in [
            0u64,
            7,
            10,
            99,
            100,
            999,
            1_000,
            1_010,
            12_345,
            86_400_123,
            u64::MAX / 1000,
        ] {
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
        for a in [
            "10.0.0.5:8080",
            "127.0.0.1:1",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[2001:db8::7]:443",
        ] {
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
