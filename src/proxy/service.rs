//! The per-request entry (the hyper service): framing check, Host, route
//! lookup in the loaded table, the HTTPS redirect and the misdirected-request
//! guard; then the route's policy phases, or straight to forwarding on a
//! plain route; then the response side ([`super::response`]).
//!
//! Invariants:
//! - A request loads the published state once (`ArcSwap::load_full`) and
//!   uses that snapshot to the end, so a swap never changes a request
//!   midway and in-flight requests finish on the table they started with.
//! - The request path takes no lock; lookups do not allocate; the request
//!   is forwarded with its original target (normalization is for matching).
//! - A plain route (no policy, no canary) skips the policy phases with one
//!   branch and pays nothing for them.
//! - Never fails: every error becomes exactly one response.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::HOST;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::ProxyBody;
use super::conn::ConnCtx;
use super::error::ProxyError;
use super::forward::{self, Backend, Plan};
use super::{headers, policy, response};
use crate::state::Published;
use crate::table::{host, path};

/// The hyper service function: never fails; errors become responses.
pub async fn handle(
    ctx: Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let active = ctx.activity.begin();
    let state = &ctx.state;
    if let Some(reason) = active.bad_framing() {
        state.metrics.bad_request(reason);
        let error = ProxyError::Malformed(reason);
        return Ok(response::finish(
            &ctx,
            response::unrouted(state, error, started),
            active,
        ));
    }
    let published = state.published.load_full();
    let request_id = headers::ensure_request_id(req.headers_mut());

    let mut host_buf = [0u8; host::MAX_HOST_LEN + 2];
    let raw_host = match request_host(&req) {
        Ok(h) => h,
        Err(e) => {
            return Ok(response::finish(
                &ctx,
                response::unrouted(state, e, started),
                active,
            ))
        }
    };
    let host = host::normalize(raw_host, &mut host_buf).unwrap_or("");
    let matched_path = path::normalize(req.uri().path());
    let route_id = published.table.lookup(host, &matched_path);
    drop(matched_path);

    // Only what the access log needs survives the request being forwarded.
    let log = state.settings.access_log.then(|| response::AccessLog {
        method: req.method().clone(),
        uri: req.uri().clone(),
        host: raw_host.to_string(),
        request_id,
        client: ctx.client_ip(req.headers()),
    });

    let routed = route_id.and_then(|id| {
        let route = published.table.route(id)?;
        let backend = Backend::of(&published, route.upstream)?;
        let metrics = published.route_metrics.get(id as usize)?;
        Some((id, route, backend, metrics))
    });
    let (response, route, endpoint) = match routed {
        None => (
            response::unrouted(state, ProxyError::NoRoute, started),
            None,
            None,
        ),
        Some((id, route, backend, metrics)) => {
            let client = &ctx.client;
            let outcome = if !client.tls && route.redirect_https {
                Ok((
                    redirect_to_https(host, &req, state.settings.https_redirect_port),
                    None,
                ))
            } else if client.tls && misdirected(&published, host, client.sni.as_deref()) {
                Err(ProxyError::Misdirected)
            } else if !route.plain {
                policy::serve(&ctx, &published, id, route, req)
                    .await
                    .map(|served| (served.response, served.endpoint))
            } else {
                let plan = Plan::from_settings(&state.settings);
                forward::forward(&ctx, backend, req, &plan)
                    .await
                    .map(|(r, e)| (r, Some(e)))
            };
            let (response, endpoint) = match outcome {
                Ok((response, endpoint)) => (response, endpoint),
                Err(e) => {
                    if let ProxyError::Malformed(reason) = e {
                        state.metrics.bad_request(reason);
                    }
                    if matches!(
                        e,
                        ProxyError::Connect(_) | ProxyError::Upstream(_) | ProxyError::Timeout
                    ) {
                        tracing::debug!(error = %e, upstream = %backend.upstream.label, "upstream failure");
                    }
                    (e.response(), None)
                }
            };
            metrics.record(response.status().as_u16(), started.elapsed());
            (response, Some(route), endpoint)
        }
    };
    if let Some(log) = log {
        log.emit(response.status(), route, endpoint.as_deref(), started);
    }
    Ok(response::finish(&ctx, response, active))
}

/// 308 to the same host and target over HTTPS.
fn redirect_to_https(host: &str, req: &Request<Incoming>, port: u16) -> Response<ProxyBody> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    let mut response = Response::new(ProxyBody::fixed(bytes::Bytes::from_static(
        b"308 Permanent Redirect\n",
    )));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// HTTP/2 connection coalescing guard: a request whose host has its own
/// certificate, other than the one this connection's SNI selected.
fn misdirected(published: &Published, host: &str, sni: Option<&str>) -> bool {
    let wanted = published.tls.lookup(host);
    wanted.is_some() && wanted != sni.and_then(|name| published.tls.lookup(name))
}

/// The request's host: the authority of an absolute-form target or
/// `:authority`, else the Host header. HTTP/1.1 requires exactly one Host
/// (RFC 9112 §3.2): none, several, or an unreadable one is a 400.
fn request_host(req: &Request<Incoming>) -> Result<&str, ProxyError> {
    if let Some(authority) = req.uri().authority() {
        return Ok(authority.as_str());
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Host header"));
    }
    match first.map(|h| h.to_str()) {
        Some(Ok(h)) => Ok(h),
        Some(Err(_)) => Err(ProxyError::BadRequest("unreadable Host header")),
        None if req.version() == Version::HTTP_11 => {
            Err(ProxyError::BadRequest("missing Host header"))
        }
        None => Ok(""),
    }
}
