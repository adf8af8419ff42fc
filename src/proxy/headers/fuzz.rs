//! Fuzz target: the forwarding headers ([`super::set_forwarded`]), the
//! client IP they carry ([`crate::proxy::client_ip::client_ip`]), the
//! head-size measure ([`super::h1_head_len`]) and request ids.
//!
//! Invariants, on generated peers, trusted networks and X-Forwarded-*
//! headers (valid address lists, garbage entries, empty elements, several
//! field lines, non-UTF-8 bytes):
//! - the client IP agrees with a reference model of nginx's
//!   `real_ip_recursive` walk, is canonical (never IPv4-mapped) and is the
//!   peer whenever the peer is not trusted;
//! - after `set_forwarded`: X-Forwarded-For is the peer alone unless the
//!   peer is trusted, then the incoming values joined with the peer
//!   appended; X-Real-IP is the client IP; X-Forwarded-Proto/Host/Port are
//!   the connection's unless a trusted peer sent them; each appears once;
//! - `h1_head_len` is the length of the head written out canonically;
//! - `valid_request_id` accepts exactly 1 to 128 of `[A-Za-z0-9._-]`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use proptest::prelude::*;

use super::{
    h1_head_len, set_forwarded, valid_request_id, ClientInfo, X_FORWARDED_FOR, X_FORWARDED_HOST,
    X_FORWARDED_PORT, X_FORWARDED_PROTO, X_REAL_IP,
};
use crate::proxy::client_ip::client_ip;

fn addresses() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, any::<u8>()).prop_map(|(net, host)| IpAddr::V4(Ipv4Addr::new(10, net, 0, host))),
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(o.into())),
        (0u8..4).prop_map(|h| IpAddr::V6(Ipv4Addr::new(10, 0, 0, h).to_ipv6_mapped())),
        any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
    ]
}

fn xff_line() -> impl Strategy<Value = Vec<u8>> {
    let entry = prop_oneof![
        6 => addresses().prop_map(|a| a.to_string()),
        1 => Just(String::new()),
        1 => "[a-z0-9:.\\[\\]]{1,8}",
        1 => Just("unknown".to_string()),
    ];
    let sep = prop_oneof![Just(","), Just(", "), Just(" ,"), Just(",,")];
    prop_oneof![
        8 => (proptest::collection::vec(entry, 1..5), sep)
            .prop_map(|(e, s)| e.join(s).into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

/// Reference model: flatten every X-Forwarded-For element, right to left;
/// skip trusted ones; an unparseable one (or a non-UTF-8 line) ends the
/// walk with the last good address.
fn model_client(peer: IpAddr, trusted: &[IpNet], lines: &[Vec<u8>]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut elements: Vec<Option<IpAddr>> = Vec::new();
    for line in lines {
        match std::str::from_utf8(line) {
            Ok(text) => elements.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(|e| e.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())),
            ),
            Err(_) => elements.clear(), // nothing left of it is read
        }
    }
    let mut last_good = peer;
    for element in elements.iter().rev() {
        match element {
            None => return last_good,
            Some(ip) if !is_trusted(*ip) => return *ip,
            Some(ip) => last_good = *ip,
        }
    }
    last_good
}

#[derive(Debug, Clone)]
struct Case {
    peer: IpAddr,
    trusted: Vec<IpNet>,
    xff: Vec<Vec<u8>>,
    proto: Option<&'static str>,
    host_header: Option<&'static str>,
    port: Option<&'static str>,
    host: Option<&'static str>,
}

fn cases() -> impl Strategy<Value = Case> {
    let trusted = proptest::collection::vec(
        prop_oneof![
            Just("10.0.0.0/8"),
            Just("10.1.0.0/16"),
            Just("127.0.0.0/8"),
            Just("::ffff:10.0.0.0/104"),
            Just("2001:db8::/32")
        ],
        0..3,
    )
    .prop_map(|n| n.iter().map(|s| s.parse().expect("net")).collect());
    (
        addresses(),
        trusted,
        proptest::collection::vec(xff_line(), 0..3),
        proptest::option::of(prop_oneof![Just("https"), Just("ws")]),
        proptest::option::of(Just("in.example")),
        proptest::option::of(Just("8443")),
        proptest::option::of(Just("routed.example")),
    )
        .prop_map(
            |(peer, trusted, xff, proto, host_header, port, host)| Case {
                peer,
                trusted,
                xff,
                proto,
                host_header,
                port,
                host,
            },
        )
}

fn check(c: Case) -> Result<(), TestCaseError> {
    let mut headers = HeaderMap::new();
    let mut lines = Vec::new();
    for line in &c.xff {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(X_FORWARDED_FOR, v);
            lines.push(line.clone());
        }
    }
    for (name, value) in [
        (X_FORWARDED_PROTO, c.proto),
        (X_FORWARDED_HOST, c.host_header),
        (X_FORWARDED_PORT, c.port),
    ] {
        if let Some(v) = value {
            headers.insert(name, HeaderValue::from_static(v));
        }
    }
    let peer = c.peer.to_canonical();
    let trusted_peer = c.trusted.iter().any(|n| n.contains(&peer));
    let ip = client_ip(c.peer, &c.trusted, &headers);
    prop_assert_eq!(ip, model_client(c.peer, &c.trusted, &lines));
    prop_assert_eq!(ip, ip.to_canonical());
    if !trusted_peer {
        prop_assert_eq!(ip, peer);
    }
    let client = ClientInfo {
        tls: false,
        sni: None,
        peer,
        peer_ip: HeaderValue::from_str(&peer.to_string()).expect("an address is a header value"),
        trusted: trusted_peer,
        proto: HeaderValue::from_static("http"),
        port: HeaderValue::from_static("80"),
    };
    let before = headers.clone();
    set_forwarded(
        &mut headers,
        &client,
        ip,
        c.host.map(HeaderValue::from_static),
    );
    for name in [
        &X_FORWARDED_FOR,
        &X_REAL_IP,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_PORT,
    ] {
        prop_assert_eq!(headers.get_all(name).iter().count(), 1, "{}", name);
    }
    let xff = headers
        .get(X_FORWARDED_FOR)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    // The list's elements (RFC 9110 §5.6.1: empty ones do not count).
    let elements = |bytes: &[u8]| -> Vec<Vec<u8>> {
        bytes
            .split(|&b| b == b',')
            .map(|e| e.trim_ascii().to_vec())
            .filter(|e| !e.is_empty())
            .collect()
    };
    if trusted_peer && !lines.is_empty() {
        let mut want: Vec<Vec<u8>> = lines.iter().flat_map(|l| elements(l)).collect();
        want.push(peer.to_string().into_bytes());
        prop_assert_eq!(elements(xff), want);
    } else {
        let want = peer.to_string();
        prop_assert_eq!(xff, want.as_bytes());
    }
    let real = ip.to_string();
    prop_assert_eq!(
        headers.get(X_REAL_IP).map(HeaderValue::as_bytes),
        Some(real.as_bytes())
    );
    let kept = |name: &http::HeaderName, own: Option<&[u8]>| {
        let want = if trusted_peer && before.contains_key(name) {
            before.get(name).map(HeaderValue::as_bytes)
        } else {
            own
        };
        headers.get(name).map(HeaderValue::as_bytes) == want
    };
    prop_assert!(kept(&X_FORWARDED_PROTO, Some(b"http")));
    prop_assert!(kept(&X_FORWARDED_PORT, Some(b"80")));
    prop_assert!(kept(&X_FORWARDED_HOST, c.host.map(str::as_bytes)));
    Ok(())
}

