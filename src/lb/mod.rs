//! Upstreams and their endpoint sets: the live side of what the compiler
//! described in [`crate::table::upstream`].
//!
//! Invariants:
//! - The request path only reads: one `ArcSwap::load` of the endpoint set,
//!   then atomics. No lock, no allocation when picking.
//! - An endpoint set is replaced as a whole (`ArcSwap::store`) by the
//!   control plane; an EndpointSlice change costs O(endpoints of that
//!   Service) and never touches routes.
//! - An endpoint keeps its identity (its [`Endpoint::id`], which the data
//!   plane's connection pools key on, and its health state) across
//!   replacements as long as its address stays in the set; a new endpoint
//!   gets an id never used before, so it never inherits connections.
//! - Knows endpoints, not connections: nothing here opens, pools or
//!   secures a connection.
//! - Passive health: an endpoint that refused a connection is skipped for a
//!   backoff period unless every endpoint is down (then we try anyway:
//!   failing open here only costs a 502 we would have returned).

pub mod clock;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;

use crate::table::upstream::{EndpointAddr, LbAlgorithm, UpstreamKey, UpstreamSpec};

/// First passive-health backoff; doubles per consecutive failure.
const BACKOFF_BASE_MS: u64 = 1_000;
/// Longest passive-health backoff.
const BACKOFF_MAX_MS: u64 = 10_000;
/// Decay time constant of the peak-EWMA latency estimate.
const EWMA_TAU_NS: f64 = 10e9;
/// Latency assumed for an endpoint without samples (1 ms).
const EWMA_DEFAULT_NS: u64 = 1_000_000;

/// Source of [`Endpoint::id`]s: unique for the life of the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One backend address with its identity and load/health state.
#[derive(Debug)]
pub struct Endpoint {
    /// Unique for the life of the process; connection pools key on it.
    pub id: u64,
    pub addr: EndpointAddr,
    /// Stable identity of the address, as named by persistent-affinity
    /// cookies (the same on every replica).
    pub sticky_id: u64,
    inflight: AtomicU32,
    ewma_ns: AtomicU64,
    ewma_stamp_ns: AtomicU64,
    down_until_ms: AtomicU64,
    failures: AtomicU32,
}

/// Points per endpoint on a consistent-hash ring (ketama uses 160).
const RING_POINTS: u32 = 160;

/// The current endpoints of an upstream; replaced as a whole.
#[derive(Debug, Default)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Consistent-hash upstreams only: (point, index into `endpoints`),
    /// sorted by point. Built with the set, off the request path.
    ring: Vec<(u64, u32)>,
}

impl EndpointSet {
    fn new(endpoints: Vec<Arc<Endpoint>>, lb: LbAlgorithm) -> Self {
        let mut ring = Vec::new();
        if lb == LbAlgorithm::ConsistentHash {
            ring.reserve(endpoints.len() * RING_POINTS as usize);
            for (i, e) in endpoints.iter().enumerate() {
                let id = e.addr.to_string();
                for point in 0..RING_POINTS {
                    let h = stable_hash(&[id.as_bytes(), b"#", &point.to_le_bytes()]);
                    ring.push((h, u32::try_from(i).unwrap_or(u32::MAX)));
                }
            }
            ring.sort_unstable();
        }
        Self { endpoints, ring }
    }
}

/// FNV-1a (64-bit) over the concatenated parts: stable across processes
/// and versions, so every replica maps a key to the same endpoint.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h = StableHasher::new();
    for part in parts {
        h.write(part);
    }
    h.finish()
}

