//! The per-request entry (the hyper service): framing check, Host, route
//! lookup in the loaded table (with the request head, for the guards of
//! Gateway API routes), the HTTPS redirect and the misdirected-request
//! guard (ACME HTTP-01 challenges are never redirected); then the route's policy phases, or straight to forwarding on a
//! plain route; then the response side ([`super::response`]).
//!
//! Invariants:
//! - A request loads the published state once (`ArcSwap::load_full`) and
//!   uses that snapshot to the end, so a swap never changes a request
//!   midway and in-flight requests finish on the table they started with.
//! - The request path takes no lock; lookups do not allocate; the request
//!   is forwarded with its original target (normalization is for matching).
//! - A plain route (no policy, no canary) skips the policy phases with one
//!   branch and pays nothing for them; a table without Gateway routes
//!   resolves as a plain host and path lookup after one branch.
//! - A plain route needs its own upstream (else 404, never a guess); a
//!   route with a policy may choose one itself (weighted backends).
//! - Never fails: every error becomes exactly one response.
//! - The request's future stays small: it is moved into hyper's slot once
//!   per request and its awaited parts once per await, so what is large and
//!   not on the plain path (the policy phases) is boxed, and the route
//!   decision (with its host buffer) is a synchronous step before it.
//! - `--max-header-bytes` is exact: this file measures each HTTP/1 head
//!   (one pass adding the fields' lengths, no allocation) and answers 431;
//!   hyper's read buffer only bounds what is read (it has a floor of 8192
//!   bytes and may overshoot). HTTP/2 applies the flag as
//!   `SETTINGS_MAX_HEADER_LIST_SIZE`.
//! - The routed host is the absolute-form authority (or `:authority`) when
//!   there is one, else the Host header; an invalid one is a 400, never a
//!   lookup, and so is an HTTP/2 `Host` that differs from `:authority`.
//!   CONNECT, asterisk-form targets and paths not starting with `/` never
//!   reach a backend. Every 400 and 431 decided here is counted in
//!   `tollgate_bad_requests_total{reason}`.
//! - Every request gets one [`Record`] as its first step; it rides on the
//!   response body and counts the request (and logs it) once, at the end,
//!   or as a 499 when the request is dropped before a response exists.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::HOST;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::conn::ConnCtx;
use super::error::ProxyError;
use super::forward::{self, Backend, Plan};
use super::record::Record;
use super::{headers, policy, response};
use crate::metrics::route::RouteMetrics;
use crate::metrics::BadRequest;
use crate::state::Published;
use crate::table::guard::RequestHead;
use crate::table::{host, path, Route, RouteId};

