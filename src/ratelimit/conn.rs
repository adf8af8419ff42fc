//! [`ConnLimiter`]: concurrent in-flight requests (or connections) per
//! client IP, and the [`ConnPermit`] that holds one.
//!
//! Invariants:
//! - A client's count never exceeds `max`, and a client has an entry exactly
//!   while it holds a permit: the drop that takes its count to zero closes
//!   the cell (CAS to a sentinel) and removes it, so memory is bounded by the
//!   clients *currently* holding permits.
//! - No lock; a client that already holds a permit acquires another with
//!   one lookup and one CAS, without allocating. (papaya's `compute` would
//!   allocate a new entry per increment and per decrement, as its values are
//!   immutable; the in-place atomic avoids that.)

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use super::store::{client_map, Acquired, ClientMap, Count, MAX_COUNT};

/// At most `max` permits at once per client IP.
pub struct ConnLimiter {
    /// Effective maximum, `max` capped one below the closed sentinel.
    max: u32,
    /// Held permits per client; only clients holding at least one.
    counts: ClientMap<Count>,
}

/// One counted in-flight request or connection of one client; dropping it
/// gives the slot back.
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    /// Canonical client address (the key it was counted under).
    client: IpAddr,
}

impl ConnLimiter {
    /// A limiter allowing `max` permits per client at once (at most
    /// `u32::MAX - 1`; larger is that).
    pub fn new(max: NonZeroU32) -> Self {
        ConnLimiter {
            max: max.get().min(MAX_COUNT),
            counts: client_map(),
        }
    }

    /// The maximum per client.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// `None`: `client` already holds `max` permits. `Some(permit)`: counted
    /// until the permit drops.
    pub fn acquire(self: &Arc<Self>, client: IpAddr) -> Option<ConnPermit> {
        let client = client.to_canonical();
        let counts = self.counts.pin();
        // Each turn counts, refuses, or lost a race with this client's last
        // release (a closed cell) or first acquire (an insert), which made
        // progress instead.
        loop {
            if let Some(count) = counts.get(&client) {
                match count.acquire(self.max) {
                    Acquired::Yes => break,
                    Acquired::Full => return None,
                    Acquired::Closed => {
                        // Its last holder is removing it: help, then start a
                        // fresh cell.
                        let _ = counts.remove_if(&client, |_, count| count.is_closed());
                        continue;
                    }
                }
            }
            if counts.try_insert(client, Count::one()).is_ok() {
                break;
            }
        }
        Some(ConnPermit {
            limiter: Arc::clone(self),
            client,
        })
    }

    /// Permits `client` holds now.
    pub fn held(&self, client: IpAddr) -> u32 {
        self.counts
            .pin()
            .get(&client.to_canonical())
            .map_or(0, Count::held)
    }

    /// Clients holding at least one permit (plus, for an instant, any whose
    /// last permit is being dropped).
    pub fn tracked_clients(&self) -> usize {
        self.counts.len()
    }

    fn release(&self, client: &IpAddr) {
        let counts = self.counts.pin();
        // The permit's own cell: it cannot leave the map while this permit
        // still counts in it.
        if let Some(count) = counts.get(client) {
            if count.release() {
                let _ = counts.remove_if(client, |_, count| count.is_closed());
            }
        }
    }
}

impl fmt::Debug for ConnLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnLimiter")
            .field("max", &self.max)
            .field("tracked_clients", &self.tracked_clients())
            .finish()
    }
}

impl ConnPermit {
    /// The (canonical) client address this permit counts for.
    pub fn client(&self) -> IpAddr {
        self.client
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.limiter.release(&self.client);
    }
}

impl fmt::Debug for ConnPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnPermit")
            .field("client", &self.client)
            .finish()
    }
}
