//! The response side every request shares, whatever answered it: the
//! per-route or unrouted metrics, the access log line, HSTS on HTTPS,
//! `Server: tollgate`, and the connection's in-flight accounting tied to
//! the body.
//!
//! Invariants:
//! - Every response that passes here carries a `Server` header: the
//!   backend's own if it sent one, else `tollgate` (no version, as
//!   ingress-nginx with `server-tokens: false`).
//! - Exactly one metric observation per request (routed or unrouted).
//! - An access-log line only with `--access-log`; what it needs is copied
//!   from the request before the request is forwarded.
//! - Static values only (HSTS is pre-built); no allocation here unless the
//!   access log is on.

use http::{HeaderValue, Response, StatusCode, Uri};
use tokio::time::Instant;

use super::body::ProxyBody;
use super::conn::{ActiveRequest, ConnCtx};
use super::error::ProxyError;
use super::shared::ProxyState;
use crate::lb::Endpoint;

/// The `Server` value of responses that carry none from a backend.
const SERVER: HeaderValue = HeaderValue::from_static("tollgate");

/// An error answered before or instead of routing, counted as unrouted.
pub fn unrouted(state: &ProxyState, error: ProxyError, started: Instant) -> Response<ProxyBody> {
    let response = error.response();
    state
        .metrics
        .unrouted
        .record(response.status().as_u16(), started.elapsed());
    response
}

/// What every response gets on its way out: `Server` when it has none, HSTS
/// on HTTPS, and the connection's in-flight accounting tied to the body.
pub fn finish(
    ctx: &ConnCtx,
    mut response: Response<ProxyBody>,
    active: ActiveRequest,
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
    response.map(|b| b.with_active(active))
}

/// The fields of one access-log line.
pub struct AccessLog {
    pub method: http::Method,
    pub uri: Uri,
    pub host: String,
    pub request_id: HeaderValue,
    /// The request's client IP ([`super::client_ip`]).
    pub client: std::net::IpAddr,
}

impl AccessLog {
    pub fn emit(
        self,
        status: StatusCode,
        route: Option<&crate::table::Route>,
        endpoint: Option<&Endpoint>,
        started: Instant,
    ) {
        tracing::info!(
            target: "access",
            request_id = %String::from_utf8_lossy(self.request_id.as_bytes()),
            client = %self.client,
            method = %self.method,
            host = %self.host,
            path = %self.uri,
            status = status.as_u16(),
            ingress = %route.map(|r| r.ingress.as_ref()).unwrap_or(""),
            service = %route.map(|r| r.service.as_ref()).unwrap_or(""),
            upstream = %endpoint.map(|e| e.addr.to_string()).unwrap_or_default(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        );
    }
}
