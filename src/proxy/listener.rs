//! Listeners and client connections: the accept loop, its watchdog and
//! each connection's task. The context a connection hands its requests
//! lives in [`super::conn`]; the listener builds it and calls the service,
//! and nothing below imports the listener.
//!
//! Invariants:
//! - One task per connection; HTTP/1.1 (with upgrades) and h2c prior
//!   knowledge on the same port (hyper-util's auto builder).
//! - Idle keep-alive connections close after `--idle-timeout`: a connection
//!   is idle when no request is in flight and no byte moved for that long.
//!   hyper's header-read timeout guards slow request heads (slowloris).
//! - With `--proxy-protocol`, a connection first yields its PROXY protocol
//!   header (see [`super::proxy_protocol`]); its source address is the
//!   connection's peer from then on. The header, the TLS handshake and the
//!   first request head share one `--client-header-timeout` from accept.
//! - HTTP/2 limits (see [`builder`]): concurrent streams
//!   (`--http2-max-concurrent-streams`), the header list
//!   (`--max-header-bytes`), resets (rapid reset, MadeYouReset), send
//!   buffers; h2 itself bounds CONTINUATION chains and empty DATA frames,
//!   and [`super::h2_flood`] bounds control frames
//!   (`--http2-max-control-frames` per second, counted per watchdog
//!   period).
//! - Every HTTP/1 response carries a `Server` header, hyper's own answers
//!   to heads its parser refuses included: the IO wrapper recognises them
//!   exactly ([`hyper_answer`]) and adds `server: tollgate` after the
//!   status line (hyper has no hook for them).
//! - With a passthrough host published, an HTTPS connection's ClientHello
//!   is read first ([`super::passthrough`]): a passthrough host's
//!   connection is spliced to its backend, any other is terminated from
//!   the replayed bytes. The peek shares the handshake's deadline.
//! - With `--http1-fast-path`, a connection is first served by
//!   [`super::fastpath`]; hyper serves it from the first request the fast
//!   path hands over (with the bytes already read, replayed), to its end.
//! - A terminated connection's reads go through [`tls_io::TlsIo`]: at most
//!   one socket read per `poll_read` (tokio-rustls tries a second one).
//! - On drain, the accept loop stops (new connections are refused once the
//!   listener is dropped) and every connection gets a graceful shutdown:
//!   in-flight requests finish, then the connection closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use super::conn::{Activity, ConnCtx, CLOSE, GRACEFUL};
use super::fastpath;
use super::framing::FramingCheck;
use super::h2_flood::{FrameScan, POISON};
use super::passthrough;
use super::proxy_protocol;
use super::shared::{ProxyState, H1_BUFFER_FLOOR};
use crate::metrics::BadRequest;
use handshake::Handshake;

mod handshake;
mod tls_io;
use crate::tls::server::Acceptor as TlsAcceptor;
use tls_io::TlsIo;

/// Settings of client connections.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    /// Every connection starts with a PROXY protocol header (v1 or v2).
    pub proxy_protocol: bool,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of HTTP/2 connections.
    pub http2_max_concurrent_streams: u32,
    /// Control frames (SETTINGS, PING, PRIORITY, RST_STREAM, unknown
    /// types) an HTTP/2 client may send per second; 0: no limit.
    pub http2_max_control_frames: u32,
    /// `--http1-fast-path`: plain HTTP connections start on
    /// [`super::fastpath`].
    pub http1_fast_path: bool,
}

/// Resets of streams h2 has not handed to hyper yet, before GOAWAY
/// `ENHANCE_YOUR_CALM` (rapid reset, CVE-2023-44487): h2's default, made
/// explicit.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams a connection may make h2 reset (stream errors the client
/// provoked: MadeYouReset, CVE-2025-8671) over its life, before GOAWAY
/// `ENHANCE_YOUR_CALM`. hyper's default is 1024; a well-behaved client
/// provokes none.
const MAX_LOCAL_ERROR_RESETS: usize = 128;
/// Response bytes h2 buffers per stream for a client that does not read
/// (hyper's default is 400 KiB: 100 MiB over 256 streams of one
/// connection); 128 KiB is several round trips of a 1 MiB window's worth
/// of writes on a fast link.
const MAX_SEND_BUF: usize = 128 * 1024;

