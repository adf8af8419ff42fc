//! Request-host normalization for lookups.
//!
//! Invariant: the result is lowercase, has no port and no trailing dot, and
//! is produced without allocating (a caller-provided stack buffer holds the
//! lowercased copy when one is needed). Untrusted input never panics here.

/// Longest DNS name we accept (RFC 1035: 253 characters without the dot).
pub const MAX_HOST_LEN: usize = 253;

/// Normalizes an `authority` or `Host` value: strips userinfo, the port and a
/// trailing dot, and lowercases. Returns `None` for an empty or oversized
/// host. IPv6 literals keep their brackets (`[::1]`).
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
    if host.is_empty() || host.len() > buf.len() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
