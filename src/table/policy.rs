//! Per-route policy: what the annotations (`tollgate.dev/*`,
//! `nginx.ingress.kubernetes.io/*`) and TrafficPolicies of an Ingress ask
//! of its requests, compiled into plain values.
//!
//! Invariants:
//! - Built by the compiler, never mutated after; the request path only reads
//!   it. Values a request needs as header values are pre-built here, so
//!   applying a policy allocates only where the result is new (a rewritten
//!   path, a cookie).
//! - [`RoutePolicy::is_plain`] is true exactly when no field asks for
//!   anything: the request path then skips every policy step with one branch.
//! - Security-relevant parts (access lists, authentication) exist only in
//!   valid form: a value that did not parse rejects the Ingress in the
//!   compiler, it never becomes an open policy here.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use ipnet::IpNet;
use regex::Regex;

pub use super::filters::{
    BackendChoice, Backends, HeaderEdits, Mirror, MirrorTarget, PathModifier, RedirectTo,
    UrlRewrite,
};
use super::global_limit::LimitKey;
use super::ids::UpstreamId;
pub use nginx::{LimitRate, ResponseRewrite, Swap};

mod nginx;
mod summary;

/// Everything a route asks of its requests beyond routing.
#[derive(Debug, Clone, Default)]
pub struct RoutePolicy {
    /// Client-IP allow and deny lists (403).
    pub access: Option<AccessList>,
    /// Requests per client IP (shared by the routes of one Ingress).
    pub rate: Option<RateLimit>,
    /// Requests per key counted across every replica (the shared store).
    pub global_rate: Option<Arc<GlobalRateLimit>>,
    /// Concurrent requests per client IP.
    pub connections: Option<ConnLimit>,
    /// Clients never limited (`limit-whitelist`).
    pub limit_exempt: Vec<IpNet>,
    /// Every request is answered with this redirect.
    pub redirect: Option<Redirect>,
    /// `app-root`: requests for `/` are redirected (302) here.
    pub app_root: Option<HeaderValue>,
    /// The path sent upstream is rewritten.
    pub rewrite: Option<Rewrite>,
    /// Largest request body (413 above it).
    pub max_body: Option<u64>,
    pub timeouts: Timeouts,
    /// When and how often a failed request goes to another endpoint.
    pub retry: Option<Retry>,
    /// Sticky sessions by cookie.
    pub affinity: Option<Affinity>,
    /// Consistent hashing of a request key over the endpoints.
    pub hash_by: Option<HashKey>,
    pub cors: Option<Cors>,
    /// Basic authentication against an htpasswd Secret.
    pub basic_auth: Option<BasicAuth>,
    /// External authentication sub-request (`auth-url`).
    pub external_auth: Option<Arc<crate::auth::external::ExternalAuth>>,
    /// `X-Forwarded-Prefix` sent upstream.
    pub forwarded_prefix: Option<HeaderValue>,
    /// Host header sent upstream (`upstream-vhost`).
    pub upstream_vhost: Option<HeaderValue>,
    /// Upstream responses with these statuses are replaced by the default
    /// backend's answer.
    pub custom_errors: Option<CustomErrors>,
    /// `default-backend`: serves the route while its upstream has no endpoint.
    pub fallback: Option<UpstreamId>,
    /// `backend-protocol: AUTO_HTTP`: requests that came over TLS go to
    /// this upstream (the route's own backend spoken to over HTTPS).
    pub tls_upstream: Option<UpstreamId>,
    /// Weighted backends (Gateway `backendRefs`): one chosen per request;
    /// an invalid choice, or no valid weight at all, answers 500.
    pub backends: Option<Box<Backends>>,
    /// Header edits on the request sent upstream.
    pub request_headers: Option<Arc<HeaderEdits>>,
    /// Header edits on the upstream's response.
    pub response_headers: Option<Arc<HeaderEdits>>,
    /// Every request answered with a redirect computed from it (Gateway
    /// RequestRedirect).
    pub redirect_to: Option<Box<RedirectTo>>,
    /// The Host and path sent upstream (Gateway URLRewrite).
    pub url_rewrite: Option<Box<UrlRewrite>>,
    /// Copies of the request sent elsewhere in the background.
    pub mirrors: Box<[Mirror]>,
    /// No access-log line for this route's requests
    /// (`tollgate.dev/enable-access-log: "false"`). Not a phase: a plain
    /// route stays plain.
    pub no_access_log: bool,
    /// `proxy-redirect-*`, `proxy-cookie-*`: the upstream's `Location`,
    /// `Refresh` and `Set-Cookie` rewritten.
    pub response_rewrite: Option<Arc<ResponseRewrite>>,
    /// `limit-rate`, `limit-rate-after`: response bodies paced.
    pub limit_rate: Option<LimitRate>,
    /// `from-to-www-redirect`: requests are answered with a 308 to this
    /// host (set on the routes of the added `www.` or bare host only).
    pub www_redirect: Option<Arc<str>>,
    /// Client-certificate authentication (`auth-tls-*`): checked first.
    pub client_cert: Option<Arc<super::client_cert::ClientCert>>,
}

