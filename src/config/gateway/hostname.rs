//! Hostnames of listeners and routes: validation and intersection.
//!
//! Invariants:
//! - Hostnames are compared lowercase; `*.suffix` is a wildcard. An absent
//!   hostname (`None`) matches every host.
//! - [`intersect`] is symmetric and returns the more specific of two
//!   matching hostnames (the exact one, or the longer wildcard), never a
//!   host neither side would accept.
//! - Pure; never panics.

/// Whether `host` (exact) is covered by `pattern` (exact or `*.suffix`,
/// which matches one or more labels before the suffix, as Gateway API
/// defines it).
pub fn covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

/// The hostnames a route serves through a listener: the intersection of
/// the listener's hostname (if any) with the route's hostnames (if any).
/// `Some(vec![])` means no intersection (the route does not attach
/// there); a `""` entry means every host.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let listener = listener
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase);
    if route.is_empty() {
        return vec![listener.unwrap_or_default()];
    }
    let mut out: Vec<String> = Vec::new();
    for host in route {
        let host = host.to_ascii_lowercase();
        let Some(l) = &listener else {
            out.push(host);
            continue;
        };
        let picked = if covers(l, &host) || *l == host {
            Some(host)
        } else if covers(&host, l) {
            Some(l.clone())
        } else {
            None
        };
        if let Some(p) = picked {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Whether a hostname is valid for a listener or route: an RFC 1123 DNS
/// name, optionally with a leading `*.` label, no IP address, no port.
pub fn is_valid(hostname: &str) -> bool {
    let name = hostname.strip_prefix("*.").unwrap_or(hostname);
    if name.is_empty() || name.len() > 253 || name.parse::<std::net::IpAddr>().is_ok() {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(hosts: &[&str]) -> Vec<String> {
        hosts.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn intersections_follow_the_spec() {
        assert_eq!(intersect(None, &[]), v(&[""]));
        assert_eq!(intersect(Some("a.example.com"), &[]), v(&["a.example.com"]));
        assert_eq!(intersect(None, &v(&["x.org"])), v(&["x.org"]));
        assert_eq!(
            intersect(Some("*.example.com"), &v(&["a.example.com", "b.other.org"])),
            v(&["a.example.com"])
        );
        assert_eq!(
            intersect(Some("a.b.example.com"), &v(&["*.example.com"])),
            v(&["a.b.example.com"])
        );
        assert_eq!(
            intersect(Some("*.example.com"), &v(&["*.a.example.com"])),
            v(&["*.a.example.com"])
        );
        assert_eq!(
            intersect(Some("*.a.example.com"), &v(&["*.example.com"])),
            v(&["*.a.example.com"])
        );
        assert!(intersect(Some("a.example.com"), &v(&["b.example.com"])).is_empty());
        assert!(intersect(Some("*.example.com"), &v(&["example.com"])).is_empty());
    }

    #[test]
    fn validity() {
        assert!(is_valid("foo.example.com"));
        assert!(is_valid("*.example.com"));
        assert!(!is_valid("1.2.3.4"));
        assert!(!is_valid("Foo.com"));
        assert!(!is_valid("a.*.com"));
        assert!(!is_valid("a.com:80"));
    }
}
