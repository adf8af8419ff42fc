//! The preaccess phases: request rate and concurrent requests per client
//! IP, the global rate limit (counted across replicas), with the route's
//! exempt clients.
//!
//! Invariants:
//! - The live limiters are the published ones of the route (shared by the
//!   routes of one Ingress, kept across reloads); checking one takes no
//!   lock.
//! - A connection permit is held by the request ([`super::exchange::Cx`]) and then
//!   by the response body until it ends; a refused request holds none.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::exchange::{Cx, Flow, RequestStep, ResponseStep};
use crate::lb::Endpoint;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::ratelimit::global::Decision;
use crate::state::RouteLimits;
use crate::table::phases::{Limit, ReleasePermit};
use crate::table::policy::GlobalRateLimit;
use crate::table::policy::{ConnLimit, RateLimit};

impl<T> Limit<T> {
    /// The route's live limiters, unless the client is exempt.
    fn limiters<'c>(&self, cx: &Cx<'c>) -> Option<&'c RouteLimits> {
        if self.exempt.iter().any(|n| n.contains(&cx.client)) {
            return None;
        }
        cx.published.route_limits.get(cx.route_id as usize)
    }
}

impl RequestStep for Limit<RateLimit> {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        _req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if let Some(limiter) = self.limiters(cx).and_then(|l| l.rate.as_ref()) {
            if let Err(wait) = limiter.check(cx.client) {
                if let Some(m) = cx.published.route_metrics.get(cx.route_id as usize) {
                    m.main.limited_rate.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(Flow::Answer(limited(self.limit.status, Some(wait))));
            }
        }
        Ok(Flow::Continue)
    }
}

impl RequestStep for Limit<Arc<GlobalRateLimit>> {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if self.limit.exempt.iter().any(|n| n.contains(&cx.client)) {
            return Ok(Flow::Continue);
        }
        let Some(limiter) = self.limiters(cx).and_then(|l| l.global.as_ref()) else {
            return Ok(Flow::Continue);
        };
        match limiter.check(cx.client, req.headers()).await {
            Decision::Allowed => Ok(Flow::Continue),
            Decision::Limited(wait) => {
                if let Some(m) = cx.published.route_metrics.get(cx.route_id as usize) {
                    m.main.limited_rate.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Flow::Answer(limited(self.limit.rate.status, Some(wait))))
            }
            Decision::Unavailable => {
                Ok(Flow::Answer(limited(StatusCode::SERVICE_UNAVAILABLE, None)))
            }
        }
    }
}

impl RequestStep for Limit<ConnLimit> {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        _req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if let Some(limiter) = self.limiters(cx).and_then(|l| l.connections.as_ref()) {
            match limiter.acquire(cx.client) {
                Some(permit) => cx.permit = Some(permit),
                None => {
                    if let Some(m) = cx.published.route_metrics.get(cx.route_id as usize) {
                        m.main.limited_connections.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(Flow::Answer(limited(self.limit.status, None)));
                }
            }
        }
        Ok(Flow::Continue)
    }
}

impl ResponseStep for ReleasePermit {
    async fn run(&self, cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, _: &Endpoint) {
        if let Some(permit) = cx.permit.take() {
            let body = std::mem::replace(response.body_mut(), ProxyBody::empty());
            *response.body_mut() = body.with_permit(permit);
        }
    }
}

/// A limit's rejection; `Retry-After` (whole seconds, at least 1) when the
/// wait is known.
fn limited(status: StatusCode, wait: Option<std::time::Duration>) -> Response<ProxyBody> {
    let body: &'static [u8] = if status == StatusCode::TOO_MANY_REQUESTS {
        b"429 Too Many Requests\n"
    } else {
        b"503 Service Temporarily Unavailable\n"
    };
    let mut response = Response::new(ProxyBody::fixed(Bytes::from_static(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(wait) = wait {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}
