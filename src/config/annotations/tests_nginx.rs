//! Parser tests of the annotations once refused for lack of the feature:
//! response rewriting, bandwidth, relative redirects, intercepting errors,
//! the canary's affinity behaviour, www redirects.

use super::*;
use crate::table::policy::{LimitRate, Swap};

fn parse_map(pairs: &[(&str, &str)]) -> (Annotations, Vec<Problem>) {
    let map: AnnotationMap = pairs
        .iter()
        .map(|(k, v)| (format!("{NGINX}{k}"), v.to_string()))
        .collect();
    parse(Some(&map), LimitStatuses::default())
}

fn swap(from: &str, to: &str) -> Option<Swap> {
    Some(Swap {
        from: from.into(),
        to: to.into(),
    })
}

#[test]
fn response_rewrites_take_literal_pairs() {
    let (a, problems) = parse_map(&[
        ("proxy-redirect-from", "http://hello.com/"),
        ("proxy-redirect-to", "http://goodbye.com/"),
        ("proxy-cookie-domain", ".localhost example.org"),
        ("proxy-cookie-path", "/one/ /"),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    let r = a.policy.response_rewrite.expect("rewrite");
    assert_eq!(r.redirect, swap("http://hello.com/", "http://goodbye.com/"));
    assert_eq!(r.cookie_domain, swap("localhost", "example.org"));
    assert_eq!(r.cookie_path, swap("/one/", "/"));
}

#[test]
fn response_rewrites_off_and_default_change_nothing() {
    for (from, to) in [
        ("off", "x"),
        ("default", "x"),
        ("http://a/", "off"),
        ("http://a/", ""),
    ] {
        let (a, problems) = parse_map(&[
            ("proxy-redirect-from", from),
            ("proxy-redirect-to", to),
            ("proxy-cookie-domain", "off"),
            ("proxy-cookie-path", "off"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(a.policy.response_rewrite.is_none(), "{from} {to}");
        assert!(a.policy.is_plain());
    }
}

#[test]
fn response_rewrites_refuse_what_nginx_would_expand() {
    for (name, value) in [
        ("proxy-cookie-domain", "~^(.*)$ example.org"),
        ("proxy-cookie-path", "/one/ $uri"),
        ("proxy-cookie-path", "/only-one"),
        ("proxy-redirect-to", "http://$host/"),
    ] {
        let (_, problems) = parse_map(&[("proxy-redirect-from", "http://a/"), (name, value)]);
        assert!(
            problems.iter().any(|p| p.reject && p.field.contains(name)),
            "{name}: {value}: {problems:?}"
        );
    }
}

#[test]
fn limit_rate_needs_proxy_buffering() {
    let (a, problems) = parse_map(&[
        ("limit-rate", "90"),
        ("limit-rate-after", "10"),
        ("proxy-buffering", "on"),
    ]);
    assert!(problems.iter().all(|p| !p.reject), "{problems:?}");
    assert_eq!(
        a.policy.limit_rate,
        Some(LimitRate {
            bytes_per_sec: 90 * 1024,
            after: 10 * 1024
        })
    );
    let (a, problems) = parse_map(&[("limit-rate", "90")]);
    assert!(a.policy.limit_rate.is_none());
    assert!(problems
        .iter()
        .any(|p| !p.reject && p.reason.contains("proxy-buffering")));
    let (a, _) = parse_map(&[("limit-rate", "0"), ("proxy-buffering", "on")]);
    assert!(a.policy.limit_rate.is_none());
    let (a, problems) = parse_map(&[("limit-rate", "1k"), ("proxy-buffering", "on")]);
    assert!(a.policy.limit_rate.is_none());
    assert!(problems.iter().any(|p| p.field.contains("limit-rate")));
}

#[test]
fn redirects_to_paths_are_absolute_unless_relative() {
    let (a, _) = parse_map(&[("permanent-redirect", "/new")]);
    assert!(a.policy.redirect.expect("redirect").absolute);
    let (a, _) = parse_map(&[
        ("permanent-redirect", "/new"),
        ("relative-redirects", "true"),
    ]);
    assert!(!a.policy.redirect.expect("redirect").absolute);
    let (a, _) = parse_map(&[("permanent-redirect", "https://x.example/new")]);
    assert!(!a.policy.redirect.expect("redirect").absolute);
}

#[test]
fn disabled_intercept_keeps_upstream_errors() {
    let (a, _) = parse_map(&[("custom-http-errors", "404,503")]);
    assert_eq!(a.custom_errors, [404, 503]);
    let (a, _) = parse_map(&[
        ("custom-http-errors", "404"),
        ("disable-proxy-intercept-errors", "true"),
    ]);
    assert!(a.custom_errors.is_empty());
}

#[test]
fn canary_affinity_behavior_defaults_to_sticky() {
    let canary = |behavior: Option<&str>| {
        let mut pairs = vec![("canary", "true")];
        if let Some(b) = behavior {
            pairs.push(("affinity-canary-behavior", b));
        }
        let (a, problems) = parse_map(&pairs);
        (a.canary.expect("canary").sticky, problems)
    };
    assert!(canary(None).0);
    assert!(canary(Some("sticky")).0);
    assert!(!canary(Some("legacy")).0);
    let (sticky, problems) = canary(Some("other"));
    assert!(sticky);
    assert!(problems.iter().any(|p| !p.reject));
}

#[test]
fn www_redirect_is_a_flag() {
    let (a, problems) = parse_map(&[("from-to-www-redirect", "true")]);
    assert!(a.www_redirect && problems.is_empty(), "{problems:?}");
    let (a, _) = parse_map(&[("from-to-www-redirect", "false")]);
    assert!(!a.www_redirect);
}

/// The counts line of `docs/annotations.md` matches its table.
#[test]
fn docs_counts_line_matches_the_table() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/annotations.md"))
        .expect("docs/annotations.md");
    const STATES: [&str; 6] = [
        "implemented",
        "partly implemented",
        "no-op",
        "refused",
        "refused (security)",
        "refused (injection)",
    ];
    let mut documented = [0usize; 6];
    let mut extra = [0usize; 6];
    for line in docs.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(name), Some(state)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        if !name.starts_with('`') || name.contains('/') {
            continue;
        }
        let Some(i) = STATES.iter().position(|s| s == state) else {
            continue;
        };
        if name.ends_with('¹') {
            extra[i] += 1;
        } else {
            documented[i] += 1;
        }
    }
    let list = |counts: &[usize; 6]| {
        STATES
            .iter()
            .zip(counts)
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let expected = format!(
        "Counts: of the {} documented, {}; of the {} marked ¹, {}.",
        documented.iter().sum::<usize>(),
        list(&documented),
        extra.iter().sum::<usize>(),
        list(&extra)
    );
    assert!(
        docs.lines().any(|l| l == expected),
        "docs/annotations.md should have the line:\n{expected}"
    );
}
