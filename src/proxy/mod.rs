//! The data plane. A request goes down one way, each step in its own
//! module, and no step calls back into one above it:
//!
//! 1. [`listener`]: accept, PROXY header, TLS handshake; builds the
//!    connection's context ([`conn::ConnCtx`]);
//! 2. [`service`]: one request: framing check, Host, route lookup in the
//!    loaded table, HTTPS redirect, misdirected-request guard;
//! 3. [`policy`]: a route's phases in order (plain routes skip it);
//! 4. [`forward`]: endpoint choice, pooled upstream connection, retries,
//!    timeouts;
//! 5. [`response`]: metrics, access log, HSTS, in-flight accounting.
//!
//! [`fastpath`] is the same way down for one common case (plain keep-alive
//! HTTP/1.1 `GET`s to plain routes), written byte to byte: the listener
//! starts plain connections on it, and it hands a connection to hyper (and
//! so to steps 2–5) at the first request it does not serve.
//!
//! Beside them: [`conn`] (the connection context every step reads, defined
//! below the listener so no step names the listener), [`body`], [`upload`]
//! (the bodies), [`tee`] (a request body copied to mirrors), [`error`]
//! (error → status), [`headers`], [`client_ip`],
//! [`framing`], [`h2_flood`] (HTTP/2 control-frame budget), [`record`]
//! (one request's metrics and access-log line, finished at the end of its
//! body), [`timing`] (what forwarding learns about the upstream exchange),
//! [`proxy_protocol`], [`passthrough`] (TLS passthrough: the ClientHello
//! peek and the splice, beside the listener), [`shared`] (what every connection
//! shares), [`bind`] (how listeners bind: `[::]` dual-stack).
//!
//! Invariant: this file only wires modules.

pub mod bind;
pub mod body;
pub mod client_ip;
pub mod conn;
pub mod error;
pub mod fastpath;
pub mod forward;
pub mod framing;
pub mod h2_flood;
pub mod headers;
pub mod listener;
pub mod passthrough;
pub mod policy;
pub mod proxy_protocol;
pub mod record;
pub mod response;
pub mod service;
pub mod shared;
pub mod tee;
pub mod timing;
pub mod upload;

pub use shared::{ProxySettings, ProxyState};
