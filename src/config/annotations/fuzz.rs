//! Fuzz target: the annotation parsers ([`super::parse`] and the value
//! parsers of [`super::values`]).
//!
//! Invariants, on generated annotation maps (every known name, tollgate's
//! own, unknown and snippet names; values near what each expects, mutated,
//! or arbitrary):
//! - parsing is deterministic (same map, same result and problems);
//! - every problem names `metadata.annotations` or one annotation that is
//!   in the map (or that is missing and needed);
//! - every refused annotation (snippets, Lua, unsupported security ones)
//!   rejects the Ingress, and so does an access list that does not parse;
//! - every unknown `nginx.ingress.kubernetes.io/` name is listed in a
//!   warning;
//! - `parse_size` and `parse_cidrs` agree with reference models, and a
//!   parsed `upstream-hash-by` key prints back to text that parses to the
//!   same key.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::values::{parse_cidrs, parse_hash_key, parse_size};
use super::{parse, support, LimitStatuses, Support, KNOWN, NGINX, TOLLGATE};
use crate::config::snapshot::AnnotationMap;
use crate::fuzzing::{self, mutate_text, mutations};
use crate::table::policy::{HashKey, HashPart};

pub(in crate::config) fn names() -> impl Strategy<Value = String> {
    let known = proptest::sample::select(KNOWN.iter().map(|(s, _)| *s).collect::<Vec<_>>())
        .prop_map(|s| format!("{NGINX}{s}"));
    let own = proptest::sample::select(vec![
        "limit-rps",
        "limit-rpm",
        "limit-burst",
        "limit-connections",
        "backend-protocol",
        "load-balance",
        "ssl-redirect",
    ])
    .prop_map(|s| format!("{TOLLGATE}{s}"));
    prop_oneof![
        8 => known,
        2 => own,
        1 => "[a-z-]{1,12}".prop_map(|s| format!("{NGINX}{s}")),
        1 => "[a-z-]{0,8}-snippet".prop_map(|s| format!("{NGINX}{s}")),
        1 => "[a-z./-]{1,20}",
    ]
}

/// Values near what the annotations expect.
pub(in crate::config) fn values() -> impl Strategy<Value = String> {
    let near = prop_oneof![
        Just("true".to_string()),
        Just("false".to_string()),
        "-?[0-9]{1,20}",
        "[0-9]{1,4}[kKmMgGx]?",
        "[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]{1,2})?(, ?[0-9a-f:]{2,10}(/[0-9]{1,3})?){0,2}",
        "https?://[a-z.]{1,10}(:[0-9]{1,5})?/[a-z$_{}?=&]{0,12}",
        "[A-Za-z-]{1,10}(, ?[A-Za-z-]{1,10}){0,2}",
        "(error|timeout|http_50[0-4]|off|non_idempotent)( (error|timeout|http_50[0-4])){0,2}",
        "([a-z-]{0,4}\\$(remote_addr|request_uri|http_[a-z_]{1,6}|cookie_[a-z]{1,4}|\\{cookie_[a-z]{1,4}\\}|host)){1,3}",
        "(cookie|balanced|persistent|ewma|round_robin|GRPC|HTTPS|HTTP|AUTO_HTTP|basic|digest|auth-map|auth-file|always|never)",
        "[0-9]{3}(,[0-9]{3}){0,3}",
        "[a-z]{1,8}/[a-z]{1,8}",
    ];
    prop_oneof![
        6 => near.clone(),
        2 => (near, mutations()).prop_map(|(v, m)| mutate_text(&v, &m)),
        1 => any::<String>(),
    ]
}

fn maps() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(names(), values(), 0..8)
}

fn check(map: BTreeMap<String, String>) -> Result<(), TestCaseError> {
    let annotations_in: AnnotationMap = map.iter().collect();
    let (annotations, problems) = parse(Some(&annotations_in), LimitStatuses::default());
    let (again, problems_again) = parse(Some(&annotations_in), LimitStatuses::default());
    prop_assert_eq!(&problems, &problems_again);
    prop_assert_eq!(format!("{annotations:?}"), format!("{again:?}"));
    for p in &problems {
        let named = p
            .field
            .strip_prefix("metadata.annotations[")
            .and_then(|f| f.strip_suffix(']'));
        prop_assert!(
            p.field == "metadata.annotations"
                || named.is_some_and(|n| map.contains_key(n) || p.reason.contains("needs")),
            "{:?} names no annotation of {map:?}",
            p
        );
    }
    let rejects = |name: &str| {
        let field = format!("metadata.annotations[{name}]");
        problems.iter().any(|p| p.reject && p.field == field)
    };
    for (name, value) in &map {
        let Some(suffix) = name.strip_prefix(NGINX) else {
            continue;
        };
        match support(suffix) {
            Some(Support::RefusedInjection | Support::RefusedSecurity | Support::Refused(_)) => {
                prop_assert!(rejects(name), "{name} not refused: {problems:?}");
            }
            None => prop_assert!(
                problems
                    .iter()
                    .any(|p| p.reason.contains("unknown") && p.reason.contains(suffix)),
                "{name} not listed as unknown"
            ),
            _ => {}
        }
        let list = matches!(suffix, "whitelist-source-range" | "denylist-source-range");
        if list && parse_cidrs(value.trim()).is_err() {
            prop_assert!(rejects(name), "bad access list {value:?} served");
        }
    }
    Ok(())
}

#[test]
fn annotations() {
    fuzzing::run("annotations", 300, maps(), check);
}

/// Reference model of nginx sizes.
fn model_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let (digits, factor) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1u64 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        c if c.is_ascii_alphabetic() => return None,
        _ => (v, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

fn render(key: &HashKey) -> String {
    key.parts
        .iter()
        .map(|part| match part {
            HashPart::Literal(s) => s.to_string(),
            HashPart::RemoteAddr => "$remote_addr".into(),
            HashPart::RequestUri => "${request_uri}".into(),
            HashPart::Header(h) => format!("${{http_{}}}", h.as_str().replace('-', "_")),
            HashPart::Cookie(c) => format!("${{cookie_{c}}}"),
        })
        .collect()
}

#[test]
fn value_parsers() {
    fuzzing::run("annotations::values", 1_000, values(), |value| {
        prop_assert_eq!(parse_size(&value), model_size(&value), "{:?}", value);
        let entries: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        let parses =
            |e: &str| e.parse::<ipnet::IpNet>().is_ok() || e.parse::<std::net::IpAddr>().is_ok();
        match parse_cidrs(&value) {
            Ok(nets) => {
                prop_assert!(entries.iter().all(|e| parses(e)), "{value:?}");
                prop_assert_eq!(nets.len(), entries.len());
                prop_assert!(nets.iter().all(|n| *n == n.trunc()));
            }
            Err(_) => prop_assert!(!entries.iter().all(|e| parses(e)), "{value:?}"),
        }
        if let Ok(key) = parse_hash_key(&value) {
            let text = render(&key);
            prop_assert_eq!(
                parse_hash_key(&text).map(|k| k.parts),
                Ok(key.parts),
                "{:?} -> {:?}",
                value,
                text
            );
        }
        Ok(())
    });
}
