//! Value parsers shared by the annotations and other inputs: CIDR lists,
//! nginx sizes, `upstream-hash-by` keys, cookie names.
//!
//! Invariant: pure functions over untrusted strings; never panic (a fuzz
//! loop in the tests checks).

use http::HeaderName;
use ipnet::IpNet;

use crate::table::policy::{HashKey, HashPart};

/// A comma-separated list of CIDRs or addresses.
pub fn parse_cidrs(value: &str) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let net = entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| format!("`{entry}` is not a CIDR (10.0.0.0/8) or IP address"))?;
        out.push(net.trunc());
    }
    Ok(out)
}

/// nginx sizes: bytes, or a number with k/K, m/M, g/G.
pub fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, unit) = match value.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (value.get(..i)?, Some(c.to_ascii_lowercase())),
        _ => (value, None),
    };
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit {
        None => 1,
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some(_) => return None,
    };
    n.checked_mul(factor)
}

/// `upstream-hash-by`: literal text and the variables `$remote_addr`
/// (`$binary_remote_addr`), `$request_uri`, `$http_NAME`, `$cookie_NAME`.
pub fn parse_hash_key(value: &str) -> Result<HashKey, String> {
    let mut parts = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let Some(at) = rest.find('$') else {
            parts.push(HashPart::Literal(rest.into()));
            break;
        };
        if at > 0 {
            parts.push(HashPart::Literal(rest.get(..at).unwrap_or_default().into()));
        }
        let after = rest.get(at + 1..).unwrap_or_default();
        let (var, tail) = match after.strip_prefix('{') {
            Some(braced) => match braced.split_once('}') {
                Some((v, t)) => (v, t),
                None => return Err(format!("`{value}`: unclosed `${{`")),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (
                    after.get(..end).unwrap_or_default(),
                    after.get(end..).unwrap_or_default(),
                )
            }
        };
        let part = match var {
            "remote_addr" | "binary_remote_addr" => HashPart::RemoteAddr,
            "request_uri" => HashPart::RequestUri,
            v => {
                if let Some(h) = v.strip_prefix("http_") {
                    let name = h.replace('_', "-").to_ascii_lowercase();
                    HashPart::Header(
                        HeaderName::from_bytes(name.as_bytes())
                            .map_err(|_| format!("`${v}` does not name a header"))?,
                    )
                } else if let Some(c) = v.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                    HashPart::Cookie(c.into())
                } else {
                    return Err(format!(
                        "`${v}` is not one of $remote_addr, $request_uri, $http_NAME, $cookie_NAME"
                    ));
                }
            }
        };
        parts.push(part);
        rest = tail;
    }
    if parts.is_empty() {
        return Err("empty".into());
    }
    Ok(HashKey { parts })
}

/// RFC 6265 cookie-name: a token.
pub fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
