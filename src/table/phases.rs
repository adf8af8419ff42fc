//! A route's policy as phases: named, ordered steps as data, built once from
//! its [`RoutePolicy`] (and canary) when the table is built, never on the
//! request path.
//!
//! The order is nginx's phase order as ingress-nginx configures it:
//! - on the request as the client sent it ([`RequestPhase`]): the client
//!   certificate (`auth-tls-*`: nginx checks it as it reads the request,
//!   before any phase), the
//!   `from-to-www-redirect` host's 308 (that host serves nothing else), fixed
//!   redirect, computed redirect (Gateway RequestRedirect), `app-root`,
//!   CORS preflight (rewrite phase) → rate limit, global rate limit,
//!   connection limit
//!   (preaccess: they also slow down password guessing) → access list
//!   (403) → basic authentication (401) → the backend by the client's
//!   scheme (`AUTO_HTTP`) → weighted backend choice (500 for
//!   an invalid share), canary choice, `default-backend` fallback, request
//!   headers, what a custom error page will need, endpoint affinity or
//!   hashing;
//! - on the request as it will be sent ([`UpstreamPhase`]): external
//!   authentication (it sees the request as sent) → rewrite, URL rewrite
//!   (so the auth service, error pages and hashing see `$request_uri`) →
//!   header edits of the route, then of the chosen backend (last but one:
//!   what they say is what the upstream gets) → mirrors (a copy of the
//!   request exactly as it will be sent);
//! - forwarding (the route's timeouts, retries, body limit: not a phase,
//!   the data plane's `Plan`; the whole-request timeout is a deadline
//!   there that bounds every upstream attempt);
//! - on the response ([`ResponsePhase`]): the upstream's `Location`,
//!   `Refresh` and `Set-Cookie` rewritten (nginx does it as it reads the
//!   upstream's headers) → custom error pages → CORS headers → affinity
//!   cookie → header edits of the route, then of the chosen backend →
//!   connection permit release → response bandwidth (`limit-rate`, on the
//!   body as it is sent).
//!
//! Invariants:
//! - [`Pipeline::of`] is pure and deterministic; it adds a phase exactly
//!   when the policy asks for it, so a plain route's pipeline is empty (and
//!   such a route skips the pipeline altogether).
//! - Every phase that can refuse a request comes before anything is sent
//!   upstream.
//! - A new policy input (Gateway API HTTPRoute filters) adds variants here,
//!   not branches on the request path.

use std::sync::Arc;

use http::HeaderValue;
use ipnet::IpNet;

use super::ids::UpstreamId;
use super::policy::GlobalRateLimit;
use super::policy::{
    AccessList, Affinity, Backends, BasicAuth, Canary, ConnLimit, Cors, CustomErrors, HashKey,
    HeaderEdits, LimitRate, Mirror, RateLimit, Redirect, RedirectTo, ResponseRewrite, Rewrite,
    RoutePolicy, UrlRewrite,
};
use crate::auth::external::ExternalAuth;

/// The phases of one route, in the order they run.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    /// On the request as the client sent it; each may answer instead.
    pub request: Box<[RequestPhase]>,
    /// On the request rewritten for the upstream, before it is sent.
    pub upstream: Box<[UpstreamPhase]>,
    /// On the upstream's response (not on answers the phases gave).
    pub response: Box<[ResponsePhase]>,
}

/// A phase on the request as the client sent it.
#[derive(Debug, Clone)]
pub enum RequestPhase {
    /// Client-certificate authentication (`auth-tls-*`): 400 (or the
    /// error page's 302) without a valid certificate, 403 when the subject
    /// does not match; sets the `ssl-client-*` headers.
    ClientCert(Arc<super::client_cert::ClientCert>),
    /// `from-to-www-redirect`: every request answered with a 308 to the
    /// other host (`$scheme://host:$server_port$request_uri`).
    WwwRedirect(WwwRedirect),
    /// `permanent-redirect`, `temporal-redirect`: every request answered.
    Redirect(Redirect),
    /// Gateway RequestRedirect: every request answered with a `Location`
    /// computed from it.
    RedirectTo(Box<RedirectTo>),
    /// `app-root`: requests for `/` redirected (302).
    AppRoot(AppRoot),
    /// CORS: the request's origin noted; preflights answered (204).
    CorsPreflight(Cors),
    /// Requests per client IP (429/503).
    RateLimit(Limit<RateLimit>),
    /// Requests per key counted across every replica (429, or 503 when
    /// the store is down and the limit fails closed).
    GlobalRateLimit(Limit<Arc<GlobalRateLimit>>),
    /// Concurrent requests per client IP (429/503); the permit is held
    /// until the response ends.
    ConnLimit(Limit<ConnLimit>),
    /// Client-IP allow and deny lists (403).
    Access(AccessList),
    /// Basic authentication (401).
    BasicAuth(BasicAuth),
    /// `AUTO_HTTP`: a request that came over TLS goes to this upstream
    /// (the route's backend spoken to over HTTPS).
    SchemeBackend(SchemeBackend),
    /// Weighted backends: one chosen per request (500 for an invalid
    /// choice or no weight at all).
    Backends(Box<Backends>),
    /// The canary backend takes the request when its header, cookie or
    /// weight say so.
    Canary(Box<Canary>),
    /// `default-backend`: serves while the chosen upstream has no endpoint.
    Fallback(Fallback),
    /// `X-Forwarded-Prefix` sent upstream.
    ForwardedPrefix(ForwardedPrefix),
    /// What a custom error page request needs of the original request.
    KeepForErrorPage(KeepForErrorPage),
    /// Sticky sessions by cookie: the first endpoint chosen by it.
    Affinity(Affinity),
    /// Consistent hashing of a request key (`upstream-hash-by`).
    HashBy(HashKey),
}

