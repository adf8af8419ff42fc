//! [`RoutePolicy::summary`]: one short line per setting of a route's
//! policy, for `tollgate check` and `/debug/routes`.
//!
//! Invariant: read-only over the compiled policy; never on the request path.

use std::time::Duration;

use ipnet::IpNet;

use super::{AffinityMode, RoutePolicy};

impl RoutePolicy {
    /// One short line per setting, for `tollgate check` (so a user sees
    /// which annotations and policy fields took effect).
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        let per = |d: Duration| if d.as_secs() == 60 { "min" } else { "s" };
        if let Some(r) = &self.rate {
            out.push(format!(
                "rate {}/{} burst {} ({})",
                r.requests,
                per(r.per),
                r.burst,
                r.status.as_u16()
            ));
        }
        if let Some(c) = &self.connections {
            out.push(format!("connections {} ({})", c.max, c.status.as_u16()));
        }
        if !self.limit_exempt.is_empty() {
            out.push(format!("limit-exempt {}", join(&self.limit_exempt)));
        }
        if let Some(a) = &self.access {
            if !a.allow.is_empty() {
                out.push(format!("allow {}", join(&a.allow)));
            }
            if !a.deny.is_empty() {
                out.push(format!("deny {}", join(&a.deny)));
            }
        }
        if let Some(r) = &self.redirect {
            out.push(format!(
                "redirect {} {}",
                r.status.as_u16(),
                String::from_utf8_lossy(r.location.as_bytes())
            ));
        }
        if let Some(root) = &self.app_root {
            out.push(format!(
                "app-root {}",
                String::from_utf8_lossy(root.as_bytes())
            ));
        }
        if let Some(r) = &self.rewrite {
            out.push(format!("rewrite {} -> {}", r.pattern.as_str(), r.target));
        }
        if let Some(n) = self.max_body {
            out.push(format!("max-body {n}"));
        }
        let t = &self.timeouts;
        for (name, d) in [
            ("connect", t.connect),
            ("read", t.read),
            ("send", t.send),
            ("idle", t.idle),
            ("request", t.request),
            ("backend-request", t.backend_request),
        ] {
            if let Some(d) = d {
                out.push(format!("{name}-timeout {d:?}"));
            }
        }
        if let Some(r) = &self.retry {
            out.push(format!("tries {}", r.tries));
        }
        if let Some(a) = &self.affinity {
            let mode = match a.mode {
                AffinityMode::Balanced => "balanced",
                AffinityMode::Persistent => "persistent",
            };
            out.push(format!("affinity cookie {} ({mode})", a.cookie));
        }
        if self.hash_by.is_some() {
            out.push("consistent-hash".into());
        }
        if self.cors.is_some() {
            out.push("cors".into());
        }
        if self.basic_auth.is_some() {
            out.push("basic-auth".into());
        }
        if let Some(c) = &self.client_cert {
            out.push(super::super::client_cert::summary(c));
        }
        if self.external_auth.is_some() {
            out.push("external-auth".into());
        }
        if self.upstream_vhost.is_some() {
            out.push("upstream-vhost".into());
        }
        if self.forwarded_prefix.is_some() {
            out.push("x-forwarded-prefix".into());
        }
        if let Some(c) = &self.custom_errors {
            let codes: Vec<String> = c.codes.iter().map(u16::to_string).collect();
            out.push(format!("custom-errors {}", codes.join(",")));
        }
        if self.fallback.is_some() {
            out.push("default-backend".into());
        }
        if self.tls_upstream.is_some() {
            out.push("backend-protocol AUTO_HTTP (HTTPS for TLS clients)".into());
        }
        if let Some(b) = &self.backends {
            let shares: Vec<String> = b
                .choices
                .iter()
                .map(|c| {
                    let valid = if c.upstream.is_some() { "" } else { " (500)" };
                    format!("{}={}{valid}", c.service, c.weight)
                })
                .collect();
            out.push(format!("backends {}", shares.join(",")));
        }
        if self.request_headers.is_some() {
            out.push("request-headers".into());
        }
        if self.response_headers.is_some() {
            out.push("response-headers".into());
        }
        if let Some(r) = &self.redirect_to {
            out.push(format!("redirect-to {}", r.status.as_u16()));
        }
        if self.url_rewrite.is_some() {
            out.push("url-rewrite".into());
        }
        for m in self.mirrors.iter() {
            out.push(format!("mirror {} {}/1000000", m.service, m.per_million));
        }
        if let Some(to) = &self.www_redirect {
            out.push(format!("www-redirect 308 {to}"));
        }
        if let Some(r) = &self.response_rewrite {
            for (name, swap) in [
                ("proxy-redirect", &r.redirect),
                ("cookie-domain", &r.cookie_domain),
                ("cookie-path", &r.cookie_path),
            ] {
                if let Some(swap) = swap {
                    out.push(format!("{name} {} -> {}", swap.from, swap.to));
                }
            }
        }
        if let Some(l) = &self.limit_rate {
            out.push(format!(
                "limit-rate {}B/s after {}B",
                l.bytes_per_sec, l.after
            ));
        }
        out
    }
}

fn join(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
