//! The per-client state stores behind both limiters: a lock-free
//! [`papaya::HashMap`] from client IP to an atomic cell updated in place.
//!
//! Invariants:
//! - A cell is never written after it holds its `RETIRED` sentinel; the only
//!   path out of the map is "retire (CAS), then remove". A request that finds
//!   a retired cell removes it itself (if the pruner has not yet) and inserts
//!   a fresh one, so no update lands in a cell that is leaving the map.
//! - [`ClientStateStore`] never stores 0 (governor's "no state yet"): a
//!   stored theoretical arrival time is always at least one interval.
//! - No lock, no allocation for a client that has a cell; one allocation
//!   (the map entry) for a new client.

use std::net::IpAddr;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;

/// The maps of this module: papaya, seeded foldhash (client addresses are
/// chosen by clients).
pub(super) type ClientMap<V> = papaya::HashMap<IpAddr, V, foldhash::fast::RandomState>;

/// A new, empty [`ClientMap`].
pub(super) fn client_map<V>() -> ClientMap<V> {
    papaya::HashMap::with_hasher(foldhash::fast::RandomState::default())
}

/// governor's keyed state, one GCRA theoretical arrival time (nanoseconds
/// since the limiter's start) per client, in a lock-free map.
pub struct ClientStateStore {
    map: ClientMap<Tat>,
}

/// One client's GCRA state. `RETIRED` marks a cell on its way out of the map.
struct Tat(AtomicU64);

/// Keys a prune pass collects before it removes them (17 bytes each).
const PRUNE_CHUNK: usize = 65_536;
/// Removals under one guard (what may await reclamation at once).
const REMOVE_BATCH: usize = 1_024;
/// Passes of one prune: up to 4 Mi entries removed per call.
const PRUNE_MAX_PASSES: usize = 64;

/// A value no theoretical arrival time reaches (that would be 584 years
/// after the limiter was built).
const RETIRED: u64 = u64::MAX;

impl Tat {
    fn new(nanos: Nanos) -> Self {
        Tat(AtomicU64::new(nanos.as_u64()))
    }

    /// Runs governor's decision `f` against this cell and stores its new
    /// state with a CAS, retrying on contention. `None` if the cell is
    /// retired (the caller must find or make the client's live cell).
    fn measure_and_replace<T, F, E>(&self, f: &F) -> Option<Result<T, E>>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            if prev == RETIRED {
                return None;
            }
            let (result, next) = match f(NonZeroU64::new(prev).map(|n| Nanos::new(n.get()))) {
                Ok(decision) => decision,
                Err(rejected) => return Some(Err(rejected)),
            };
            match self.0.compare_exchange_weak(
                prev,
                next.as_u64(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Ok(result)),
                Err(actual) => prev = actual,
            }
        }
    }

    /// Retires the cell if its state is at or before `drop_below` (a full
    /// bucket). True if the cell is retired (now or already).
    fn retire_if_older(&self, drop_below: u64) -> bool {
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            if prev == RETIRED {
                return true;
            }
            if prev > drop_below {
                return false;
            }
            match self
                .0
                .compare_exchange_weak(prev, RETIRED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => prev = actual,
            }
        }
    }

    fn is_retired(&self) -> bool {
        self.0.load(Ordering::Acquire) == RETIRED
    }
}

impl ClientStateStore {
    pub(super) fn new() -> Self {
        ClientStateStore { map: client_map() }
    }
}

