//! [`RequestLimiter`]: a request rate per client IP, governor's GCRA over
//! [`ClientStateStore`].
//!
//! Invariants: `check` takes no lock and, for a client already tracked,
//! allocates nothing; `prune` is the only thing that forgets clients, and it
//! forgets only those whose bucket is full (a forgotten client is treated
//! exactly as it would have been).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::RateLimiter;

use super::spec::RateSpec;
use super::store::ClientStateStore;

/// Requests per client IP: `spec.requests` per `spec.per`, up to
/// `spec.burst` at once. One per Ingress that has a rate limit; shared by
/// every worker (`Sync`).
///
/// `C` is the time source; [`DefaultClock`] (quanta: TSC where available) outside tests.
pub struct RequestLimiter<C = DefaultClock>
where
    C: Clock,
{
    spec: RateSpec,
    limiter: RateLimiter<IpAddr, ClientStateStore, C, NoOpMiddleware<C::Instant>>,
}

impl RequestLimiter {
    /// A limiter for `spec` on the real clock.
    pub fn new(spec: RateSpec) -> Self {
        RequestLimiter::with_clock(spec, DefaultClock::default())
    }
}

impl<C: Clock> RequestLimiter<C> {
    /// A limiter for `spec` reading time from `clock` (tests pass governor's
    /// `FakeRelativeClock`).
    pub fn with_clock(spec: RateSpec, clock: C) -> Self {
        RequestLimiter {
            spec,
            limiter: RateLimiter::new(spec.quota(), ClientStateStore::new(), clock),
        }
    }

    /// The spec this limiter enforces (the publisher compares it with a
    /// recompiled one to decide whether to keep this limiter).
    pub fn spec(&self) -> RateSpec {
        self.spec
    }

    /// Counts one request of `client`.
    ///
    /// `Ok`: allowed. `Err(wait)`: rejected; `wait` is the earliest time
    /// from now at which a retry can pass (for `Retry-After`, round up to
    /// whole seconds at the caller). A rejected request does not count.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        match self.limiter.check_key(&client.to_canonical()) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(not_until.wait_time_from(self.limiter.clock().now())),
        }
    }

    /// Drops the state of clients that are indistinguishable from fresh (a
    /// full bucket). Called periodically by the control plane, not per
    /// request; runs concurrently with `check` without losing a count.
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }

    /// Clients with state (those seen within about one refill time plus one
    /// prune period).
    pub fn tracked_clients(&self) -> usize {
        self.limiter.len()
    }
}

impl<C: Clock> fmt::Debug for RequestLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLimiter")
            .field("spec", &self.spec)
            .field("tracked_clients", &self.tracked_clients())
            .finish()
    }
}