/// A phase on the request rewritten for the upstream.
#[derive(Debug, Clone)]
pub enum UpstreamPhase {
    /// External authentication sub-request (`auth-url`): 401/403/500 or
    /// headers copied to the request.
    ExternalAuth(Arc<ExternalAuth>),
    /// `rewrite-target`: the path sent upstream.
    Rewrite(Rewrite),
    /// Gateway URLRewrite: the Host and path sent upstream.
    UrlRewrite(Box<UrlRewrite>),
    /// Header edits of the route (Gateway RequestHeaderModifier,
    /// TrafficPolicy `headers.request`).
    RequestHeaders(Arc<HeaderEdits>),
    /// Header edits of the chosen backend (backendRef filters).
    BackendRequestHeaders(BackendHeaders),
    /// Copies of the request sent in the background (RequestMirror).
    Mirrors(Mirrors),
}

/// A phase on the upstream's response.
#[derive(Debug, Clone)]
pub enum ResponsePhase {
    /// `proxy-redirect-*`, `proxy-cookie-*`: the upstream's `Location`,
    /// `Refresh` and `Set-Cookie` rewritten.
    RewriteResponse(Arc<ResponseRewrite>),
    /// `custom-http-errors`: listed statuses answered by the default backend.
    ErrorPages(CustomErrors),
    /// CORS response headers for an allowed origin.
    Cors(Cors),
    /// The affinity cookie, when the endpoint it names changed.
    AffinityCookie(Affinity),
    /// Header edits of the route on the response (Gateway
    /// ResponseHeaderModifier, TrafficPolicy `headers.response`).
    ResponseHeaders(Arc<HeaderEdits>),
    /// Header edits of the chosen backend on the response.
    BackendResponseHeaders(BackendHeaders),
    /// The external auth answer's cookies (`auth-url`; ingress-nginx's
    /// `add_header Set-Cookie $auth_cookie`).
    AuthCookies(AuthCookies),
    /// The connection-limit permit, released when the response body ends.
    ReleasePermit(ReleasePermit),
    /// `limit-rate`: the response body paced.
    LimitRate(LimitRate),
}

/// The external auth answer's cookies for the client (the route's
/// [`ExternalAuth`] says on which statuses).
#[derive(Debug, Clone)]
pub struct AuthCookies(pub Arc<ExternalAuth>);
/// `from-to-www-redirect`: the host requests are sent to.
#[derive(Debug, Clone)]
pub struct WwwRedirect(pub Arc<str>);

/// `app-root`: where requests for `/` are redirected.
#[derive(Debug, Clone)]
pub struct AppRoot(pub HeaderValue);

/// A per-client limit, and the clients it never applies to.
#[derive(Debug, Clone)]
pub struct Limit<T> {
    pub limit: T,
    /// `limit-whitelist`.
    pub exempt: Arc<[IpNet]>,
}

/// The upstream serving a route while its own has no endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Fallback(pub UpstreamId);

/// The upstream of the requests that came over TLS (`AUTO_HTTP`).
#[derive(Debug, Clone, Copy)]
pub struct SchemeBackend(pub UpstreamId);

/// The `X-Forwarded-Prefix` value.
#[derive(Debug, Clone)]
pub struct ForwardedPrefix(pub HeaderValue);

/// Marks that the request's target, `Accept` and request id are kept for a
/// custom error page.
#[derive(Debug, Clone, Copy)]
pub struct KeepForErrorPage;

