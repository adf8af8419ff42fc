//! [`LimitKey`]: what a global rate limit
//! ([`super::policy::GlobalRateLimit`]) counts requests by: the client
//! address, or ingress-nginx's `global-rate-limit-key` template.
//!
//! Invariants:
//! - Plain values built by the compiler: comparable and hashable, so the
//!   publisher keeps a route's global limiter (and its local fallback)
//!   alive while the limit is unchanged.
//! - A key template is parsed once here; rendering it per request only
//!   copies bytes ([`LimitKey::render`]), and an empty rendering falls back
//!   to the client address (ingress-nginx's rule), so a request is never
//!   counted under a key shared by every client by accident.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};

use crate::nginx_vars::Segment;

/// What a global limit counts requests by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// The client address as resolved (trusted proxies, PROXY protocol).
    #[default]
    ClientIp,
    /// ingress-nginx's `global-rate-limit-key`: literals and variables.
    Template(Arc<[KeyPart]>),
}

/// One piece of a key template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    Literal(Arc<str>),
    /// `$remote_addr`: the client address.
    RemoteAddr,
    /// `$http_<name>`: the request header's value (empty when absent).
    Header(HeaderName),
}

impl LimitKey {
    /// Parses an nginx-style key: literals, `$var` and `${var}` with `var`
    /// one of `remote_addr` or `http_<header>` (`_` read as `-`).
    pub fn parse(template: &str) -> Result<LimitKey, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let segments = crate::nginx_vars::split(template)
            .map_err(|_| format!("`${{` without `}}` in `{template}`"))?;
        for segment in segments {
            let name = match segment {
                Segment::Literal(text) => {
                    literal.push_str(text);
                    continue;
                }
                Segment::Var(name) => name,
            };
            let part = if name == "remote_addr" {
                KeyPart::RemoteAddr
            } else if let Some(header) = name.strip_prefix("http_") {
                let header = HeaderName::from_bytes(header.replace('_', "-").as_bytes())
                    .map_err(|_| format!("`${name}` does not name a header"))?;
                KeyPart::Header(header)
            } else {
                return Err(format!(
                    "`${name}` is not supported (use $remote_addr, $http_<header> and literals)"
                ));
            };
            if !literal.is_empty() {
                parts.push(KeyPart::Literal(std::mem::take(&mut literal).into()));
            }
            parts.push(part);
        }
        if !literal.is_empty() {
            parts.push(KeyPart::Literal(literal.into()));
        }
        Ok(match parts.as_slice() {
            [] | [KeyPart::RemoteAddr] => LimitKey::ClientIp,
            _ => LimitKey::Template(parts.into()),
        })
    }

    /// Appends the request's key to `out`; the client address when the
    /// template renders empty (as ingress-nginx).
    pub fn render(&self, client: IpAddr, headers: &HeaderMap, out: &mut Vec<u8>) {
        use std::io::Write;
        let start = out.len();
        if let LimitKey::Template(parts) = self {
            for part in parts.iter() {
                match part {
                    KeyPart::Literal(s) => out.extend_from_slice(s.as_bytes()),
                    KeyPart::RemoteAddr => {
                        let _ = write!(out, "{}", client.to_canonical());
                    }
                    KeyPart::Header(name) => {
                        if let Some(v) = headers.get(name) {
                            out.extend_from_slice(v.as_bytes());
                        }
                    }
                }
            }
        }
        if out.len() == start {
            let _ = write!(out, "{}", client.to_canonical());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(key: &LimitKey, headers: &[(&str, &str)]) -> String {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let mut out = Vec::new();
        key.render("10.0.0.1".parse().unwrap(), &map, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn templates_render_variables_and_literals() {
        assert_eq!(LimitKey::parse("$remote_addr"), Ok(LimitKey::ClientIp));
        assert_eq!(LimitKey::parse(""), Ok(LimitKey::ClientIp));
        let key = LimitKey::parse("${remote_addr}-${http_x_api_client}").unwrap();
        assert_eq!(render(&key, &[("x-api-client", "a")]), "10.0.0.1-a");
        assert_eq!(render(&key, &[]), "10.0.0.1-");
        let key = LimitKey::parse("$http_x_api_key").unwrap();
        assert_eq!(render(&key, &[("x-api-key", "k1")]), "k1");
        // Empty: the client address (ingress-nginx's fallback).
        assert_eq!(render(&key, &[]), "10.0.0.1");
        let key = LimitKey::parse("everyone").unwrap();
        assert_eq!(render(&key, &[]), "everyone");
        assert!(LimitKey::parse("$uri").is_err());
        assert!(LimitKey::parse("${http_x").is_err());
    }
}
