//! The state the data plane reads: what one request may look at, and the
//! process health the admin endpoints report.
//!
//! The publisher ([`crate::publisher`], control plane) builds a
//! [`Published`] and stores it; the proxy, the certificate resolver and the
//! admin endpoints only read it. This module depends on nothing of either
//! side: it is the boundary between them.
//!
//! Invariants:
//! - Everything that changes together on a recompile (table, certificates,
//!   upstreams, per-route metric handles, per-route limiters) is one
//!   [`Published`], swapped with one `ArcSwap::store`. A request `load`s it
//!   once and uses that snapshot to the end, so it never sees a table from
//!   one generation and upstreams from another.
//! - A stored [`Published`] is never modified. What changes between
//!   recompiles changes through interior state built for concurrent use:
//!   the endpoint sets inside an [`Upstream`] (their own swap, the
//!   EndpointSlice fast path), limiter and metric atomics.
//! - Indexes agree with the table they were built with: `upstreams` and
//!   `upstream_tls` by `UpstreamId`, `route_metrics` by `RouteId` (one per route),
//!   `route_limits` by `RouteId` or empty when no route has limits. Readers
//!   still use `get`, never panicking indexing.
//! - Reading takes no lock and does not allocate; [`Health`] is atomics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::lb::Upstream;
use crate::metrics::RouteMetrics;
use crate::ratelimit::global::GlobalLimiter;
use crate::ratelimit::{ConnLimiter, RequestLimiter};
use crate::table::tls::TlsTable;
use crate::table::RoutingTable;
use crate::tls::client::UpstreamTls;

/// The state a request reads: swapped as one.
#[derive(Debug, Default)]
pub struct Published {
    /// Counts publishes from 1 (0: nothing compiled yet).
    pub generation: u64,
    pub table: RoutingTable,
    /// Certificates by TLS host (the certificate resolver reads this).
    pub tls: TlsTable,
    /// Indexed by `UpstreamId`.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Indexed by `UpstreamId`: how each upstream's connections are secured.
    pub upstream_tls: Vec<UpstreamTls>,
    /// Indexed by `RouteId`.
    pub route_metrics: Vec<RouteMetrics>,
    /// Indexed by `RouteId`: the live limiters of routes with limits;
    /// empty when no route has any.
    pub route_limits: Vec<RouteLimits>,
}

/// The limiters of one route: shared by the routes of one Ingress (limits
/// are per client IP, per Ingress) and kept across recompiles while the
/// Ingress's limit stays the same, so a reload never resets a client's
/// budget.
#[derive(Debug, Default, Clone)]
pub struct RouteLimits {
    pub rate: Option<Arc<RequestLimiter>>,
    /// Counted across replicas in the shared store.
    pub global: Option<Arc<GlobalLimiter>>,
    pub connections: Option<Arc<ConnLimiter>>,
}

impl Published {
    /// Periodic upkeep (control plane, every second): drops limiter state
    /// of clients whose budget is full again (bounded memory under many
    /// distinct clients) and ages the retry budgets.
    pub fn housekeeping(&self) {
        for upstream in &self.upstreams {
            upstream.decay_retry_budget();
        }
        let mut seen: Vec<*const RequestLimiter> = Vec::new();
        for limiter in self.route_limits.iter().filter_map(|l| l.rate.as_ref()) {
            let ptr = Arc::as_ptr(limiter);
            if !seen.contains(&ptr) {
                seen.push(ptr);
                limiter.prune();
            }
        }
        let mut seen: Vec<*const GlobalLimiter> = Vec::new();
        for limiter in self.route_limits.iter().filter_map(|l| l.global.as_ref()) {
            let ptr = Arc::as_ptr(limiter);
            if !seen.contains(&ptr) {
                seen.push(ptr);
                limiter.prune();
            }
        }
    }
}

/// Process health as the admin endpoints report it.
#[derive(Debug, Default)]
pub struct Health {
    /// A table was published (set once by the publisher, never cleared).
    pub table_installed: AtomicBool,
    /// Every listener is accepting.
    pub listeners_up: AtomicBool,
    /// Shutdown began: not ready, so load balancers stop sending.
    pub draining: AtomicBool,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.table_installed.load(Ordering::Acquire)
            && self.listeners_up.load(Ordering::Acquire)
            && !self.draining.load(Ordering::Acquire)
    }
}