impl RoutePolicy {
    /// Whether the policy asks for nothing (the request path's fast path).
    pub fn is_plain(&self) -> bool {
        self.access.is_none()
            && self.rate.is_none()
            && self.global_rate.is_none()
            && self.connections.is_none()
            && self.redirect.is_none()
            && self.app_root.is_none()
            && self.rewrite.is_none()
            && self.max_body.is_none()
            && self.timeouts == Timeouts::default()
            && self.retry.is_none()
            && self.affinity.is_none()
            && self.hash_by.is_none()
            && self.cors.is_none()
            && self.basic_auth.is_none()
            && self.external_auth.is_none()
            && self.forwarded_prefix.is_none()
            && self.upstream_vhost.is_none()
            && self.custom_errors.is_none()
            && self.fallback.is_none()
            && self.tls_upstream.is_none()
            && self.backends.is_none()
            && self.request_headers.is_none()
            && self.response_headers.is_none()
            && self.redirect_to.is_none()
            && self.url_rewrite.is_none()
            && self.mirrors.is_empty()
            && self.response_rewrite.is_none()
            && self.limit_rate.is_none()
            && self.www_redirect.is_none()
            && self.client_cert.is_none()
    }
}

/// Client-IP lists. A denied address is refused even when also allowed;
/// with an allow list, every address not on it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessList {
    /// Empty: every address not denied is allowed.
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl AccessList {
    #[inline]
    pub fn permits(&self, ip: std::net::IpAddr) -> bool {
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// A request-rate limit per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests: NonZeroU32,
    /// One second or one minute.
    pub per: Duration,
    /// Requests allowed at once.
    pub burst: NonZeroU32,
    /// The rejection status (429 for `tollgate.dev/`, 503 as ingress-nginx).
    pub status: StatusCode,
}

/// A rate limit whose budget lives in the shared store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// (`tollgate.dev/limit-scope: global`, TrafficPolicy `rateLimit.scope:
/// Global`, ingress-nginx's `global-rate-limit`.)
pub struct GlobalRateLimit {
    /// Requests, period, burst and the rejection status (429).
    pub rate: RateLimit,
    /// What requests are counted by (default: the client address).
    pub key: LimitKey,
    /// Clients never counted (`global-rate-limit-ignored-cidrs`, and the
    /// route's `limit-whitelist`).
    pub exempt: Arc<[IpNet]>,
}

/// A limit on concurrent requests per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnLimit {
    pub max: NonZeroU32,
    pub status: StatusCode,
}

/// A fixed redirect (`permanent-redirect`, `temporal-redirect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub status: StatusCode,
    pub location: HeaderValue,
    /// The location is a path made absolute with the request's scheme and
    /// Host (nginx's `absolute_redirect on`, unless `relative-redirects`).
    pub absolute: bool,
}