/// [`stable_hash`] fed piece by piece (no buffer to assemble a key in).
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl StableHasher {
    pub fn new() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// FNV's low bits mix poorly; a final avalanche spreads them on the ring.
    pub fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// A live upstream: identity, picker state and a swappable endpoint set.
#[derive(Debug)]
pub struct Upstream {
    pub key: UpstreamKey,
    pub label: Arc<str>,
    endpoints: ArcSwap<EndpointSet>,
    next: AtomicUsize,
    /// Failed connection attempts to this upstream's endpoints.
    pub connect_errors: Counter,
    /// Requests and retries of routes with a retry budget, halved every
    /// second ([`Upstream::decay_retry_budget`]): a moving window.
    budget_requests: AtomicU64,
    budget_retries: AtomicU64,
}

impl Upstream {
    /// The endpoint a hash key maps to on the ring: the first point at or
    /// after `hash`, walking on past endpoints that are excluded or down
    /// (falling back to a down one when every other is). Without a ring
    /// (not a consistent-hash upstream), `hash` picks by modulo.
    pub fn pick_hashed(
        &self,
        set: &EndpointSet,
        hash: u64,
        exclude: &[&Endpoint],
    ) -> Option<Arc<Endpoint>> {
        let eps = &set.endpoints;
        if set.ring.is_empty() {
            let n = eps.len();
            if n == 0 {
                return None;
            }
            let start = (hash % n as u64) as usize;
            return first_usable((0..n).filter_map(|i| eps.get((start + i) % n)), exclude);
        }
        let start = set.ring.partition_point(|(point, _)| *point < hash);
        let len = set.ring.len();
        first_usable(
            (0..len)
                .filter_map(|i| set.ring.get((start + i) % len))
                .filter_map(|(_, at)| eps.get(*at as usize)),
            exclude,
        )
    }

    /// Counts a request against the retry budget.
    pub fn note_budgeted_request(&self) {
        self.budget_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from a budget of `percent` of recent requests; one
    /// retry is always allowed per window so a lone failure can retry.
    pub fn take_retry(&self, percent: u8) -> bool {
        let requests = self.budget_requests.load(Ordering::Relaxed);
        let retries = self.budget_retries.load(Ordering::Relaxed);
        let allowed = requests.saturating_mul(u64::from(percent)) / 100;
        if retries > allowed.max(1) {
            return false;
        }
        self.budget_retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Halves the budget counters (control plane, every second).
    pub fn decay_retry_budget(&self) {
        for counter in [&self.budget_requests, &self.budget_retries] {
            let v = counter.load(Ordering::Relaxed);
            if v != 0 {
                counter.store(v / 2, Ordering::Relaxed);
            }
        }
    }

    /// The endpoint whose [`Endpoint::sticky_id`] is `id`, if it is in the
    /// set, not excluded and not down.
    pub fn pick_sticky(
        &self,
        set: &EndpointSet,
        id: u64,
        exclude: &[&Endpoint],
    ) -> Option<Arc<Endpoint>> {
        set.endpoints
            .iter()
            .find(|e| e.sticky_id == id && !exclude.iter().any(|x| std::ptr::eq(*x, e.as_ref())))
            .filter(|e| !e.is_down())
            .cloned()
    }
}

/// The first endpoint of `order` not excluded and not in backoff; else the
/// first not excluded (when all are down we try anyway: failing open here
/// only costs the 502 we would answer).
fn first_usable<'a>(
    order: impl Iterator<Item = &'a Arc<Endpoint>>,
    exclude: &[&Endpoint],
) -> Option<Arc<Endpoint>> {
    let mut fallback = None;
    for e in order {
        if exclude.iter().any(|x| std::ptr::eq(*x, e.as_ref())) {
            continue;
        }
        if !e.is_down() {
            return Some(e.clone());
        }
        fallback.get_or_insert(e);
    }
    fallback.cloned()
}

/// Tracks one in-flight request on an endpoint (for p2c-ewma); dropping it
/// ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub fn new(addr: EndpointAddr) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sticky_id: stable_hash(&[addr.to_string().as_bytes()]),
            addr,
            inflight: AtomicU32::new(0),
            ewma_ns: AtomicU64::new(0),
            ewma_stamp_ns: AtomicU64::new(0),
            down_until_ms: AtomicU64::new(0),
            failures: AtomicU32::new(0),
        }
    }

    /// Whether passive health currently skips this endpoint.
    #[inline]
    pub fn is_down(&self) -> bool {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        until != 0 && clock::now_ms() < until
    }

    /// The endpoint refused or failed a connection: back off.
    pub fn mark_failed(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).min(16);
        let backoff = BACKOFF_BASE_MS
            .saturating_mul(1 << failures.min(4))
            .min(BACKOFF_MAX_MS);
        self.down_until_ms
            .store(clock::now_ms() + backoff, Ordering::Relaxed);
    }

    /// A connection succeeded: clear the backoff.
    #[inline]
    pub fn mark_ok(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.down_until_ms.store(0, Ordering::Relaxed);
        }
    }

    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Records a response latency into the peak-EWMA estimate.
    pub fn observe_latency(&self, rtt_ns: u64) {
        let now = clock::now_ns();
        let prev = self.ewma_ns.load(Ordering::Relaxed);
        let stamp = self.ewma_stamp_ns.swap(now, Ordering::Relaxed);
        let next = if prev == 0 || rtt_ns > prev {
            rtt_ns
        } else {
            let dt = now.saturating_sub(stamp) as f64;
            let w = (-dt / EWMA_TAU_NS).exp();
            (prev as f64 * w + rtt_ns as f64 * (1.0 - w)) as u64
        };
        self.ewma_ns.store(next.max(1), Ordering::Relaxed);
    }

    /// p2c-ewma cost: latency estimate × (in-flight + 1).
    fn cost(&self) -> u64 {
        let ewma = match self.ewma_ns.load(Ordering::Relaxed) {
            0 => EWMA_DEFAULT_NS,
            n => n,
        };
        ewma.saturating_mul(u64::from(self.inflight.load(Ordering::Relaxed)) + 1)
    }

    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }
}

