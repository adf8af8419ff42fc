//! The response side every request shares, whatever answered it: the
//! per-route or unrouted metrics, the access log line, HSTS on HTTPS,
//! `Server: tollgate`, and the connection's in-flight accounting tied to
//! the body.
//!
//! Invariants:
//! - Every response that passes here carries a `Server` header: the
//!   backend's own if it sent one, else `tollgate` (no version, as
//!   ingress-nginx with `server-tokens: false`).
//! - Exactly one metric observation and at most one access-log line per
//!   request (routed or unrouted): the request's [`Record`] rides on the
//!   response body and is finished at its end ([`super::record`]).
//! - Static values only (HSTS is pre-built); no allocation here.

use http::{HeaderValue, Response};

use super::body::ProxyBody;
use super::conn::{ActiveRequest, ConnCtx};
use super::error::ProxyError;
use super::record::Record;

/// The `Server` value of responses that carry none from a backend.
const SERVER: HeaderValue = HeaderValue::from_static("tollgate");

/// An error answered before or instead of routing (counted as unrouted:
/// its record names no route).
pub fn unrouted(error: ProxyError) -> Response<ProxyBody> {
    error.response()
}

/// What every response gets on its way out: `Server` when it has none, HSTS
/// on HTTPS, the connection's in-flight accounting and the request's
/// record tied to the body.
pub fn finish(
    ctx: &ConnCtx,
    mut response: Response<ProxyBody>,
    active: ActiveRequest,
    mut record: Record,
) -> Response<ProxyBody> {
    // One lookup: a backend's own `Server` is kept.
    response
        .headers_mut()
        .entry(http::header::SERVER)
        .or_insert(SERVER);
    if let (true, Some(hsts)) = (ctx.client.tls, &ctx.state.settings.hsts) {
        response
            .headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    record.respond(&response);
    response.map(|b| b.with_active(active).with_record(record))
}