/// `rewrite-target`: when `pattern` matches the request path, the path sent
/// upstream becomes `target` with `$N` replaced by capture group N (as
/// nginx's `rewrite`: the replacement is the whole new path; the query is
/// kept).
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub pattern: Arc<Regex>,
    pub target: Arc<str>,
}

/// Per-route timeouts; `None` keeps the global flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    /// Waiting for response headers (`proxy-read-timeout`).
    pub read: Option<Duration>,
    /// Longest pause while sending the request body (`proxy-send-timeout`).
    pub send: Option<Duration>,
    /// Pooled upstream connections idle longer are not reused.
    pub idle: Option<Duration>,
    /// The whole request, from routing to the response headers (Gateway
    /// `timeouts.request`): 504 after it.
    pub request: Option<Duration>,
    /// Each upstream attempt, from sending to the response headers (Gateway
    /// `timeouts.backendRequest`): 504 after it.
    pub backend_request: Option<Duration>,
}

/// `proxy-next-upstream`: what sends a request to another endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included (`proxy-next-upstream-tries`).
    pub tries: u8,
    /// Connection failures and connections that broke before a response.
    pub on_error: bool,
    /// No response headers within the read timeout.
    pub on_timeout: bool,
    /// Upstream response statuses that are retried (`http_502`...).
    pub on_status: Vec<u16>,
    /// Retry requests that are not idempotent (POST, PATCH) too.
    pub non_idempotent: bool,
    /// At most this percent of an upstream's recent requests may be
    /// retries (TrafficPolicy `retries.budget`); `None`: no budget.
    pub budget: Option<u8>,
    /// No further endpoint is tried this long after the first attempt
    /// (`proxy-next-upstream-timeout`); `None`: no limit.
    pub within: Option<std::time::Duration>,
    /// Gateway API `retry` semantics ([`RetryPacing`]); `None`: nginx's
    /// `proxy-next-upstream` (each try on another endpoint).
    pub pacing: Option<RetryPacing>,
}

/// How a Gateway API `retry` differs from `proxy-next-upstream`:
/// `tries` counts attempts, not endpoints (once every endpoint was tried,
/// the same ones are tried again, so a one-endpoint Service is retried
/// too); each retry waits `backoff` first, doubling per retry up to
/// [`RetryPacing::MAX_BACKOFF`] (never below `backoff`), and a request
/// deadline (`timeouts.request`) cuts the wait short with a 504; a
/// request whose tries all failed on the connection answers 503 (the
/// backend is unavailable), not 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPacing {
    /// The least wait before a retry; zero retries at once.
    pub backoff: Duration,
}

impl RetryPacing {
    /// The longest wait between two attempts, however many retries.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

    /// The wait before retry `n` (1 for the first retry): `backoff`
    /// doubled `n - 1` times, capped at [`Self::MAX_BACKOFF`] unless
    /// `backoff` itself is longer.
    pub fn wait_before(&self, n: u32) -> Duration {
        let doubled = self
            .backoff
            .checked_mul(1u32 << n.saturating_sub(1).min(16))
            .unwrap_or(Self::MAX_BACKOFF);
        doubled.min(Self::MAX_BACKOFF).max(self.backoff)
    }
}

/// Sticky sessions (`affinity: cookie`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    pub cookie: Arc<str>,
    pub mode: AffinityMode,
    /// `Max-Age` of the cookie, seconds; a session cookie when `None`.
    pub max_age: Option<u64>,
    pub path: Option<Arc<str>>,
    /// ingress-nginx's further cookie attributes (annotations only).
    pub attrs: CookieAttrs,
}

