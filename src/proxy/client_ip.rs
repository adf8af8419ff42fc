//! The client IP of a request: the address allow/deny lists, rate limits,
//! X-Real-IP and the access log attribute a request to.
//!
//! Rule (nginx `real_ip_recursive on`): the connection peer (the PROXY
//! protocol source when `--proxy-protocol` is on), unless the peer is in
//! `--trusted-proxies` (or the ConfigMap's `proxy-real-ip-cidr`, with
//! `use-forwarded-headers` or `enable-real-ip`); then X-Forwarded-For (or
//! the ConfigMap's `forwarded-for-header`) is walked from the right,
//! skipping addresses that are themselves trusted, and the first untrusted
//! one is the client. An entry that is not an IP address stops the walk
//! and the last good address wins (so a client can never make a garbage
//! entry count); if every entry is trusted, the left-most one wins. Empty
//! list elements (`a,,b`, a trailing comma) are separators, not entries.
//!
//! Invariants:
//! - The result is canonical: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
//!   is returned as IPv4, so `10.0.0.0/8` matches it.
//! - No allocation: the common case (peer not trusted) returns at once; the
//!   walk parses header bytes in place.
//! - Never reads past X-Forwarded-For's entries into other headers, and
//!   never panics on arbitrary header bytes.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use super::headers::X_FORWARDED_FOR;

/// Whether `ip` is in one of the `trusted` networks.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The request's client IP by the module's rule, for a connection from
/// `peer` (after PROXY protocol).
pub fn client_ip(peer: IpAddr, trusted: &[IpNet], headers: &HeaderMap) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    forwarded_client(peer, trusted, headers)
}

/// The X-Forwarded-For walk for a peer already known to be trusted.
pub fn forwarded_client(peer: IpAddr, trusted: &[IpNet], headers: &HeaderMap) -> IpAddr {
    forwarded_client_in(&X_FORWARDED_FOR, peer, trusted, headers)
}

/// The same walk over another header (ingress-nginx's
/// `forwarded-for-header`, e.g. `CF-Connecting-IP`).
pub fn forwarded_client_in(
    header: &HeaderName,
    peer: IpAddr,
    trusted: &[IpNet],
    headers: &HeaderMap,
) -> IpAddr {
    let mut last_good = peer.to_canonical();
    // Field lines combine in order (RFC 9110 §5.3): the right-most entry is
    // the last element of the last line.
    for line in headers.get_all(header).iter().rev() {
        let Ok(line) = line.to_str() else {
            return last_good;
        };
        for entry in line.rsplit(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let Ok(ip) = entry.parse::<IpAddr>() else {
                return last_good;
            };
            let ip = ip.to_canonical();
            if !is_trusted(ip, trusted) {
                return ip;
            }
            last_good = ip;
        }
    }
    last_good
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn resolve(peer: &str, trusted: &[&str], lines: &[&str]) -> String {
        client_ip(ip(peer), &nets(trusted), &xff(lines)).to_string()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_headers_say() {
        assert_eq!(resolve("203.0.113.5", &[], &["1.2.3.4"]), "203.0.113.5");
        assert_eq!(
            resolve("203.0.113.5", &["10.0.0.0/8"], &["1.2.3.4"]),
            "203.0.113.5"
        );
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        assert_eq!(resolve("10.0.0.1", &["10.0.0.0/8"], &[]), "10.0.0.1");
    }

    #[test]
    fn right_most_untrusted_entry_wins() {
        let trusted = ["10.0.0.0/8", "192.168.0.0/16"];
        // The client may put anything on the left; only what trusted hops
        // appended counts.
        assert_eq!(
            resolve("10.0.0.1", &trusted, &["6.6.6.6, 198.51.100.7, 10.1.1.1"]),
            "198.51.100.7"
        );
        // Across several field lines, the last line is the right-most.
        assert_eq!(
            resolve(
                "10.0.0.1",
                &trusted,
                &["6.6.6.6", "198.51.100.7, 192.168.1.1", "10.2.2.2"]
            ),
            "198.51.100.7"
        );
    }

    #[test]
    fn all_trusted_yields_the_left_most() {
        assert_eq!(
            resolve("10.0.0.1", &["10.0.0.0/8"], &["10.9.9.9, 10.8.8.8"]),
            "10.9.9.9"
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_good_address() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            resolve("10.0.0.1", &trusted, &["1.2.3.4, unknown, 10.3.3.3"]),
            "10.3.3.3"
        );
        // Garbage right away: the peer.
        assert_eq!(
            resolve("10.0.0.1", &trusted, &["1.2.3.4, 1.2.3.4:80"]),
            "10.0.0.1"
        );
        // A non-UTF-8 line stops the walk too.
        let mut h = xff(&["1.2.3.4"]);
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &nets(&trusted), &h).to_string(),
            "10.0.0.1"
        );
    }

    #[test]
    fn empty_elements_are_separators() {
        assert_eq!(
            resolve("10.0.0.1", &["10.0.0.0/8"], &["198.51.100.7,, 10.1.1.1,"]),
            "198.51.100.7"
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_is_canonical() {
        // The peer itself, and entries, match IPv4 networks once mapped.
        assert_eq!(
            resolve("::ffff:10.0.0.1", &["10.0.0.0/8"], &["::ffff:198.51.100.7"]),
            "198.51.100.7"
        );
        assert_eq!(resolve("::ffff:203.0.113.5", &[], &[]), "203.0.113.5");
        assert_eq!(
            resolve("2001:db8::1", &["2001:db8::/32"], &["2001:db8::2, 2a00::1"]),
            "2a00::1"
        );
    }
}
