//! Fuzz target: the Host / authority check ([`super::is_valid`]) and the
//! lookup normalizer ([`super::normalize`]).
//!
//! Invariants: `is_valid` agrees with a reference model of RFC 3986's
//! `host [":" port]` written as a regular expression (plus `Ipv6Addr` for
//! the literal and the port's range); every host the generator builds
//! from the grammar is valid; `normalize` of a valid value is lowercase,
//! has no port, no trailing dot and no userinfo, is a suffix-free prefix of
//! the lowercased input, and normalizing it again changes nothing.

use std::sync::LazyLock;

use proptest::prelude::*;
use regex::Regex;

use super::{is_valid, normalize, MAX_HOST_LEN};
use crate::fuzzing::{self, mutate_text, mutations};

static REG_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*(?::([0-9]*))?$").expect("regex")
});
static IP_LITERAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[([^\]]*)\](?::([0-9]*))?$").expect("regex"));

/// Reference model of [`is_valid`].
fn model_valid(raw: &str) -> bool {
    let port_ok = |port: Option<regex::Match<'_>>| {
        port.is_none_or(|p| {
            p.as_str().len() <= 5 && p.as_str().parse::<u32>().map_or(true, |v| v <= 65535)
        })
    };
    if let Some(c) = IP_LITERAL.captures(raw) {
        let inner = c.get(1).map_or("", |m| m.as_str());
        return inner.parse::<std::net::Ipv6Addr>().is_ok() && port_ok(c.get(2));
    }
    if raw.starts_with('[') {
        return false;
    }
    REG_NAME.captures(raw).is_some_and(|c| port_ok(c.get(1)))
}

/// Hosts built from the grammar: DNS names, IPv4, bracketed IPv6, any case,
/// an optional trailing dot and port.
fn valid_hosts() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9]([a-zA-Z0-9_~-]{0,8}[a-zA-Z0-9])?";
    let name = proptest::collection::vec(label, 1..5).prop_map(|l| l.join("."));
    let v4 = any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string());
    let v6 = any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s)));
    let host = prop_oneof![4 => name, 1 => v4, 1 => v6, 1 => "([a-z!$&'()*+,;=0-9A-F.~_-]|%[0-9a-fA-F]{2}){0,12}"];
    let port = prop_oneof![
        Just(String::new()),
        Just(":".into()),
        (0u32..=65535).prop_map(|p| format!(":{p}"))
    ];
    (host, any::<bool>(), port).prop_map(|(h, dot, port)| {
        let dot = if dot && !h.starts_with('[') { "." } else { "" };
        format!("{h}{dot}{port}")
    })
}

fn check(raw: &str) -> Result<(), TestCaseError> {
    let valid = is_valid(raw);
    prop_assert_eq!(valid, model_valid(raw), "is_valid({:?})", raw);
    let mut buf = [0u8; MAX_HOST_LEN + 2];
    let normalized = normalize(raw, &mut buf).map(str::to_string);
    if !valid {
        return Ok(()); // never panics; the proxy answers 400 before normalizing
    }
    let Some(n) = normalized else {
        // Only an empty host (or an oversized one) has no lookup key.
        let host = raw.rsplit_once(':').map_or(raw, |(h, _)| h);
        let host = host.strip_suffix('.').unwrap_or(host);
        prop_assert!(
            host.is_empty() || host.ends_with('.') || host.len() > MAX_HOST_LEN + 2,
            "{raw:?}"
        );
        return Ok(());
    };
    prop_assert!(!n.is_empty());
    prop_assert!(
        !n.bytes().any(|b| b.is_ascii_uppercase()),
        "{raw:?} -> {n:?}"
    );
    prop_assert!(!n.ends_with('.'), "{raw:?} -> {n:?}: trailing dot");
    prop_assert!(!n.contains('@'));
    prop_assert!(
        n.starts_with('[') || !n.contains(':'),
        "{raw:?} -> {n:?}: port kept"
    );
    prop_assert!(raw.to_ascii_lowercase().starts_with(&n), "{raw:?} -> {n:?}");
    let mut again = [0u8; MAX_HOST_LEN + 2];
    prop_assert_eq!(
        normalize(&n, &mut again),
        Some(n.as_str()),
        "not idempotent: {:?}",
        raw
    );
    Ok(())
}

#[test]
fn host() {
    let inputs = prop_oneof![
        3 => valid_hosts(),
        3 => (valid_hosts(), mutations()).prop_map(|(h, m)| mutate_text(&h, &m)),
        1 => "[\\[\\]:.@%a-fA-F0-9 /?#-]{0,20}",
        1 => any::<String>(),
    ];
    fuzzing::run("host", 1_500, inputs, |raw| check(&raw));
}

#[test]
fn generated_hosts_are_valid() {
    fuzzing::run("host::grammar", 500, valid_hosts(), |raw| {
        prop_assert!(is_valid(&raw), "{raw:?}");
        Ok(())
    });
}