impl StateStore for ClientStateStore {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let map = self.map.pin();
        // Each turn either decides (and returns) or lost a race with a
        // concurrent prune or insert of this very key, which made progress
        // instead. A retry rarely repeats: the cell it meets next was just
        // written, and a prune retires a cell only once its bucket is full.
        loop {
            if let Some(cell) = map.get(key) {
                match cell.measure_and_replace(&f) {
                    Some(decision) => return decision,
                    None => {
                        // Retired by a prune that has not removed it yet:
                        // help, then start over with a fresh cell.
                        let _ = map.remove_if(key, |_, cell| cell.is_retired());
                        continue;
                    }
                }
            }
            // A new client: decide against a fresh state and insert the
            // result, so the map never holds an undecided cell.
            let (result, next) = f(None)?;
            if map.try_insert(*key, Tat::new(next)).is_ok() {
                return Ok(result);
            }
            // Another request of this client inserted first: measure
            // against its cell.
        }
    }
}

impl ShrinkableKeyedStateStore<IpAddr> for ClientStateStore {
    /// Retires and removes every cell at or before `drop_below`, in chunks.
    ///
    /// Not papaya's `retain`: memory of removed entries is reclaimed only
    /// once the removing thread holds no guard, and `retain` holds one for
    /// the whole sweep, so pruning a million entries would keep them all
    /// (plus 32 bytes of reclamation bookkeeping each) alive until it ends,
    /// doubling the peak. Instead a pass collects up to [`PRUNE_CHUNK`] keys
    /// (retiring their cells as it goes) and drops its guard; the keys are
    /// then removed [`REMOVE_BATCH`] at a time, each batch under its own
    /// guard; passes repeat while the last one filled its chunk, at most
    /// [`PRUNE_MAX_PASSES`] times (anything left waits for the next prune).
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        let mut stale: Vec<IpAddr> = Vec::with_capacity(PRUNE_CHUNK.min(self.map.len()));
        for _ in 0..PRUNE_MAX_PASSES {
            {
                let map = self.map.pin();
                for (key, cell) in map.iter() {
                    if cell.retire_if_older(drop_below) {
                        stale.push(*key);
                        if stale.len() == PRUNE_CHUNK {
                            break;
                        }
                    }
                }
            }
            for batch in stale.chunks(REMOVE_BATCH) {
                let map = self.map.pin();
                for key in batch {
                    // A request may have replaced the retired cell with a
                    // fresh one already; that one stays.
                    let _ = map.remove_if(key, |_, cell| cell.is_retired());
                }
            }
            let more = stale.len() == PRUNE_CHUNK;
            stale.clear();
            if !more {
                break;
            }
        }
    }

    /// papaya shrinks its table itself (to half when a resize finds it at
    /// most 1/8 full), so there is nothing to do here.
    fn shrink_to_fit(&self) {}

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// One client's in-flight count for [`super::ConnLimiter`]. `CLOSED` marks a
/// cell whose count went to zero and is on its way out of the map.
pub(super) struct Count(AtomicU32);

/// The sentinel of a closed [`Count`]; counts are capped below it.
const CLOSED: u32 = u32::MAX;

/// What [`Count::acquire`] found.
pub(super) enum Acquired {
    /// Counted: the caller holds one more.
    Yes,
    /// The client is at its maximum.
    Full,
    /// The cell is closed; use or make the client's live cell.
    Closed,
}

impl Count {
    /// A cell counting one holder.
    pub(super) fn one() -> Self {
        Count(AtomicU32::new(1))
    }

    /// Adds one holder unless `max` are held or the cell is closed.
    pub(super) fn acquire(&self, max: u32) -> Acquired {
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            if prev == CLOSED {
                return Acquired::Closed;
            }
            if prev >= max {
                return Acquired::Full;
            }
            match self
                .0
                .compare_exchange_weak(prev, prev + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Acquired::Yes,
                Err(actual) => prev = actual,
            }
        }
    }

    /// Removes one holder; true if that was the last one and the cell is now
    /// closed (the caller removes it from the map).
    pub(super) fn release(&self) -> bool {
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            // A holder exists (the caller), so the cell is neither closed
            // nor at zero; stay put rather than wrap if that is ever broken.
            if prev == CLOSED || prev == 0 {
                return false;
            }
            let next = if prev == 1 { CLOSED } else { prev - 1 };
            match self
                .0
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == CLOSED,
                Err(actual) => prev = actual,
            }
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.0.load(Ordering::Acquire) == CLOSED
    }

    /// Current holders (0 for a closed cell).
    pub(super) fn held(&self) -> u32 {
        match self.0.load(Ordering::Acquire) {
            CLOSED => 0,
            n => n,
        }
    }
}

