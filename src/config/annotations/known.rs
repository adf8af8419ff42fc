//! Which `nginx.ingress.kubernetes.io/` annotations tollgate honours,
//! refuses or ignores ([`KNOWN`], the table `docs/annotations.md`
//! documents), and the check that accounts for every one an Ingress has.
//!
//! Invariants:
//! - Every annotation under the prefix is accounted for: honoured, refused
//!   (rejects the Ingress), accepted as a no-op with its reason, or listed
//!   in one warning as ignored or unknown. Every annotation ingress-nginx
//!   documents is in [`KNOWN`] (a test checks the list).
//! - Anything ending in `-snippet` or starting with `lua-resty-waf` is
//!   refused, listed or not: configuration is never injected. The two
//!   header snippets are `Partial`: `snippet.rs` reads literal header
//!   directives from them and refuses anything else.

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
    /// Not supported and it changes what clients see: ignoring it would
    /// serve the Ingress differently from ingress-nginx, so it is refused
    /// (the Ingress is rejected) with this reason.
    Refused(&'static str),
    /// Accepted with no effect, for this reason (nginx tuning with no
    /// counterpart, or tollgate already behaves so); a warning names it.
    NoOp(&'static str),
    /// Not supported; ignored with a warning (the Ingress is served).
    /// No annotation of [`KNOWN`] is in this state today.
    Ignored,
}

const BUFFERS: &str =
    "tollgate streams bodies; nginx's buffers and temporary files have no counterpart";
const AUTH_POOL: &str = "connections to the auth service are pooled by tollgate's client";
const OTEL: &str = "no OpenTelemetry tracing; trace headers pass through untouched";
const RUSTLS: &str = "rustls offers only TLS 1.2/1.3 with modern AEAD suites";
const FCGI: &str = "FastCGI backends are not supported";
impl Support {
    /// The state `tollgate check` summarizes it under: `supported` (in
    /// full or in part), `no-op` (accepted, ignored) or `refused`.
    pub fn state(self) -> &'static str {
        match self {
            Support::Supported | Support::Partial => "supported",
            Support::Ignored | Support::NoOp(_) => "no-op",
            Support::RefusedInjection | Support::RefusedSecurity | Support::Refused(_) => "refused",
        }
    }
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
    ("custom-headers", Support::Supported),
    ("custom-http-errors", Support::Supported),
    ("default-backend", Support::Supported),
    ("denylist-source-range", Support::Supported),
    ("enable-access-log", Support::Supported),
    ("enable-cors", Support::Supported),
    ("force-ssl-redirect", Support::Supported),
    ("global-rate-limit", Support::Supported),
    ("global-rate-limit-window", Support::Supported),
    ("global-rate-limit-key", Support::Supported),
    ("global-rate-limit-ignored-cidrs", Support::Supported),
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
    ("proxy-next-upstream-timeout", Support::Supported),
    ("proxy-next-upstream-tries", Support::Supported),
    ("proxy-read-timeout", Support::Supported),
    ("proxy-send-timeout", Support::Supported),
    ("proxy-ssl-name", Support::Supported),
    ("proxy-ssl-secret", Support::Partial),
    ("proxy-ssl-verify", Support::Supported),
    ("rewrite-target", Support::Supported),
    ("server-alias", Support::Supported),
    ("session-cookie-conditional-samesite-none", Support::Supported),
    ("session-cookie-domain", Support::Supported),
    ("session-cookie-expires", Support::Supported),
    ("session-cookie-max-age", Support::Supported),
    ("session-cookie-samesite", Support::Supported),
    ("session-cookie-secure", Support::Supported),
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
    ("affinity-canary-behavior", Support::Supported),
    ("disable-proxy-intercept-errors", Support::Supported),
    ("from-to-www-redirect", Support::Supported),
    ("limit-rate", Support::Supported),
    ("mirror-host", Support::Supported),
    ("mirror-request-body", Support::Supported),
    ("mirror-target", Support::Supported),
    ("limit-rate-after", Support::Supported),
    ("proxy-cookie-domain", Support::Supported),
    ("proxy-cookie-path", Support::Supported),
    ("proxy-redirect-from", Support::Supported),
    ("proxy-redirect-to", Support::Supported),
    ("relative-redirects", Support::Supported),
    // Client certificates (client_cert.rs, tls::client_auth).
    ("auth-tls-secret", Support::Supported),
    ("auth-tls-verify-client", Support::Supported),
    ("auth-tls-verify-depth", Support::Supported),
    ("auth-tls-error-page", Support::Supported),
    ("auth-tls-pass-certificate-to-upstream", Support::Supported),
    ("auth-tls-match-cn", Support::Supported),
    // Injection: never executed.
    ("auth-snippet", Support::RefusedInjection),
    // Read only when made of literal header directives (snippet.rs).
    ("configuration-snippet", Support::Partial),
    ("modsecurity-snippet", Support::RefusedInjection),
    ("server-snippet", Support::Partial),
    ("stream-snippet", Support::RefusedInjection),
    ("lua-resty-waf", Support::RefusedInjection),
    // Security settings we cannot honour: ignoring them would open access.
    ("satisfy", Support::RefusedSecurity),
    ("enable-modsecurity", Support::RefusedSecurity),
    ("enable-owasp-core-rules", Support::RefusedSecurity),
    ("allowlist-source-range", Support::Supported),
    ("limit-allowlist", Support::Supported),
    ("auth-signin-redirect-param", Support::Supported),
    ("auth-always-set-cookie", Support::Supported),
    ("auth-proxy-set-headers", Support::Supported),
    ("auth-request-redirect", Support::Supported),
    ("auth-cache-key", Support::Supported),
    ("auth-cache-duration", Support::Supported),
    // Accepted, no effect: nginx tuning with no counterpart, or tollgate
    // already behaves so.
    ("client-body-buffer-size", Support::NoOp(BUFFERS)),
    ("proxy-buffer-size", Support::NoOp(BUFFERS)),
    ("proxy-buffering", Support::NoOp(BUFFERS)),
    ("proxy-buffers-number", Support::NoOp(BUFFERS)),
    ("proxy-busy-buffers-size", Support::NoOp(BUFFERS)),
    ("proxy-max-temp-file-size", Support::NoOp(BUFFERS)),
    ("proxy-request-buffering", Support::NoOp(BUFFERS)),
    ("auth-keepalive", Support::NoOp(AUTH_POOL)),
    ("auth-keepalive-requests", Support::NoOp(AUTH_POOL)),
    ("auth-keepalive-timeout", Support::NoOp(AUTH_POOL)),
    ("auth-keepalive-share-vars", Support::NoOp(AUTH_POOL)),
    ("enable-global-auth", Support::NoOp("tollgate has no global external authentication to opt out of")),
    ("connection-proxy-header", Support::NoOp("tollgate manages upstream connections (and their Connection header) itself")),
    ("enable-rewrite-log", Support::NoOp("nginx debug logging; tollgate has no rewrite log")),
    ("enable-opentelemetry", Support::NoOp(OTEL)),
    ("opentelemetry-trust-incoming-span", Support::NoOp(OTEL)),
    ("opentelemetry-operation-name", Support::NoOp(OTEL)),
    ("http2-push-preload", Support::NoOp("HTTP/2 server push is obsolete (browsers removed it)")),
    ("proxy-http-version", Support::NoOp("the upstream HTTP version follows backend-protocol")),
    ("modsecurity-transaction-id", Support::NoOp("no ModSecurity (enable-modsecurity is refused)")),
    ("preserve-trailing-slash", Support::NoOp("the HTTPS redirect always keeps the path as requested")),
    ("proxy-ssl-ciphers", Support::NoOp(RUSTLS)),
    ("proxy-ssl-protocols", Support::NoOp(RUSTLS)),
    ("proxy-ssl-verify-depth", Support::NoOp("rustls verifies the whole chain to the CA")),
    ("proxy-ssl-server-name", Support::NoOp("SNI is sent whenever there is a name: the verified name (proxy-ssl-name), else an ExternalName host")),
    ("ssl-ciphers", Support::NoOp(RUSTLS)),
    ("ssl-prefer-server-ciphers", Support::NoOp(RUSTLS)),
    ("service-upstream", Support::NoOp("tollgate balances over the endpoints itself; affinity and hashing need them")),
    ("session-cookie-change-on-failure", Support::NoOp("a retry always goes to another endpoint; in persistent mode the cookie then names the endpoint that served")),
    ("upstream-hash-by-subset", Support::NoOp("consistent hashing over all endpoints: a key still maps to one endpoint")),
    ("upstream-hash-by-subset-size", Support::NoOp("consistent hashing over all endpoints: a key still maps to one endpoint")),
    ("x-forwarded-port", Support::NoOp("X-Forwarded-Port is always the listener's port")),
    // Not implemented and visible to clients: refused, never half-served.
    ("fastcgi-index", Support::Refused(FCGI)),
    ("fastcgi-params-configmap", Support::Refused(FCGI)),
    // With `--enable-ssl-passthrough` (`config::passthrough`); without it
    // the Ingress is rejected, never terminated in its place, and `check`
    // counts it as refused.
    ("ssl-passthrough", Support::Supported),
];

