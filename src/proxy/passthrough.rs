//! TLS passthrough on the HTTPS listener (`ssl-passthrough`, with
//! `--enable-ssl-passthrough`): the ClientHello's SNI decides whether a
//! connection is terminated as usual or spliced, untouched, to the
//! upstream of a passthrough host. The listener calls [`peek`], then
//! either [`splice`]s or hands the [`Rewind`] stream to its handshake.
//!
//! Invariants:
//! - Used only while the published table has a passthrough host; without
//!   one the listener handshakes directly (no peek, no replay).
//! - The ClientHello is parsed by rustls's own `Acceptor`: no parser of
//!   ours reads untrusted bytes. Every byte read while peeking is kept and
//!   replayed ([`Rewind`]) to the backend or to the TLS handshake, so
//!   either sees the stream exactly as the client sent it.
//! - The peek reads at most [`MAX_PEEK`] bytes, within the listener's
//!   `--client-header-timeout` from accept (slowloris). A ClientHello that
//!   does not parse, is larger than that, has no SNI or an SNI that is not
//!   passed through is terminated as before (rustls reports its own
//!   failure).
//! - The backend gets the client's bytes and nothing else (no PROXY
//!   header, no TLS of ours). A spliced connection lasts until either side
//!   closes (as ingress-nginx's passthrough proxy: no idle timeout; the
//!   backend's TLS server has its own), and a configuration swap never
//!   touches it: it holds its upstream, not the table.
//! - Endpoints are picked by the upstream's own picker, with its passive
//!   health; a failed connect tries another endpoint, [`CONNECT_TRIES`] in
//!   all.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::lb::{Endpoint, Upstream};
use crate::metrics::Metrics;
use crate::table::upstream::EndpointAddr;

/// Most ClientHello bytes read before deciding: a ClientHello with
/// post-quantum key shares is about 2 KiB; rustls itself accepts up to
/// 64 KiB, and a larger one is left to it (terminated).
pub const MAX_PEEK: usize = 16 * 1024;
/// Connection attempts to distinct endpoints before giving up.
pub const CONNECT_TRIES: usize = 3;
/// Indexes of [`crate::metrics::PASSTHROUGH_RESULTS`].
const SPLICED: usize = 0;
const NO_ENDPOINTS: usize = 1;
const CONNECT_FAILED: usize = 2;

/// What a peek learned: the bytes read, and the normalized SNI when the
/// ClientHello parsed and had one.
#[derive(Debug)]
pub struct Peeked {
    pub hello: Vec<u8>,
    pub sni: Option<String>,
}

/// Feeds `fresh` to the acceptor; `false` when it refuses bytes.
fn feed(acceptor: &mut Acceptor, mut fresh: &[u8]) -> bool {
    while !fresh.is_empty() {
        match acceptor.read_tls(&mut fresh) {
            Ok(n) if n > 0 => {}
            _ => return false,
        }
    }
    true
}

/// Reads the client's first bytes until rustls has its ClientHello (or
/// gives up on it); every byte read is in [`Peeked::hello`]. An error is
/// the client's connection failing or closing; the caller bounds the time.
pub async fn peek<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Peeked> {
    let mut acceptor = Acceptor::default();
    let mut hello = Vec::with_capacity(2048);
    let sni = loop {
        let room = MAX_PEEK.saturating_sub(hello.len());
        if room == 0 {
            break None;
        }
        let start = hello.len();
        let n = (&mut *stream)
            .take(room as u64)
            .read_buf(&mut hello)
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if !feed(&mut acceptor, hello.get(start..).unwrap_or_default()) {
            break None;
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                let mut buf = [0u8; crate::table::host::MAX_HOST_LEN + 2];
                break accepted
                    .client_hello()
                    .server_name()
                    .and_then(|name| crate::table::host::normalize(name, &mut buf))
                    .map(str::to_owned);
            }
            // The handshake that follows fails the same way, with the
            // alert and the metric of any failed handshake.
            Err(_) => break None,
        }
    };
    Ok(Peeked { hello, sni })
}

/// Connects to `addr` within `timeout`.
async fn connect(addr: &EndpointAddr, timeout: Duration) -> io::Result<TcpStream> {
    let connecting = async {
        match addr {
            EndpointAddr::Socket(a) => TcpStream::connect(*a).await,
            EndpointAddr::Dns { host, port } => TcpStream::connect((&**host, *port)).await,
        }
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Splices `client` (the replayed ClientHello first) to an endpoint of
/// `upstream` until either side closes.
pub async fn splice<S>(
    mut client: S,
    upstream: &Upstream,
    connect_timeout: Duration,
    metrics: &Metrics,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let count = |result: usize| {
        if let Some(counter) = metrics.tls_passthrough.get(result) {
            counter.inc();
        }
    };
    // A full `Arc`, not a guard: the set is held across awaits.
    let set = arc_swap::Guard::into_inner(upstream.endpoints());
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let (mut backend, endpoint) = loop {
        let exclude: Vec<&Endpoint> = tried.iter().map(|e| &**e).collect();
        let Some(endpoint) = upstream.pick(&set, &exclude) else {
            count(if tried.is_empty() {
                NO_ENDPOINTS
            } else {
                CONNECT_FAILED
            });
            tracing::debug!(%peer, upstream = %upstream.label, "TLS passthrough: no endpoint to connect to");
            return;
        };
        drop(exclude);
        match connect(&endpoint.addr, connect_timeout).await {
            Ok(stream) => {
                endpoint.mark_ok();
                break (stream, endpoint);
            }
            Err(error) => {
                tracing::debug!(%peer, endpoint = %endpoint.addr, %error, "TLS passthrough: connect failed");
                endpoint.mark_failed();
                upstream.connect_errors.inc();
                tried.push(endpoint);
                if tried.len() >= CONNECT_TRIES {
                    count(CONNECT_FAILED);
                    return;
                }
            }
        }
    };
    drop(set);
    count(SPLICED);
    let _ = backend.set_nodelay(true);
    let _inflight = endpoint.start_request();
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => tracing::debug!(%peer, up, down, "TLS passthrough connection closed"),
        Err(error) => tracing::debug!(%peer, %error, "TLS passthrough connection ended"),
    }
}

/// A stream that first replays bytes already read from it.
#[derive(Debug)]
pub struct Rewind<S> {
    replay: Vec<u8>,
    replayed: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(replay: Vec<u8>, inner: S) -> Self {
        Self {
            replay,
            replayed: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let rest = this.replay.get(this.replayed..).unwrap_or_default();
        if rest.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(rest.get(..n).unwrap_or_default());
        this.replayed += n;
        if this.replayed >= this.replay.len() {
            // Replayed: free the buffer for the life of the connection.
            this.replay = Vec::new();
            this.replayed = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