/// The largest usable maximum: one below the `CLOSED` sentinel.
pub(super) const MAX_COUNT: u32 = CLOSED - 1;

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// The decision governor makes for "always allow, one more ns".
    fn bump(prev: Option<Nanos>) -> Result<((), Nanos), ()> {
        Ok(((), Nanos::new(prev.map_or(0, Nanos::as_u64) + 1)))
    }

    #[test]
    fn a_retired_cell_is_replaced_not_updated() {
        let store = ClientStateStore::new();
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(store.measure_and_replace(&ip, bump), Ok(()));
        // Retire without removing: the state a prune leaves between its CAS
        // and its removal.
        let map = store.map.pin();
        let cell = map.get(&ip).map(|cell| cell.retire_if_older(u64::MAX));
        assert_eq!(cell, Some(true));
        drop(map);

        assert_eq!(store.measure_and_replace(&ip, bump), Ok(()));
        // The request started from a fresh state (1), not from the retired
        // one (1 → 2), and the retired cell is gone.
        let map = store.map.pin();
        assert_eq!(map.get(&ip).map(|c| c.0.load(Ordering::Relaxed)), Some(1));
        assert_eq!(map.len(), 1);
    }

    /// A request that looked its cell up just before a prune removed it
    /// must not count in the removed cell (the count would be lost).
    #[test]
    fn a_cell_removed_by_prune_refuses_updates() {
        let store = ClientStateStore::new();
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(store.measure_and_replace(&ip, bump), Ok(()));
        let map = store.map.pin();
        let Some(cell) = map.get(&ip) else {
            panic!("no cell after a request");
        };
        store.retain_recent(Nanos::new(1));
        assert!(map.get(&ip).is_none());
        assert!(cell.measure_and_replace(&bump).is_none());
    }

    #[test]
    fn retain_recent_drops_only_states_at_or_before_the_cut() {
        let store = ClientStateStore::new();
        let old = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let new = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        // old: state 1; new: state 3.
        assert_eq!(store.measure_and_replace(&old, bump), Ok(()));
        for _ in 0..3 {
            assert_eq!(store.measure_and_replace(&new, bump), Ok(()));
        }
        store.retain_recent(Nanos::new(2));
        assert_eq!(ShrinkableKeyedStateStore::len(&store), 1);
        assert!(store.map.pin().get(&new).is_some());
        store.retain_recent(Nanos::new(3));
        assert!(ShrinkableKeyedStateStore::is_empty(&store));
    }

    /// More stale entries than one pass collects: all go in one prune.
    #[test]
    fn retain_recent_removes_more_than_one_chunk() {
        let store = ClientStateStore::new();
        let n = PRUNE_CHUNK + PRUNE_CHUNK / 2;
        for i in 0..n {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + i as u32));
            assert_eq!(store.measure_and_replace(&ip, bump), Ok(()));
        }
        assert_eq!(ShrinkableKeyedStateStore::len(&store), n);
        store.retain_recent(Nanos::new(1));
        assert!(ShrinkableKeyedStateStore::is_empty(&store));
    }

    #[test]
    fn count_closes_at_zero_and_refuses_past_max() {
        let count = Count::one();
        assert!(matches!(count.acquire(2), Acquired::Yes));
        assert!(matches!(count.acquire(2), Acquired::Full));
        assert_eq!(count.held(), 2);
        assert!(!count.release());
        assert!(count.release());
        assert!(count.is_closed());
        assert!(matches!(count.acquire(2), Acquired::Closed));
        assert_eq!(count.held(), 0);
    }
}
