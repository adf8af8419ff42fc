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

/// Most `hostnames` a route may list (the CRD's `maxItems`).
pub const MAX_ROUTE_HOSTNAMES: usize = 16;

/// Whether a route hostname passes the CRD schema (Gateway API's
/// `Hostname`: 1 to 253 characters, pattern
/// `^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`):
/// lowercase labels, optionally a leading `*.`, no port, no trailing dot.
/// The API server refuses an object with one that does not.
pub fn schema_valid(hostname: &str) -> bool {
    if hostname.is_empty() || hostname.len() > 253 {
        return false;
    }
    let name = hostname.strip_prefix("*.").unwrap_or(hostname);
    name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
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

    #[test]
    fn schema_validity_is_the_crd_pattern() {
        for good in ["a", "foo.example.com", "*.example.com", "x-1.y2", "1.2.3.4"] {
            assert!(schema_valid(good), "{good}");
        }
        let long = format!("{}.com", "a".repeat(250));
        for bad in [
            "",
            "*",
            "*.",
            "Foo.com",
            "a.*.com",
            "**.a.com",
            "a.com:80",
            "a.com.",
            ".a.com",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a..com",
            long.as_str(),
        ] {
            assert!(!schema_valid(bad), "{bad}");
        }
    }
}
