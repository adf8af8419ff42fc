//! TLS in one place: the client side towards upstreams ([`client`]).
//!
//! Invariants:
//! - rustls with the ring provider, TLS 1.2 and 1.3 only.
//! - Connectors and their configurations are built off the request path
//!   (when an upstream is published, or once per process); a connection
//!   only clones an `Arc`.

pub mod client;
