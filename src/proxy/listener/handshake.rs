//! The HTTPS side of a connection, after its PROXY header: the TLS
//! handshake, and before it, while some host is passed through, the
//! ClientHello peek that decides between terminating and splicing
//! ([`super::super::passthrough`]).
//!
//! Invariants:
//! - The handshake (and the peek before it) must finish by the
//!   connection's deadline (`--client-header-timeout` from accept).
//! - A connection that is not passed through is terminated exactly as
//!   without passthrough: the bytes peeked are replayed to rustls first.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::super::conn::{Activity, ConnCtx};
use super::super::passthrough;
use super::super::shared::ProxyState;
use super::{serve_connection, ConnGuard};

/// An HTTPS connection before its handshake.
pub(super) struct Handshake {
    pub(super) acceptor: TlsAcceptor,
    pub(super) deadline: tokio::time::Instant,
    pub(super) peer: SocketAddr,
    pub(super) local_port: u16,
    pub(super) state: Arc<ProxyState>,
    pub(super) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(super) activity: Arc<Activity>,
    pub(super) guard: ConnGuard,
    pub(super) h2_budget: u32,
}

impl Handshake {
    /// Some host is passed through: reads the ClientHello first, then
    /// splices the connection of a passthrough host to its upstream, and
    /// terminates any other (see [`passthrough`]).
    pub(super) async fn peek_first(self, mut stream: TcpStream) {
        let peeked = tokio::time::timeout_at(self.deadline, passthrough::peek(&mut stream)).await;
        let peeked = match peeked {
            Ok(Ok(peeked)) => peeked,
            Ok(Err(e)) => {
                self.state.metrics.handshake("io");
                tracing::debug!(error = %e, peer = %self.peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                self.state.metrics.handshake("timeout");
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                return;
            }
        };
        let upstream = peeked.sni.as_deref().and_then(|sni| {
            let published = self.state.published.load();
            let id = published.tls.passthrough(sni)?;
            published.upstreams.get(id as usize).cloned()
        });
        let stream = passthrough::Rewind::new(peeked.hello, stream);
        let Some(upstream) = upstream else {
            return self.terminate(stream).await;
        };
        let Handshake {
            state,
            peer,
            guard,
            activity,
            ..
        } = self;
        // No HTTP timeouts apply to a spliced connection: let the
        // watchdog forget it (the guard keeps it counted for drain).
        drop(activity);
        let timeout = state.settings.connect_timeout;
        passthrough::splice(stream, &upstream, timeout, &state.metrics, peer).await;
        drop(guard);
    }

    /// Completes the TLS handshake and serves HTTP.
    pub(super) async fn terminate<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Handshake {
            acceptor,
            deadline,
            peer,
            local_port,
            state,
            builder,
            activity,
            guard,
            h2_budget,
        } = self;
        let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream)).await;
        state.metrics.handshake(match &handshake {
            Ok(Ok(_)) => "ok",
            Ok(Err(e)) => crate::tls::server::failure_reason(e),
            Err(_) => "timeout",
        });
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let sni = stream.get_ref().1.server_name().map(str::to_owned);
        let client = state.client_info(peer, local_port, "https", sni.as_deref());
        let tls_version = match stream.get_ref().1.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
            Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
            Some(_) => Some("other"),
            None => None,
        };
        let ctx = ConnCtx {
            state,
            client,
            peer,
            activity,
            tls_version,
        };
        serve_connection(stream, ctx, builder, guard, h2_budget).await;
    }
}
