//! The policy pipeline: runs a route's phases ([`crate::table::phases`]) in
//! order around forwarding. Each phase is a small type with one method
//! ([`RequestStep`], [`UpstreamStep`], [`ResponseStep`]), implemented in
//! the file of its concern; the phase enums dispatch with a `match`.
//!
//! Invariants:
//! - Only routes whose policy is not plain come here; the plain path in
//!   [`super::service`] pays nothing for any of this.
//! - A phase continues or answers; an answer (or an error) ends the request
//!   there: nothing is sent upstream and no response phase runs.
//! - Every phase that can refuse runs before anything is sent upstream, and
//!   a phase that cannot decide refuses (fail closed); a route whose phase
//!   list is missing is refused (500), never served without its policy.
//! - Values phases share live in one per-request [`exchange::Cx`]; no phase boxes a
//!   future or takes a lock (limiters are lock-free, the policy immutable).
//! - Calls only downwards: into [`super::forward`], never into the service.

mod access;
mod affinity;
mod affinity_cookie;
mod auth;
mod backends;
mod canary;
mod client_cert;
mod cors;
mod error_pages;
mod exchange;
mod headers;
mod limits;
mod mirror;
mod redirect;
mod response_rewrite;
mod rewrite;
mod scheme;
mod www;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::conn::ConnCtx;
use super::error::ProxyError;
use super::forward;
use super::forward::plan::{Backend, Plan};
use super::forward::prepare::Prepared;
use super::timing::UpstreamTiming;
use crate::lb::Endpoint;
use crate::state::Published;
use crate::table::phases::{RequestPhase, ResponsePhase, UpstreamPhase};
use crate::table::{Route, RouteId};
pub use affinity::cookie;
use exchange::{Cx, Flow, RequestStep, ResponseStep, UpstreamStep};

/// What served a routed request.
pub struct Served {
    pub response: Response<ProxyBody>,
    pub endpoint: Option<Arc<Endpoint>>,
    /// The route's canary served the request.
    pub canary: bool,
}

/// Serves a request on a route with a policy: request phases, the request
/// rewritten for the upstream, upstream phases, forwarding, response phases.
/// A whole-request timeout is a deadline in the forwarding plan (no timer
/// wraps the pipeline's future, which would double its size for every
/// request).
pub async fn serve(
    ctx: &ConnCtx,
    published: &Arc<Published>,
    route_id: RouteId,
    route: &Route,
    mut req: Request<Incoming>,
    timing: &UpstreamTiming,
) -> Result<Served, ProxyError> {
    let Some(pipeline) = published.table.pipeline(route_id) else {
        return Err(ProxyError::Internal("route without its policy phases"));
    };
    let mut cx = Cx {
        conn: ctx,
        published,
        route_id,
        route,
        client: ctx.client_ip(req.headers()),
        origin: None,
        cors: None,
        upstream: route.upstream,
        canary: None,
        choice: None,
        plan: Plan {
            timing: Some(timing),
            ..Plan::for_policy(&route.policy, &ctx.state.settings)
        },
        new_cookie: None,
        cookie_request: Default::default(),
        permit: None,
        error_page: None,
        auth_cookies: Vec::new(),
        request_uri: None,
    };
    for phase in pipeline.request.iter() {
        if let Flow::Answer(mut response) = phase.run(&mut cx, &mut req).await? {
            cors::on_answer(&cx, &mut response);
            return Ok(answered(response));
        }
    }
    let Some(backend) = Backend::of(published, cx.upstream) else {
        return Err(ProxyError::NoEndpoints);
    };
    let mut prepared = forward::prepare_upstream(ctx, req, &cx.plan)?;
    for phase in pipeline.upstream.iter() {
        if let Flow::Answer(mut response) = phase.run(&mut cx, &mut prepared).await? {
            cors::on_answer(&cx, &mut response);
            return Ok(answered(response));
        }
    }
    let (mut response, endpoint) = forward::dispatch(backend, prepared, &cx.plan).await?;
    for phase in pipeline.response.iter() {
        phase.run(&mut cx, &mut response, &endpoint).await;
    }
    Ok(Served {
        response,
        endpoint: Some(endpoint),
        canary: cx.canary.is_some(),
    })
}