/// The affinity cookie as ingress-nginx sets it (`session-cookie-*`);
/// the default is the TrafficPolicy cookie (`Path=/` unless set, `HttpOnly`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieAttrs {
    /// ingress-nginx's defaults: `Path` is the rule's path as written, and
    /// the cookie is `Secure` on HTTPS requests.
    pub nginx: bool,
    /// `Expires` this many seconds after the response.
    pub expires: Option<u64>,
    pub domain: Option<Arc<str>>,
    /// `Secure` on plain HTTP too.
    pub secure: bool,
    /// `SameSite` value: `None`, `Lax` or `Strict`.
    pub samesite: Option<&'static str>,
    /// `SameSite=None` is left out for clients that mishandle it (by
    /// User-Agent, ingress-nginx's list).
    pub conditional_samesite_none: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityMode {
    /// The cookie holds a random key, hashed onto the endpoints: when
    /// endpoints are added, a share of sessions moves to them.
    Balanced,
    /// The cookie names the endpoint: a session stays while it exists.
    Persistent,
}

/// A request key for consistent hashing (`upstream-hash-by`): literal text
/// and a fixed set of request variables, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKey {
    pub parts: Vec<HashPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPart {
    Literal(Arc<str>),
    /// `$remote_addr`: the client IP.
    RemoteAddr,
    /// `$request_uri`: path and query as sent.
    RequestUri,
    /// `$http_NAME`: a request header.
    Header(HeaderName),
    /// `$cookie_NAME`: a request cookie.
    Cookie(Arc<str>),
}

/// CORS (`enable-cors` and friends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub origins: CorsOrigins,
    pub allow_methods: HeaderValue,
    pub allow_headers: HeaderValue,
    pub expose_headers: Option<HeaderValue>,
    pub allow_credentials: bool,
    pub max_age: HeaderValue,
    /// ingress-nginx's semantics (the annotations): every response of the
    /// route, answers included, carries the headers when the origin is
    /// allowed; any-origin sends `*` even without an `Origin`; every
    /// `OPTIONS` from an allowed origin is answered 204; a wildcard origin
    /// stands for one DNS label. Otherwise (TrafficPolicy, HTTPRoute) the
    /// Fetch semantics: only requests with an allowed `Origin`, preflights
    /// only with `Access-Control-Request-Method`.
    pub nginx: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin.
    Any,
    /// Exact origins (`https://a.example`) and wildcard-subdomain origins
    /// (`https://*.example.com`), lowercase.
    List(Vec<Arc<str>>),
}

impl CorsOrigins {
    /// The origins of a policy's `allowOrigins` list: none or one `*` is
    /// any origin; otherwise each lowercased, without a trailing slash.
    pub fn from_list(origins: &[String]) -> CorsOrigins {
        if origins.is_empty() || origins.iter().any(|o| o == "*") {
            return CorsOrigins::Any;
        }
        CorsOrigins::List(
            origins
                .iter()
                .map(|o| Arc::from(o.trim_end_matches('/').to_ascii_lowercase()))
                .collect(),
        )
    }

    /// Whether `origin` (as sent in the Origin header) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|allowed| origin_matches(allowed, origin)),
        }
    }

    /// ingress-nginx's match: as [`Self::allows`], but the `*` of a
    /// wildcard origin stands for exactly one DNS label
    /// (`[A-Za-z0-9-]+`), as ingress-nginx's generated regex does.
    pub fn allows_nginx(&self, origin: &str) -> bool {
        match self {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|allowed| {
                origin_matches(allowed, origin)
                    && allowed.split_once("://*.").is_none_or(|(scheme, suffix)| {
                        let label_len = origin.len() - scheme.len() - 3 - suffix.len() - 1;
                        origin
                            .get(scheme.len() + 3..scheme.len() + 3 + label_len)
                            .is_some_and(|l| {
                                l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                            })
                    })
            }),
        }
    }
}

/// `https://*.example.com` matches `https://a.example.com` (one or more
/// labels), not `https://example.com`; anything else compares exactly,
/// ignoring ASCII case.
fn origin_matches(allowed: &str, origin: &str) -> bool {
    match allowed.split_once("://*.") {
        None => allowed.eq_ignore_ascii_case(origin),
        Some((scheme, suffix)) => {
            let Some((o_scheme, rest)) = origin.split_once("://") else {
                return false;
            };
            if !o_scheme.eq_ignore_ascii_case(scheme) || rest.len() <= suffix.len() + 1 {
                return false;
            }
            let cut = rest.len() - suffix.len();
            rest.is_char_boundary(cut)
                && rest
                    .get(cut..)
                    .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
                && rest.get(..cut).is_some_and(|s| s.ends_with('.'))
        }
    }
}

