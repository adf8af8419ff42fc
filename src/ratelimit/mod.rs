//! Per-client limiters that the proxy consults on every request.
//!
//! The compiler turns limit annotations (`tollgate.dev/limit-rps`,
//! `nginx.ingress.kubernetes.io/limit-rps`, …) into plain, comparable specs
//! ([`RateSpec`], a connection maximum); the publisher builds one limiter per
//! Ingress from them and keeps it alive across recompiles while its spec is
//! equal; the request path only calls [`RequestLimiter::check`] and
//! [`ConnLimiter::acquire`].
//!
//! # What this module owns
//! - [`RequestLimiter`]: a request rate per client IP, GCRA (governor's
//!   algorithm and clock), with the per-client state in our own
//!   lock-free store (`store`).
//! - [`global`]: limits counted across replicas in a shared store
//!   (Redis), with the local limiter as their fallback.
//! - [`ConnLimiter`] / [`ConnPermit`]: concurrent in-flight requests (or
//!   connections) per client IP; the permit counts until it drops.
//!
//! # Invariants
//! - No lock on the request path: per-client state lives in a
//!   [`papaya::HashMap`] (lock-free reads, inserts and removals), not
//!   governor's default `DashMap` of sharded `RwLock`s; values are atomics
//!   updated in place with compare-and-swap. A known client costs one map
//!   lookup and one CAS and allocates nothing; a new client allocates its
//!   entry once. papaya waits only on its table-resize path, never per
//!   request. `prune` runs on the control plane.
//! - Removal never loses an update. An entry is first *retired* by one CAS
//!   (to a sentinel no live state can hold), then removed from the map; a
//!   request that meets a retired entry helps remove it and starts a fresh
//!   one. So a check that raced with a prune either counted in the live entry
//!   (and the entry was not retired) or counted in a fresh one.
//! - Client keys are canonical: an IPv4-mapped IPv6 address
//!   (`::ffff:a.b.c.d`, what a dual-stack listener reports) is the IPv4
//!   address ([`std::net::IpAddr::to_canonical`]).
//! - Memory is bounded by recent clients, not by all clients ever seen:
//!   - [`RequestLimiter`]: a client that has used `n ≤ burst` requests of
//!     its bucket, the last at time `t`, is full again at `t + n × interval`
//!     (interval = `per / requests`), and [`RequestLimiter::prune`] drops it
//!     from `t + (n + 1) × interval` on (governor's conservative cut-off).
//!     So entries ≤ distinct clients seen within the last
//!     `(burst + 1) / rate + prune period` (one-request clients: within
//!     `2 × interval + prune period`). Entries are freed by `prune`.
//!   - [`ConnLimiter`]: an entry exists exactly while its client holds at
//!     least one permit (the last drop removes it); no pruning needed.
//! - Time is injectable: [`RequestLimiter`] is generic over governor's
//!   [`Clock`](governor::clock::Clock) (default: quanta's
//!   [`DefaultClock`](governor::clock::DefaultClock)), and the tests use
//!   [`FakeRelativeClock`](governor::clock::FakeRelativeClock).
//! - Client addresses are chosen by clients, so the maps use foldhash with a
//!   per-map random seed (as the rest of tollgate does), not a fixed-seed
//!   hash whose collisions could be precomputed.
//!
//! # Must never
//! Take a lock or format a string per request, or keep state for a client
//! whose state is indistinguishable from a fresh one past the next prune.
//!
//! Measured costs (prune time, bytes per entry) are in `docs/benchmarks.md`
//! ("Rate limits").

mod conn;
pub mod global;
mod request;
mod spec;
mod store;

#[cfg(test)]
mod tests;

pub use conn::{ConnLimiter, ConnPermit};
pub use request::RequestLimiter;
pub use spec::RateSpec;
