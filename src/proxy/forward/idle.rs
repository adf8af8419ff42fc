//! Idle keep-alive connections per endpoint: the stacks both upstream
//! pools keep (hyper's senders in [`super::pool`], the HTTP/1.1 fast
//! path's plain streams in [`crate::proxy::fastpath::upstream`]), generic
//! over the connection.
//!
//! Invariants:
//! - Keyed by endpoint id only; a plain value, kept per worker thread by
//!   its owner (no lock, no atomic).
//! - At most [`MAX_IDLE_PER_ENDPOINT`] idle connections per endpoint; the
//!   most recently used is taken first; a connection idle longer than the
//!   caller's limit, or that the caller finds unusable, is dropped when met
//!   (at checkout or by [`IdleStacks::sweep`]).

use std::collections::HashMap;
use std::time::Duration;

use crate::lb::clock;

/// Most idle keep-alive connections kept per endpoint (per worker).
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

#[derive(Debug)]
struct Idle<C> {
    conn: C,
    since_ms: u64,
}

/// Idle connections by endpoint id (see the module invariants).
#[derive(Debug)]
pub struct IdleStacks<C> {
    map: HashMap<u64, Vec<Idle<C>>, foldhash::fast::RandomState>,
}

impl<C> Default for IdleStacks<C> {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<C> IdleStacks<C> {
    /// The most recently used connection to endpoint `id` that has been
    /// idle no longer than `max_idle` and that `usable` accepts; the ones
    /// met on the way are dropped.
    pub fn take(
        &mut self,
        id: u64,
        max_idle: Duration,
        mut usable: impl FnMut(&mut C) -> bool,
    ) -> Option<C> {
        let max_idle_ms = millis(max_idle);
        let conns = self.map.get_mut(&id)?;
        let mut now = None;
        while let Some(mut c) = conns.pop() {
            let now = *now.get_or_insert_with(clock::now_ms);
            if now.saturating_sub(c.since_ms) <= max_idle_ms && usable(&mut c.conn) {
                return Some(c.conn);
            }
        }
        None
    }

    /// Keeps `conn` for endpoint `id` (dropped when the stack is full).
    pub fn put(&mut self, id: u64, conn: C) {
        let conns = self.map.entry(id).or_default();
        if conns.len() < MAX_IDLE_PER_ENDPOINT {
            conns.push(Idle {
                conn,
                since_ms: clock::now_ms(),
            });
        }
    }

    /// Drops the connections idle longer than `max_idle` or that `open`
    /// says are closed, and the endpoints left with none.
    pub fn sweep(&mut self, max_idle: Duration, open: impl Fn(&C) -> bool) {
        let max_idle_ms = millis(max_idle);
        let now = clock::now_ms();
        self.map.retain(|_, conns| {
            conns.retain(|c| open(&c.conn) && now.saturating_sub(c.since_ms) <= max_idle_ms);
            !conns.is_empty()
        });
    }

    /// Idle connections of endpoint `id`.
    pub fn len(&self, id: u64) -> usize {
        self.map.get(&id).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_first_unusable_and_expired_dropped() {
        let mut stacks = IdleStacks::default();
        stacks.put(1, "a");
        stacks.put(1, "b");
        stacks.put(1, "c");
        stacks.put(2, "x");
        assert_eq!(stacks.len(1), 3);
        // "c" is unusable: dropped on the way to "b".
        assert_eq!(
            stacks.take(1, Duration::from_secs(60), |c| *c != "c"),
            Some("b")
        );
        assert_eq!(stacks.len(1), 1);
        stacks.sweep(Duration::from_secs(60), |c| *c != "x");
        assert_eq!((stacks.len(1), stacks.len(2)), (1, 0));
        for _ in 0..MAX_IDLE_PER_ENDPOINT + 5 {
            stacks.put(3, "y");
        }
        assert_eq!(stacks.len(3), MAX_IDLE_PER_ENDPOINT);
    }
}
