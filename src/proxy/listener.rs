//! Listeners and client connections.
//!
//! Invariants:
//! - One task per connection; HTTP/1.1 (with upgrades) and h2c prior
//!   knowledge on the same port (hyper-util's auto builder).
//! - Idle keep-alive connections close after `--idle-timeout`: a connection
//!   is idle when no request is in flight and no byte moved for that long.
//!   hyper's header-read timeout guards slow request heads (slowloris).
//! - On drain, the accept loop stops (new connections are refused once the
//!   listener is dropped) and every connection gets a graceful shutdown:
//!   in-flight requests finish, then the connection closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use super::headers::ClientInfo;
use super::ProxyState;

/// Settings of client connections.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
}

/// What a request handler knows about its connection.
#[derive(Debug)]
pub struct ConnCtx {
    pub state: Arc<ProxyState>,
    pub client: ClientInfo,
    pub peer: SocketAddr,
    pub activity: Arc<Activity>,
}

/// Activity of one client connection, read by its idle watchdog.
#[derive(Debug, Default)]
pub struct Activity {
    /// Bumped by reads and writes (a plain store from the IO wrapper).
    io_events: AtomicU64,
    /// Requests whose response has not finished.
    active: AtomicU32,
}

/// One request in progress on a connection; dropping it ends it.
#[derive(Debug)]
pub struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    pub fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }
}

/// Counts open connections so shutdown can wait for them.
#[derive(Debug, Default)]
pub struct ConnTracker {
    open: AtomicUsize,
    closed: Notify,
}

impl ConnTracker {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until every connection has closed.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct ConnGuard {
    tracker: Arc<ConnTracker>,
    state: Arc<ProxyState>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.state.metrics.open_connections.dec();
        if self.tracker.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tracker.closed.notify_waiters();
        }
    }
}

/// An IO wrapper that records activity for the idle watchdog.
struct TrackedIo<T> {
    inner: T,
    events: u64,
    activity: Arc<Activity>,
}

impl<T> TrackedIo<T> {
    fn bump(&mut self) {
        self.events = self.events.wrapping_add(1);
        self.activity.io_events.store(self.events, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.bump();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.bump();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.bump();
        }
        polled
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

fn builder(settings: &ConnSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
    builder
}

/// Accepts connections until `drain` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ProxyState>,
    settings: ConnSettings,
    proto: &'static str,
    tracker: Arc<ConnTracker>,
    mut drain: watch::Receiver<bool>,
) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let builder = Arc::new(builder(&settings));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = drain.wait_for(|d| *d) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tracker.open.fetch_add(1, Ordering::AcqRel);
        state.metrics.open_connections.inc();
        let guard = ConnGuard { tracker: tracker.clone(), state: state.clone() };
        let client = state.client_info(peer, local_port, proto);
        let ctx = ConnCtx { state: state.clone(), client, peer, activity: Arc::default() };
        tokio::spawn(serve_connection(stream, ctx, builder.clone(), settings.idle_timeout, drain.clone(), guard));
    }
}

async fn serve_connection(
    stream: TcpStream,
    ctx: ConnCtx,
    builder: Arc<auto::Builder<TokioExecutor>>,
    idle_timeout: Duration,
    mut drain: watch::Receiver<bool>,
    _guard: ConnGuard,
) {
    let _ = stream.set_nodelay(true);
    let activity = ctx.activity.clone();
    let peer = ctx.peer;
    let ctx = Arc::new(ctx);
    let io = TokioIo::new(TrackedIo { inner: stream, events: 0, activity: activity.clone() });
    let service = service_fn(move |req| super::handle(ctx.clone(), req));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);

    let period = (idle_timeout / 2).max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last_events = u64::MAX;
    let mut quiet_ticks = 0u32;
    let mut shutting_down = *drain.borrow();
    if shutting_down {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, peer = %peer, "client connection ended with an error");
                }
                break;
            }
            _ = drain.wait_for(|d| *d), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = ticker.tick(), if !shutting_down => {
                let events = activity.io_events.load(Ordering::Relaxed);
                if events == last_events && activity.active.load(Ordering::Relaxed) == 0 {
                    quiet_ticks += 1;
                    if quiet_ticks >= 2 {
                        shutting_down = true;
                        conn.as_mut().graceful_shutdown();
                    }
                } else {
                    last_events = events;
                    quiet_ticks = 0;
                }
            }
        }
    }
}