/// Marks that the chosen backend's header edits apply (request or
/// response side, by the phase holding it).
#[derive(Debug, Clone, Copy)]
pub struct BackendHeaders;

/// The mirrors of a route.
#[derive(Debug, Clone)]
pub struct Mirrors(pub Box<[Mirror]>);

/// Marks that a connection-limit permit is held until the response ends.
#[derive(Debug, Clone, Copy)]
pub struct ReleasePermit;

impl Pipeline {
    /// The phases of a route with `policy` and `canary`, in order.
    pub fn of(policy: &RoutePolicy, canary: Option<&Canary>) -> Pipeline {
        let mut request = Vec::new();
        let mut upstream = Vec::new();
        let mut response = Vec::new();
        let exempt: Arc<[IpNet]> = policy.limit_exempt.as_slice().into();

        if let Some(client_cert) = &policy.client_cert {
            request.push(RequestPhase::ClientCert(client_cert.clone()));
        }
        if let Some(to) = &policy.www_redirect {
            request.push(RequestPhase::WwwRedirect(WwwRedirect(to.clone())));
        }
        if let Some(redirect) = &policy.redirect {
            request.push(RequestPhase::Redirect(redirect.clone()));
        }
        if let Some(redirect) = &policy.redirect_to {
            request.push(RequestPhase::RedirectTo(redirect.clone()));
        }
        if let Some(root) = &policy.app_root {
            request.push(RequestPhase::AppRoot(AppRoot(root.clone())));
        }
        if let Some(cors) = &policy.cors {
            request.push(RequestPhase::CorsPreflight(cors.clone()));
        }
        if let Some(limit) = policy.rate {
            request.push(RequestPhase::RateLimit(Limit {
                limit,
                exempt: exempt.clone(),
            }));
        }
        if let Some(limit) = &policy.global_rate {
            request.push(RequestPhase::GlobalRateLimit(Limit {
                limit: limit.clone(),
                exempt: exempt.clone(),
            }));
        }
        if let Some(limit) = policy.connections {
            request.push(RequestPhase::ConnLimit(Limit { limit, exempt }));
        }
        if let Some(access) = &policy.access {
            request.push(RequestPhase::Access(access.clone()));
        }
        if let Some(basic) = &policy.basic_auth {
            request.push(RequestPhase::BasicAuth(basic.clone()));
        }
        if let Some(tls) = policy.tls_upstream {
            request.push(RequestPhase::SchemeBackend(SchemeBackend(tls)));
        }
        if let Some(backends) = &policy.backends {
            request.push(RequestPhase::Backends(backends.clone()));
        }
        if let Some(canary) = canary {
            request.push(RequestPhase::Canary(Box::new(canary.clone())));
        }
        if let Some(fallback) = policy.fallback {
            request.push(RequestPhase::Fallback(Fallback(fallback)));
        }
        if let Some(prefix) = &policy.forwarded_prefix {
            request.push(RequestPhase::ForwardedPrefix(ForwardedPrefix(
                prefix.clone(),
            )));
        }
        if policy.custom_errors.is_some() {
            request.push(RequestPhase::KeepForErrorPage(KeepForErrorPage));
        }
        // Affinity wins over hashing: both choose the first endpoint.
        if let Some(affinity) = &policy.affinity {
            request.push(RequestPhase::Affinity(affinity.clone()));
        } else if let Some(key) = &policy.hash_by {
            request.push(RequestPhase::HashBy(key.clone()));
        }

        if let Some(auth) = &policy.external_auth {
            upstream.push(UpstreamPhase::ExternalAuth(auth.clone()));
        }
        if let Some(rewrite) = &policy.rewrite {
            upstream.push(UpstreamPhase::Rewrite(rewrite.clone()));
        }
        if let Some(rewrite) = &policy.url_rewrite {
            upstream.push(UpstreamPhase::UrlRewrite(rewrite.clone()));
        }
        if let Some(edits) = &policy.request_headers {
            upstream.push(UpstreamPhase::RequestHeaders(edits.clone()));
        }
        let choices = policy.backends.as_deref().map_or(&[][..], |b| &b.choices);
        if choices.iter().any(|c| c.request_headers.is_some()) {
            upstream.push(UpstreamPhase::BackendRequestHeaders(BackendHeaders));
        }
        if !policy.mirrors.is_empty() {
            upstream.push(UpstreamPhase::Mirrors(Mirrors(policy.mirrors.clone())));
        }

        if let Some(rewrite) = &policy.response_rewrite {
            response.push(ResponsePhase::RewriteResponse(rewrite.clone()));
        }
        if let Some(errors) = &policy.custom_errors {
            response.push(ResponsePhase::ErrorPages(errors.clone()));
        }
        if let Some(cors) = &policy.cors {
            response.push(ResponsePhase::Cors(cors.clone()));
        }
        if let Some(affinity) = &policy.affinity {
            response.push(ResponsePhase::AffinityCookie(affinity.clone()));
        }
        if let Some(edits) = &policy.response_headers {
            response.push(ResponsePhase::ResponseHeaders(edits.clone()));
        }
        if choices.iter().any(|c| c.response_headers.is_some()) {
            response.push(ResponsePhase::BackendResponseHeaders(BackendHeaders));
        }
        if let Some(auth) = &policy.external_auth {
            response.push(ResponsePhase::AuthCookies(AuthCookies(auth.clone())));
        }
        if policy.connections.is_some() {
            response.push(ResponsePhase::ReleasePermit(ReleasePermit));
        }
        if let Some(limit) = policy.limit_rate {
            response.push(ResponsePhase::LimitRate(limit));
        }
        Pipeline {
            request: request.into(),
            upstream: upstream.into(),
            response: response.into(),
        }
    }

