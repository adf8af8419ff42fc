//! [`RateSpec`]: the plain, comparable description of a request rate that
//! the compiler builds and the publisher turns into a limiter.
//!
//! Invariants: a spec is a value (copy, equality, hash) so the publisher can
//! keep a limiter alive while its spec is equal; every derived duration is at
//! least 1 ns, so no spec, however degenerate, panics or divides by zero.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;

/// Plain, comparable description of a request rate (the compiler builds it;
/// the publisher keeps a limiter alive across recompiles while its spec is
/// equal).
///
/// `requests` per `per` on average, and up to `burst` requests at once from a
/// client whose bucket is full. `per` is 1 s (`limit-rps`) or 60 s
/// (`limit-rpm`); other periods work the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateSpec {
    /// Requests allowed per `per`, on average.
    pub requests: NonZeroU32,
    /// The period `requests` are counted over: 1 s or 60 s.
    pub per: Duration,
    /// Requests allowed at once (the bucket size).
    pub burst: NonZeroU32,
}

impl RateSpec {
    /// `requests` per second, `burst` at once.
    pub const fn per_second(requests: NonZeroU32, burst: NonZeroU32) -> Self {
        RateSpec {
            requests,
            per: Duration::from_secs(1),
            burst,
        }
    }

    /// `requests` per minute, `burst` at once.
    pub const fn per_minute(requests: NonZeroU32, burst: NonZeroU32) -> Self {
        RateSpec {
            requests,
            per: Duration::from_secs(60),
            burst,
        }
    }

    /// Time to earn back one request: `per / requests`, at least 1 ns (so a
    /// zero `per` degrades to "effectively unlimited", never to a panic).
    pub fn replenish_interval(&self) -> Duration {
        (self.per / self.requests.get()).max(Duration::from_nanos(1))
    }

    /// Time for an empty bucket to become full again: `burst` intervals.
    /// A client idle this long is indistinguishable from a new one.
    pub fn refill_time(&self) -> Duration {
        self.replenish_interval().saturating_mul(self.burst.get())
    }

    /// The governor quota for this spec.
    pub(super) fn quota(&self) -> Quota {
        match Quota::with_period(self.replenish_interval()) {
            Some(quota) => quota.allow_burst(self.burst),
            // `with_period` refuses only a zero period, and the interval is at
            // least 1 ns; the most permissive quota is the safe reading.
            None => Quota::per_second(NonZeroU32::MAX).allow_burst(self.burst),
        }
    }
}
