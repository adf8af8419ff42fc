//! External authentication (`auth-url`) as ingress-nginx does it: the
//! sub-request to the auth service, the mapping of its answer to a
//! [`Decision`], and the one shared HTTP client ([`AuthClient`]) all routes
//! use. The proxy calls it; the compiler and the table never import it
//! (they hold the pure [`ExternalAuth`] of the parent module).
//!
//! The sub-request: method `auth-method` (default GET), URL the rendered
//! `auth-url` template, no body; the original request's headers minus
//! hop-by-hop ones, `Content-Length`, `Transfer-Encoding`, `TE` and
//! `Expect`; `Host` set to the auth URL's authority; and, overwriting
//! anything the client sent under those names, `X-Original-URL`
//! (`scheme://host/request-uri` of the original request; host as the client
//! sent it, port included), `X-Original-Method`, `X-Auth-Request-Redirect`
//! (`auth-request-redirect`, else the request URI) and `X-Sent-From:
//! tollgate`; then the `auth-proxy-set-headers` ConfigMap's headers.
//!
//! With `auth-cache-key`, an answer whose status `auth-cache-duration`
//! lists is kept in the client's [`AuthCache`] and decides the requests
//! with the same key until it expires, without asking the auth service.
//!
//! The answer:
//! - 2xx: [`Decision::Allow`] with the `auth-response-headers` the auth
//!   service returned (see [`ExternalAuth::apply_allowed`] for how they
//!   replace the client's) and its `Set-Cookie` values (for the client's
//!   response, never the upstream request);
//! - 401: a 302 to the rendered `auth-signin` with `rd=<scheme://host
//!   and the percent-encoded request URI>` (ingress-nginx's value; the
//!   argument renamed by `auth-signin-redirect-param`) appended unless the
//!   template has such an argument;
//!   without `auth-signin`, a 401 carrying the service's `WWW-Authenticate`
//!   (and its `Set-Cookie` with `auth-always-set-cookie`);
//! - 403: 403 (with its `Set-Cookie` with `auth-always-set-cookie`);
//! - anything else, a connection error, an unusable URL or no answer within
//!   the timeout: 500.
//!
//! Invariants:
//! - Fail closed: [`Decision::Allow`] comes only from a 2xx answer received
//!   within the timeout. Every other path is a `Deny`.
//! - An allowing answer carries only the `auth-response-headers` names,
//!   which the spec keeps free of framing and routing headers (see
//!   [`super`]): an auth service cannot smuggle a request to the backend.
//! - Hop-by-hop headers never reach the auth service
//!   ([`crate::hop_by_hop`], the same rules as the proxy's).
//! - Rendered URLs and credentials are not logged; failures are logged with
//!   the auth service's authority and the reason.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, EXPECT, HOST,
    LOCATION, SET_COOKIE, TE, TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use percent_encoding::utf8_percent_encode;
use tokio::time::Instant;

use super::cache::AuthCache;
use super::ExternalAuth;
use crate::auth::template::{Template, Var, Vars, COMPONENT};
use crate::hop_by_hop::strip_hop_by_hop;

/// Connection attempts give up after this (the check's own timeout may be
/// shorter and then wins).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle keep-alive connections to auth services are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most idle connections kept per auth service.
const POOL_MAX_IDLE_PER_HOST: usize = 32;
/// After deciding, the auth response's body is read (so the connection can
/// be reused) for at most this long and this many bytes, else dropped.
const DRAIN_TIME: Duration = Duration::from_millis(50);
const DRAIN_BYTES: usize = 64 * 1024;

const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_AUTH_REQUEST_REDIRECT: HeaderName = HeaderName::from_static("x-auth-request-redirect");
const X_SENT_FROM: HeaderName = HeaderName::from_static("x-sent-from");

/// The outcome of an external auth check.
#[derive(Debug)]
pub enum Decision {
    /// Forward the request; the map holds the `auth-response-headers` the
    /// auth service returned (pass it to [`ExternalAuth::apply_allowed`]).
    Allow(HeaderMap),
    /// Answer the client with this response instead.
    Deny(Response<Bytes>),
}

/// Why the shared auth client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthClientError {
    #[error("building the TLS client configuration")]
    Tls(#[source] rustls::Error),
}

