//! Ingress-level annotations that are not route policy: `server-alias`,
//! `custom-http-errors` codes, and a canary Ingress's settings. The
//! compiler turns them into hosts, [`crate::table::policy::CustomErrors`]
//! and [`crate::table::policy::Canary`] once it knows the upstreams.
//!
//! Invariant: every alias is a valid host; a bad value warns and is
//! skipped, it never rejects the Ingress.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::parser::{Parser, NGINX};
use crate::table::policy::{CanaryHeader, CanaryMatch};

/// A canary Ingress's settings.
#[derive(Debug, Clone)]
pub struct CanarySpec {
    pub header: Option<CanaryHeader>,
    pub cookie: Option<Arc<str>>,
    pub weight: u32,
    pub weight_total: u32,
    /// `affinity-canary-behavior`: `sticky` (the default) keeps a client
    /// the canary served on the canary through the main Ingress's
    /// affinity cookie; `legacy` ignores affinity for the canary.
    pub sticky: bool,
}

impl Parser<'_> {
    pub(super) fn aliases(&mut self) -> Vec<String> {
        let name = format!("{NGINX}server-alias");
        let Some(value) = self.get(&name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for host in value
            .split([',', ' '])
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            let host = host.to_ascii_lowercase();
            match crate::config::validate::host(&host) {
                Ok(()) => out.push(host),
                Err(reason) => self.warn(&name, format!("`{host}`: {reason}; skipped")),
            }
        }
        out
    }

    pub(super) fn custom_errors(&mut self) -> Vec<u16> {
        let name = format!("{NGINX}custom-http-errors");
        let Some(value) = self.get(&name) else {
            return Vec::new();
        };
        // ingress-nginx: without `proxy_intercept_errors`, the upstream's
        // own error responses reach the client (the default backend still
        // serves a route whose Service has no endpoint).
        if self.flag("disable-proxy-intercept-errors") == Some(true) {
            return Vec::new();
        }
        let mut codes = Vec::new();
        for code in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match code.parse::<u16>() {
                Ok(c) if (400..=599).contains(&c) => codes.push(c),
                _ => self.warn(
                    &name,
                    format!("`{code}` is not a 4xx or 5xx status; skipped"),
                ),
            }
        }
        codes
    }

    pub(super) fn canary(&mut self) -> Option<CanarySpec> {
        if self.flag("canary") != Some(true) {
            return None;
        }
        let header_name = format!("{NGINX}canary-by-header");
        let header = match self.get(&header_name) {
            None => None,
            Some(h) => match HeaderName::from_bytes(h.as_bytes()) {
                Ok(name) => {
                    let value_name = format!("{NGINX}canary-by-header-value");
                    let pattern_name = format!("{NGINX}canary-by-header-pattern");
                    let matcher = if let Some(v) = self.get(&value_name) {
                        match HeaderValue::from_str(v) {
                            Ok(v) => CanaryMatch::Value(v),
                            Err(_) => {
                                self.warn(
                                    &value_name,
                                    format!("`{v}` is not a header value; using always/never"),
                                );
                                CanaryMatch::AlwaysNever
                            }
                        }
                    } else if let Some(p) = self.get(&pattern_name) {
                        match regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
                            Ok(r) => CanaryMatch::Pattern(Arc::new(r)),
                            Err(e) => {
                                self.warn(&pattern_name, format!("`{p}` is not a regular expression ({e}); using always/never"));
                                CanaryMatch::AlwaysNever
                            }
                        }
                    } else {
                        CanaryMatch::AlwaysNever
                    };
                    Some(CanaryHeader { name, matcher })
                }
                Err(_) => {
                    self.warn(&header_name, format!("`{h}` is not a header name; ignored"));
                    None
                }
            },
        };
        let cookie = self.nginx("canary-by-cookie").map(Arc::from);
        let total_name = format!("{NGINX}canary-weight-total");
        let weight_total = match self.get(&total_name) {
            None => 100,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    self.warn(
                        &total_name,
                        format!("`{v}` is not a whole number ≥ 1; using 100"),
                    );
                    100
                }
            },
        };
        let weight_name = format!("{NGINX}canary-weight");
        let weight = match self.get(&weight_name) {
            None => 0,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n <= weight_total => n,
                _ => {
                    self.warn(
                        &weight_name,
                        format!("`{v}` is not a number in 0..={weight_total}; using 0"),
                    );
                    0
                }
            },
        };
        let behavior_name = format!("{NGINX}affinity-canary-behavior");
        let sticky = match self.get(&behavior_name) {
            None | Some("sticky") => true,
            Some("legacy") => false,
            Some(other) => {
                self.warn(
                    &behavior_name,
                    format!("`{other}` is not sticky or legacy; using sticky"),
                );
                true
            }
        };
        Some(CanarySpec {
            header,
            cookie,
            weight,
            weight_total,
            sticky,
        })
    }
}