/// The hyper service function: never fails; errors become responses.
pub async fn handle(
    ctx: Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let active = ctx.activity.begin();
    let state = &ctx.state;
    let head_len = headers::h1_head_len(&req);
    // Dropped unfinished (the client went away first), it counts a 499.
    let published = state.published.load_full();
    let mut record = Record::begin(&ctx, &published, &req, head_len);
    if let Some(reason) = active.bad_framing() {
        state.metrics.bad_request(reason);
        let error = ProxyError::Malformed(reason);
        return Ok(response::finish(
            &ctx,
            &published,
            response::unrouted(error),
            active,
            record,
        ));
    }
    if req.version() != Version::HTTP_2 && head_len > state.settings.max_header_bytes {
        state.metrics.bad_request(BadRequest::HeadersTooLarge);
        return Ok(response::finish(
            &ctx,
            &published,
            response::unrouted(ProxyError::HeadersTooLarge),
            active,
            record,
        ));
    }
    record.request_id(headers::ensure_request_id(req.headers_mut()));

    // The ConfigMap's `block-user-agents`: refused on every host.
    if let Some(block) = &published.table.globals().block_agents {
        if block.blocks(req.headers().get(http::header::USER_AGENT)) {
            let denied = ProxyError::Forbidden;
            return Ok(response::finish(
                &ctx,
                &published,
                response::unrouted(denied),
                active,
                record,
            ));
        }
    }
    if req.method() == Method::OPTIONS && req.uri().path() == "*" {
        return Ok(response::finish(
            &ctx,
            &published,
            options_asterisk(),
            active,
            record,
        ));
    }
    let response = match route(&ctx, &published, &req) {
        Err(e) => response::unrouted(e),
        Ok(Routed {
            id,
            route,
            backend,
            metrics,
            answer,
        }) => {
            record.route(route, &metrics.main);
            let timing = &record.timing;
            let outcome = if let Some(answer) = answer {
                match answer {
                    Answer::Redirect(location) => Ok((redirect_to_https(location), None, false)),
                    Answer::Misdirected => Err(ProxyError::Misdirected),
                }
            } else if !route.plain {
                // Boxed: the phases' future is large, and inline it would
                // be part of every request's future, plain ones included
                // (hyper moves that future into place once per request).
                Box::pin(policy::serve(&ctx, &published, id, route, req, timing))
                    .await
                    .map(|served| (served.response, served.endpoint, served.canary))
            } else if let Some(backend) = backend {
                let mut plan = Plan::from_settings(&state.settings);
                plan.timing = Some(timing);
                // Prepared here (no await), so the request's future holds
                // the prepared request only inside the sender's.
                match forward::prepare_upstream_in(&ctx, &published, req, &plan) {
                    Ok(prepared) => forward::dispatch(backend, prepared, &plan)
                        .await
                        .map(|(r, e)| (r, Some(e), false)),
                    Err(e) => Err(e),
                }
            } else {
                Err(ProxyError::NoEndpoints)
            };
            let (response, endpoint, canary) = match outcome {
                Ok(served) => served,
                Err(e) => {
                    if let ProxyError::Malformed(reason) = e {
                        state.metrics.bad_request(reason);
                    }
                    if matches!(
                        e,
                        ProxyError::Connect(_)
                            | ProxyError::Upstream(_)
                            | ProxyError::Timeout
                            | ProxyError::Unavailable(_)
                    ) {
                        tracing::debug!(error = %e, service = %route.service, "upstream failure");
                    }
                    (e.response(), None, false)
                }
            };
            if let (true, Some(series), Some(c)) = (canary, &metrics.canary, &route.canary) {
                record.canary(series, &c.service);
            }
            record.upstream(endpoint);
            response
        }
    };
    Ok(response::finish(&ctx, &published, response, active, record))
}

/// A routed request, decided before anything is awaited.
struct Routed<'p> {
    id: RouteId,
    route: &'p Route,
    backend: Option<Backend<'p>>,
    metrics: &'p RouteMetrics,
    /// Answered without forwarding.
    answer: Option<Answer>,
}

/// What a routed request is answered with instead of being forwarded
/// (small: the decision is moved out of [`route`]).
enum Answer {
    /// 308 to HTTPS, with its `Location` (`None`: not a valid value).
    Redirect(Option<HeaderValue>),
    /// The misdirected-request guard's 421.
    Misdirected,
}

/// The route of `req` in the loaded table, with the HTTPS redirect and the
/// misdirected-request guard; an invalid host (counted) or no route is the
/// error to answer. Synchronous, so the host's normalization buffer is
/// never part of the request's future (which hyper moves per request).
fn route<'p>(
    ctx: &ConnCtx,
    published: &'p Published,
    req: &Request<Incoming>,
) -> Result<Routed<'p>, ProxyError> {
    let state = &ctx.state;
    let mut host_buf = [0u8; host::MAX_HOST_LEN + 2];
    let raw_host = request_host(req).inspect_err(|e| {
        if let ProxyError::Invalid(reason, _) = e {
            state.metrics.bad_request(*reason);
        }
    })?;
    let host = host::normalize(raw_host, &mut host_buf).unwrap_or("");
    let matched_path = path::normalize(req.uri().path());
    let id = published
        .table
        .lookup_head(host, &matched_path, &RequestHead::of(req))
        .ok_or(ProxyError::NoRoute)?;
    let acme_challenge = path::is_acme_challenge(&matched_path);
    let route = published.table.route(id).ok_or(ProxyError::NoRoute)?;
    // A route with a policy may choose its upstream itself (weighted
    // backends): only a plain route needs its own.
    let backend = Backend::of(published, route.upstream);
    if route.plain && backend.is_none() {
        return Err(ProxyError::NoRoute);
    }
    let metrics = published
        .route_metrics
        .get(id as usize)
        .ok_or(ProxyError::NoRoute)?;
    let client = &ctx.client;
    let answer = if !client.tls && route.redirect_https && !acme_challenge {
        let location = https_location(host, req, state.settings.https_redirect_port);
        Some(Answer::Redirect(HeaderValue::from_str(&location).ok()))
    } else if client.tls && misdirected(published, host, client.sni.as_deref()) {
        Some(Answer::Misdirected)
    } else {
        None
    };
    Ok(Routed {
        id,
        route,
        backend,
        metrics,
        answer,
    })
}

