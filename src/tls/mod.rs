//! TLS in one place: rustls configuration for both ends of the proxy.
//!
//! - [`server`]: termination on the HTTPS listener: the server
//!   configuration (versions, ALPN, session resumption), the certificate
//!   resolver over the published table, the default certificate, and the
//!   handshake failure reasons the metrics count.
//!
//! Invariants shared by both ends:
//! - One crypto provider (ring) and rustls's safe protocol versions only
//!   (TLS 1.2 and 1.3); no configuration is built per request.
//! - Certificates and keys come compiled in the published state or are
//!   generated at start-up; nothing here reads files or Secrets, and no
//!   private key is logged.
//! - Depends on the published state ([`crate::state`]) and never on the
//!   proxy or the publisher.

pub mod server;