/// How an annotation suffix is treated (see [`KNOWN`]); `None`: unknown.
pub fn support(suffix: &str) -> Option<Support> {
    let known = KNOWN.iter().find(|(s, _)| *s == suffix).map(|(_, s)| *s);
    if known == Some(Support::Partial) {
        // The header snippets: their own parser refuses anything else.
        return known;
    }
    if suffix.ends_with("-snippet") || suffix.starts_with("lua-resty-waf") {
        return Some(Support::RefusedInjection);
    }
    known
}

impl Parser<'_> {
    pub(super) fn account_for_every_nginx_annotation(&mut self) {
        let Some(map) = self.map else { return };
        let mut unknown = Vec::new();
        let mut ignored = Vec::new();
        let mut noop = Vec::new();
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
                Some(Support::Refused(reason)) => self.reject(
                    name,
                    format!("not supported ({reason}); the Ingress is not served as written"),
                ),
                Some(Support::NoOp(reason)) => noop.push(format!("{suffix} ({reason})")),
                Some(Support::Ignored) => ignored.push(suffix),
                None => unknown.push(suffix),
            }
        }
        if !noop.is_empty() {
            self.problems.push(Problem {
                field: "metadata.annotations".into(),
                reason: format!(
                    "accepted, no effect in tollgate: {} (see docs/annotations.md)",
                    noop.join("; ")
                ),
                reject: false,
            });
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
