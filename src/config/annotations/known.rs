//! Which `nginx.ingress.kubernetes.io/` annotations tollgate honours,
//! refuses or ignores ([`KNOWN`], the table `docs/annotations.md`
//! documents), and the check that accounts for every one an Ingress has.
//!
//! Invariants:
//! - Every annotation under the prefix is accounted for: honoured, refused
//!   (rejects the Ingress) or listed in one warning as ignored or unknown.
//! - Anything ending in `-snippet` or starting with `lua-resty-waf` is
//!   refused, listed or not: configuration is never injected.

use super::parser::{Parser, Problem, NGINX};

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
    ("enable-access-log", Support::Supported),
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

impl Parser<'_> {
    pub(super) fn account_for_every_nginx_annotation(&mut self) {
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
}
