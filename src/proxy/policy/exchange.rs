//! What the phases of one request share, and how a phase is called: the
//! per-request [`Cx`], what a request phase decides ([`Flow`]), the three
//! phase traits ([`RequestStep`], [`UpstreamStep`], [`ResponseStep`]) and
//! the small values phases keep for later ones ([`ErrorPageInfo`]).
//!
//! Invariants:
//! - One [`Cx`] per request, on the stack of the pipeline; phases borrow
//!   the published snapshot through it and never box, clone it or lock.
//! - A phase continues or answers: [`Flow::Answer`] ends the request there.
//! - Imports nothing of the policy pipeline nor of its phase files: they
//!   import it; it names only steps below it (the connection context, the
//!   forwarding plan, bodies, errors).

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use crate::lb::Endpoint;
use crate::proxy::body::ProxyBody;
use crate::proxy::conn::ConnCtx;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::plan::Plan;
use crate::proxy::forward::prepare::Prepared;
use crate::ratelimit::ConnPermit;
use crate::state::Published;
use crate::table::policy::{BackendChoice, Canary, Cors};
use crate::table::{Route, RouteId, UpstreamId};

/// What a request phase decided.
// Returned and matched at once, never stored: boxing the answer would only
// add an allocation per answered request.
#[allow(clippy::large_enum_variant)]
pub(super) enum Flow {
    Continue,
    /// Answer the client with this instead of forwarding.
    Answer(Response<ProxyBody>),
}

/// The values of one request that phases share.
pub(super) struct Cx<'a> {
    pub(super) conn: &'a ConnCtx,
    /// The snapshot the request loaded (an `Arc`, so a mirror sent in the
    /// background keeps the table its upstream ids index).
    pub(super) published: &'a Arc<Published>,
    pub(super) route_id: RouteId,
    pub(super) route: &'a Route,
    /// The client IP limits, access lists and hashing apply to.
    pub(super) client: IpAddr,
    /// The request's `Origin` (CORS routes only).
    pub(super) origin: Option<HeaderValue>,
    /// ingress-nginx CORS allowed this request: its responses, answers
    /// included, carry the CORS headers.
    pub(super) cors: Option<&'a Cors>,
    /// The upstream chosen so far (the route's, the canary's, a fallback).
    pub(super) upstream: UpstreamId,
    /// The canary that took the request, if one did.
    pub(super) canary: Option<&'a Canary>,
    /// The weighted backend chosen, if the route has weighted backends.
    pub(super) choice: Option<&'a BackendChoice>,
    /// How the request is forwarded; phases set its first-endpoint choice.
    pub(super) plan: Plan<'a>,
    /// A new balanced-affinity key, set as the cookie on the response.
    pub(super) new_cookie: Option<String>,
    /// What the request tells about an affinity cookie to set.
    pub(super) cookie_request: CookieRequest,
    /// The connection-limit slot, held until the response ends.
    pub(super) permit: Option<ConnPermit>,
    /// Kept for a custom error page request.
    pub(super) error_page: Option<ErrorPageInfo>,
    /// Set-Cookie values of the external auth answer, for the client.
    pub(super) auth_cookies: Vec<HeaderValue>,
    /// The request target as the client sent it (`$request_uri`), kept by
    /// `rewrite-target` for a `mirror-target` that names it.
    pub(super) request_uri: Option<Uri>,
}

/// A phase on the request as the client sent it.
pub(super) trait RequestStep {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError>;
}

/// A phase on the request rewritten for the upstream.
pub(super) trait UpstreamStep {
    async fn run(&self, cx: &mut Cx<'_>, prepared: &mut Prepared) -> Result<Flow, ProxyError>;
}

/// A phase on the upstream's response.
pub(super) trait ResponseStep {
    async fn run(&self, cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, endpoint: &Endpoint);
}

/// What the request tells about the cookie to set.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CookieRequest {
    /// The request came over TLS.
    pub(super) tls: bool,
    /// The client mishandles `SameSite=None` (it is then left out when
    /// `session-cookie-conditional-samesite-none` is set).
    pub(super) samesite_none_broken: bool,
}

/// What the custom error page request needs of the original request.
pub(super) struct ErrorPageInfo {
    pub(super) uri: Uri,
    pub(super) accept: Option<HeaderValue>,
    pub(super) request_id: Option<HeaderValue>,
}

/// An empty answer with `status` (and `Location`).
pub(super) fn fixed(status: StatusCode, location: Option<&HeaderValue>) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = status;
    if let Some(location) = location {
        response
            .headers_mut()
            .insert(header::LOCATION, location.clone());
    }
    response
}
