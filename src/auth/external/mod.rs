//! The external authentication (`auth-url`) of a route, as the compiler
//! builds it from the `auth-*` annotations and the routing table holds it
//! ([`crate::table::policy::RoutePolicy::external_auth`]).
//!
//! This module is the spec only: pure values, no IO, no tokio, no hyper
//! client, so the compiler and the table can depend on it. Asking the auth
//! service (the sub-request, its answer mapped to a [`client::Decision`],
//! the shared [`client::AuthClient`]) is [`client`]'s job; the compiler
//! never imports it.
//!
//! Invariants:
//! - An [`ExternalAuth`] is valid by construction: its URL template starts
//!   with `http://`, `https://` or `$scheme://`, its method is an HTTP
//!   method, and it is immutable once built (shared by all requests).
//! - `auth-response-headers` can never name framing or routing headers
//!   (Host, Content-Length, Trailer, Proxy-Authenticate, hop-by-hop): an
//!   auth service must not be able to smuggle a request to the backend.
//! - Only the names `auth-response-headers` lists ever reach the upstream
//!   request from an auth answer ([`ExternalAuth::apply_allowed`]).

pub mod cache;
pub mod client;

use std::time::Duration;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, HOST, PROXY_AUTHENTICATE, TRAILER,
};
use http::Method;

use cache::CacheSpec;

use super::template::Template;
use crate::hop_by_hop::CONNECTION_SPECIFIC;

/// Timeout of a whole check when the compiler has no better value.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Names `auth-response-headers` may not list, besides the hop-by-hop ones
/// ([`CONNECTION_SPECIFIC`]).
const FORBIDDEN_RESPONSE_HEADERS: [HeaderName; 4] =
    [HOST, CONTENT_LENGTH, TRAILER, PROXY_AUTHENTICATE];

/// Why an `auth-*` annotation set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalAuthError {
    #[error("auth-url: {0}")]
    UrlTemplate(String),
    #[error("auth-url {0:?} must start with http://, https:// or $scheme://")]
    NotHttp(String),
    #[error("auth-signin: {0}")]
    SigninTemplate(String),
    #[error("auth-method {0:?} is not an HTTP method")]
    Method(String),
    #[error("auth-response-headers: {0:?} is not a valid header name")]
    HeaderName(String),
    #[error("auth-response-headers: {0} cannot be set from an auth response")]
    ForbiddenHeader(HeaderName),
}

/// The external authentication of one route (compiled from its
/// annotations; immutable, shared by all requests).
#[derive(Debug, Clone)]
pub struct ExternalAuth {
    url: Template,
    method: Method,
    response_headers: Vec<HeaderName>,
    signin: Option<Template>,
    /// The query argument carrying the original URL to the signin page
    /// (`auth-signin-redirect-param`, default `rd`).
    signin_param: Box<str>,
    timeout: Duration,
    /// `auth-request-redirect`: the X-Auth-Request-Redirect value (else
    /// the request URI).
    request_redirect: Option<HeaderValue>,
    /// `auth-always-set-cookie`: the auth answer's cookies reach the
    /// client whatever the response's status (else only on the statuses
    /// of nginx's `add_header`).
    always_set_cookie: bool,
    /// `auth-proxy-set-headers`: set on the auth request, after the
    /// client's headers.
    proxy_headers: Vec<(HeaderName, HeaderValue)>,
    /// `auth-cache-key` / `auth-cache-duration`.
    cache: Option<CacheSpec>,
}

