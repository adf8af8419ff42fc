//! Annotations of an Ingress: ingress-nginx's `nginx.ingress.kubernetes.io/*`
//! (with ingress-nginx's value formats and defaults) and tollgate's own
//! `tollgate.dev/*`, parsed into typed values.
//!
//! Invariants:
//! - Pure: strings in, typed values and problems out. Never panics.
//! - Nothing is interpolated or executed: snippet and Lua annotations (the
//!   way configuration was injected into ingress-nginx, CVE-2025-1974) are
//!   refused, which rejects the Ingress.
//! - Fail closed: an access list, an authentication setting, or a
//!   security annotation we cannot honour that does not parse rejects the
//!   Ingress (its last good version keeps serving); any other bad value is a
//!   warning and its default applies.
//! - Every `nginx.ingress.kubernetes.io/` annotation is accounted for: one
//!   we honour, one we know and refuse, or one we list as unknown in a
//!   warning. [`KNOWN`] is the table `docs/annotations.md` documents.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use ipnet::IpNet;

use crate::table::policy::{
    AccessList, Affinity, AffinityMode, CanaryMatch, ConnLimit, Cors, CorsOrigins, HashKey,
    HashPart, RateLimit, Redirect, Retry, Timeouts,
};

/// ingress-nginx's annotation prefix.
pub const NGINX: &str = "nginx.ingress.kubernetes.io/";
/// tollgate's own prefix.
pub const TOLLGATE: &str = "tollgate.dev/";

/// How tollgate treats an ingress-nginx annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Honoured with ingress-nginx's semantics.
    Supported,
    /// Honoured in part; the docs say how.
    Partial,
    /// Refused: it would inject configuration. Rejects the Ingress.
    RefusedInjection,
    /// Not supported and security-relevant: ignoring it could open access,
    /// so the Ingress is rejected.
    RefusedSecurity,
    /// Not supported; ignored with a warning (the Ingress is served).
    Ignored,
}