/// Why one check failed closed (logged; the client gets a 500).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("the rendered auth URL is not an absolute http(s) URL")]
    Url,
    #[error("a header of the auth request would be invalid")]
    RequestHeader,
    #[error("the auth request failed")]
    Request(#[source] hyper_util::client::legacy::Error),
    #[error("the auth service answered {0}, expected 2xx, 401 or 403")]
    Status(StatusCode),
    #[error("the auth service did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the rendered auth-signin URL is not a valid Location")]
    Signin,
    #[error("the auth client could not be built")]
    NoClient,
}

/// The HTTP/1.1 client shared by every external auth check: keep-alive
/// pooled per auth service, `http://` and `https://` (verified against the
/// OS roots, rustls with ring). Cheap to clone.
///
/// Connections are driven by tasks spawned on the runtime of the request
/// that opened them; any runtime may then reuse them.
#[derive(Clone)]
pub struct AuthClient {
    /// The HTTP client, or `None` if its TLS configuration could not be
    /// built (checks then fail closed). [`AuthClient::new`] leaves it
    /// empty until the first check: reading and parsing the OS root
    /// certificates is work and memory every process would pay at
    /// start-up, while most configurations never use `auth-url`.
    inner: Arc<OnceLock<Option<HttpClient>>>,
    /// Answers kept for routes with `auth-cache-key` (process-wide, so
    /// they survive recompiles).
    cache: Arc<AuthCache>,
}

impl fmt::Debug for AuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthClient").finish_non_exhaustive()
    }
}

impl AuthClient {
    /// A client trusting the OS root certificates. With none found (a
    /// scratch image), it is still built — `http://` auth URLs work and
    /// `https://` ones fail closed — and a warning is logged.
    ///
    /// The roots are read, and the client built, on the first check (see
    /// the `inner` field); this never fails, a failure to build the client
    /// is logged then and makes checks answer 500.
    pub fn new() -> Result<AuthClient, AuthClientError> {
        Ok(AuthClient {
            inner: Arc::default(),
            cache: Arc::default(),
        })
    }

    /// A client trusting exactly `roots` (a private CA, tests).
    pub fn with_roots(roots: rustls::RootCertStore) -> Result<AuthClient, AuthClientError> {
        let inner = http_client(roots)?;
        Ok(AuthClient {
            inner: Arc::new(OnceLock::from(Some(inner))),
            cache: Arc::default(),
        })
    }

    /// The HTTP client, built with the OS roots on first use.
    fn http(&self) -> Option<&HttpClient> {
        self.inner
            .get_or_init(|| {
                let native = rustls_native_certs::load_native_certs();
                let mut roots = rustls::RootCertStore::empty();
                let (added, _unparsable) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    tracing::warn!(
                        errors = ?native.errors,
                        "no OS root certificates found: https auth-url checks will fail"
                    );
                }
                http_client(roots)
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "no client for auth-url; routes using it answer 500");
                    })
                    .ok()
            })
            .as_ref()
    }
}

/// The pooled HTTP/1.1 client over `http://` and `https://`.
type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// An [`HttpClient`] verifying servers against `roots`.
fn http_client(roots: rustls::RootCertStore) -> Result<HttpClient, AuthClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(AuthClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(connector))
}

/// The IO half of [`ExternalAuth`]: implemented here so the spec's module
/// stays free of hyper and tokio.
impl ExternalAuth {
    /// Asks the auth service about `req`. `vars` must describe the same
    /// request. Pass the request as it will go upstream (forwarding
    /// headers already set) so the auth service sees the X-Forwarded-*
    /// values the backend would.
    pub async fn check(
        &self,
        client: &AuthClient,
        req: &Parts,
        vars: &(dyn Vars + Sync),
    ) -> Decision {
        self.check_at(client, req, vars, "").await
    }

