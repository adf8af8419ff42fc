//! The ingress-nginx ConfigMap keys that act on the whole request path
//! rather than on an Ingress: `hsts*`, `use-forwarded-headers`,
//! `enable-real-ip`, `proxy-real-ip-cidr`, `forwarded-for-header`,
//! `compute-full-forwarded-for`, `server-tokens`, `block-user-agents`,
//! `use-http2`, `ssl-protocols`. Parsed into the table's
//! [`Globals`], which the publisher swaps with the table.
//!
//! Invariants:
//! - Pure. A key absent from the ConfigMap leaves the flag's value
//!   (`--hsts`, `--trusted-proxies`); a key present overrides it, with
//!   ingress-nginx's defaults for the companion keys it does not set.
//! - Trust fails closed: a `proxy-real-ip-cidr` that does not parse trusts
//!   nobody (never the rest of the list, never the default `0.0.0.0/0`).
//! - `block-user-agents` is all or nothing: a bad pattern is reported and
//!   the last good list stays in force ([`LastGood`]).
//! - A bad value of any other key is reported and ingress-nginx's default
//!   for it applies.

use std::collections::BTreeMap;

use http::header::{HeaderName, HeaderValue};

use super::annotations::parse_cidrs;
use super::compiled::LastGood;
use crate::table::globals::{AgentBlock, Globals, TlsPrefs, Trust};

/// One problem with a key: (key, reason), as `nginx_config`'s.
type KeyProblem = (String, String);

/// The keys this file applies.
pub const KEYS: [&str; 13] = [
    "hsts",
    "hsts-max-age",
    "hsts-include-subdomains",
    "hsts-preload",
    "use-forwarded-headers",
    "compute-full-forwarded-for",
    "forwarded-for-header",
    "enable-real-ip",
    "proxy-real-ip-cidr",
    "server-tokens",
    "use-http2",
    "ssl-protocols",
    "block-user-agents",
];

/// ingress-nginx's `hsts-max-age`.
const HSTS_MAX_AGE: u64 = 31_536_000;
/// Largest compiled size of the `block-user-agents` regexes (bounded
/// memory whatever the ConfigMap holds).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Reads the global keys of `data`; `last_good` holds the block list of
/// the previous compile (kept when the new one has a bad pattern).
pub fn parse(
    data: &BTreeMap<String, String>,
    last_good: &LastGood,
    problems: &mut Vec<KeyProblem>,
) -> Globals {
    let mut bad = |key: &str, reason: String| problems.push((key.to_string(), reason));
    let get = |key: &str| data.get(key).map(|v| v.trim());
    let mut flag = |key: &str, default: bool, bad: &mut dyn FnMut(&str, String)| match get(key) {
        None => default,
        Some("true") => true,
        Some("false") => false,
        Some(other) => {
            bad(
                key,
                format!("`{other}` is not true or false; `{default}` applies"),
            );
            default
        }
    };
    let mut out = Globals::default();

    let hsts_keys = [
        "hsts",
        "hsts-max-age",
        "hsts-include-subdomains",
        "hsts-preload",
    ];
    if hsts_keys.iter().any(|k| data.contains_key(*k)) {
        let on = flag("hsts", true, &mut bad);
        let subdomains = flag("hsts-include-subdomains", true, &mut bad);
        let preload = flag("hsts-preload", false, &mut bad);
        let max_age = match get("hsts-max-age") {
            None => HSTS_MAX_AGE,
            Some(v) => v.parse::<u64>().unwrap_or_else(|_| {
                bad(
                    "hsts-max-age",
                    format!("`{v}` is not a number of seconds; {HSTS_MAX_AGE} applies"),
                );
                HSTS_MAX_AGE
            }),
        };
        out.hsts = Some(on.then(|| hsts_value(max_age, subdomains, preload)));
    }

    if flag("server-tokens", false, &mut bad) {
        let value = format!("tollgate/{}", crate::build_info::VERSION);
        out.server = HeaderValue::from_str(&value).ok();
    }

    out.trust = trust(data, &mut bad, &mut flag);
    out.tls = tls_prefs(data, &mut bad, &mut flag);
    out.block_agents = match get("block-user-agents") {
        None => None,
        Some(list) => match agent_block(list) {
            Ok(block) => block,
            Err(reason) => {
                bad(
                    "block-user-agents",
                    format!("{reason}; the last good list stays in force"),
                );
                last_good.block_agents.clone()
            }
        },
    };
    out
}

fn hsts_value(max_age: u64, subdomains: bool, preload: bool) -> HeaderValue {
    let mut value = format!("max-age={max_age}");
    if subdomains {
        value.push_str("; includeSubDomains");
    }
    if preload {
        value.push_str("; preload");
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("max-age=31536000"))
}

