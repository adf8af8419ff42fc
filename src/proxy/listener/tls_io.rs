//! The IO of a terminated HTTPS connection as hyper sees it: tokio-rustls's
//! server stream, read one TLS read at a time.
//!
//! tokio-rustls's `poll_read` fills the caller's buffer in a loop: after the
//! records one socket read brought, it tries the socket again, which on a
//! keep-alive connection (one request per read) only yields `WouldBlock`,
//! built and dropped as an `io::Error`, a readiness check and a rustls
//! deframer pass per request. [`TlsIo`] reads the socket at most once per
//! `poll_read` and then copies only the plaintext rustls already holds.
//!
//! A read that finds nothing (hyper polls the connection again after each
//! response, and whenever the task wakes) is answered from the socket's
//! readiness ([`ReadReady`]) without entering tokio-rustls: its way there
//! costs a rustls deframer-buffer preparation, a socket attempt through
//! its `io::Read` adapter and a `WouldBlock` error built and dropped.
//!
//! Invariants:
//! - The bytes delivered, their order, EOF and errors are exactly
//!   tokio-rustls's: the first fill is its own `poll_fill_buf`; the drain
//!   that follows runs only while rustls does not want to read, so it never
//!   touches the socket (nothing there can fail or block).
//! - A read returns `Pending` early only when rustls holds no plaintext and
//!   wants to read (so tokio-rustls would read the socket) and the socket
//!   is not readable (so that read would only yield `WouldBlock`, after
//!   which tokio-rustls returns `Pending`): the waker is registered the same
//!   way, on the same socket readiness, with the same cooperative budget.
//!   A socket at EOF or with an error is readable, and a connection that
//!   received `close_notify` does not want to read, so EOF and errors
//!   (a stored rustls error included) still come from tokio-rustls.
//! - Writes, flushes and shutdown go to tokio-rustls unchanged.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::super::passthrough::Rewind;

/// A terminated TLS connection (see the module doc).
pub(super) struct TlsIo<S>(pub(super) TlsStream<S>);

/// A transport that tells, without reading, whether a read would block.
pub(super) trait ReadReady {
    /// `Pending` (the waker registered for read readiness) when a read
    /// would only yield `WouldBlock`; `Ready` when it may yield bytes, EOF
    /// or an error, or when the transport cannot tell.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()>;
}

impl ReadReady for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        // An error is `Ready`: the read that follows reports it.
        TcpStream::poll_read_ready(self, cx).map(|_| ())
    }
}

impl<S> ReadReady for Rewind<S> {
    /// Cannot tell (replayed bytes may be left): always read.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

impl<S: AsyncRead + AsyncWrite + ReadReady + Unpin> AsyncRead for TlsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &mut self.0;
        let (io, conn) = stream.get_ref();
        if conn.wants_read() && io.poll_read_ready(cx).is_pending() {
            return Poll::Pending;
        }
        let data = ready!(Pin::new(&mut *stream).poll_fill_buf(cx))?;
        let len = data.len().min(buf.remaining());
        if len == 0 {
            return Poll::Ready(Ok(()));
        }
        buf.put_slice(data.get(..len).unwrap_or_default());
        Pin::new(&mut *stream).consume(len);
        // Plaintext of further records the same socket read brought: rustls
        // wants to read only once it has none left.
        while buf.remaining() > 0 && !stream.get_ref().1.wants_read() {
            let data = match Pin::new(&mut *stream).poll_fill_buf(cx) {
                Poll::Ready(Ok(data)) if !data.is_empty() => data,
                _ => break,
            };
            let len = data.len().min(buf.remaining());
            buf.put_slice(data.get(..len).unwrap_or_default());
            Pin::new(&mut *stream).consume(len);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