    /// [`ExternalAuth::check`] for a route at `location` (its path): the
    /// answer cache (`auth-cache-key`) is per location, as ingress-nginx's.
    pub async fn check_at(
        &self,
        client: &AuthClient,
        req: &Parts,
        vars: &(dyn Vars + Sync),
        location: &str,
    ) -> Decision {
        let deadline = Instant::now() + self.timeout;
        let original = original_url(req, vars);
        let cache_key = self
            .cache
            .as_ref()
            .and_then(|spec| spec.key(vars, location));
        if let Some(answer) = cache_key.as_deref().and_then(|k| client.cache.get(k)) {
            if let Ok(decision) = self.decide(answer.status, &answer.headers, vars, &original) {
                return decision;
            }
        }
        let mut authority = String::new();
        let result = match self.sub_request(req, vars, &original, &mut authority) {
            Err(failure) => Err(failure),
            Ok(sub) => match client.http() {
                None => Err(Failure::NoClient),
                Some(http) => match tokio::time::timeout_at(deadline, http.request(sub)).await {
                    Err(_) => Err(Failure::Timeout(self.timeout)),
                    Ok(Err(error)) => Err(Failure::Request(error)),
                    Ok(Ok(response)) => {
                        let (head, body) = response.into_parts();
                        let decision = self.decide(head.status, &head.headers, vars, &original);
                        if let (Some(key), Some(spec)) = (cache_key, &self.cache) {
                            if let (Ok(_), Some(ttl)) = (&decision, spec.ttl(head.status)) {
                                let kept = self.kept_headers(&head.headers);
                                client.cache.insert(key, head.status, kept, ttl);
                            }
                        }
                        let drain_until = deadline.min(Instant::now() + DRAIN_TIME);
                        let _ = tokio::time::timeout_at(drain_until, drain(body)).await;
                        decision
                    }
                },
            },
        };
        result.unwrap_or_else(|failure| {
            tracing::warn!(
                auth_service = %authority,
                error = %failure,
                cause = ?std::error::Error::source(&failure).map(ToString::to_string),
                "external authentication failed closed"
            );
            Decision::Deny(plain(StatusCode::INTERNAL_SERVER_ERROR))
        })
    }