impl RequestStep for RequestPhase {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        match self {
            RequestPhase::ClientCert(p) => p.as_ref().run(cx, req).await,
            RequestPhase::WwwRedirect(p) => p.run(cx, req).await,
            RequestPhase::Redirect(p) => p.run(cx, req).await,
            RequestPhase::RedirectTo(p) => p.as_ref().run(cx, req).await,
            RequestPhase::SchemeBackend(p) => p.run(cx, req).await,
            RequestPhase::Backends(p) => p.as_ref().run(cx, req).await,
            RequestPhase::AppRoot(p) => p.run(cx, req).await,
            RequestPhase::CorsPreflight(p) => RequestStep::run(p, cx, req).await,
            RequestPhase::RateLimit(p) => p.run(cx, req).await,
            RequestPhase::GlobalRateLimit(p) => p.run(cx, req).await,
            RequestPhase::ConnLimit(p) => p.run(cx, req).await,
            RequestPhase::Access(p) => p.run(cx, req).await,
            RequestPhase::BasicAuth(p) => p.run(cx, req).await,
            RequestPhase::Canary(p) => p.as_ref().run(cx, req).await,
            RequestPhase::Fallback(p) => p.run(cx, req).await,
            RequestPhase::ForwardedPrefix(p) => p.run(cx, req).await,
            RequestPhase::KeepForErrorPage(p) => p.run(cx, req).await,
            RequestPhase::Affinity(p) => RequestStep::run(p, cx, req).await,
            RequestPhase::HashBy(p) => p.run(cx, req).await,
        }
    }
}

impl UpstreamStep for UpstreamPhase {
    async fn run(&self, cx: &mut Cx<'_>, prepared: &mut Prepared) -> Result<Flow, ProxyError> {
        match self {
            UpstreamPhase::ExternalAuth(p) => p.as_ref().run(cx, prepared).await,
            UpstreamPhase::Rewrite(p) => p.run(cx, prepared).await,
            UpstreamPhase::UrlRewrite(p) => p.as_ref().run(cx, prepared).await,
            UpstreamPhase::RequestHeaders(p) => UpstreamStep::run(p.as_ref(), cx, prepared).await,
            UpstreamPhase::BackendRequestHeaders(p) => UpstreamStep::run(p, cx, prepared).await,
            UpstreamPhase::Mirrors(p) => p.run(cx, prepared).await,
        }
    }
}

impl ResponseStep for ResponsePhase {
    async fn run(&self, cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, endpoint: &Endpoint) {
        match self {
            ResponsePhase::RewriteResponse(p) => p.as_ref().run(cx, response, endpoint).await,
            ResponsePhase::ErrorPages(p) => p.run(cx, response, endpoint).await,
            ResponsePhase::Cors(p) => ResponseStep::run(p, cx, response, endpoint).await,
            ResponsePhase::AffinityCookie(p) => ResponseStep::run(p, cx, response, endpoint).await,
            ResponsePhase::ResponseHeaders(p) => {
                ResponseStep::run(p.as_ref(), cx, response, endpoint).await
            }
            ResponsePhase::BackendResponseHeaders(p) => {
                ResponseStep::run(p, cx, response, endpoint).await
            }
            ResponsePhase::AuthCookies(p) => p.run(cx, response, endpoint).await,
            ResponsePhase::ReleasePermit(p) => p.run(cx, response, endpoint).await,
            ResponsePhase::LimitRate(p) => p.run(cx, response, endpoint).await,
        }
    }
}

/// A request answered by a phase: no endpoint served it.
fn answered(response: Response<ProxyBody>) -> Served {
    Served {
        response,
        endpoint: None,
        canary: false,
    }
}
