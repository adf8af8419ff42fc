//! Request-host syntax check and normalization for lookups.
//!
//! Invariants: [`is_valid`] accepts exactly RFC 3986's `host [":" port]`
//! (reg-name or a bracketed IPv6 literal, a port of at most 65535, no
//! userinfo) in one pass over the bytes, without allocating. The result of
//! [`normalize`] is lowercase, has no port and no trailing dot, and
//! is produced without allocating (a caller-provided stack buffer holds the
//! lowercased copy when one is needed). Untrusted input never panics here.

/// Longest DNS name we accept (RFC 1035: 253 characters without the dot).
pub const MAX_HOST_LEN: usize = 253;

/// Normalizes an `authority` or `Host` value: strips userinfo, the port and a
/// trailing dot, and lowercases. Returns `None` for an empty or oversized
/// host, and for one that still ends in a dot (`a..`: an empty label). IPv6 literals keep their brackets (`[::1]`).
pub fn normalize<'a>(raw: &'a str, buf: &'a mut [u8; MAX_HOST_LEN + 2]) -> Option<&'a str> {
    let raw = match raw.rfind('@') {
        Some(at) => raw.get(at + 1..)?,
        None => raw,
    };
    let host = if raw.starts_with('[') {
        // [v6]:port
        let end = raw.find(']')?;
        raw.get(..=end)?
    } else {
        match raw.rfind(':') {
            Some(colon) => raw.get(..colon)?,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    // One trailing dot is the root label; a second one (`a..`) would be
    // an empty label, and no name in the table has one.
    if host.is_empty() || host.ends_with('.') || host.len() > buf.len() {
        return None;
    }
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    let out = buf.get_mut(..host.len())?;
    for (dst, src) in out.iter_mut().zip(host.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

/// Whether `raw` (a `Host` value or a request target's authority) is
/// `host [":" port]` of RFC 3986: a reg-name (unreserved, sub-delims,
/// `%HH`) or `[IPv6]`, and a decimal port up to 65535. Userinfo (`@`),
/// whitespace, `/`, `?`, `#` and non-ASCII bytes are not. An empty value is
/// valid (RFC 9112 §3.2: `Host:` may be empty).
pub fn is_valid(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let (host_end, port): (usize, &[u8]) = if bytes.first() == Some(&b'[') {
        let Some(close) = memchr::memchr(b']', bytes) else {
            return false;
        };
        let Some(inner) = raw.get(1..close) else {
            return false;
        };
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match bytes.get(close + 1..) {
            None | Some([]) => return true,
            Some([b':', port @ ..]) => return valid_port(port),
            Some(_) => return false,
        }
    } else {
        match memchr::memrchr(b':', bytes) {
            Some(colon) => (colon, bytes.get(colon + 1..).unwrap_or_default()),
            None => (bytes.len(), &[][..]),
        }
    };
    valid_port(port) && valid_reg_name(bytes.get(..host_end).unwrap_or_default())
}

/// `*DIGIT` with a value of at most 65535 (empty is allowed, RFC 3986 §3.2.3).
fn valid_port(port: &[u8]) -> bool {
    if port.len() > 5 {
        return false;
    }
    let mut value: u32 = 0;
    for &b in port {
        if !b.is_ascii_digit() {
            return false;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    value <= 65535
}

/// RFC 3986 reg-name: unreserved / pct-encoded / sub-delims, no `:`. A
/// bracketed host is handled by the caller.
fn valid_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = host.get(i) {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            b'%' => {
                let hex = |at: usize| host.get(at).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 2;
            }
            _ => return false,
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_syntax() {
        for ok in [
            "",
            "example.com",
            "Example.COM:8080",
            "example.com.",
            "example.com:",
            "a-b_c~d.example",
            "xn--bcher-kva.example",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "[2001:db8::1]:65535",
            "ex%41mple.com",
            "a!$&'()*+,;=b",
        ] {
            assert!(is_valid(ok), "{ok:?} should be valid");
        }
        for bad in [
            "exa mple.com",
            "example.com:65536",
            "example.com:8o",
            "example.com:-1",
            "example.com:123456",
            "a:b:c",
            "user@example.com",
            "example.com/path",
            "example.com?q",
            "example.com#f",
            "exa\"mple",
            "ex%4",
            "ex%zz.com",
            "[::1",
            "[zz::1]",
            "[::1]x",
            "[::1]:99999",
            "::1",
            "ex<ample>",
            "\u{e9}xample.com",
            "exa\tmple.com",
        ] {
            assert!(!is_valid(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // Every 1- and 2-byte ASCII string: the check and the normalizer
        // agree on never panicking, and a valid host normalizes.
        let mut buf = [0u8; MAX_HOST_LEN + 2];
        for a in 0u8..128 {
            for b in 0u8..128 {
                let bytes = [a, b];
                let Ok(s) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                let _ = is_valid(s);
                let _ = normalize(s, &mut buf);
            }
        }
    }

    fn n(raw: &str) -> Option<String> {
        let mut buf = [0u8; MAX_HOST_LEN + 2];
        normalize(raw, &mut buf).map(str::to_string)
    }

    #[test]
    fn strips_port_case_and_trailing_dot() {
        assert_eq!(n("Foo.Bar.COM:8080").as_deref(), Some("foo.bar.com"));
        assert_eq!(n("foo.bar.com.").as_deref(), Some("foo.bar.com"));
        assert_eq!(n("foo.bar.com.:80").as_deref(), Some("foo.bar.com"));
        assert_eq!(n("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(n("user@host:1").as_deref(), Some("host"));
    }

    #[test]
    fn rejects_empty_and_oversized() {
        assert_eq!(n(""), None);
        assert_eq!(n(":80"), None);
        assert_eq!(n(&"a".repeat(300)), None);
        assert_eq!(n("[::1"), None);
    }

    /// Found by the fuzz target: `..` (valid reg-name syntax) normalized
    /// to `.`, a lookup key with a trailing dot.
    #[test]
    fn no_key_ends_in_a_dot() {
        assert_eq!(n(".."), None);
        assert_eq!(n("..:80"), None);
        assert_eq!(n("a..:80"), None);
        assert_eq!(n("a.b."), Some("a.b".to_string()));
    }
}

#[cfg(test)]
mod fuzz;