    /// The headers of an answer that deciding reads (what the cache keeps).
    fn kept_headers(&self, headers: &HeaderMap) -> HeaderMap {
        let mut kept = HeaderMap::new();
        let names = self
            .response_headers
            .iter()
            .chain([&SET_COOKIE, &WWW_AUTHENTICATE]);
        for name in names {
            if kept.contains_key(name) {
                continue;
            }
            for value in headers.get_all(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        kept
    }

    /// The request to the auth service (its authority noted for logs).
    fn sub_request(
        &self,
        req: &Parts,
        vars: &(dyn Vars + Sync),
        original: &str,
        authority: &mut String,
    ) -> Result<Request<Empty<Bytes>>, Failure> {
        let uri: Uri = self.url.render(vars).parse().map_err(|_| Failure::Url)?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(Failure::Url);
        }
        let host = uri.authority().ok_or(Failure::Url)?.as_str();
        authority.push_str(host);
        // A percent-encoded authority only comes from an escaped variable
        // value (a hostile Host, say): never resolve such a name.
        if host.contains('%') {
            return Err(Failure::Url);
        }
        let host = HeaderValue::from_str(host).map_err(|_| Failure::Url)?;

        let mut headers = req.headers.clone();
        strip_hop_by_hop(&mut headers, false);
        for name in [CONTENT_LENGTH, TRANSFER_ENCODING, TE, EXPECT] {
            headers.remove(name);
        }
        join_cookies(&mut headers);
        headers.insert(HOST, host);
        let header = |s: &str| HeaderValue::from_str(s).map_err(|_| Failure::RequestHeader);
        headers.insert(X_ORIGINAL_URL, header(original)?);
        headers.insert(X_ORIGINAL_METHOD, header(req.method.as_str())?);
        let redirect = match &self.request_redirect {
            Some(value) => value.clone(),
            None => header(&request_uri(req, vars))?,
        };
        headers.insert(X_AUTH_REQUEST_REDIRECT, redirect);
        headers.insert(X_SENT_FROM, HeaderValue::from_static("tollgate"));
        for (name, value) in &self.proxy_headers {
            headers.insert(name.clone(), value.clone());
        }

        let mut sub = Request::new(Empty::new());
        *sub.method_mut() = self.method.clone();
        *sub.uri_mut() = uri;
        *sub.headers_mut() = headers;
        Ok(sub)
    }

    /// Maps the auth service's answer (its status and headers) to a
    /// decision. An allowing map also holds the answer's Set-Cookie values
    /// (for the client: [`ExternalAuth::apply_allowed`] passes upstream
    /// only the `auth-response-headers` names).
    fn decide(
        &self,
        status: StatusCode,
        answer: &HeaderMap,
        vars: &(dyn Vars + Sync),
        original: &str,
    ) -> Result<Decision, Failure> {
        if status.is_success() {
            let mut allowed = HeaderMap::new();
            for name in &self.response_headers {
                for value in answer.get_all(name) {
                    allowed.append(name.clone(), value.clone());
                }
            }
            if !self.response_headers.contains(&SET_COOKIE) {
                for value in answer.get_all(SET_COOKIE) {
                    allowed.append(SET_COOKIE, value.clone());
                }
            }
            return Ok(Decision::Allow(allowed));
        }
        // ingress-nginx: `add_header Set-Cookie $auth_cookie always` also
        // reaches a 401 or 403 answer (not the signin redirect, whose
        // location clears it).
        let with_cookies = |mut response: Response<Bytes>| {
            if self.always_set_cookie {
                for value in answer.get_all(SET_COOKIE) {
                    response.headers_mut().append(SET_COOKIE, value.clone());
                }
            }
            response
        };
        match status {
            StatusCode::UNAUTHORIZED => match &self.signin {
                Some(signin) => {
                    let location = signin_location(signin, &self.signin_param, vars, original);
                    let location = HeaderValue::try_from(location).map_err(|_| Failure::Signin)?;
                    let mut response = plain(StatusCode::FOUND);
                    response.headers_mut().insert(LOCATION, location);
                    Ok(Decision::Deny(response))
                }
                None => {
                    let mut response = plain(StatusCode::UNAUTHORIZED);
                    for value in answer.get_all(WWW_AUTHENTICATE) {
                        response
                            .headers_mut()
                            .append(WWW_AUTHENTICATE, value.clone());
                    }
                    Ok(Decision::Deny(with_cookies(response)))
                }
            },
            StatusCode::FORBIDDEN => Ok(Decision::Deny(with_cookies(plain(StatusCode::FORBIDDEN)))),
            other => Err(Failure::Status(other)),
        }
    }
}

/// The rendered signin URL with `<param>=<scheme://host><escaped request
/// URI>` (`rd` by default, as ingress-nginx)
/// added unless the template has its own such argument; the fragment (if
/// any) stays last.
fn signin_location(signin: &Template, param: &str, vars: &dyn Vars, original: &str) -> String {
    let mut url = signin.render(vars);
    if signin.has_query_arg(param) {
        return url;
    }
    let fragment = url.find('#').map(|i| url.split_off(i));
    if !(url.ends_with('?') || url.ends_with('&')) {
        url.push(if url.contains('?') { '&' } else { '?' });
    }
    url.push_str(param);
    url.push('=');
    // ingress-nginx: `$scheme://$http_host$escaped_request_uri`, only the
    // request URI escaped.
    let split = original
        .find("://")
        .and_then(|i| original.get(i + 3..)?.find('/').map(|j| i + 3 + j))
        .unwrap_or(original.len());
    let (origin, request_uri) = original.split_at(split);
    url.push_str(origin);
    url.extend(utf8_percent_encode(request_uri, COMPONENT));
    if let Some(fragment) = fragment {
        url.push_str(&fragment);
    }
    url
}

/// `scheme://host/request-uri` of the original request, host as sent
/// (Host header, else the target's authority, else `$host`).
fn original_url(req: &Parts, vars: &dyn Vars) -> String {
    let scheme = vars.get(&Var::Scheme);
    let host = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(std::borrow::Cow::Borrowed)
        .or_else(|| req.uri.authority().map(|a| a.as_str().into()))
        .or_else(|| vars.get(&Var::Host));
    let uri = request_uri(req, vars);
    let mut url = String::with_capacity(uri.len() + 64);
    url.push_str(scheme.as_deref().unwrap_or("http"));
    url.push_str("://");
    url.push_str(host.as_deref().unwrap_or_default());
    url.push_str(&uri);
    url
}

fn request_uri<'a>(req: &'a Parts, vars: &'a dyn Vars) -> std::borrow::Cow<'a, str> {
    vars.get(&Var::RequestUri).unwrap_or_else(|| {
        req.uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .into()
    })
}

/// HTTP/2 clients may split Cookie over several fields; HTTP/1.1 wants one.
fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(COOKIE).iter().nth(1).is_none() {
        return;
    }
    let mut joined = Vec::new();
    for value in headers.get_all(COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, value);
    }
}

/// Reads and discards a body, up to [`DRAIN_BYTES`].
async fn drain(mut body: Incoming) {
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.len());
            if read > DRAIN_BYTES {
                return;
            }
        }
    }
}

/// A short plain-text response with `status`.
fn plain(status: StatusCode) -> Response<Bytes> {
    let body = match status {
        StatusCode::FOUND => Bytes::new(),
        StatusCode::UNAUTHORIZED => Bytes::from_static(b"401 Unauthorized\n"),
        StatusCode::FORBIDDEN => Bytes::from_static(b"403 Forbidden\n"),
        _ => Bytes::from_static(b"500 Internal Server Error\n"),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
