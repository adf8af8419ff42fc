//! The HTTPS side of a connection, after its PROXY header: the TLS
//! handshake with its metric and log, the connection context it yields,
//! and, while some host is passed through, the ClientHello peek that
//! decides between terminating and splicing ([`super::super::passthrough`]).
//! The listener sequences these steps; nothing here serves HTTP.
//!
//! Invariants:
//! - The handshake (and the peek before it) must finish by the
//!   connection's deadline (`--client-header-timeout` from accept).
//! - A connection that is not passed through is terminated exactly as
//!   without passthrough: the bytes peeked are replayed to rustls first.
//! - A failed or timed-out peek counts as a failed handshake (`io`,
//!   `timeout`), as it would have without passthrough.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::tls::server::Acceptor as TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::super::conn::{Activity, ConnCtx};
use super::super::passthrough::{self, Peeked};
use super::super::shared::ProxyState;
use crate::lb::Upstream;

/// An HTTPS connection before its handshake.
pub(super) struct Handshake {
    pub(super) acceptor: TlsAcceptor,
    pub(super) deadline: tokio::time::Instant,
    pub(super) peer: SocketAddr,
    pub(super) state: Arc<ProxyState>,
}

impl Handshake {
    /// Completes the TLS handshake; `None` (counted and logged) when it
    /// fails or times out.
    pub(super) async fn accept<S>(&self, stream: S) -> Option<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let peer = self.peer;
        let handshake = tokio::time::timeout_at(self.deadline, self.acceptor.accept(stream)).await;
        self.state.metrics.handshake(match &handshake {
            Ok(Ok(_)) => "ok",
            Ok(Err(e)) => crate::tls::server::failure_reason(e),
            Err(_) => "timeout",
        });
        match handshake {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// The context of a terminated connection's requests.
    pub(super) fn into_context<S>(
        self,
        stream: &TlsStream<S>,
        local_port: u16,
        activity: Arc<Activity>,
    ) -> ConnCtx {
        let conn = stream.get_ref().1;
        let client = self
            .state
            .client_info(self.peer, local_port, "https", conn.server_name());
        let tls_version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
            Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
            Some(_) => Some("other"),
            None => None,
        };
        ConnCtx {
            state: self.state,
            client,
            peer: self.peer,
            activity,
            tls_version,
            client_cert: crate::tls::client_auth::PeerCert::of(conn.peer_certificates()),
        }
    }

    /// Reads the ClientHello; `None` (counted as a failed handshake) when
    /// the client fails, closes or is too slow.
    pub(super) async fn peek(&self, stream: &mut TcpStream) -> Option<Peeked> {
        let peer = self.peer;
        match tokio::time::timeout_at(self.deadline, passthrough::peek(stream)).await {
            Ok(Ok(peeked)) => Some(peeked),
            Ok(Err(e)) => {
                self.state.metrics.handshake("io");
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                None
            }
            Err(_) => {
                self.state.metrics.handshake("timeout");
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// The upstream a (normalized) SNI is passed through to, if any.
    pub(super) fn passthrough_to(&self, sni: Option<&str>) -> Option<Arc<Upstream>> {
        let published = self.state.published.load();
        let id = published.tls.passthrough(sni?)?;
        published.upstreams.get(id as usize).cloned()
    }

    /// Splices the connection to `upstream` until either side closes.
    pub(super) async fn splice<S>(&self, stream: S, upstream: &Upstream)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let timeout = self.state.settings.connect_timeout;
        passthrough::splice(stream, upstream, timeout, &self.state.metrics, self.peer).await;
    }
}