impl ExternalAuth {
    /// Builds from parsed parts. `url` must start with `http://`,
    /// `https://` (any case) or `$scheme://`; `response_headers` may not
    /// name framing or hop-by-hop headers.
    pub fn new(
        url: Template,
        method: Method,
        response_headers: Vec<HeaderName>,
        signin: Option<Template>,
        timeout: Duration,
    ) -> Result<ExternalAuth, ExternalAuthError> {
        let source = url.as_str();
        let http = ["http://", "https://", "$scheme://", "${scheme}://"]
            .iter()
            .any(|prefix| {
                source
                    .get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
            });
        if !http {
            return Err(ExternalAuthError::NotHttp(source.to_string()));
        }
        if let Some(name) = response_headers.iter().find(|name| {
            FORBIDDEN_RESPONSE_HEADERS.contains(name) || CONNECTION_SPECIFIC.contains(name)
        }) {
            return Err(ExternalAuthError::ForbiddenHeader(name.clone()));
        }
        Ok(ExternalAuth {
            url,
            method,
            response_headers,
            signin,
            signin_param: "rd".into(),
            timeout,
            request_redirect: None,
            always_set_cookie: false,
            proxy_headers: Vec::new(),
            cache: None,
        })
    }

    /// `auth-request-redirect`: the X-Auth-Request-Redirect sent to the
    /// auth service.
    pub fn with_request_redirect(mut self, value: HeaderValue) -> ExternalAuth {
        self.request_redirect = Some(value);
        self
    }

    /// `auth-always-set-cookie`.
    pub fn with_always_set_cookie(mut self, always: bool) -> ExternalAuth {
        self.always_set_cookie = always;
        self
    }

    /// `auth-proxy-set-headers` (the compiler has refused framing and
    /// hop-by-hop names).
    pub fn with_proxy_headers(mut self, headers: Vec<(HeaderName, HeaderValue)>) -> ExternalAuth {
        self.proxy_headers = headers;
        self
    }

    /// `auth-cache-key` / `auth-cache-duration`.
    pub fn with_cache(mut self, cache: CacheSpec) -> ExternalAuth {
        self.cache = Some(cache);
        self
    }

    /// Whether the auth answer's cookies reach the client on every status.
    pub fn always_set_cookie(&self) -> bool {
        self.always_set_cookie
    }

    /// The auth URL as written.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Names the signin page's query argument for the original URL
    /// (`auth-signin-redirect-param`); `None` if `param` is not a plain
    /// argument name (letters, digits, `-`, `_`, `.`).
    pub fn with_signin_param(mut self, param: &str) -> Option<ExternalAuth> {
        let plain = !param.is_empty()
            && param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        plain.then(|| {
            self.signin_param = param.into();
            self
        })
    }

    /// Builds from annotation values as written: `auth-url`, `auth-method`
    /// (default GET), `auth-response-headers` (comma-separated),
    /// `auth-signin`.
    pub fn from_annotations(
        url: &str,
        method: Option<&str>,
        response_headers: Option<&str>,
        signin: Option<&str>,
        timeout: Duration,
    ) -> Result<ExternalAuth, ExternalAuthError> {
        let url = Template::parse(url.trim()).map_err(ExternalAuthError::UrlTemplate)?;
        let method = match method.map(str::trim).filter(|m| !m.is_empty()) {
            None => Method::GET,
            Some(m) => Method::from_bytes(m.as_bytes())
                .map_err(|_| ExternalAuthError::Method(m.to_string()))?,
        };
        let response_headers = response_headers
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ExternalAuthError::HeaderName(name.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let signin = signin
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Template::parse)
            .transpose()
            .map_err(ExternalAuthError::SigninTemplate)?;
        ExternalAuth::new(url, method, response_headers, signin, timeout)
    }

    /// The `auth-response-headers`.
    pub fn response_headers(&self) -> &[HeaderName] {
        &self.response_headers
    }

    /// Sets the headers of a [`client::Decision::Allow`] on the upstream request:
    /// every `auth-response-headers` name is first removed from `upstream`
    /// — a client cannot supply a value the auth service did not vouch
    /// for — then the auth service's values are added.
    pub fn apply_allowed(&self, allowed: HeaderMap, upstream: &mut HeaderMap) {
        for name in &self.response_headers {
            upstream.remove(name);
        }
        let mut last = None;
        for (name, value) in allowed {
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                if self.response_headers.contains(name) {
                    upstream.append(name.clone(), value);
                }
            }
        }
    }
}
