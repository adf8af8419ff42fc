//! Interned strings: one shared allocation per distinct name the control
//! plane holds (namespaces, object names, Service names, hosts), however
//! many caches, keys, routes and metric labels refer to it.
//!
//! Invariants:
//! - [`intern`] returns an `Arc<str>` equal to its argument; two calls with
//!   equal strings return the same allocation while either result lives.
//! - The pool holds each string once; it forgets strings nobody else holds
//!   any more in a sweep that runs when the pool has doubled since the last
//!   one, so its size stays within twice the live distinct strings (plus a
//!   small floor) and a sweep's cost is amortised over the inserts that
//!   grew it.
//! - Control plane only: the pool is behind a mutex. Nothing on the
//!   request path calls [`intern`]; it reads the `Arc<str>`s handed to it.
//! - A poisoned lock is taken as it is: the pool is a cache, and every
//!   state it can be left in is valid.

// The one lock in `src/`: `clippy.toml` bans locks to keep them off the
// request path, and this pool is control plane only (see above).
#![allow(clippy::disallowed_types)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// The pool never sweeps below this many strings.
const SWEEP_FLOOR: usize = 1024;

struct Pool {
    strings: HashSet<Arc<str>>,
    /// Sweep when the pool reaches this size.
    sweep_at: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// The shared copy of `s`.
pub fn intern(s: &str) -> Arc<str> {
    let mut guard = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let pool = guard.get_or_insert_with(|| Pool {
        strings: HashSet::new(),
        sweep_at: SWEEP_FLOOR,
    });
    if let Some(shared) = pool.strings.get(s) {
        return shared.clone();
    }
    let shared: Arc<str> = Arc::from(s);
    pool.strings.insert(shared.clone());
    if pool.strings.len() >= pool.sweep_at {
        pool.strings.retain(|s| Arc::strong_count(s) > 1);
        pool.sweep_at = (pool.strings.len() * 2).max(SWEEP_FLOOR);
    }
    shared
}

/// How many distinct strings the pool holds (live or not yet swept).
pub fn pooled() -> usize {
    POOL.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map_or(0, |p| p.strings.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation() {
        let a = intern("intern-test-shared");
        let b = intern(&String::from("intern-test-shared"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "intern-test-shared");
        let c = intern("intern-test-other");
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn strings_nobody_holds_are_swept() {
        // Fill past the floor with strings dropped at once: the pool must
        // not keep them all.
        for i in 0..(SWEEP_FLOOR * 4) {
            drop(intern(&format!("intern-test-dropped-{i}")));
        }
        let kept = intern("intern-test-kept");
        for i in 0..(SWEEP_FLOOR * 4) {
            drop(intern(&format!("intern-test-dropped-again-{i}")));
        }
        assert!(pooled() < SWEEP_FLOOR * 3, "pool kept {}", pooled());
        // A string still held survives every sweep and is still shared.
        assert!(Arc::ptr_eq(&kept, &intern("intern-test-kept")));
    }
}
