//! Errors of the request path and the one status each maps to.
//!
//! Invariant: error responses are short static plain-text bodies; nothing
//! from an upstream (addresses, messages) reaches the client.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::body::ProxyBody;
use super::forward::pool::ConnectError;
use super::upload::Stall;
use crate::metrics::BadRequest;

/// Who failed, and how. Each variant maps to exactly one status.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Downstream: the request is malformed.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Downstream: the request's framing is malformed (counted in
    /// `tollgate_bad_requests_total`); the connection is closed.
    #[error("malformed request: {}", .0.as_str())]
    Malformed(BadRequest),
    /// Downstream: the request head breaks a rule of its target, Host or
    /// (HTTP/2) pseudo-headers (counted in `tollgate_bad_requests_total`
    /// under the first field; the second says which rule).
    #[error("invalid request: {1}")]
    Invalid(BadRequest, &'static str),
    /// Downstream: the request head is larger than `--max-header-bytes`.
    #[error("request head too large")]
    HeadersTooLarge,
    /// No rule matched and no default backend is configured.
    #[error("no route")]
    NoRoute,
    /// The route's backend has no ready endpoint (or its Service is missing).
    #[error("no ready endpoint")]
    NoEndpoints,
    /// Upstream: every endpoint tried refused or failed the connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Upstream: the connection failed after the request was sent.
    #[error("upstream: {0}")]
    Upstream(#[source] hyper::Error),
    /// Upstream: the connection ended or its response head could not be
    /// read, after the request was sent (the HTTP/1.1 fast path's
    /// [`ProxyError::Upstream`]).
    #[error("upstream: {0}")]
    UpstreamBroken(&'static str),
    /// Upstream: a Gateway API retry policy ran out of attempts on
    /// connection errors (refused, reset): the backend is unavailable
    /// (503, as the spec's conformance expects), not a bad gateway.
    #[error("upstream unavailable after retries: {0}")]
    Unavailable(#[source] Box<ProxyError>),
    /// Upstream: a `101 Switching Protocols` to a request that asked for
    /// no upgrade (the connection is dropped, never bridged nor reused).
    #[error("upstream switched protocols unasked")]
    UnaskedUpgrade,
    /// Upstream: no response headers within the response timeout (or it
    /// stopped reading the request body).
    #[error("upstream response timed out")]
    Timeout,
    /// Downstream: the request's host belongs to another certificate than
    /// the one this TLS connection negotiated.
    #[error("misdirected request")]
    Misdirected,
    /// Downstream: the client stopped sending its request body.
    #[error("client request body timed out")]
    ClientTimeout,
    /// Downstream: the client's address is not allowed on this route.
    #[error("client address not allowed")]
    Forbidden,
    /// Downstream: the request body is larger than the route allows.
    #[error("request body too large")]
    PayloadTooLarge,
    /// Internal: a policy step could not complete (external
    /// authentication failed to answer); never treated as allowed.
    #[error("internal: {0}")]
    Internal(&'static str),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) | ProxyError::Malformed(_) | ProxyError::Invalid(..) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoEndpoints | ProxyError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect(_)
            | ProxyError::Upstream(_)
            | ProxyError::UpstreamBroken(_)
            | ProxyError::UnaskedUpgrade => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::Forbidden => StatusCode::FORBIDDEN,
            ProxyError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text body of [`Self::response`].
    pub fn body(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) | ProxyError::Malformed(_) | ProxyError::Invalid(..) => {
                "400 Bad Request\n"
            }
            ProxyError::HeadersTooLarge => "431 Request Header Fields Too Large\n",
            ProxyError::NoRoute => "404 Not Found\n",
            ProxyError::NoEndpoints | ProxyError::Unavailable(_) => "503 Service Unavailable\n",
            ProxyError::Connect(_)
            | ProxyError::Upstream(_)
            | ProxyError::UpstreamBroken(_)
            | ProxyError::UnaskedUpgrade => "502 Bad Gateway\n",
            ProxyError::Timeout => "504 Gateway Timeout\n",
            ProxyError::ClientTimeout => "408 Request Timeout\n",
            ProxyError::Misdirected => "421 Misdirected Request\n",
            ProxyError::Forbidden => "403 Forbidden\n",
            ProxyError::PayloadTooLarge => "413 Content Too Large\n",
            ProxyError::Internal(_) => "500 Internal Server Error\n",
        }
    }

    pub fn response(&self) -> Response<ProxyBody> {
        let mut response =
            Response::new(ProxyBody::fixed(Bytes::from_static(self.body().as_bytes())));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if matches!(
            self,
            ProxyError::BadRequest(_)
                | ProxyError::Malformed(_)
                | ProxyError::Invalid(..)
                | ProxyError::HeadersTooLarge
                | ProxyError::ClientTimeout
                | ProxyError::PayloadTooLarge
        ) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<Stall> for ProxyError {
    fn from(stall: Stall) -> Self {
        match stall {
            Stall::Upstream => ProxyError::Timeout,
            Stall::Client => ProxyError::ClientTimeout,
            Stall::TooLarge => ProxyError::PayloadTooLarge,
        }
    }
}
