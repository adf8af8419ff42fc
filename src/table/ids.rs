//! The indexes that tie the compiled table to what is published beside it.
//!
//! Invariant: an id is an index into a vector built with the same table
//! (routes, upstreams, per-route metrics and limiters); readers still look
//! it up with `get`, never with panicking indexing.

/// Index of a route in the routing table's route list.
pub type RouteId = u32;
/// Index of an upstream in the compiled upstream list.
pub type UpstreamId = u32;
