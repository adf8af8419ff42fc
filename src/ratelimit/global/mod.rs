//! Global rate limits: one budget per key shared by every replica, kept in
//! Redis ([`GlobalStore`]) and decided there by one GCRA script.
//!
//! A [`GlobalLimiter`] is built by the publisher per (route object, limit)
//! and kept across recompiles while the limit is unchanged; the request
//! path calls [`GlobalLimiter::check`].
//!
//! # Invariants
//! - Routes without a global limit never reach this module (the phase
//!   exists only on routes that have one).
//! - A decision takes at most the store's budget (`--global-rate-limit-timeout`):
//!   waiting for a batch and the round trip are both inside it. Without an
//!   answer in time the limit fails open to its local limiter (the same
//!   rate per replica) or, when configured, closed (503).
//! - One round trip per decision at most, fewer with batching (`batch`):
//!   requests of one key in flight together in this replica share a call.
//! - A client already refused is answered from a local cache (`denied`)
//!   until its next allowed time, with no round trip. That time only moves
//!   later when other replicas count requests of the same key, so the cache
//!   never refuses a request the store would pass.
//! - No lock of ours: the maps are papaya, counters atomics (waiting for a
//!   batch uses tokio's `Notify`: see `batch`). A decision renders its key
//!   once into one buffer (the one allocation of a decision that finds the
//!   key in the refusal cache).
//!
//! # Must never
//! Block or delay a request beyond the budget, or let a global limit pass
//! unlimited while the store is down and failing open (the local limit
//! applies then).

mod batch;
pub mod metrics;
pub mod settings;
mod store;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use self::batch::Batches;
use self::metrics::{DecisionCounters, Outcome};
use super::{RateSpec, RequestLimiter};
use crate::table::global_limit::LimitKey;
use crate::table::policy::GlobalRateLimit;

pub use metrics::GlobalMetrics;
pub use store::{FailMode, GlobalStore, SetupError, StoreConfig, StoreError, SCRIPT};

/// What a global limit decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; a retry can pass after this long.
    Limited(Duration),
    /// The store did not answer and the limit fails closed (503).
    Unavailable,
}

/// One global limit (per route object and limit), shared by every worker.
pub struct GlobalLimiter {
    spec: RateSpec,
    key: LimitKey,
    /// `tollgate:{<object>|<limit>}:`: the hash tag keeps a limit's keys in
    /// one Redis Cluster slot.
    prefix: Box<[u8]>,
    interval_us: u64,
    store: Option<Arc<GlobalStore>>,
    /// Decides while the store does not (fail open), per replica.
    local: RequestLimiter,
    /// Refused keys and when they may pass again (nanoseconds since `epoch`).
    denied: papaya::HashMap<Box<[u8]>, u64, foldhash::fast::RandomState>,
    batches: Batches,
    epoch: Instant,
    decisions: DecisionCounters,
}

impl GlobalLimiter {
    /// A limiter for `limit` of the route object `object` (`kind/ns/name`);
    /// without a store, every decision is the local limiter's.
    pub fn new(
        object: &str,
        limit: &GlobalRateLimit,
        store: Option<Arc<GlobalStore>>,
        decisions: DecisionCounters,
    ) -> Self {
        let spec = RateSpec {
            requests: limit.rate.requests,
            per: limit.rate.per,
            burst: limit.rate.burst,
        };
        let interval_us =
            u64::try_from(spec.replenish_interval().as_micros().max(1)).unwrap_or(u64::MAX);
        let prefix = format!(
            "tollgate:{{{object}|{}/{}ms/{}}}:",
            spec.requests,
            spec.per.as_millis(),
            spec.burst
        );
        GlobalLimiter {
            spec,
            key: limit.key.clone(),
            prefix: prefix.into_bytes().into(),
            interval_us,
            store,
            local: RequestLimiter::new(spec),
            denied: papaya::HashMap::with_hasher(foldhash::fast::RandomState::default()),
            batches: Batches::default(),
            epoch: Instant::now(),
            decisions,
        }
    }

    /// Decides one request of `client` (its headers for a templated key).
    pub async fn check(&self, client: IpAddr, headers: &HeaderMap) -> Decision {
        let Some(store) = &self.store else {
            return self.fallback(client);
        };
        let mut key = Vec::with_capacity(self.prefix.len() + 48);
        key.extend_from_slice(&self.prefix);
        self.key.render(client, headers, &mut key);
        let now = self.nanos();
        if let Some(until) = self.denied.pin().get(key.as_slice()).copied() {
            if until > now {
                self.decisions.count(Outcome::Limited);
                return Decision::Limited(Duration::from_nanos(until - now));
            }
        }
        let decided = tokio::time::timeout(
            store.timeout,
            self.batches.decide(&key, |n| {
                store.call(&key, self.interval_us, self.spec.burst.get(), n)
            }),
        )
        .await;
        match decided {
            Ok(Ok(None)) => {
                self.decisions.count(Outcome::Allowed);
                Decision::Allowed
            }
            Ok(Ok(Some(wait))) => {
                self.decisions.count(Outcome::Limited);
                if wait >= Duration::from_millis(1) {
                    let until =
                        now.saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
                    self.denied.pin().insert(key.into_boxed_slice(), until);
                }
                Decision::Limited(wait)
            }
            Ok(Err(StoreError::Down)) => self.unanswered(store, client, false),
            Ok(Err(_)) | Err(_) => self.unanswered(store, client, true),
        }
    }

    /// The store gave no answer: counted (`error`: a call failed or ran out
    /// of budget, not merely "down"), then fail open or closed.
    fn unanswered(&self, store: &GlobalStore, client: IpAddr, error: bool) -> Decision {
        if error {
            store.failed();
        }
        match store.fail {
            FailMode::Open => self.fallback(client),
            FailMode::Closed => {
                self.decisions.count(Outcome::Unavailable);
                Decision::Unavailable
            }
        }
    }

    /// The local limit decides (per replica, by client address).
    fn fallback(&self, client: IpAddr) -> Decision {
        self.decisions.count(Outcome::Fallback);
        match self.local.check(client) {
            Ok(()) => Decision::Allowed,
            Err(wait) => Decision::Limited(wait),
        }
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Control plane, periodically: forgets refusals that expired and
    /// prunes the local fallback limiter.
    pub fn prune(&self) {
        self.local.prune();
        let now = self.nanos();
        self.denied.pin().retain(|_, until| *until > now);
    }

    /// Keys currently refused from the local cache (tests, debugging).
    pub fn cached_refusals(&self) -> usize {
        self.denied.len()
    }

    /// Keys with a batch open or in flight.
    pub fn batches_in_flight(&self) -> usize {
        self.batches.len()
    }

    pub fn spec(&self) -> RateSpec {
        self.spec
    }
}

impl std::fmt::Debug for GlobalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalLimiter")
            .field("spec", &self.spec)
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("store", &self.store)
            .finish()
    }
}
