//! TLS in one place: rustls configuration for both ends of the proxy.
//!
//! - [`server`]: termination on the HTTPS listener: the server
//!   configuration (versions, ALPN, session resumption), the certificate
//!   resolver over the published table, the default certificate, and the
//!   handshake failure reasons the metrics count.
//! - [`client_auth`]: client certificates (`auth-tls-*`): requested in
//!   the handshake of the hosts that want them, verified per request
//!   against the route's CAs.
//! - [`client`]: connections to upstreams: verified against configured CAs,
//!   not verified, or blocked (verification required but impossible).
//!
//! Invariants shared by both ends:
//! - One crypto provider (ring) and rustls's safe protocol versions only
//!   (TLS 1.2 and 1.3); no configuration is built per request: connectors
//!   are built when an upstream is published (or once per process), and a
//!   connection only clones an `Arc`.
//! - Certificates and keys come compiled in the published state or are
//!   generated at start-up; nothing here reads files or Secrets, and no
//!   private key is logged.
//! - Depends on the published state ([`crate::state`]) and never on the
//!   proxy or the publisher.

pub mod client;
pub mod client_auth;
pub mod server;
