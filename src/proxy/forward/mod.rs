//! Forwarding: from a request rewritten for its upstream to the upstream's
//! response, by way of an endpoint choice and a pooled connection.
//!
//! The steps, one file each: [`prepare`] rewrites the request head for the
//! upstream; [`h1`] sends over pooled HTTP/1.1 connections (with retries and
//! upgrades); [`h2`] over a worker's shared HTTP/2 connection; [`pool`]
//! keeps the connections.
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
pub mod pool;
pub mod prepare;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::error::ProxyError;
use super::listener::ConnCtx;
use super::ProxySettings;
use crate::lb::{Endpoint, Upstream};
use crate::state::Published;
use crate::table::policy::{Retry, RoutePolicy};
use crate::table::UpstreamId;
use crate::tls::client::UpstreamTls;
pub use prepare::{prepare_upstream, Prepared};

/// Most distinct endpoints tried for one request when connections fail.
pub const MAX_ENDPOINT_ATTEMPTS: usize = 3;

/// Where a request is forwarded: an upstream's endpoints and how its
/// connections are secured.
#[derive(Debug, Clone, Copy)]
pub struct Backend<'a> {
    pub upstream: &'a Arc<Upstream>,
    pub tls: &'a UpstreamTls,
}

/// How one request is forwarded: the route's policy over the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub connect_timeout: Duration,
    /// Pooled upstream connections idle longer are not reused.
    pub idle_timeout: Duration,
    /// Waiting for response headers.
    pub read_timeout: Duration,
    /// Longest pause while the request body streams.
    pub send_timeout: Duration,
    pub max_body: Option<u64>,
    pub retry: Option<&'a Retry>,
    /// How the first endpoint is chosen.
    pub pick: Pick,
    /// Host header sent upstream instead of the client's (`upstream-vhost`).
    pub host: Option<&'a HeaderValue>,
}

/// How the first endpoint of a request is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The upstream's algorithm.
    Balanced,
    /// Consistent hashing of this key hash.
    Hash(u64),
    /// The endpoint with this sticky id, while it is available; else the
    /// upstream's algorithm.
    Sticky(u64),
}

impl<'a> Backend<'a> {
    /// The published backend of upstream `id`.
    #[inline]
    pub fn of(published: &'a Published, id: UpstreamId) -> Option<Self> {
        Some(Backend {
            upstream: published.upstreams.get(id as usize)?,
            tls: published.upstream_tls.get(id as usize)?,
        })
    }

    /// What the pool needs to connect to `endpoint` of this backend.
    #[inline]
    fn dial<'e>(&self, endpoint: &'e Endpoint) -> pool::Dial<'e>
    where
        'a: 'e,
    {
        pool::Dial {
            id: endpoint.id,
            addr: &endpoint.addr,
            protocol: self.upstream.key.protocol,
            tls: self.tls,
        }
    }

    /// The next endpoint to try, skipping those already tried; `Err` (503)
    /// when the upstream has no endpoint at all.
    fn next_endpoint(
        &self,
        tried: &[Arc<Endpoint>],
        pick: Pick,
    ) -> Result<Option<Arc<Endpoint>>, ProxyError> {
        let upstream = self.upstream;
        let set = upstream.endpoints();
        if set.endpoints.is_empty() {
            return Err(ProxyError::NoEndpoints);
        }
        let exclude: Vec<&Endpoint> = tried.iter().map(|e| e.as_ref()).collect();
        Ok(match pick {
            Pick::Balanced => upstream.pick(&set, &exclude),
            Pick::Hash(hash) => upstream.pick_hashed(&set, hash, &exclude),
            Pick::Sticky(id) => upstream
                .pick_sticky(&set, id, &exclude)
                .or_else(|| upstream.pick(&set, &exclude)),
        })
    }

    fn connect_failed(&self, endpoint: &Endpoint, error: &pool::ConnectError) {
        endpoint.mark_failed();
        self.upstream.connect_errors.inc();
        tracing::debug!(%error, upstream = %self.upstream.label, "connect failed");
    }
}

impl<'a> Plan<'a> {
    /// The global flags, nothing per route.
    pub fn from_settings(settings: &ProxySettings) -> Self {
        Plan {
            connect_timeout: settings.connect_timeout,
            idle_timeout: settings.upstream_idle_timeout,
            read_timeout: settings.response_timeout,
            send_timeout: settings.response_timeout,
            max_body: None,
            retry: None,
            pick: Pick::Balanced,
            host: None,
        }
    }

    /// A route's policy over the global flags (the first endpoint chosen by
    /// the upstream's algorithm until a phase says otherwise).
    pub fn for_policy(policy: &'a RoutePolicy, settings: &ProxySettings) -> Self {
        Plan {
            connect_timeout: policy.timeouts.connect.unwrap_or(settings.connect_timeout),
            idle_timeout: policy
                .timeouts
                .idle
                .unwrap_or(settings.upstream_idle_timeout),
            read_timeout: policy.timeouts.read.unwrap_or(settings.response_timeout),
            send_timeout: policy.timeouts.send.unwrap_or(settings.response_timeout),
            max_body: policy.max_body,
            retry: policy.retry.as_ref(),
            pick: Pick::Balanced,
            host: policy.upstream_vhost.as_ref(),
        }
    }
}

/// Sends the request to an endpoint of `backend`; see the module invariants
/// for when it retries.
pub async fn forward(
    ctx: &ConnCtx,
    backend: Backend<'_>,
    req: Request<Incoming>,
    plan: &Plan<'_>,
) -> Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError> {
    let prepared = prepare_upstream(ctx, req, plan)?;
    dispatch(backend, prepared, plan).await
}

/// Sends a prepared request (HTTP/1.1 or HTTP/2 by the upstream's protocol).
pub async fn dispatch(
    backend: Backend<'_>,
    prepared: Prepared,
    plan: &Plan<'_>,
) -> Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError> {
    if backend.tls.is_blocked() {
        return Err(ProxyError::NoEndpoints);
    }
    let Prepared {
        req,
        upload,
        client_upgrade,
    } = prepared;
    if backend.upstream.key.protocol.is_http2() && client_upgrade.is_none() {
        return h2::forward_h2(backend, req, upload.as_deref(), plan).await;
    }
    h1::send(backend, req, upload, client_upgrade, plan).await
}
