//! The first endpoint's choice: sticky sessions by cookie (`affinity`) or
//! consistent hashing of a request key (`upstream-hash-by`), and the
//! affinity cookie on the response.
//!
//! Invariants:
//! - Keys hash with [`crate::lb::stable_hash`], so every replica maps a
//!   key (and a balanced-affinity cookie) to the same endpoint.
//! - A cookie is set only when it is new (balanced) or names another
//!   endpoint than the one that served (persistent).
//! - A cookie value from the client is bounded (64 bytes) before hashing.
//! - A cookie set while the route's canary served carries the canary's
//!   mark (`affinity-canary-behavior: sticky`), or is not set at all
//!   (`legacy`); the mark is never part of the key.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderValue, COOKIE};
use http::{Request, Response};
use hyper::body::Incoming;

use super::affinity_cookie::{samesite_none_broken, set_cookie};
use super::exchange::{CookieRequest, Cx, Flow, RequestStep, ResponseStep};
use crate::lb::{stable_hash, Endpoint, StableHasher};
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::plan::Pick;
use crate::table::policy::{Affinity, AffinityMode, HashKey, HashPart, CANARY_COOKIE_MARK};

impl RequestStep for Affinity {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        // The canary's mark (`affinity-canary-behavior`) is not the key.
        let existing = cookie(req.headers(), &self.cookie)
            .map(|v| v.strip_suffix(CANARY_COOKIE_MARK).unwrap_or(v));
        if self.attrs.nginx {
            cx.cookie_request = CookieRequest {
                tls: cx.conn.client.tls,
                samesite_none_broken: self.attrs.conditional_samesite_none
                    && req
                        .headers()
                        .get(header::USER_AGENT)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(samesite_none_broken),
            };
        }
        cx.plan.pick = match self.mode {
            AffinityMode::Persistent => {
                match existing.and_then(|v| u64::from_str_radix(v, 16).ok()) {
                    Some(id) => Pick::Sticky(id),
                    None => Pick::Balanced,
                }
            }
            AffinityMode::Balanced => match existing.filter(|v| !v.is_empty() && v.len() <= 64) {
                Some(key) => Pick::Hash(stable_hash(&[key.as_bytes()])),
                None => {
                    let key = format!("{:032x}", fastrand::u128(..));
                    let pick = Pick::Hash(stable_hash(&[key.as_bytes()]));
                    cx.new_cookie = Some(key);
                    pick
                }
            },
        };
        Ok(Flow::Continue)
    }
}

impl RequestStep for HashKey {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        cx.plan.pick = Pick::Hash(hash_key(self, cx.client, req));
        Ok(Flow::Continue)
    }
}

impl ResponseStep for Affinity {
    async fn run(&self, cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, endpoint: &Endpoint) {
        let value = match (self.mode, cx.new_cookie.take()) {
            (AffinityMode::Balanced, Some(key)) => Some(key),
            (AffinityMode::Persistent, _) if Pick::Sticky(endpoint.sticky_id) != cx.plan.pick => {
                Some(format!("{:016x}", endpoint.sticky_id))
            }
            _ => None,
        };
        let Some(mut value) = value else {
            return;
        };
        match cx.canary {
            // `legacy`: the canary takes no part in affinity.
            Some(canary) if !canary.sticky => return,
            Some(_) => value.push_str(CANARY_COOKIE_MARK),
            None => {}
        }
        let cookie = set_cookie(self, &value, &cx.route.path, cx.cookie_request);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// The hash of a request key: literal text and request variables.
fn hash_key(key: &HashKey, client: IpAddr, req: &Request<Incoming>) -> u64 {
    let mut h = StableHasher::new();
    for part in &key.parts {
        match part {
            HashPart::Literal(s) => h.write(s.as_bytes()),
            HashPart::RemoteAddr => match client {
                IpAddr::V4(ip) => h.write(&ip.octets()),
                IpAddr::V6(ip) => h.write(&ip.octets()),
            },
            HashPart::RequestUri => h.write(
                req.uri()
                    .path_and_query()
                    .map_or(b"/".as_slice(), |p| p.as_str().as_bytes()),
            ),
            HashPart::Header(name) => h.write(
                req.headers()
                    .get(name)
                    .map_or(b"".as_slice(), |v| v.as_bytes()),
            ),
            HashPart::Cookie(name) => h.write(cookie(req.headers(), name).unwrap_or("").as_bytes()),
        }
    }
    h.finish()
}

/// The value of cookie `name` in the request's Cookie header(s).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_across_headers() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(COOKIE, HeaderValue::from_static("c=\"3\""));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "d"), None);
    }
}