type Flag<'a> = dyn FnMut(&str, bool, &mut dyn FnMut(&str, String)) -> bool + 'a;

/// `use-forwarded-headers` and friends; `None` when neither switch is in
/// the ConfigMap (then `--trusted-proxies` applies).
fn trust(
    data: &BTreeMap<String, String>,
    bad: &mut dyn FnMut(&str, String),
    flag: &mut Flag<'_>,
) -> Option<Trust> {
    let switches = ["use-forwarded-headers", "enable-real-ip"];
    if !switches.iter().any(|k| data.contains_key(*k)) {
        if data.contains_key("proxy-real-ip-cidr") || data.contains_key("forwarded-for-header") {
            bad(
                "data",
                "proxy-real-ip-cidr and forwarded-for-header apply only with use-forwarded-headers or enable-real-ip; --trusted-proxies applies".into(),
            );
        }
        return None;
    }
    let forwarded_headers = flag("use-forwarded-headers", false, bad);
    let real_ip = flag("enable-real-ip", false, bad);
    let full_chain = flag("compute-full-forwarded-for", false, bad) && forwarded_headers;
    let header = match data.get("forwarded-for-header").map(|v| v.trim()) {
        None | Some("") => HeaderName::from_static("x-forwarded-for"),
        Some(name) => match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => name,
            Err(_) => {
                bad(
                    "forwarded-for-header",
                    format!("`{name}` is not a header name; nobody is trusted"),
                );
                return Some(nobody());
            }
        },
    };
    let (nets, nets_from_flag) = match data.get("proxy-real-ip-cidr").map(|v| v.trim()) {
        None | Some("") => (
            vec![
                "0.0.0.0/0".parse().expect("valid CIDR"),
                "::/0".parse().expect("valid CIDR"),
            ],
            true,
        ),
        Some(list) => match parse_cidrs(list) {
            Ok(nets) => (nets, false),
            Err(reason) => {
                bad(
                    "proxy-real-ip-cidr",
                    format!("{reason}; nobody is trusted until it is fixed"),
                );
                return Some(nobody());
            }
        },
    };
    if !(forwarded_headers || real_ip) {
        return Some(nobody());
    }
    Some(Trust {
        nets,
        nets_from_flag,
        header,
        forwarded_headers,
        full_chain,
    })
}

/// Trusts no peer: forwarding headers are ignored, the peer is the client.
fn nobody() -> Trust {
    Trust {
        nets: Vec::new(),
        nets_from_flag: false,
        header: HeaderName::from_static("x-forwarded-for"),
        forwarded_headers: false,
        full_chain: false,
    }
}

fn tls_prefs(
    data: &BTreeMap<String, String>,
    bad: &mut dyn FnMut(&str, String),
    flag: &mut Flag<'_>,
) -> TlsPrefs {
    let mut prefs = TlsPrefs {
        http2: flag("use-http2", true, bad),
        ..TlsPrefs::default()
    };
    let Some(list) = data.get("ssl-protocols") else {
        return prefs;
    };
    let (mut tls12, mut tls13) = (false, false);
    let mut ignored = Vec::new();
    for token in list.split_whitespace() {
        match token {
            "TLSv1.2" => tls12 = true,
            "TLSv1.3" => tls13 = true,
            other => ignored.push(other),
        }
    }
    if !ignored.is_empty() {
        bad(
            "ssl-protocols",
            format!(
                "{} not supported (TLS 1.2 and 1.3 only), ignored",
                ignored.join(" ")
            ),
        );
    }
    if tls12 || tls13 {
        prefs.tls12 = tls12;
        prefs.tls13 = tls13;
    } else {
        bad(
            "ssl-protocols",
            "names neither TLSv1.2 nor TLSv1.3; `TLSv1.2 TLSv1.3` applies".into(),
        );
    }
    prefs
}

/// nginx `map` keys, comma-separated: `~regex` (case-sensitive),
/// `~*regex` (case-insensitive), else an exact string (compared without
/// case); quotes around an entry are nginx's and are dropped. `Ok(None)`
/// for an empty list.
fn agent_block(list: &str) -> Result<Option<AgentBlock>, String> {
    let mut exact: Vec<Box<[u8]>> = Vec::new();
    let mut patterns = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let entry = unquote(entry);
        if let Some(pattern) = entry.strip_prefix("~*") {
            patterns.push(format!("(?i){pattern}"));
        } else if let Some(pattern) = entry.strip_prefix('~') {
            patterns.push(pattern.to_string());
        } else {
            // A leading `\` escapes a literal `~` (nginx map).
            let literal = entry.strip_prefix('\\').unwrap_or(entry);
            exact.push(literal.as_bytes().into());
        }
    }
    for pattern in &patterns {
        regex::bytes::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("`{pattern}` is not a supported regular expression: {e}"))?;
    }
    let regex = if patterns.is_empty() {
        None
    } else {
        Some(
            regex::bytes::RegexSetBuilder::new(&patterns)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("the regular expressions are too large: {e}"))?,
        )
    };
    if exact.is_empty() && regex.is_none() {
        return Ok(None);
    }
    Ok(Some(AgentBlock::new(exact, regex)))
}