/// The accept loop's view of one connection, for its timeouts.
struct Watched {
    activity: Arc<Activity>,
    last_events: u64,
    idle_for: Duration,
    head_for: Duration,
}

impl Watched {
    fn new(activity: Arc<Activity>) -> Self {
        Self {
            activity,
            last_events: 0,
            idle_for: Duration::ZERO,
            head_for: Duration::ZERO,
        }
    }

    /// One watchdog tick of `period`: asks the connection to close when a
    /// timeout is exceeded.
    fn tick(&mut self, period: Duration, settings: &ConnSettings) {
        let a = &self.activity;
        // The HTTP/2 control-frame budget is per period.
        a.control_frames.store(0, Ordering::Relaxed);
        if a.head_pending() {
            self.head_for += period;
            if self.head_for >= settings.header_timeout {
                // A request head that never completes: close, no grace.
                a.signal(CLOSE);
            }
        } else {
            self.head_for = Duration::ZERO;
        }
        let events = a.io_events.load(Ordering::Relaxed);
        if events == self.last_events && a.active.load(Ordering::Relaxed) == 0 {
            self.idle_for += period;
            if self.idle_for >= settings.idle_timeout {
                a.signal(GRACEFUL);
            }
        } else {
            self.last_events = events;
            self.idle_for = Duration::ZERO;
        }
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

/// An IO wrapper that records activity for the connection's watchdog.
struct TrackedIo<T> {
    inner: T,
    events: u64,
    reads: u64,
    activity: Arc<Activity>,
    framing: FramingCheck,
    /// HTTP/2 connections only: the control-frame flood guard, and its
    /// budget per watchdog period.
    h2: Option<FrameScan>,
    h2_budget: u32,
    /// The flood guard cut the stream: reads end here.
    cut: bool,
    /// Bytes of [`SERVER_LINE`] written into hyper's own answer so far
    /// (see [`hyper_answer`]); `None` when not injecting.
    inject: Option<usize>,
}

/// The header line added to the answers hyper writes itself.
const SERVER_LINE: &[u8] = b"server: tollgate\r\n";

/// Whether `buf` is hyper's own answer to a request head its parser
/// refused (400, 414, 431: a status line, then exactly `connection: close`,
/// `content-length: 0` and `date`, nothing else), which no service hook
/// can decorate; returns the status line's length. A response from the
/// service always carries a `Server` header, so it never matches.
fn hyper_answer(buf: &[u8]) -> Option<usize> {
    const AFTER: &[u8] = b"connection: close\r\ncontent-length: 0\r\ndate: ";
    if buf.len() > 160 || !buf.starts_with(b"HTTP/1.1 4") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let line = buf.windows(2).position(|w| w == b"\r\n")? + 2;
    buf.get(line..)?.starts_with(AFTER).then_some(line)
}

/// Feeds client bytes to the connection's framing check, publishing the
/// first bad head to its activity (for the service to answer 400).
fn check_framing(framing: &mut FramingCheck, activity: &Activity, fresh: &[u8]) {
    if framing.is_off() {
        return;
    }
    framing.feed(fresh);
    if let Some((n, reason)) = framing.bad_head() {
        // The reason first: the head number publishes it.
        activity.bad_reason.store(reason as u8, Ordering::Relaxed);
        activity.bad_head.store(n, Ordering::Relaxed);
        framing.off();
    }
}

impl<T> TrackedIo<T> {
    fn bump(&mut self) {
        self.events = self.events.wrapping_add(1);
        self.activity
            .io_events
            .store(self.events, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cut {
            // End of stream: h2 has the frame that makes it close.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let fresh = buf.filled().get(before..).unwrap_or_default();
            if self.reads == 0 && fresh.starts_with(b"PRI * HTTP/2") {
                self.activity.http2.store(true, Ordering::Relaxed);
                self.h2 = Some(FrameScan::default());
            }
            let this = &mut *self;
            if let Some(scan) = &mut this.h2 {
                let (activity, budget) = (&this.activity, this.h2_budget);
                let over = scan.feed(fresh, || {
                    activity.control_frames.fetch_add(1, Ordering::Relaxed) < budget
                });
                if let Some(at) = over {
                    // Replace the frame over budget; drop what follows.
                    buf.set_filled(before + at);
                    if buf.remaining() >= POISON.len() {
                        buf.put_slice(&POISON);
                    }
                    this.cut = true;
                }
            }
            let fresh = buf.filled().get(before..).unwrap_or_default();
            check_framing(&mut this.framing, &this.activity, fresh);
            self.reads = self.reads.wrapping_add(1);
            self.activity
                .read_events
                .store(self.reads, Ordering::Relaxed);
            self.bump();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // `Server: tollgate` on hyper's own answers: its status line goes
        // out alone, then the header line, then the rest.
        if let Some(mut done) = self.inject {
            while let Some(rest) = SERVER_LINE.get(done..).filter(|r| !r.is_empty()) {
                match Pin::new(&mut self.inner).poll_write(cx, rest) {
                    Poll::Ready(Ok(n)) if n > 0 => done += n,
                    Poll::Ready(Ok(_)) => return Poll::Ready(Ok(0)),
                    other => {
                        self.inject = Some(done);
                        return other;
                    }
                }
            }
            self.inject = None;
        } else if self.h2.is_none() {
            if let Some(line) = hyper_answer(buf) {
                if self.activity.active.load(Ordering::Relaxed) == 0 {
                    let polled =
                        Pin::new(&mut self.inner).poll_write(cx, buf.get(..line).unwrap_or(buf));
                    if matches!(polled, Poll::Ready(Ok(n)) if n == line) {
                        self.inject = Some(0);
                        self.bump();
                    }
                    return polled;
                }
            }
        }
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
        if self.inject.is_some() || bufs.first().is_some_and(|b| hyper_answer(b).is_some()) {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return self.poll_write(cx, first);
        }
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

/// hyper's connection builder: HTTP/1.1 and HTTP/2 (prior knowledge or
/// ALPN) with tollgate's limits.
fn builder(settings: &ConnSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No hyper header-read timeout: it allocates and registers a timer per
    // request; the connection watchdog enforces the same limit instead.
    builder
        .http1()
        .header_read_timeout(None)
        // One flattened write per response beats writev for small
        // responses (measured: -4% CPU per request, docs/benchmarks.md).
        .writev(false)
        // Bounds what hyper buffers; the exact limit is the service's
        // (`ProxySettings::max_header_bytes`): hyper's floor is 8192 and a
        // read may overshoot its buffer size.
        .max_buf_size(settings.max_header_bytes.max(H1_BUFFER_FLOOR))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .max_send_buf_size(MAX_SEND_BUF)
        // The same flag on HTTP/2, in its own measure (RFC 9113 §6.5.2:
        // names + values + 32 per field); hyper's default is 16 KiB.
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Accepts connections until `drain` turns true. The accept loop is also
/// the watchdog of its connections: every tick it checks their header and
/// idle timeouts (no timer per connection or request).
pub async fn serve(
    listener: TcpListener,
    state: Arc<ProxyState>,
    settings: ConnSettings,
    tls: Option<TlsAcceptor>,
    tracker: Arc<ConnTracker>,
    mut drain: watch::Receiver<bool>,
) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let builder = Arc::new(builder(&settings));
    // Ticks at a quarter of the shorter timeout: each fires between 1× and
    // 1.25× its setting.
    let period =
        (settings.header_timeout.min(settings.idle_timeout) / 4).max(Duration::from_millis(5));
    let h2_budget = match settings.http2_max_control_frames {
        0 => u32::MAX,
        rate => (f64::from(rate) * period.as_secs_f64()).ceil().max(1.0) as u32,
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watched: Vec<Watched> = Vec::new();
    let mut prune_at = 64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = drain.wait_for(|d| *d) => break,
            _ = ticker.tick() => {
                // A connection whose task ended dropped its reference.
                watched.retain(|w| Arc::strong_count(&w.activity) > 1);
                for w in &mut watched {
                    w.tick(period, &settings);
                }
                continue;
            }
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
        // Small requests and responses must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        tracker.open.fetch_add(1, Ordering::AcqRel);
        state.metrics.open_connections.inc();
        let guard = ConnGuard {
            tracker: tracker.clone(),
            state: state.clone(),
        };
        let activity = Arc::new(Activity::default());
        // Under connection churn, prune finished connections as the list
        // grows rather than only once per tick.
        if watched.len() >= prune_at {
            watched.retain(|w| Arc::strong_count(&w.activity) > 1);
            prune_at = (watched.len() * 2).max(64);
        }
        watched.push(Watched::new(activity.clone()));
        let accepted = Accepted {
            stream,
            tcp_peer: peer,
            local_port,
            deadline: tokio::time::Instant::now() + settings.header_timeout,
            proxy_protocol: settings.proxy_protocol,
            tls: tls.clone(),
            state: state.clone(),
            builder: builder.clone(),
            activity,
            guard,
            h2_budget,
            fast_path: settings.http1_fast_path,
        };
        tokio::spawn(accepted.serve());
    }
    // Draining: every connection finishes its in-flight requests and closes.
    for w in &watched {
        w.activity.signal(GRACEFUL);
    }
}

/// A connection just accepted, before its PROXY header and TLS handshake.
struct Accepted {
    stream: TcpStream,
    tcp_peer: SocketAddr,
    local_port: u16,
    /// Accept time + `--client-header-timeout`: the PROXY header and the
    /// TLS handshake must be done by then.
    deadline: tokio::time::Instant,
    proxy_protocol: bool,
    tls: Option<TlsAcceptor>,
    state: Arc<ProxyState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    activity: Arc<Activity>,
    guard: ConnGuard,
    h2_budget: u32,
    /// `--http1-fast-path`.
    fast_path: bool,
}

impl Accepted {
    /// Reads the PROXY header (when configured), completes the TLS
    /// handshake (on the HTTPS listener) and serves HTTP; a failure at any
    /// step closes the connection without a response.
    async fn serve(mut self) {
        let peer = if self.proxy_protocol {
            let header = tokio::time::timeout_at(
                self.deadline,
                proxy_protocol::read_header(&mut self.stream),
            )
            .await;
            match header {
                Ok(Ok(source)) => source.unwrap_or(self.tcp_peer),
                Ok(Err(error)) => {
                    self.state.metrics.proxy_protocol_refused.inc();
                    proxy_header_failed(self.tcp_peer, &error);
                    return;
                }
                Err(_) => {
                    self.state.metrics.proxy_protocol_refused.inc();
                    tracing::debug!(tcp_peer = %self.tcp_peer, "PROXY protocol header timed out");
                    return;
                }
            }
        } else {
            self.tcp_peer
        };
        let Accepted {
            stream,
            local_port,
            deadline,
            tls,
            state,
            builder,
            activity,
            guard,
            h2_budget,
            fast_path,
            ..
        } = self;
        let Some(acceptor) = tls else {
            let client = state.client_info(peer, local_port, "http", None);
            let ctx = ConnCtx {
                state,
                client,
                peer,
                activity,
                tls_version: None,
                client_cert: None,
            };
            return serve_connection(stream, ctx, builder, guard, h2_budget, fast_path).await;
        };
        let tls = Handshake {
            acceptor,
            deadline,
            peer,
            state,
        };
        if !tls.state.published.load().tls.has_passthrough() {
            let Some(stream) = tls.accept(stream).await else {
                return;
            };
            let ctx = tls.into_context(&stream, local_port, activity);
            return serve_connection(TlsIo(stream), ctx, builder, guard, h2_budget, fast_path)
                .await;
        }
        // Some host is passed through: its SNI decides (see `passthrough`).
        let mut stream = stream;
        let Some(peeked) = tls.peek(&mut stream).await else {
            return;
        };
        let upstream = tls.passthrough_to(peeked.sni.as_deref());
        let stream = passthrough::Rewind::new(peeked.hello, stream);
        if let Some(upstream) = upstream {
            // No HTTP timeout applies to a spliced connection: the watchdog
            // forgets it; the guard keeps it counted until it closes.
            drop(activity);
            tls.splice(stream, &upstream).await;
            drop(guard);
            return;
        }
        let Some(stream) = tls.accept(stream).await else {
            return;
        };
        let ctx = tls.into_context(&stream, local_port, activity);
        serve_connection(TlsIo(stream), ctx, builder, guard, h2_budget, fast_path).await;
    }
}

/// Logs a refused PROXY header: the first one at warn (a load balancer
/// that does not send the header is a configuration error that would
/// otherwise be invisible), later ones at debug (a scanner must not flood
/// the log).
fn proxy_header_failed(tcp_peer: SocketAddr, error: &proxy_protocol::ProxyHeaderError) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %error,
            %tcp_peer,
            "closed a connection without a valid PROXY protocol header \
             (--proxy-protocol is on: the load balancer must send it); \
             further ones are logged at debug level"
        );
    } else {
        tracing::debug!(%error, %tcp_peer, "closed a connection without a valid PROXY protocol header");
    }
}

async fn serve_connection<I>(
    stream: I,
    ctx: ConnCtx,
    builder: Arc<auto::Builder<TokioExecutor>>,
    _guard: ConnGuard,
    h2_budget: u32,
    fast_path: bool,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = ctx.activity.clone();
    let peer = ctx.peer;
    let state = ctx.state.clone();
    let ctx = Arc::new(ctx);
    let mut io = TrackedIo {
        inner: stream,
        events: 0,
        reads: 0,
        activity: activity.clone(),
        framing: FramingCheck::default(),
        h2: None,
        h2_budget,
        cut: false,
        inject: None,
    };
    // HTTP/1.1 starts on the fast path; hyper takes over (from the bytes
    // the fast path read) at the first request it does not serve.
    let replay = if fast_path {
        // The fast path's heads have no body and no framing headers: the
        // check starts again at the first head it hands over.
        io.framing.off();
        match fastpath::serve(&mut io, &ctx).await {
            fastpath::Exit::Closed => {
                drop(activity.waker.take());
                tracing::debug!(%peer, "connection closed on the fast path");
                return;
            }
            fastpath::Exit::Hyper(bytes) => {
                io.framing = FramingCheck::after_heads(activity.begun());
                check_framing(&mut io.framing, &activity, &bytes);
                bytes
            }
        }
    } else {
        Vec::new()
    };
    let io = TokioIo::new(passthrough::Rewind::new(replay, io));
    let service = service_fn(move |req| super::service::handle(ctx.clone(), req));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut graceful = false;
    let result = std::future::poll_fn(|cx| {
        // Register before reading the flag, so a signal is never missed.
        activity.waker.register(cx.waker());
        match activity.control.load(Ordering::Acquire) {
            CLOSE => return Poll::Ready(None),
            GRACEFUL if !graceful => {
                graceful = true;
                conn.as_mut().graceful_shutdown();
            }
            _ => {}
        }
        conn.as_mut().poll(cx).map(Some)
    })
    .await;
    // The waker refers to this task: drop it now, or the accept loop's
    // reference to `activity` would keep the finished task's memory alive
    // until the next prune.
    drop(activity.waker.take());
    match result {
        None => tracing::debug!(%peer, "connection closed by its watchdog"),
        Some(Err(e)) => {
            // hyper answered 400 to a head its parser refused, or 431 to
            // one larger than its read buffer.
            if let Some(e) = e.downcast_ref::<hyper::Error>().filter(|e| e.is_parse()) {
                state.metrics.bad_request(if e.is_parse_too_large() {
                    BadRequest::HeadersTooLarge
                } else {
                    BadRequest::Head
                });
            }
            tracing::debug!(error = %e, %peer, "client connection ended with an error")
        }
        Some(Ok(())) => {}
    }
}