/// Every ingress-nginx annotation (suffix after the prefix) tollgate knows.
/// Annotations ending in `-snippet` and `lua-resty-waf*` are refused even
/// when not listed.
pub const KNOWN: &[(&str, Support)] = &[
    ("app-root", Support::Supported),
    ("affinity", Support::Supported),
    ("affinity-mode", Support::Supported),
    ("auth-method", Support::Supported),
    ("auth-realm", Support::Supported),
    ("auth-response-headers", Support::Supported),
    ("auth-secret", Support::Supported),
    ("auth-secret-type", Support::Supported),
    ("auth-signin", Support::Supported),
    ("auth-type", Support::Partial),
    ("auth-url", Support::Supported),
    ("backend-protocol", Support::Partial),
    ("canary", Support::Supported),
    ("canary-by-cookie", Support::Supported),
    ("canary-by-header", Support::Supported),
    ("canary-by-header-pattern", Support::Supported),
    ("canary-by-header-value", Support::Supported),
    ("canary-weight", Support::Supported),
    ("canary-weight-total", Support::Supported),
    ("cors-allow-credentials", Support::Supported),
    ("cors-allow-headers", Support::Supported),
    ("cors-allow-methods", Support::Supported),
    ("cors-allow-origin", Support::Supported),
    ("cors-expose-headers", Support::Supported),
    ("cors-max-age", Support::Supported),
    ("custom-http-errors", Support::Supported),
    ("default-backend", Support::Supported),
    ("denylist-source-range", Support::Supported),
    ("enable-cors", Support::Supported),
    ("force-ssl-redirect", Support::Supported),
    ("limit-burst-multiplier", Support::Supported),
    ("limit-connections", Support::Supported),
    ("limit-rpm", Support::Supported),
    ("limit-rps", Support::Supported),
    ("limit-whitelist", Support::Supported),
    ("load-balance", Support::Partial),
    ("permanent-redirect", Support::Supported),
    ("permanent-redirect-code", Support::Supported),
    ("proxy-body-size", Support::Supported),
    ("proxy-connect-timeout", Support::Supported),
    ("proxy-next-upstream", Support::Partial),
    ("proxy-next-upstream-tries", Support::Supported),
    ("proxy-read-timeout", Support::Supported),
    ("proxy-send-timeout", Support::Supported),
    ("proxy-ssl-name", Support::Supported),
    ("proxy-ssl-secret", Support::Partial),
    ("proxy-ssl-verify", Support::Supported),
    ("rewrite-target", Support::Supported),
    ("server-alias", Support::Supported),
    ("session-cookie-max-age", Support::Supported),
    ("session-cookie-name", Support::Supported),
    ("session-cookie-path", Support::Supported),
    ("ssl-redirect", Support::Supported),
    ("temporal-redirect", Support::Supported),
    ("temporal-redirect-code", Support::Supported),
    ("upstream-hash-by", Support::Partial),
    ("upstream-vhost", Support::Supported),
    ("use-regex", Support::Supported),
    ("whitelist-source-range", Support::Supported),
    ("x-forwarded-prefix", Support::Supported),
    // Injection: never executed.
    ("auth-snippet", Support::RefusedInjection),
    ("configuration-snippet", Support::RefusedInjection),
    ("modsecurity-snippet", Support::RefusedInjection),
    ("server-snippet", Support::RefusedInjection),
    ("stream-snippet", Support::RefusedInjection),
    ("lua-resty-waf", Support::RefusedInjection),
    // Security settings we cannot honour: ignoring them would open access.
    ("auth-tls-secret", Support::RefusedSecurity),
    ("auth-tls-verify-client", Support::RefusedSecurity),
    ("auth-tls-verify-depth", Support::RefusedSecurity),
    ("auth-tls-error-page", Support::RefusedSecurity),
    (
        "auth-tls-pass-certificate-to-upstream",
        Support::RefusedSecurity,
    ),
    ("auth-tls-match-cn", Support::RefusedSecurity),
    ("satisfy", Support::RefusedSecurity),
    ("enable-modsecurity", Support::RefusedSecurity),
    ("enable-owasp-core-rules", Support::RefusedSecurity),
    ("global-rate-limit", Support::RefusedSecurity),
    // Known, not supported, harmless to ignore.
    ("auth-cache-duration", Support::Ignored),
    ("auth-cache-key", Support::Ignored),
    ("auth-keepalive", Support::Ignored),
    ("auth-proxy-set-headers", Support::Ignored),
    ("auth-request-redirect", Support::Ignored),
    ("auth-always-set-cookie", Support::Ignored),
    ("client-body-buffer-size", Support::Ignored),
    ("connection-proxy-header", Support::Ignored),
    ("custom-headers", Support::Ignored),
    ("enable-access-log", Support::Ignored),
    ("enable-opentelemetry", Support::Ignored),
    ("enable-rewrite-log", Support::Ignored),
    ("from-to-www-redirect", Support::Ignored),
    ("http2-push-preload", Support::Ignored),
    ("mirror-host", Support::Ignored),
    ("mirror-request-body", Support::Ignored),
    ("mirror-target", Support::Ignored),
    ("opentelemetry-trust-incoming-span", Support::Ignored),
    ("preserve-trailing-slash", Support::Ignored),
    ("proxy-buffer-size", Support::Ignored),
    ("proxy-buffering", Support::Ignored),
    ("proxy-buffers-number", Support::Ignored),
    ("proxy-cookie-domain", Support::Ignored),
    ("proxy-cookie-path", Support::Ignored),
    ("proxy-http-version", Support::Ignored),
    ("proxy-max-temp-file-size", Support::Ignored),
    ("proxy-redirect-from", Support::Ignored),
    ("proxy-redirect-to", Support::Ignored),
    ("proxy-request-buffering", Support::Ignored),
    ("proxy-ssl-ciphers", Support::Ignored),
    ("proxy-ssl-protocols", Support::Ignored),
    ("proxy-ssl-server-name", Support::Ignored),
    ("proxy-ssl-verify-depth", Support::Ignored),
    ("service-upstream", Support::Ignored),
    ("session-cookie-change-on-failure", Support::Ignored),
    ("session-cookie-conditional-samesite-none", Support::Ignored),
    ("session-cookie-domain", Support::Ignored),
    ("session-cookie-expires", Support::Ignored),
    ("session-cookie-samesite", Support::Ignored),
    ("session-cookie-secure", Support::Ignored),
    ("ssl-ciphers", Support::Ignored),
    ("ssl-prefer-server-ciphers", Support::Ignored),
    ("ssl-passthrough", Support::Ignored),
    ("upstream-hash-by-subset", Support::Ignored),
    ("upstream-hash-by-subset-size", Support::Ignored),
    ("x-forwarded-port", Support::Ignored),
];

