//! What a request is forwarded to and how: the [`Backend`] (an upstream's
//! endpoints and its upstream TLS) and the [`Plan`] (timeouts, body limit,
//! retries, the first endpoint's [`Pick`], the upstream Host), shared by
//! the service, the policy phases and every forwarding file.
//!
//! Invariants:
//! - Plain borrowed values, `Copy`: building a plan or a backend neither
//!   allocates nor clones; the published snapshot outlives both.
//! - Imports nothing of the request path above it (no connection context,
//!   no service, no policy) and none of the senders ([`super::h1`],
//!   [`super::h2`]): they import it.
//! - At most [`MAX_ENDPOINT_ATTEMPTS`] distinct endpoints per request
//!   without a retry policy; an upstream without any endpoint is a 503.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use super::pool;
use crate::lb::{Endpoint, Upstream};
use crate::proxy::error::ProxyError;
use crate::proxy::shared::ProxySettings;
use crate::proxy::timing::UpstreamTiming;
use crate::proxy::upload::ExchangeLimits;
use crate::state::Published;
use crate::table::policy::{Retry, RoutePolicy};
use crate::table::UpstreamId;
use crate::tls::client::UpstreamTls;

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
    /// The response-header, body-pause, attempt and whole-request limits
    /// of each exchange (504 past them).
    pub exchange: ExchangeLimits,
    pub max_body: Option<u64>,
    pub retry: Option<&'a Retry>,
    /// How the first endpoint is chosen.
    pub pick: Pick,
    /// Host header sent upstream instead of the client's (`upstream-vhost`).
    pub host: Option<&'a HeaderValue>,
    /// Where the senders note connect and response times and the
    /// upstream status, for metrics and the access log.
    pub timing: Option<&'a UpstreamTiming>,
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
    pub(crate) fn dial<'e>(&self, endpoint: &'e Endpoint) -> pool::Dial<'e>
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
    pub(crate) fn next_endpoint(
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

    pub(crate) fn connect_failed(&self, endpoint: &Endpoint, error: &pool::ConnectError) {
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
            exchange: ExchangeLimits {
                send: settings.response_timeout,
                read: settings.response_timeout,
                attempt: None,
                deadline: None,
            },
            max_body: None,
            retry: None,
            pick: Pick::Balanced,
            host: None,
            timing: None,
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
            exchange: ExchangeLimits {
                send: policy.timeouts.send.unwrap_or(settings.response_timeout),
                read: policy.timeouts.read.unwrap_or(settings.response_timeout),
                attempt: policy.timeouts.backend_request,
                deadline: policy.timeouts.request.map(|d| Instant::now() + d),
            },
            max_body: policy.max_body,
            retry: policy.retry.as_ref(),
            pick: Pick::Balanced,
            host: policy.upstream_vhost.as_ref(),
            timing: None,
        }
    }
}