fn unquote(entry: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = entry.strip_prefix(q).and_then(|e| e.strip_suffix(q)) {
            return inner;
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(pairs: &[(&str, &str)]) -> (Globals, Vec<KeyProblem>) {
        let data = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut problems = Vec::new();
        let g = parse(&data, &LastGood::default(), &mut problems);
        (g, problems)
    }

    #[test]
    fn absent_keys_leave_the_flags() {
        let (g, problems) = parsed(&[]);
        assert!(g.hsts.is_none() && g.trust.is_none() && g.server.is_none());
        assert!(g.block_agents.is_none());
        assert_eq!(g.tls, TlsPrefs::default());
        assert!(problems.is_empty());
    }

    #[test]
    fn hsts_takes_ingress_nginx_defaults_for_unset_keys() {
        let (g, _) = parsed(&[("hsts-max-age", "100")]);
        assert_eq!(
            g.hsts,
            Some(Some(HeaderValue::from_static(
                "max-age=100; includeSubDomains"
            )))
        );
        let (g, _) = parsed(&[("hsts", "false"), ("hsts-preload", "true")]);
        assert_eq!(g.hsts, Some(None));
        let (g, p) = parsed(&[("hsts-preload", "true"), ("hsts-include-subdomains", "no")]);
        assert_eq!(
            g.hsts,
            Some(Some(HeaderValue::from_static(
                "max-age=31536000; includeSubDomains; preload"
            )))
        );
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn trust_fails_closed_on_a_bad_cidr() {
        let (g, p) = parsed(&[
            ("use-forwarded-headers", "true"),
            ("proxy-real-ip-cidr", "10.0.0.0/8, nonsense"),
        ]);
        let t = g.trust.unwrap();
        assert!(t.nets.is_empty() && !t.nets_from_flag && !t.forwarded_headers);
        assert!(p[0].1.contains("nobody is trusted"), "{p:?}");
        let (g, _) = parsed(&[
            ("enable-real-ip", "true"),
            ("forwarded-for-header", "CF-Connecting-IP"),
            ("compute-full-forwarded-for", "true"),
        ]);
        let t = g.trust.unwrap();
        assert!(t.nets_from_flag && !t.forwarded_headers && !t.full_chain);
        assert_eq!(t.header, "cf-connecting-ip");
        let (g, _) = parsed(&[("use-forwarded-headers", "false")]);
        assert!(g.trust.unwrap().nets.is_empty());
    }

    #[test]
    fn tls_protocols_and_http2() {
        let (g, p) = parsed(&[("ssl-protocols", "TLSv1 TLSv1.3"), ("use-http2", "false")]);
        assert_eq!(
            g.tls,
            TlsPrefs {
                http2: false,
                tls12: false,
                tls13: true
            }
        );
        assert!(p[0].1.contains("TLSv1 not supported"), "{p:?}");
        let (g, p) = parsed(&[("ssl-protocols", "SSLv3")]);
        assert_eq!(g.tls, TlsPrefs::default());
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn block_list_keeps_the_last_good_on_a_bad_pattern() {
        let (g, p) = parsed(&[("block-user-agents", "~*bot, \"Evil Agent\", ~^curl/")]);
        assert!(p.is_empty());
        let block = g.block_agents.unwrap();
        assert!(block.blocks(Some(&HeaderValue::from_static("GoogleBOT"))));
        assert!(block.blocks(Some(&HeaderValue::from_static("evil agent"))));
        assert!(block.blocks(Some(&HeaderValue::from_static("curl/8"))));
        assert!(!block.blocks(Some(&HeaderValue::from_static("CURL/8"))));
        let last_good = LastGood {
            block_agents: Some(block),
            ..LastGood::default()
        };
        let data = [("block-user-agents".to_string(), "~(?<=x)y".to_string())].into();
        let mut problems = Vec::new();
        let g = parse(&data, &last_good, &mut problems);
        assert!(g
            .block_agents
            .unwrap()
            .blocks(Some(&HeaderValue::from_static("curl/1"))));
        assert!(problems[0].1.contains("last good"), "{problems:?}");
    }
}
