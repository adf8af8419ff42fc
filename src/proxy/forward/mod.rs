//! Forwarding: from a request rewritten for its upstream to the upstream's
//! response, by way of an endpoint choice and a pooled connection.
//!
//! The steps, one file each: [`plan`] holds what a request is forwarded to
//! and how (shared by every step, which import it from there); [`prepare`]
//! rewrites the request head for the upstream; [`h1`] sends over pooled
//! HTTP/1.1 connections (with retries and upgrades); [`h2`] over a worker's
//! shared HTTP/2 connection; [`pool`] keeps the connections (their idle
//! stacks: [`idle`]). This file only
//! chains them ([`dispatch`]): no step imports it.
//!
//! Invariants:
//! - Retries happen only when the request was provably not sent: a refused
//!   connection (then another endpoint is tried) or a pooled connection that
//!   closed before taking the request (hyper hands the request back); with
//!   a retry policy, also replayable requests (no body) as it allows.
//! - At most [`MAX_ENDPOINT_ATTEMPTS`] distinct endpoints per request
//!   without a retry policy; an upstream whose TLS verification is required
//!   but impossible is never connected to (503).
//! - Calls nothing above it: neither the service nor the policy phases.

pub mod h1;
pub mod h2;
pub mod idle;
pub mod plan;
pub mod pool;
pub mod prepare;

use std::future::Future;
use std::sync::Arc;

use futures_util::future::{ready, Either};
use http::Response;

use super::body::ProxyBody;
use super::error::ProxyError;
use crate::lb::Endpoint;
pub use plan::{Backend, Pick, Plan, MAX_ENDPOINT_ATTEMPTS};
pub use prepare::{prepare_upstream, prepare_upstream_in, Prepared};

/// Sends a prepared request (HTTP/1.1 or HTTP/2 by the upstream's
/// protocol); see the module invariants for when it retries.
///
/// A plain function returning the sender's future, not an `async fn`: an
/// async fn keeps its arguments for its whole life, and the prepared
/// request would then be stored once more in every request's future (which
/// is moved a few times per request). The HTTP/1.1 sender's future is
/// returned inline, in one `Either`; the HTTP/2 sender and the refusal of a
/// blocked upstream are boxed: inline, the larger HTTP/2 future would set
/// the size of every request's future, and each `Either` layer is one more
/// copy of it when it is built.
pub fn dispatch<'a>(
    backend: Backend<'a>,
    prepared: Prepared,
    plan: &'a Plan<'a>,
) -> impl Future<Output = Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError>> + 'a {
    let Prepared {
        req,
        upload,
        client_upgrade,
    } = prepared;
    if backend.tls.is_blocked() {
        return Either::Right(Box::pin(Either::Left(ready(Err(ProxyError::NoEndpoints)))));
    }
    if backend.upstream.key.protocol.is_http2() && client_upgrade.is_none() {
        return Either::Right(Box::pin(Either::Right(async move {
            h2::forward_h2(backend, req, upload.as_deref(), plan).await
        })));
    }
    Either::Left(h1::send_pending(
        backend,
        Some(req),
        upload,
        client_upgrade,
        plan,
    ))
}
