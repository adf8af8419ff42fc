//! What ingress-nginx changes on the upstream's response as nginx reads
//! it: `Location` and `Refresh` (`proxy-redirect-from` / `-to`, nginx's
//! `proxy_redirect`), each `Set-Cookie`'s `Domain` and `Path`
//! (`proxy-cookie-domain`, `proxy-cookie-path`); and the response body's
//! bandwidth (`limit-rate`, `limit-rate-after`).
//!
//! Invariants:
//! - Only headers that match are rebuilt; the others are left as they
//!   came (no allocation for them).
//! - A rewritten value that is not a valid header value leaves the
//!   original in place.
//! - Pacing never blocks a worker: the body waits on a timer
//!   ([`crate::proxy::body::Pace`]).

use http::header::{HeaderName, LOCATION, REFRESH, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Response};

use super::exchange::{Cx, ResponseStep};
use crate::lb::Endpoint;
use crate::proxy::body::{Pace, ProxyBody};
use crate::table::policy::{LimitRate, ResponseRewrite};

impl ResponseStep for ResponseRewrite {
    async fn run(&self, _: &mut Cx<'_>, response: &mut Response<ProxyBody>, _: &Endpoint) {
        let headers = response.headers_mut();
        if self.redirect.is_some() {
            rewrite_one(headers, LOCATION, |v| self.location(v));
            rewrite_one(headers, REFRESH, |v| self.refresh(v));
        }
        if (self.cookie_domain.is_some() || self.cookie_path.is_some())
            && headers.contains_key(SET_COOKIE)
        {
            let cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
            if cookies
                .iter()
                .any(|c| c.to_str().ok().and_then(|v| self.set_cookie(v)).is_some())
            {
                headers.remove(SET_COOKIE);
                for cookie in cookies {
                    let new = cookie
                        .to_str()
                        .ok()
                        .and_then(|v| self.set_cookie(v))
                        .and_then(|v| HeaderValue::try_from(v).ok());
                    headers.append(SET_COOKIE, new.unwrap_or(cookie));
                }
            }
        }
    }
}

/// Replaces a single-valued header when `f` rewrites it.
fn rewrite_one(headers: &mut HeaderMap, name: HeaderName, f: impl Fn(&str) -> Option<String>) {
    let Some(new) = headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .and_then(f)
        .and_then(|v| HeaderValue::try_from(v).ok())
    else {
        return;
    };
    headers.insert(name, new);
}

impl ResponseStep for LimitRate {
    async fn run(&self, _: &mut Cx<'_>, response: &mut Response<ProxyBody>, _: &Endpoint) {
        response.body_mut().set_pace(Pace::new(*self));
    }
}