impl Upstream {
    pub fn new(spec: &UpstreamSpec, connect_errors: Counter) -> Self {
        let set = EndpointSet::new(
            spec.endpoints
                .iter()
                .cloned()
                .map(|a| Arc::new(Endpoint::new(a)))
                .collect(),
            spec.key.lb,
        );
        Self {
            key: spec.key.clone(),
            label: spec.label.clone(),
            endpoints: ArcSwap::from_pointee(set),
            next: AtomicUsize::new(fastrand::usize(..1024)),
            connect_errors,
            budget_requests: AtomicU64::new(0),
            budget_retries: AtomicU64::new(0),
        }
    }

    /// Replaces the endpoint set, keeping the `Endpoint` (id, health) of
    /// every address that stays. Returns whether anything changed.
    pub fn set_endpoints(&self, addrs: &[EndpointAddr]) -> bool {
        let current = self.endpoints.load();
        if current.endpoints.len() == addrs.len()
            && current
                .endpoints
                .iter()
                .zip(addrs)
                .all(|(e, a)| &e.addr == a)
        {
            return false;
        }
        let mut existing: HashMap<&EndpointAddr, &Arc<Endpoint>> =
            current.endpoints.iter().map(|e| (&e.addr, e)).collect();
        let endpoints = addrs
            .iter()
            .map(|a| match existing.remove(a) {
                Some(e) => e.clone(),
                None => Arc::new(Endpoint::new(a.clone())),
            })
            .collect();
        self.endpoints
            .store(Arc::new(EndpointSet::new(endpoints, self.key.lb)));
        true
    }

    /// The current endpoint set (one atomic load).
    #[inline]
    pub fn endpoints(&self) -> arc_swap::Guard<Arc<EndpointSet>> {
        self.endpoints.load()
    }

    /// Picks an endpoint, skipping `exclude` (already tried) and endpoints in
    /// passive-health backoff; falls back to a down endpoint when every
    /// endpoint not yet tried is down.
    pub fn pick(&self, set: &EndpointSet, exclude: &[&Endpoint]) -> Option<Arc<Endpoint>> {
        let eps = &set.endpoints;
        let excluded = |e: &Endpoint| exclude.iter().any(|x| std::ptr::eq(*x, e));
        match eps.len() {
            0 => return None,
            1 => {
                let e = eps.first()?;
                return (!excluded(e)).then(|| e.clone());
            }
            _ => {}
        }
        match self.key.lb {
            LbAlgorithm::RoundRobin | LbAlgorithm::ConsistentHash => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let n = eps.len();
                first_usable(
                    (0..n).filter_map(|i| eps.get(start.wrapping_add(i) % n)),
                    exclude,
                )
            }
            LbAlgorithm::P2cEwma => {
                let usable = |e: &&Arc<Endpoint>| !excluded(e) && !e.is_down();
                let n = eps.len();
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let (ea, eb) = (eps.get(a)?, eps.get(b)?);
                match (usable(&ea), usable(&eb)) {
                    (true, true) => Some(if ea.cost() <= eb.cost() { ea } else { eb }.clone()),
                    (true, false) => Some(ea.clone()),
                    (false, true) => Some(eb.clone()),
                    (false, false) => eps
                        .iter()
                        .filter(usable)
                        .min_by_key(|e| e.cost())
                        .or_else(|| eps.iter().find(|e| !excluded(e)))
                        .cloned(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