/// How an annotation suffix is treated (see [`KNOWN`]); `None`: unknown.
pub fn support(suffix: &str) -> Option<Support> {
    if suffix.ends_with("-snippet") || suffix.starts_with("lua-resty-waf") {
        return Some(Support::RefusedInjection);
    }
    KNOWN.iter().find(|(s, _)| *s == suffix).map(|(_, s)| *s)
}

/// One problem with an annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `metadata.annotations[NAME]`.
    pub field: String,
    pub reason: String,
    /// Rejects the Ingress (fail closed) rather than warning.
    pub reject: bool,
}

/// Settings of the annotation parser that come from flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStatuses {
    /// Rejection status of `tollgate.dev/limit-*` (default 429).
    pub tollgate: StatusCode,
    /// Rejection status of `nginx.ingress.kubernetes.io/limit-*` (default
    /// 503, ingress-nginx's `limit-req-status-code`).
    pub nginx: StatusCode,
}

impl Default for LimitStatuses {
    fn default() -> Self {
        Self {
            tollgate: StatusCode::TOO_MANY_REQUESTS,
            nginx: StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A canary Ingress's settings.
#[derive(Debug, Clone)]
pub struct CanarySpec {
    pub header: Option<(HeaderName, CanaryMatch)>,
    pub cookie: Option<Arc<str>>,
    pub weight: u32,
    pub weight_total: u32,
}

/// Basic authentication as asked: where the users are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuthSpec {
    /// Secret name, in the Ingress's namespace.
    pub secret: String,
    /// `auth-file` (key `auth` holds an htpasswd file) or `auth-map`.
    pub map: bool,
    pub realm: String,
}

/// External authentication as asked (templates are parsed by the builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAuthSpec {
    pub url: String,
    pub method: String,
    pub response_headers: Vec<String>,
    pub signin: Option<String>,
}

/// Everything the annotations of one Ingress ask for.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    pub access: Option<AccessList>,
    pub rate: Option<RateLimit>,
    pub connections: Option<ConnLimit>,
    pub limit_exempt: Vec<IpNet>,
    pub redirect: Option<Redirect>,
    pub app_root: Option<HeaderValue>,
    pub use_regex: bool,
    pub rewrite_target: Option<String>,
    pub max_body: Option<u64>,
    pub timeouts: Timeouts,
    pub retry: Option<Retry>,
    pub affinity: Option<Affinity>,
    pub hash_by: Option<HashKey>,
    pub cors: Option<Cors>,
    pub basic_auth: Option<BasicAuthSpec>,
    pub external_auth: Option<ExternalAuthSpec>,
    pub forwarded_prefix: Option<HeaderValue>,
    pub upstream_vhost: Option<HeaderValue>,
    pub aliases: Vec<String>,
    pub default_backend: Option<String>,
    pub custom_errors: Vec<u16>,
    pub canary: Option<CanarySpec>,
}

/// Parses the annotations of one Ingress.
pub fn parse(
    annotations: Option<&BTreeMap<String, String>>,
    statuses: LimitStatuses,
) -> (Annotations, Vec<Problem>) {
    let mut p = Parser {
        map: annotations,
        problems: Vec::new(),
    };
    let mut out = Annotations::default();
    p.account_for_every_nginx_annotation();
    out.access = p.access();
    p.limits(&mut out, statuses);
    out.redirect = p.redirect();
    out.app_root = p.app_root();
    out.rewrite_target = p.nginx("rewrite-target").map(str::to_string);
    out.use_regex = p.flag("use-regex").unwrap_or(false) || out.rewrite_target.is_some();
    out.max_body = p.body_size();
    out.timeouts = Timeouts {
        connect: p.seconds("proxy-connect-timeout"),
        read: p.seconds("proxy-read-timeout"),
        send: p.seconds("proxy-send-timeout"),
        idle: None,
    };
    out.retry = p.retry();
    out.affinity = p.affinity();
    out.hash_by = p.hash_by();
    out.cors = p.cors();
    out.basic_auth = p.basic_auth();
    out.external_auth = p.external_auth();
    out.forwarded_prefix = p.header_value("x-forwarded-prefix");
    out.upstream_vhost = p.header_value("upstream-vhost");
    out.aliases = p.aliases();
    out.default_backend = p.nginx("default-backend").map(str::to_string);
    out.custom_errors = p.custom_errors();
    out.canary = p.canary();
    (out, p.problems)
}