/// Basic authentication: the users, and the challenge sent without them.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub users: Arc<crate::auth::htpasswd::Htpasswd>,
    /// The whole `WWW-Authenticate` value (`Basic realm="..."`).
    pub challenge: HeaderValue,
    /// Its Secret does not exist (and no earlier version of it was
    /// good): every request is answered 503, as ingress-nginx denies the
    /// location.
    pub unavailable: bool,
}

/// `custom-http-errors`: statuses answered by the default backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomErrors {
    pub codes: Vec<u16>,
    pub upstream: UpstreamId,
}

/// A canary backend of a route (`canary: "true"` Ingresses).
#[derive(Debug, Clone)]
pub struct Canary {
    pub upstream: UpstreamId,
    /// `namespace/service:port` of the canary, for metrics and logs.
    pub service: Arc<str>,
    pub ingress: Arc<str>,
    pub header: Option<CanaryHeader>,
    /// `canary-by-cookie`: `always` routes to the canary, `never` never.
    pub cookie: Option<Arc<str>>,
    /// Requests out of `weight_total` that go to the canary.
    pub weight: u32,
    pub weight_total: u32,
    /// `affinity-canary-behavior: sticky` (the default), with affinity on
    /// the route: a client the canary served carries an affinity cookie
    /// marked for the canary ([`CANARY_COOKIE_MARK`]) and stays on it; a
    /// client with the main backend's cookie stays on the main backend.
    /// `legacy`: the canary sets no affinity cookie and a marked cookie
    /// counts for nothing.
    pub sticky: bool,
}

/// Appended to the affinity cookie's value when the canary served
/// (`affinity-canary-behavior: sticky`).
pub const CANARY_COOKIE_MARK: &str = "|canary";

/// `canary-by-header` with its value matcher.
#[derive(Debug, Clone)]
pub struct CanaryHeader {
    pub name: HeaderName,
    pub matcher: CanaryMatch,
}

#[derive(Debug, Clone)]
pub enum CanaryMatch {
    /// `always` → canary, `never` → main, anything else falls through.
    AlwaysNever,
    /// `canary-by-header-value`: this exact value → canary.
    Value(HeaderValue),
    /// `canary-by-header-pattern`: a matching value → canary.
    Pattern(Arc<Regex>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lists() {
        let list = AccessList {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            deny: vec!["10.1.0.0/16".parse().unwrap()],
        };
        assert!(list.permits("10.2.3.4".parse().unwrap()));
        assert!(!list.permits("10.1.3.4".parse().unwrap()));
        assert!(!list.permits("192.168.0.1".parse().unwrap()));
        let deny_only = AccessList {
            allow: vec![],
            deny: vec!["127.0.0.2/32".parse().unwrap()],
        };
        assert!(deny_only.permits("127.0.0.1".parse().unwrap()));
        assert!(!deny_only.permits("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn cors_origins() {
        let list = CorsOrigins::List(vec![
            "https://app.example.com".into(),
            "https://*.corp.example".into(),
        ]);
        assert!(list.allows("https://app.example.com"));
        assert!(list.allows("HTTPS://APP.example.com"));
        assert!(!list.allows("http://app.example.com"));
        assert!(list.allows("https://a.corp.example"));
        assert!(list.allows("https://a.b.corp.example"));
        assert!(!list.allows("https://corp.example"));
        assert!(!list.allows("https://evilcorp.example"));
        assert!(!list.allows("https://a.corp.example.evil"));
        assert!(CorsOrigins::Any.allows("null"));
    }

    #[test]
    fn default_policy_is_plain() {
        assert!(RoutePolicy::default().is_plain());
        let p = RoutePolicy {
            max_body: Some(1),
            ..Default::default()
        };
        assert!(!p.is_plain());
    }
}