    /// Whether no phase runs.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.upstream.is_empty() && self.response.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::policy::{AffinityMode, CorsOrigins, Timeouts};
    use http::StatusCode;
    use std::num::NonZeroU32;

    fn names(p: &Pipeline) -> Vec<&'static str> {
        let request = p.request.iter().map(|ph| match ph {
            RequestPhase::WwwRedirect(_) => "www-redirect",
            RequestPhase::Redirect(_) => "redirect",
            RequestPhase::RedirectTo(_) => "redirect-to",
            RequestPhase::SchemeBackend(_) => "scheme-backend",
            RequestPhase::Backends(_) => "backends",
            RequestPhase::AppRoot(_) => "app-root",
            RequestPhase::CorsPreflight(_) => "cors-preflight",
            RequestPhase::RateLimit(_) => "rate",
            RequestPhase::GlobalRateLimit(_) => "global-rate",
            RequestPhase::ConnLimit(_) => "connections",
            RequestPhase::Access(_) => "access",
            RequestPhase::BasicAuth(_) => "basic-auth",
            RequestPhase::ClientCert(_) => "client-cert",
            RequestPhase::Canary(_) => "canary",
            RequestPhase::Fallback(_) => "fallback",
            RequestPhase::ForwardedPrefix(_) => "forwarded-prefix",
            RequestPhase::KeepForErrorPage(_) => "keep-for-error-page",
            RequestPhase::Affinity(_) => "affinity",
            RequestPhase::HashBy(_) => "hash-by",
        });
        let upstream = p.upstream.iter().map(|ph| match ph {
            UpstreamPhase::ExternalAuth(_) => "external-auth",
            UpstreamPhase::Rewrite(_) => "rewrite",
            UpstreamPhase::UrlRewrite(_) => "url-rewrite",
            UpstreamPhase::RequestHeaders(_) => "request-headers",
            UpstreamPhase::BackendRequestHeaders(_) => "backend-request-headers",
            UpstreamPhase::Mirrors(_) => "mirrors",
        });
        let response = p.response.iter().map(|ph| match ph {
            ResponsePhase::RewriteResponse(_) => "rewrite-response",
            ResponsePhase::ErrorPages(_) => "error-pages",
            ResponsePhase::Cors(_) => "cors",
            ResponsePhase::AffinityCookie(_) => "affinity-cookie",
            ResponsePhase::ResponseHeaders(_) => "response-headers",
            ResponsePhase::BackendResponseHeaders(_) => "backend-response-headers",
            ResponsePhase::AuthCookies(_) => "auth-cookies",
            ResponsePhase::ReleasePermit(_) => "release-permit",
            ResponsePhase::LimitRate(_) => "limit-rate",
        });
        request.chain(upstream).chain(response).collect()
    }

    #[test]
    fn plain_policy_has_no_phases() {
        assert!(Pipeline::of(&RoutePolicy::default(), None).is_empty());
        // Forwarding settings are not phases.
        let timeouts = RoutePolicy {
            max_body: Some(1),
            timeouts: Timeouts {
                read: Some(std::time::Duration::from_secs(1)),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(Pipeline::of(&timeouts, None).is_empty());
    }

    #[test]
    fn phases_follow_nginx_order() {
        let cors = Cors {
            origins: CorsOrigins::Any,
            allow_methods: HeaderValue::from_static("GET"),
            allow_headers: HeaderValue::from_static("X"),
            expose_headers: None,
            allow_credentials: false,
            max_age: HeaderValue::from_static("1"),
            nginx: false,
        };
        let affinity = Affinity {
            cookie: "route".into(),
            mode: AffinityMode::Balanced,
            max_age: None,
            path: None,
            attrs: Default::default(),
        };
        let policy = RoutePolicy {
            access: Some(AccessList::default()),
            rate: Some(RateLimit {
                requests: NonZeroU32::MIN,
                per: std::time::Duration::from_secs(1),
                burst: NonZeroU32::MIN,
                status: StatusCode::TOO_MANY_REQUESTS,
            }),
            connections: Some(ConnLimit {
                max: NonZeroU32::MIN,
                status: StatusCode::TOO_MANY_REQUESTS,
            }),
            app_root: Some(HeaderValue::from_static("/app")),
            cors: Some(cors),
            affinity: Some(affinity),
            hash_by: Some(HashKey { parts: Vec::new() }),
            forwarded_prefix: Some(HeaderValue::from_static("/p")),
            custom_errors: Some(CustomErrors {
                codes: vec![503],
                upstream: 1,
            }),
            fallback: Some(2),
            tls_upstream: Some(3),
            rewrite: Some(Rewrite {
                pattern: Arc::new(regex::Regex::new("/(.*)").unwrap()),
                target: "/$1".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            names(&Pipeline::of(&policy, None)),
            [
                "app-root",
                "cors-preflight",
                "rate",
                "connections",
                "access",
                "scheme-backend",
                "fallback",
                "forwarded-prefix",
                "keep-for-error-page",
                "affinity",
                "rewrite",
                "error-pages",
                "cors",
                "affinity-cookie",
                "release-permit",
            ]
        );
    }

    #[test]
    fn nginx_response_settings_in_order() {
        use crate::table::policy::Swap;
        let policy = RoutePolicy {
            www_redirect: Some("example.com".into()),
            response_rewrite: Some(Arc::new(ResponseRewrite {
                redirect: Some(Swap {
                    from: "a".into(),
                    to: "b".into(),
                }),
                ..Default::default()
            })),
            limit_rate: Some(LimitRate {
                bytes_per_sec: 1024,
                after: 0,
            }),
            connections: Some(ConnLimit {
                max: NonZeroU32::MIN,
                status: StatusCode::TOO_MANY_REQUESTS,
            }),
            custom_errors: Some(CustomErrors {
                codes: vec![404],
                upstream: 1,
            }),
            ..Default::default()
        };
        assert!(!policy.is_plain());
        assert_eq!(
            names(&Pipeline::of(&policy, None)),
            [
                "www-redirect",
                "connections",
                "keep-for-error-page",
                "rewrite-response",
                "error-pages",
                "release-permit",
                "limit-rate",
            ]
        );
    }

    #[test]
    fn gateway_filters_in_order() {
        use crate::table::policy::{BackendChoice, Mirror, PathModifier};
        let edits = Arc::new(HeaderEdits::default());
        let choice = BackendChoice {
            weight: 1,
            upstream: Some(0),
            service: "ns/a:80".into(),
            request_headers: Some(edits.clone()),
            response_headers: Some(edits.clone()),
        };
        let policy = RoutePolicy {
            redirect_to: Some(Box::new(RedirectTo {
                scheme: None,
                hostname: None,
                port: None,
                path: None,
                status: StatusCode::FOUND,
                listener_port: 80,
            })),
            backends: Some(Box::new(Backends {
                choices: vec![choice].into(),
                total: 1,
            })),
            url_rewrite: Some(Box::new(UrlRewrite {
                hostname: None,
                path: Some(PathModifier::Full("/x".into())),
            })),
            request_headers: Some(edits.clone()),
            response_headers: Some(edits),
            mirrors: vec![Mirror {
                upstream: 1,
                service: "ns/m:80".into(),
                per_million: 1_000_000,
                target: None,
            }]
            .into(),
            ..Default::default()
        };
        assert!(!policy.is_plain());
        assert_eq!(
            names(&Pipeline::of(&policy, None)),
            [
                "redirect-to",
                "backends",
                "url-rewrite",
                "request-headers",
                "backend-request-headers",
                "mirrors",
                "response-headers",
                "backend-response-headers",
            ]
        );
        // Timeouts are forwarding settings, not phases.
        let timeouts = RoutePolicy {
            timeouts: Timeouts {
                request: Some(std::time::Duration::from_secs(1)),
                backend_request: Some(std::time::Duration::from_secs(1)),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(!timeouts.is_plain());
        assert!(Pipeline::of(&timeouts, None).is_empty());
    }
}
