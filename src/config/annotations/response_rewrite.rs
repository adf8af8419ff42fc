//! `proxy-redirect-from` / `proxy-redirect-to` (nginx's `proxy_redirect`)
//! and `proxy-cookie-domain` / `proxy-cookie-path` (`proxy_cookie_domain`,
//! `proxy_cookie_path`): how the upstream's `Location`, `Refresh` and
//! `Set-Cookie` are rewritten.
//!
//! The documented forms are honoured: `off`; `default` (nginx's default
//! rewrite of the `proxy_pass` URL, which names ingress-nginx's internal
//! `upstream_balancer` and so never matches an upstream's answer: no
//! effect); and a literal `from` / `to` pair. nginx variables and regular
//! expressions (`~`) would need nginx to expand them: they reject the
//! Ingress, naming the annotation.
//!
//! Invariant: pure; only literal values reach the table.

use std::sync::Arc;

use super::parser::{Parser, NGINX};
use crate::table::policy::{ResponseRewrite, Swap};

impl Parser<'_> {
    pub(super) fn response_rewrite(&mut self) -> Option<Arc<ResponseRewrite>> {
        let rewrite = ResponseRewrite {
            redirect: self.proxy_redirect(),
            cookie_domain: self.cookie_swap("proxy-cookie-domain", true),
            cookie_path: self.cookie_swap("proxy-cookie-path", false),
        };
        (rewrite != ResponseRewrite::default()).then(|| Arc::new(rewrite))
    }

    fn proxy_redirect(&mut self) -> Option<Swap> {
        let from_name = format!("{NGINX}proxy-redirect-from");
        let to_name = format!("{NGINX}proxy-redirect-to");
        let from = self.get(&from_name)?;
        // As ingress-nginx's template: `off` and `default` stand alone.
        if from.is_empty() || from == "off" || from == "default" {
            return None;
        }
        let to = self.get(&to_name).unwrap_or("");
        // ingress-nginx writes no proxy_redirect without a `to`, or with
        // `to: off`.
        if to.is_empty() || to == "off" {
            return None;
        }
        let from = self.literal(&from_name, from)?;
        let to = self.literal(&to_name, to)?;
        Some(Swap { from, to })
    }

    /// `FROM TO` or `off`.
    fn cookie_swap(&mut self, suffix: &str, domain: bool) -> Option<Swap> {
        let name = format!("{NGINX}{suffix}");
        let value = self.get(&name)?;
        if value.is_empty() || value == "off" {
            return None;
        }
        let mut words = value.split_ascii_whitespace();
        let (Some(from), Some(to), None) = (words.next(), words.next(), words.next()) else {
            self.reject(
                &name,
                format!(
                    "`{value}` is not `off` or `FROM TO`; the Ingress is not served as written"
                ),
            );
            return None;
        };
        let from = self.literal(&name, from)?;
        let to = self.literal(&name, to)?;
        // nginx ignores a leading dot of a domain pattern.
        let from = match from.strip_prefix('.').filter(|_| domain) {
            Some(bare) => bare.into(),
            None => from,
        };
        Some(Swap { from, to })
    }

    /// A literal value: no nginx variable, no regular expression, a valid
    /// header value.
    fn literal(&mut self, name: &str, value: &str) -> Option<Arc<str>> {
        let reason = if value.contains('$') {
            "nginx variables are not supported here (only literal values)"
        } else if value.starts_with('~') {
            "regular expressions are not supported here (only literal prefixes)"
        } else if http::HeaderValue::from_str(value).is_err() || value.contains(';') {
            "not a valid header value"
        } else {
            return Some(value.into());
        };
        self.reject(
            name,
            format!("`{value}`: {reason}; the Ingress is not served as written"),
        );
        None
    }
}
