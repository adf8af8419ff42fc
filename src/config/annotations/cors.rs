//! `enable-cors` and the `cors-*` annotations, with ingress-nginx's
//! defaults.
//!
//! Invariant: every header value is pre-built here (the request path
//! allocates nothing for CORS); an origin that is not `http(s)://…` is
//! skipped with a warning, and a `*` anywhere allows any origin.

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
            None | Some("*") | Some("") => CorsOrigins::Any,
            Some(list) => {
                let mut origins = Vec::new();
                for o in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    if o == "*" {
                        origins.clear();
                        break;
                    }
                    if !(o.starts_with("http://") || o.starts_with("https://")) {
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
        })
    }
}
