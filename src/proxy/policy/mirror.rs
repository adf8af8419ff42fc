//! Gateway RequestMirror: a copy of the request, exactly as it will be sent
//! upstream, goes to each mirror in the background; its response is read
//! and discarded. ingress-nginx's `mirror-target` is the same copy with
//! the target URL's path (and `$request_uri`, the request target as the
//! client sent it) and `mirror-host` as its Host, with or without the
//! body (`mirror-request-body`).
//!
//! Invariants:
//! - Never delays nor fails the main request: the copy is sent by a task
//!   of its own, and every failure there (no endpoint, refused, timeout)
//!   is only logged at debug level.
//! - Bounded: the copy's body is teed from the main request's as the main
//!   exchange reads it ([`crate::proxy::tee`]): the main request never
//!   waits for a mirror, and a mirror more than
//!   [`crate::proxy::tee::MAX_QUEUED_BYTES`] behind is abandoned (its
//!   request aborted, never completed with a truncated body); at most
//!   [`MAX_IN_FLIGHT`] copies are in flight per process, and the copy is
//!   dropped beyond that; each copy has the global connect and response
//!   timeouts.
//! - The mirror task holds the request's published snapshot (an `Arc`),
//!   so the upstream id it was given still names the same upstream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{Request, Uri};
use http_body_util::BodyExt;

use super::exchange::{Cx, Flow, UpstreamStep};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::{self, Backend, Plan, Prepared};
use crate::proxy::upload::UploadBody;
use crate::state::Published;
use crate::table::phases::Mirrors;
use crate::table::policy::{Mirror, MirrorTarget};

/// Most mirror copies in flight at once in the process.
pub const MAX_IN_FLIGHT: usize = 1024;

/// Mirror copies in flight.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Holds one in-flight slot until dropped.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        let taken = IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        if taken >= MAX_IN_FLIGHT {
            IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

impl UpstreamStep for Mirrors {
    async fn run(&self, cx: &mut Cx<'_>, prepared: &mut Prepared) -> Result<Flow, ProxyError> {
        for mirror in self.0.iter() {
            if mirror.per_million < 1_000_000 && fastrand::u32(..1_000_000) >= mirror.per_million {
                continue;
            }
            let Some(slot) = Slot::take() else {
                tracing::debug!(mirror = %mirror.service, "mirror skipped: too many in flight");
                continue;
            };
            let body = mirror.target.as_ref().is_none_or(|t| t.body);
            let Some(mut copy) = copy_of(&mut prepared.req, body) else {
                continue;
            };
            if let Some(target) = &mirror.target {
                let sent = cx.request_uri.as_ref().unwrap_or(prepared.req.uri());
                if !retarget(&mut copy, target, sent) {
                    continue;
                }
            }
            let plan = Plan::from_settings(&cx.conn.state.settings);
            send(cx.published.clone(), mirror.clone(), copy, plan, slot);
        }
        Ok(Flow::Continue)
    }
}

/// The request as it will be sent upstream: its head, and its body teed
/// as the main request reads it (see [`crate::proxy::tee`]); a request
/// without a body gets an empty one without framing headers.
fn copy_of(req: &mut Request<UploadBody>, with_body: bool) -> Option<Request<UploadBody>> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if with_body {
        req.body_mut().tee(declared)
    } else {
        None
    };
    let framed = body.is_some();
    let mut copy = Request::builder()
        .method(req.method().clone())
        .uri(req.uri().clone())
        .version(req.version())
        .body(body.unwrap_or_else(UploadBody::empty))
        .ok()?;
    *copy.headers_mut() = req.headers().clone();
    if !framed {
        copy.headers_mut().remove(CONTENT_LENGTH);
        copy.headers_mut().remove(TRANSFER_ENCODING);
    }
    Some(copy)
}

/// Points the copy at a `mirror-target`: its path (followed by the
/// request target as sent for `$request_uri`; else with the request's
/// query; the request's own target when the URL has no path) and Host.
/// `false`: the result is not a valid target (the copy is not sent).
fn retarget(copy: &mut Request<UploadBody>, target: &MirrorTarget, sent: &Uri) -> bool {
    let sent = sent.path_and_query().map_or("/", |p| p.as_str());
    let uri = if target.request_uri {
        format!("{}{sent}", target.path)
    } else if target.path.is_empty() {
        sent.to_string()
    } else {
        match copy.uri().query() {
            Some(q) => format!("{}?{q}", target.path),
            None => target.path.to_string(),
        }
    };
    let Ok(uri) = uri.parse::<Uri>() else {
        return false;
    };
    *copy.uri_mut() = uri;
    copy.headers_mut().insert(HOST, target.host.clone());
    true
}

/// Sends the copy in a task of its own; the response is discarded.
fn send(
    published: Arc<Published>,
    mirror: Mirror,
    copy: Request<UploadBody>,
    plan: Plan<'static>,
    slot: Slot,
) {
    tokio::spawn(async move {
        let _slot = slot;
        let Some(backend) = Backend::of(&published, mirror.upstream) else {
            return;
        };
        match forward::dispatch(backend, Prepared::head_only(copy), &plan).await {
            Ok((response, _)) => {
                // Read to the end without keeping it (so the connection can
                // be reused), within the response timeout.
                let mut body = response.into_body();
                let drain = async { while let Some(Ok(_)) = body.frame().await {} };
                let _ = tokio::time::timeout(plan.exchange.read, drain).await;
            }
            Err(error) => {
                tracing::debug!(%error, mirror = %mirror.service, "mirror request failed");
            }
        }
    });
}
