//! `enable-cors` and the `cors-*` annotations, with ingress-nginx's
//! defaults.
//!
//! Invariant: every header value is pre-built here (the request path
//! allocates nothing for CORS). As ingress-nginx: a missing or blank
//! `cors-allow-origin`, or a `*` anywhere in the list, allows any origin;
//! an entry that is not an origin (`scheme://host[:port]`, `null`, with at
//! most a leading `*.` label) is skipped with a warning.

use std::sync::Arc;

use http::HeaderValue;

use super::parser::{Parser, NGINX};
use crate::table::policy::{Cors, CorsOrigins};

impl Parser<'_> {
    pub(super) fn cors(&mut self) -> Option<Cors> {
        if self.flag("enable-cors") != Some(true) {
            return None;
        }
        let origin_name = format!("{NGINX}cors-allow-origin");
        let origins = match self.get(&origin_name) {
            None => CorsOrigins::Any,
            Some(blank) if blank.trim().is_empty() => CorsOrigins::Any,
            Some(list) => {
                let mut origins = Vec::new();
                for o in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    if o == "*" {
                        origins.clear();
                        break;
                    }
                    if !nginx_origin(o) {
                        self.warn(
                            &origin_name,
                            format!("`{o}` is not an origin like https://example.com; skipped"),
                        );
                        continue;
                    }
                    origins.push(Arc::from(o.trim_end_matches('/').to_ascii_lowercase()));
                }
                if origins.is_empty() {
                    CorsOrigins::Any
                } else {
                    CorsOrigins::List(origins)
                }
            }
        };
        let mut header = |suffix: &str, default: &'static str| -> HeaderValue {
            let name = format!("{NGINX}{suffix}");
            match self.get(&name) {
                None => HeaderValue::from_static(default),
                Some(v) => match HeaderValue::from_str(v) {
                    Ok(h) => h,
                    Err(_) => {
                        self.warn(
                            &name,
                            format!("`{v}` is not a valid header value; using the default"),
                        );
                        HeaderValue::from_static(default)
                    }
                },
            }
        };
        let allow_methods = header(
            "cors-allow-methods",
            "GET, PUT, POST, DELETE, PATCH, OPTIONS",
        );
        let allow_headers = header(
            "cors-allow-headers",
            "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization",
        );
        let expose_headers = Some(header("cors-expose-headers", "")).filter(|h| !h.is_empty());
        let max_age = header("cors-max-age", "1728000");
        let allow_credentials = self.flag("cors-allow-credentials").unwrap_or(true);
        Some(Cors {
            origins,
            allow_methods,
            allow_headers,
            expose_headers,
            allow_credentials,
            max_age,
            nginx: true,
        })
    }
}

/// ingress-nginx's origin syntax: `[a-z]+://` then an optional `*.`, then
/// `[A-Za-z0-9.-]*` and an optional `:port`; or `null`.
fn nginx_origin(o: &str) -> bool {
    if o == "null" {
        return true;
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    let rest = rest.strip_prefix("*.").unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}
