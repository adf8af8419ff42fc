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
//! - Static values only (HSTS and `Server` are pre-built, the ConfigMap's
//!   from the table the request loaded, passed in: no second load); no
//!   allocation here.

use http::{HeaderValue, Response};

use super::body::ProxyBody;
use super::conn::{ActiveRequest, ConnCtx};
use super::error::ProxyError;
use super::record::Record;
use crate::state::Published;

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
    published: &Published,
    mut response: Response<ProxyBody>,
    active: ActiveRequest,
    mut record: Record,
) -> Response<ProxyBody> {
    // The ConfigMap's `server-tokens` and `hsts*`, from the request's table.
    let globals = published.table.globals();
    // One lookup: a backend's own `Server` is kept.
    response
        .headers_mut()
        .entry(http::header::SERVER)
        .or_insert_with(|| globals.server.clone().unwrap_or(SERVER));
    let hsts = match &globals.hsts {
        Some(configured) => configured.as_ref(),
        None => ctx.state.settings.hsts.as_ref(),
    };
    if let (true, Some(hsts)) = (ctx.client.tls, hsts) {
        response
            .headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    record.respond(&response);
    response.body_mut().attach(active, record);
    response
}
