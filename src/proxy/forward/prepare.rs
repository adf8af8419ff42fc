//! The request head rewritten for the upstream, and the body wrapped.
//!
//! Invariants:
//! - Only WebSocket upgrades are forwarded; any other upgrade request
//!   (`h2c`...) goes upstream as plain HTTP/1.1 without `Upgrade` and
//!   `HTTP2-Settings`.
//! - Hop-by-hop headers never cross; the forwarding headers
//!   (`X-Forwarded-*`, `X-Real-IP`) are set from the connection, trusting
//!   the client's own only from trusted proxies.
//! - The upstream always gets HTTP/1.1 framing (HTTP/2 is set again by
//!   [`super::h2`]) and an origin-form target, the request's original
//!   target (normalization is for matching only), and the routed authority
//!   as its Host (an absolute-form target's authority, or `:authority`,
//!   replaces the client's Host) unless a policy sets another.
//! - A declared body larger than the route allows is refused (413) before
//!   anything is sent; a streamed one is cut off at the limit.

use std::sync::Arc;

use http::header::{HeaderName, COOKIE, HOST, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Uri, Version};
use hyper::body::Incoming;

use super::plan::Plan;
use crate::hop_by_hop;
use crate::proxy::conn::ConnCtx;
use crate::proxy::error::ProxyError;
use crate::proxy::headers;
use crate::proxy::upload::{Upload, UploadBody};
use crate::state::Published;

/// The h2c upgrade's settings (RFC 7540 §3.2.1), never forwarded.
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// A request rewritten for its upstream, not yet sent.
pub struct Prepared {
    pub req: Request<UploadBody>,
    pub(super) upload: Option<Arc<Upload>>,
    pub(super) client_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Prepared {
    /// A request without an upload tracker and without an upgrade (a
    /// mirror's copy: no body, or one teed from the main request's).
    pub fn head_only(req: Request<UploadBody>) -> Prepared {
        Prepared {
            req,
            upload: None,
            client_upgrade: None,
        }
    }
}

/// Checks the declared body size, rewrites the head for the upstream
/// ([`prepare`]) and wraps the body.
pub fn prepare_upstream(
    ctx: &ConnCtx,
    req: Request<Incoming>,
    plan: &Plan<'_>,
) -> Result<Prepared, ProxyError> {
    prepare_upstream_in(ctx, &ctx.state.published.load(), req, plan)
}

/// [`prepare_upstream`] with the table the request loaded (the plain
/// path's: no second load of the published state).
pub fn prepare_upstream_in(
    ctx: &ConnCtx,
    published: &Published,
    mut req: Request<Incoming>,
    plan: &Plan<'_>,
) -> Result<Prepared, ProxyError> {
    if let Some(max) = plan.max_body {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(ProxyError::PayloadTooLarge);
        }
    }
    let upgrade = req.version() == Version::HTTP_11 && websocket_upgrade(req.headers_mut());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    prepare(ctx, published, &mut req, upgrade);
    if let Some(host) = plan.host {
        req.headers_mut().insert(HOST, host.clone());
    }
    let (parts, body) = req.into_parts();
    let (body, upload) = UploadBody::limited(body, plan.max_body);
    Ok(Prepared {
        req: Request::from_parts(parts, body),
        upload,
        client_upgrade,
    })
}

/// Whether the request is a WebSocket upgrade, the only upgrade forwarded.
/// Any other (`h2c`, unknown protocols) is served as plain HTTP/1.1: its
/// `Upgrade` goes with the hop-by-hop headers, and `HTTP2-Settings`
/// (connection-specific, RFC 7540 §3.2.1) is removed
/// here. A request without `Upgrade` costs one lookup.
fn websocket_upgrade(headers: &mut HeaderMap) -> bool {
    let Some(value) = headers.get(UPGRADE) else {
        return false;
    };
    let websocket = value
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"websocket");
    if websocket && hop_by_hop::is_upgrade_request(headers) {
        return true;
    }
    headers.remove(HTTP2_SETTINGS);
    false
}

/// Rewrites the request for the upstream: hop-by-hop headers, forwarding
/// headers, origin-form target, HTTP/1.1.
fn prepare(ctx: &ConnCtx, published: &Published, req: &mut Request<Incoming>, upgrade: bool) {
    let from_h2 = req.version() == Version::HTTP_2;
    // The routed authority: an absolute-form target's (or `:authority`)
    // wins over the client's Host (RFC 9112 §3.2.2), so the backend sees
    // the host that was routed.
    let authority = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let host_value = match authority {
        Some(a) => {
            req.headers_mut().insert(HOST, a.clone());
            Some(a)
        }
        None => req.headers().get(HOST).cloned(),
    };
    let headers = req.headers_mut();
    hop_by_hop::strip_hop_by_hop(headers, upgrade);
    if from_h2 {
        // HTTP/2 may split cookies over several fields; HTTP/1.1 wants one.
        if headers.get_all(COOKIE).iter().nth(1).is_some() {
            let joined = headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join("; ");
            if let Ok(v) = HeaderValue::from_str(&joined) {
                headers.insert(COOKIE, v);
            }
        }
    }
    let (client_ip, forwarding) = ctx.forwarding_in(published, headers);
    headers::set_forwarded_as(headers, &ctx.client, forwarding, client_ip, host_value);
    *req.version_mut() = Version::HTTP_11;
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
}