/// The same host and target over HTTPS.
fn https_location(host: &str, req: &Request<Incoming>, port: u16) -> String {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    }
}

/// 308 to `location` ([`https_location`]).
fn redirect_to_https(location: Option<HeaderValue>) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::fixed(bytes::Bytes::from_static(
        b"308 Permanent Redirect\n",
    )));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Some(v) = location {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// HTTP/2 connection coalescing guard: a request whose host has its own
/// certificate, other than the one this connection's SNI selected. The
/// usual case, a Host equal to the SNI, needs no certificate lookup.
fn misdirected(published: &Published, host: &str, sni: Option<&str>) -> bool {
    if sni == Some(host) {
        return false;
    }
    let wanted = published.tls.lookup(host);
    wanted.is_some() && wanted != sni.and_then(|name| published.tls.lookup(name))
}

/// The request's host, checked (RFC 9112 §3.2, §3.2.2; RFC 9113 §8.3.1):
/// the authority of an absolute-form target or `:authority` wins over the
/// Host header. HTTP/1.1 requires exactly one Host; none, several, or a
/// value that is not `host [":" port]` ([`host::is_valid`]) is a 400, and
/// so is an HTTP/2 `Host` that differs from `:authority`. A target in
/// authority-form (only CONNECT, which is not proxied) or asterisk-form
/// (only `OPTIONS *`, answered before this), a path not starting with `/`
/// (an HTTP/2 `:path` can be anything) or a scheme other than http(s) is a
/// 400 too.
fn request_host<B>(req: &Request<B>) -> Result<&str, ProxyError> {
    let host_error = |why| Err(ProxyError::Invalid(BadRequest::Host, why));
    let target_error = |why| Err(ProxyError::Invalid(BadRequest::Target, why));
    let mut hosts = req.headers().get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return host_error("more than one Host header");
    }
    let header = match first.map(|h| h.to_str()) {
        Some(Ok(h)) if host::is_valid(h) => Some(h),
        Some(_) => return host_error("invalid Host header"),
        None => None,
    };
    let uri = req.uri();
    if req.method() == Method::CONNECT {
        return target_error("CONNECT is not proxied");
    }
    let path = uri.path();
    if path == "*" {
        return target_error("asterisk-form outside OPTIONS");
    }
    if !path.starts_with('/') {
        return target_error("request target path does not start with /");
    }
    if let Some(authority) = uri.authority() {
        let http = uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
        if !http {
            return target_error("request target not http(s)");
        }
        if !host::is_valid(authority.as_str()) {
            return host_error("invalid request-target authority");
        }
        // HTTP/1.1 ignores Host for an absolute-form target (RFC 9112
        // §3.2.2); HTTP/2 calls a different one malformed (RFC 9113 §8.3.1).
        if req.version() == Version::HTTP_2
            && header.is_some_and(|h| !h.eq_ignore_ascii_case(authority.as_str()))
        {
            return host_error(":authority and Host differ");
        }
        return Ok(authority.as_str());
    }
    match header {
        Some(h) => Ok(h),
        None if req.version() == Version::HTTP_11 => host_error("missing Host header"),
        None => Ok(""),
    }
}

/// `OPTIONS *` (RFC 9110 §9.3.7): a question about tollgate itself, answered
/// here with the methods it forwards; never sent to a backend.
fn options_asterisk() -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::empty());
    response.headers_mut().insert(
        http::header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

#[cfg(test)]
mod fuzz;