struct Parser<'a> {
    map: Option<&'a BTreeMap<String, String>>,
    problems: Vec<Problem>,
}

fn field(name: &str) -> String {
    format!("metadata.annotations[{name}]")
}

impl<'a> Parser<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.map?.get(name).map(|v| v.trim())
    }

    fn nginx(&self, suffix: &str) -> Option<&'a str> {
        self.get(&format!("{NGINX}{suffix}"))
    }

    fn warn(&mut self, name: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            field: field(name),
            reason: reason.into(),
            reject: false,
        });
    }

    fn reject(&mut self, name: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            field: field(name),
            reason: reason.into(),
            reject: true,
        });
    }

    fn account_for_every_nginx_annotation(&mut self) {
        let Some(map) = self.map else { return };
        let mut unknown = Vec::new();
        let mut ignored = Vec::new();
        for name in map.keys() {
            let Some(suffix) = name.strip_prefix(NGINX) else {
                continue;
            };
            match support(suffix) {
                Some(Support::Supported | Support::Partial) => {}
                Some(Support::RefusedInjection) => self.reject(
                    name,
                    "refused: snippet and Lua annotations inject configuration and are never executed (this is how ingress-nginx got CVE-2025-1974); express it with supported annotations or a TrafficPolicy",
                ),
                Some(Support::RefusedSecurity) => self.reject(
                    name,
                    "not supported, and serving without it could open access; the Ingress is not served as written",
                ),
                Some(Support::Ignored) => ignored.push(suffix),
                None => unknown.push(suffix),
            }
        }
        if !ignored.is_empty() {
            self.problems.push(Problem {
                field: "metadata.annotations".into(),
                reason: format!(
                    "not supported, ignored: {} (see docs/annotations.md)",
                    ignored.join(", ")
                ),
                reject: false,
            });
        }
        if !unknown.is_empty() {
            self.problems.push(Problem {
                field: "metadata.annotations".into(),
                reason: format!(
                    "unknown nginx.ingress.kubernetes.io annotations, ignored: {}",
                    unknown.join(", ")
                ),
                reject: false,
            });
        }
    }

    fn flag(&mut self, suffix: &str) -> Option<bool> {
        let name = format!("{NGINX}{suffix}");
        let value = self.get(&name)?;
        match value {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.warn(&name, format!("`{other}` is not true or false; ignored"));
                None
            }
        }
    }

    /// A comma-separated CIDR list; `None` when absent, `Err` when any
    /// entry does not parse.
    fn cidrs(&self, name: &str) -> Option<Result<Vec<IpNet>, String>> {
        let value = self.get(name)?;
        Some(parse_cidrs(value))
    }

    fn access(&mut self) -> Option<AccessList> {
        let mut list = AccessList::default();
        let mut any = false;
        for (suffix, allow) in [
            ("whitelist-source-range", true),
            ("denylist-source-range", false),
        ] {
            let name = format!("{NGINX}{suffix}");
            match self.cidrs(&name) {
                None => {}
                Some(Ok(nets)) if allow && nets.is_empty() => {
                    // An empty allow list would allow everyone: refuse.
                    self.reject(&name, "an empty allow list; set CIDRs or remove it");
                }
                Some(Ok(nets)) => {
                    any = true;
                    if allow {
                        list.allow = nets;
                    } else {
                        list.deny = nets;
                    }
                }
                Some(Err(reason)) => self.reject(&name, reason),
            }
        }
        any.then_some(list)
    }

    fn positive(&mut self, name: &str) -> Option<NonZeroU32> {
        let value = self.get(name)?;
        match value.parse::<u32>().ok().and_then(NonZeroU32::new) {
            Some(n) => Some(n),
            None => {
                self.warn(
                    name,
                    format!("`{value}` is not a whole number ≥ 1; no limit applied"),
                );
                None
            }
        }
    }

    fn limits(&mut self, out: &mut Annotations, statuses: LimitStatuses) {
        // tollgate.dev: absolute burst, 429 + Retry-After.
        let t_rps = self.positive(&format!("{TOLLGATE}limit-rps"));
        let t_rpm = self.positive(&format!("{TOLLGATE}limit-rpm"));
        let t_burst = self.positive(&format!("{TOLLGATE}limit-burst"));
        let t_conn = self.positive(&format!("{TOLLGATE}limit-connections"));
        // ingress-nginx: burst = rate × multiplier (default 5), 503.
        let n_rps = self.positive(&format!("{NGINX}limit-rps"));
        let n_rpm = self.positive(&format!("{NGINX}limit-rpm"));
        let n_conn = self.positive(&format!("{NGINX}limit-connections"));
        let multiplier = self
            .positive(&format!("{NGINX}limit-burst-multiplier"))
            .map_or(5, NonZeroU32::get);
        if t_rps.is_some() && t_rpm.is_some() {
            self.warn(
                &format!("{TOLLGATE}limit-rpm"),
                "both limit-rps and limit-rpm are set; limit-rps is used",
            );
        }
        let tollgate = t_rps
            .map(|n| (n, Duration::from_secs(1)))
            .or(t_rpm.map(|n| (n, Duration::from_secs(60))))
            .map(|(requests, per)| RateLimit {
                requests,
                per,
                burst: t_burst.unwrap_or(requests),
                status: statuses.tollgate,
            });
        // ingress-nginx applies both limit-rps and limit-rpm when both are
        // set; the per-second one is the one that bites first for bursts,
        // so it is kept (a warning says the other is not).
        if n_rps.is_some() && n_rpm.is_some() {
            self.warn(
                &format!("{NGINX}limit-rpm"),
                "both limit-rps and limit-rpm are set; tollgate applies limit-rps only",
            );
        }
        let nginx = n_rps
            .map(|n| (n, Duration::from_secs(1)))
            .or(n_rpm.map(|n| (n, Duration::from_secs(60))))
            .map(|(requests, per)| RateLimit {
                requests,
                per,
                // nginx `limit_req ... burst=B nodelay` passes B + 1 at once.
                burst: NonZeroU32::new(requests.get().saturating_mul(multiplier).saturating_add(1))
                    .unwrap_or(requests),
                status: statuses.nginx,
            });
        if tollgate.is_some() && nginx.is_some() {
            self.warn(
                &format!("{NGINX}limit-rps"),
                "tollgate.dev/limit-* is also set and wins",
            );
        }
        out.rate = tollgate.or(nginx);
        out.connections = t_conn
            .map(|max| ConnLimit {
                max,
                status: statuses.tollgate,
            })
            .or(n_conn.map(|max| ConnLimit {
                max,
                status: statuses.nginx,
            }));
        let exempt = format!("{NGINX}limit-whitelist");
        match self.cidrs(&exempt) {
            None => {}
            Some(Ok(nets)) => out.limit_exempt = nets,
            // Ignoring a broken exemption list limits everyone: closed.
            Some(Err(reason)) => self.warn(
                &exempt,
                format!("{reason}; no client is exempt from limits"),
            ),
        }
    }

    fn redirect(&mut self) -> Option<Redirect> {
        for (suffix, code_suffix, default) in [
            ("permanent-redirect", "permanent-redirect-code", 301u16),
            ("temporal-redirect", "temporal-redirect-code", 302u16),
        ] {
            let name = format!("{NGINX}{suffix}");
            let Some(url) = self.get(&name) else { continue };
            let code_name = format!("{NGINX}{code_suffix}");
            let status = match self.get(&code_name) {
                None => default,
                Some(v) => match v.parse::<u16>() {
                    Ok(c) if (300..=308).contains(&c) => c,
                    _ => {
                        self.warn(
                            &code_name,
                            format!("`{v}` is not a redirect status (300–308); using {default}"),
                        );
                        default
                    }
                },
            };
            let Ok(location) = HeaderValue::from_str(url) else {
                self.warn(&name, format!("`{url}` is not a valid Location; ignored"));
                continue;
            };
            if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/'))
            {
                self.warn(
                    &name,
                    format!("`{url}` is not an absolute URL or path; ignored"),
                );
                continue;
            }
            return Some(Redirect {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
                location,
            });
        }
        None
    }

    fn app_root(&mut self) -> Option<HeaderValue> {
        let name = format!("{NGINX}app-root");
        let value = self.get(&name)?;
        if !value.starts_with('/') || value.contains("://") {
            self.warn(
                &name,
                format!("`{value}` must be a path starting with /; ignored"),
            );
            return None;
        }
        match HeaderValue::from_str(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.warn(&name, format!("`{value}` is not a valid path; ignored"));
                None
            }
        }
    }

    fn body_size(&mut self) -> Option<u64> {
        let name = format!("{NGINX}proxy-body-size");
        let value = self.get(&name)?;
        match parse_size(value) {
            Some(0) => None,
            Some(n) => Some(n),
            None => {
                self.warn(
                    &name,
                    format!("`{value}` is not a size like 8m, 512k or 1g; no limit applied"),
                );
                None
            }
        }
    }

    fn seconds(&mut self, suffix: &str) -> Option<Duration> {
        let name = format!("{NGINX}{suffix}");
        let value = self.get(&name)?;
        let parsed = value
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .or_else(|| humantime::parse_duration(value).ok())
            .filter(|d| !d.is_zero() && *d <= Duration::from_secs(24 * 3600));
        if parsed.is_none() {
            self.warn(
                &name,
                format!("`{value}` is not a number of seconds (1–86400); the default applies"),
            );
        }
        parsed
    }

    fn retry(&mut self) -> Option<Retry> {
        let name = format!("{NGINX}proxy-next-upstream");
        let tries_name = format!("{NGINX}proxy-next-upstream-tries");
        let tokens = self.get(&name);
        let tries = self.get(&tries_name);
        if tokens.is_none() && tries.is_none() {
            return None;
        }
        // ingress-nginx's defaults: "error timeout", 3 tries.
        let mut retry = Retry {
            tries: 3,
            on_error: true,
            on_timeout: true,
            on_status: Vec::new(),
            non_idempotent: false,
            budget: None,
        };
        if let Some(tokens) = tokens {
            retry.on_error = false;
            retry.on_timeout = false;
            let mut bad = Vec::new();
            for token in tokens.split([' ', ',']).filter(|t| !t.is_empty()) {
                match token {
                    "off" => retry.tries = 1,
                    "error" => retry.on_error = true,
                    "timeout" => retry.on_timeout = true,
                    "invalid_header" => retry.on_error = true,
                    "non_idempotent" => retry.non_idempotent = true,
                    t => match t.strip_prefix("http_").and_then(|c| c.parse::<u16>().ok()) {
                        Some(c @ (500 | 502 | 503 | 504 | 403 | 404 | 429)) => {
                            retry.on_status.push(c)
                        }
                        _ => bad.push(t),
                    },
                }
            }
            if !bad.is_empty() {
                self.warn(
                    &name,
                    format!("unknown conditions ignored: {}", bad.join(" ")),
                );
            }
        }
        if let Some(value) = tries {
            match value.parse::<u32>() {
                // 0 means unlimited in nginx; we cap at 10 attempts.
                Ok(0) => retry.tries = 10,
                Ok(n) => retry.tries = u8::try_from(n.min(10)).unwrap_or(10),
                Err(_) => self.warn(&tries_name, format!("`{value}` is not a number; using 3")),
            }
        }
        Some(retry)
    }

    fn affinity(&mut self) -> Option<Affinity> {
        let name = format!("{NGINX}affinity");
        let value = self.get(&name)?;
        if value != "cookie" {
            self.warn(&name, format!("`{value}` is not `cookie`; no affinity"));
            return None;
        }
        let mode_name = format!("{NGINX}affinity-mode");
        let mode = match self.get(&mode_name) {
            None | Some("balanced") => AffinityMode::Balanced,
            Some("persistent") => AffinityMode::Persistent,
            Some(other) => {
                self.warn(
                    &mode_name,
                    format!("`{other}` is not balanced or persistent; using balanced"),
                );
                AffinityMode::Balanced
            }
        };
        let cookie_name = format!("{NGINX}session-cookie-name");
        let cookie = match self.get(&cookie_name) {
            None => "INGRESSCOOKIE".to_string(),
            Some(c) if valid_cookie_name(c) => c.to_string(),
            Some(c) => {
                self.warn(
                    &cookie_name,
                    format!("`{c}` is not a valid cookie name; using INGRESSCOOKIE"),
                );
                "INGRESSCOOKIE".to_string()
            }
        };
        let age_name = format!("{NGINX}session-cookie-max-age");
        let max_age = match self.get(&age_name) {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.warn(
                        &age_name,
                        format!("`{v}` is not a number of seconds; a session cookie is used"),
                    );
                    None
                }
            },
        };
        let path_name = format!("{NGINX}session-cookie-path");
        let path = match self.get(&path_name) {
            None => None,
            Some(p)
                if p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic() && b != b';') =>
            {
                Some(p.into())
            }
            Some(p) => {
                self.warn(
                    &path_name,
                    format!("`{p}` is not a cookie path; using the default"),
                );
                None
            }
        };
        Some(Affinity {
            cookie: cookie.into(),
            mode,
            max_age,
            path,
        })
    }

    fn hash_by(&mut self) -> Option<HashKey> {
        let name = format!("{NGINX}upstream-hash-by");
        let value = self.get(&name)?;
        match parse_hash_key(value) {
            Ok(key) => Some(key),
            Err(reason) => {
                self.warn(
                    &name,
                    format!("{reason}; the default load balancing applies"),
                );
                None
            }
        }
    }

    fn cors(&mut self) -> Option<Cors> {
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

    fn basic_auth(&mut self) -> Option<BasicAuthSpec> {
        let type_name = format!("{NGINX}auth-type");
        let kind = self.get(&type_name)?;
        if kind != "basic" {
            self.reject(
                &type_name,
                format!("`{kind}`: only basic authentication is supported; the Ingress is not served without its authentication"),
            );
            return None;
        }
        let secret_name = format!("{NGINX}auth-secret");
        let Some(secret) = self.get(&secret_name) else {
            self.reject(&secret_name, "auth-type basic needs auth-secret");
            return None;
        };
        let map = match self.get(&format!("{NGINX}auth-secret-type")) {
            None | Some("auth-file") => false,
            Some("auth-map") => true,
            Some(other) => {
                self.reject(
                    &format!("{NGINX}auth-secret-type"),
                    format!("`{other}` is not auth-file or auth-map"),
                );
                return None;
            }
        };
        let realm = self
            .nginx("auth-realm")
            .unwrap_or("Authentication Required")
            .to_string();
        Some(BasicAuthSpec {
            secret: secret.to_string(),
            map,
            realm,
        })
    }

    fn external_auth(&mut self) -> Option<ExternalAuthSpec> {
        let url = self.nginx("auth-url")?.to_string();
        let method = self.nginx("auth-method").unwrap_or("GET").to_string();
        let response_headers = self
            .nginx("auth-response-headers")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let signin = self.nginx("auth-signin").map(str::to_string);
        Some(ExternalAuthSpec {
            url,
            method,
            response_headers,
            signin,
        })
    }

    fn header_value(&mut self, suffix: &str) -> Option<HeaderValue> {
        let name = format!("{NGINX}{suffix}");
        let value = self.get(&name)?;
        match HeaderValue::from_str(value) {
            Ok(v) if !value.is_empty() => Some(v),
            _ => {
                self.warn(
                    &name,
                    format!("`{value}` is not a valid header value; ignored"),
                );
                None
            }
        }
    }

    fn aliases(&mut self) -> Vec<String> {
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
            match super::validate::host(&host) {
                Ok(()) => out.push(host),
                Err(reason) => self.warn(&name, format!("`{host}`: {reason}; skipped")),
            }
        }
        out
    }

    fn custom_errors(&mut self) -> Vec<u16> {
        let name = format!("{NGINX}custom-http-errors");
        let Some(value) = self.get(&name) else {
            return Vec::new();
        };
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

    fn canary(&mut self) -> Option<CanarySpec> {
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
                    Some((name, matcher))
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
        Some(CanarySpec {
            header,
            cookie,
            weight,
            weight_total,
        })
    }
}

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

#[cfg(test)]
mod tests;
