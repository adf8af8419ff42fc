//! Forwarding to HTTP/2 upstreams (`H2C`, `GRPC`, `GRPCS`): one shared
//! connection per endpoint and worker, streams multiplexed on it.
//!
//! Invariants:
//! - The target is absolute (scheme and authority from the client's Host),
//!   as HTTP/2 carries the authority in the request target.
//! - Connection failures move on to another endpoint; a request is never
//!   sent twice.

use std::sync::Arc;

use http::header::HOST;
use http::{Request, Response, Uri, Version};

use super::plan::{Backend, Pick, Plan, MAX_ENDPOINT_ATTEMPTS};
use crate::hop_by_hop;
use crate::lb::Endpoint;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::proxy::upload::{with_timeouts, Upload, UploadBody};

/// Forwarding to an HTTP/2 upstream (`H2C`, `GRPC`, `GRPCS`): one shared
/// connection per endpoint and worker; streams, trailers and all.
pub async fn forward_h2(
    backend: Backend<'_>,
    mut req: Request<UploadBody>,
    upload: Option<&Upload>,
    plan: &Plan<'_>,
) -> Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError> {
    let upstream = backend.upstream;
    *req.version_mut() = Version::HTTP_2;
    // HTTP/2 carries the authority in the request target.
    let scheme = if upstream.key.protocol.is_tls() {
        "https"
    } else {
        "http"
    };
    let authority = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut last_error = None;
    let mut pick = plan.pick;
    while tried.len() < MAX_ENDPOINT_ATTEMPTS {
        let Some(endpoint) = backend.next_endpoint(&tried, pick)? else {
            break;
        };
        pick = Pick::Balanced;
        // Not timed: the worker's shared connection is usually already open.
        let mut sender = match backend.dial(&endpoint).h2(plan.connect_timeout).await {
            Ok(s) => {
                endpoint.mark_ok();
                s
            }
            Err(e) => {
                backend.connect_failed(&endpoint, &e);
                last_error = Some(e);
                tried.push(endpoint);
                continue;
            }
        };
        if sender.ready().await.is_err() {
            tried.push(endpoint);
            continue;
        }
        let authority = authority
            .clone()
            .unwrap_or_else(|| endpoint.addr.to_string());
        match Uri::builder()
            .scheme(scheme)
            .authority(authority.as_str())
            .path_and_query(target.as_str())
            .build()
        {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => {
                return Err(ProxyError::BadRequest(
                    "request target not valid for HTTP/2",
                ))
            }
        }
        let inflight = endpoint.start_request();
        let sent = plan.timing.map(|t| (t, tokio::time::Instant::now()));
        let mut response =
            match with_timeouts(sender.send_request(req), upload, &plan.exchange).await? {
                Ok(response) => response,
                Err(_) if upload.is_some_and(|u| u.too_large()) => {
                    return Err(ProxyError::PayloadTooLarge)
                }
                Err(e) => match upload.and_then(|u| u.client_fault()) {
                    Some(fault) => return Err(ProxyError::Malformed(fault)),
                    None => return Err(ProxyError::Upstream(e)),
                },
            };
        if let Some((timing, sent)) = sent {
            timing.responded(sent.elapsed(), response.status().as_u16());
        }
        hop_by_hop::strip_hop_by_hop(response.headers_mut(), false);
        return Ok((
            response.map(|body| ProxyBody::upstream(body, None, inflight)),
            endpoint,
        ));
    }
    match last_error {
        Some(e) => Err(ProxyError::Connect(e)),
        None => Err(ProxyError::NoEndpoints),
    }
}