#[test]
fn forwarding_headers() {
    crate::fuzzing::run("proxy::headers", 1_000, cases(), check);
}

#[test]
fn head_length_and_request_ids() {
    let target = prop_oneof![
        "(/[a-z0-9._~%-]{0,6}){1,3}(\\?[a-z=&]{0,6})?",
        "https?://[a-z]{1,6}(\\.[a-z]{2,3})?(:[0-9]{2,4})?(/[a-z]{0,4}){1,2}",
        Just("*".to_string()),
        "[a-z]{1,6}:[0-9]{2,4}",
    ];
    let fields = proptest::collection::vec(("[a-z][a-z0-9-]{0,10}", "[ -~]{0,20}"), 0..6);
    let id = prop_oneof!["[A-Za-z0-9._-]{0,130}", "[ -~]{0,10}"];
    crate::fuzzing::run(
        "proxy::h1_head_len",
        500,
        (target, fields, id),
        |(target, fields, id)| {
            prop_assert_eq!(
                valid_request_id(id.as_bytes()),
                (1..=128).contains(&id.len())
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            );
            let mut builder = http::Request::builder().method("GET").uri(target.as_str());
            for (name, value) in &fields {
                builder = builder.header(name.as_str(), value.as_str());
            }
            let Ok(req) = builder.body(()) else {
                return Ok(());
            };
            if req.uri().to_string() != target {
                return Ok(()); // the head would not be sent as generated
            }
            let mut head = format!("GET {target} HTTP/1.1\r\n");
            for (name, value) in req.headers() {
                head.push_str(&format!(
                    "{}: {}\r\n",
                    name,
                    value.to_str().unwrap_or_default()
                ));
            }
            head.push_str("\r\n");
            prop_assert_eq!(h1_head_len(&req), head.len(), "{:?}", head);
            Ok(())
        },
    );
}
