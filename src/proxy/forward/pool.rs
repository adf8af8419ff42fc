//! Upstream connection pools: per endpoint, per worker thread (HTTP/1.1
//! idle stacks, one shared HTTP/2 connection).
//!
//! Invariants:
//! - Keyed by endpoint id ([`crate::lb::Endpoint::id`]) only: what a new
//!   connection needs (address, protocol, TLS) is given by the caller
//!   ([`Dial`]), so `lb` knows nothing of connections.
//! - Shared-nothing: each data-plane worker is a single-threaded runtime and
//!   keeps its idle connections in a thread-local map (endpoint id → stack of
//!   idle connections). Checkout and checkin touch no atomic, no lock, and
//!   never hand a connection to another thread, so a connection's task and
//!   the requests using it always run on the same worker.
//! - A connection is checked in only after its response body was read to the
//!   end (see [`crate::proxy::body`]), so a pooled connection is always at a request
//!   boundary. Closed or expired connections are dropped at checkout, and
//!   [`sweep`] drops the ones nobody asks for (removed endpoints included).
//! - At most [`MAX_IDLE_PER_ENDPOINT`] idle connections per endpoint and
//!   worker; an endpoint that no worker used allocates nothing.
//! - An HTTP/1.1 connection carries its own response timer ([`Sender::timer`]),
//!   allocated once when the connection opens and lent to one request at a
//!   time: the sender resets it before every use, so a deadline never
//!   outlives the request it was set for.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::idle::IdleStacks;
use crate::lb::clock;
use crate::proxy::upload::UploadBody;
use crate::table::upstream::BackendProtocol;
use crate::table::upstream::EndpointAddr;
use crate::tls::client::UpstreamTls;

pub use super::idle::MAX_IDLE_PER_ENDPOINT;

/// An HTTP/1.1 upstream connection: hyper's sender and the connection's
/// response timer.
///
/// The timer is one `Sleep` per connection, reset for each exchange, instead
/// of a new one per request: a reset to a later deadline only moves the
/// registered entry's expiry (no timer-wheel insertion and removal per
/// request), and the request's future holds a pointer to it instead of a
/// whole `Sleep`. An idle connection's timer may still fire (its deadline
/// passed while nobody polled it): that wakes the last request's task once,
/// which finds nothing to do, and the next exchange resets it first.
#[derive(Debug)]
pub struct Sender {
    conn: http1::SendRequest<UploadBody>,
    timer: Pin<Box<Sleep>>,
}

impl Sender {
    fn new(conn: http1::SendRequest<UploadBody>) -> Self {
        Self {
            conn,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Whether the connection is closed (never reusable again).
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Resolves when the connection can take a request (an error: closed).
    pub fn ready(&mut self) -> impl Future<Output = hyper::Result<()>> + '_ {
        self.conn.ready()
    }

    /// Sends `req`; a connection that closed before taking it hands it back
    /// (see hyper's `try_send_request`). The returned future does not
    /// borrow the sender, so the caller can lend [`Sender::timer`] to it.
    pub fn try_send_request(
        &mut self,
        req: http::Request<UploadBody>,
    ) -> impl Future<
        Output = Result<
            http::Response<hyper::body::Incoming>,
            hyper::client::conn::TrySendError<http::Request<UploadBody>>,
        >,
    > {
        self.conn.try_send_request(req)
    }

    /// This connection's response timer, for one exchange at a time: reset
    /// it (`Sleep::reset`) before polling it.
    pub fn timer(&mut self) -> Pin<&mut Sleep> {
        self.timer.as_mut()
    }
}

/// An HTTP/2 upstream connection: one per endpoint and worker, shared by
/// every request (streams multiplex).
pub type H2Sender = http2::SendRequest<UploadBody>;

/// A worker's HTTP/2 connection to one endpoint.
enum H2Slot {
    /// Open; with the time (ms) it was last used.
    Ready(H2Sender, u64),
    /// Being opened by one request; the others wait for it instead of
    /// opening connections of their own.
    Connecting(Vec<tokio::sync::oneshot::Sender<H2Sender>>),
}

/// What a request does to get an HTTP/2 connection.
enum H2Plan {
    Use(H2Sender),
    Wait(tokio::sync::oneshot::Receiver<H2Sender>),
    Open,
}

/// Clears a `Connecting` slot if the opening request goes away without
/// finishing (its waiters then open connections themselves).
struct Opening(u64);

impl Drop for Opening {
    fn drop(&mut self) {
        H2.with(|map| {
            if let Ok(mut m) = map.try_borrow_mut() {
                if matches!(m.get(&self.0), Some(H2Slot::Connecting(_))) {
                    m.remove(&self.0);
                }
            }
        });
    }
}

thread_local! {
    /// This worker's idle connections, by endpoint id.
    static IDLE: RefCell<IdleStacks<Sender>> = RefCell::new(IdleStacks::default());
    /// This worker's HTTP/2 connections, by endpoint id.
    static H2: RefCell<HashMap<u64, H2Slot, foldhash::fast::RandomState>> = RefCell::new(HashMap::default());
}

/// What opening a connection to one endpoint needs, given by the caller:
/// the pool itself knows endpoints only by id.
#[derive(Debug, Clone, Copy)]
pub struct Dial<'a> {
    /// The endpoint's id ([`crate::lb::Endpoint::id`]): the pool's key.
    pub id: u64,
    pub addr: &'a EndpointAddr,
    pub protocol: BackendProtocol,
    /// How the upstream's connections are secured (for TLS protocols).
    pub tls: &'a UpstreamTls,
}

/// Drops this worker's idle connections that are closed or idle longer than
/// `max_idle`. Run periodically on every worker.
pub fn sweep(max_idle: Duration) {
    let max_idle_ms = u64::try_from(max_idle.as_millis()).unwrap_or(u64::MAX);
    let now = clock::now_ms();
    IDLE.with(|idle| {
        if let Ok(mut stacks) = idle.try_borrow_mut() {
            stacks.sweep(max_idle, |sender| !sender.is_closed());
        }
    });
    // HTTP/2 connections unused for as long (removed endpoints included).
    H2.with(|h2| {
        if let Ok(mut map) = h2.try_borrow_mut() {
            map.retain(|_, slot| match slot {
                H2Slot::Ready(sender, used) => {
                    !sender.is_closed() && now.saturating_sub(*used) <= max_idle_ms
                }
                H2Slot::Connecting(_) => true,
            });
        }
    });
}

/// Why a new upstream connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {addr} timed out")]
    Timeout { addr: String },
    #[error("connect to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS handshake with {addr}: {reason}")]
    Tls { addr: String, reason: String },
    #[error("HTTP handshake with {addr}: {source}")]
    Handshake {
        addr: String,
        #[source]
        source: hyper::Error,
    },
}

/// An idle connection of this worker to endpoint `id` that is still open
/// and not older than `max_idle` (most recently used first).
pub fn take_idle(id: u64, max_idle: Duration) -> Option<Sender> {
    IDLE.with(|idle| {
        idle.try_borrow_mut()
            .ok()?
            .take(id, max_idle, |sender| !sender.is_closed())
    })
}

/// Returns a connection to endpoint `id` at a request boundary to this
/// worker's pool.
pub fn put(id: u64, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    IDLE.with(|idle| {
        if let Ok(mut stacks) = idle.try_borrow_mut() {
            stacks.put(id, sender);
        }
    });
}

/// Idle connections of endpoint `id` on the calling worker.
pub fn idle_len(id: u64) -> usize {
    IDLE.with(|idle| idle.try_borrow().map_or(0, |stacks| stacks.len(id)))
}

impl Dial<'_> {
    /// Opens a new connection (with upgrades enabled, for WebSocket).
    pub(crate) async fn tcp(&self, timeout: Duration) -> Result<TcpStream, ConnectError> {
        let addr = || self.addr.to_string();
        let connect = async {
            match self.addr {
                EndpointAddr::Socket(a) => TcpStream::connect(a).await,
                EndpointAddr::Dns { host, port } => {
                    TcpStream::connect((host.as_ref(), *port)).await
                }
            }
        };
        let stream = match tokio::time::timeout(timeout, connect).await {
            Err(_) => return Err(ConnectError::Timeout { addr: addr() }),
            Ok(Err(source)) => {
                return Err(ConnectError::Io {
                    addr: addr(),
                    source,
                })
            }
            Ok(Ok(s)) => s,
        };
        // Small requests and responses must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn tls(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let addr = || self.addr.to_string();
        let (connector, name) = self
            .tls
            .connector(self.addr, self.protocol.is_http2())
            .map_err(|e| ConnectError::Tls {
                addr: addr(),
                reason: e.to_string(),
            })?;
        match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
            Err(_) => Err(ConnectError::Timeout { addr: addr() }),
            Ok(Err(e)) => Err(ConnectError::Tls {
                addr: addr(),
                reason: e.to_string(),
            }),
            Ok(Ok(s)) => Ok(s),
        }
    }

    /// Opens a new HTTP/1.1 connection (over TLS for `HTTPS` backends); its
    /// task runs with upgrades enabled, for WebSocket.
    pub async fn connect(&self, timeout: Duration) -> Result<Sender, ConnectError> {
        let stream = self.tcp(timeout).await?;
        if self.protocol.is_tls() {
            let stream = self.tls(stream, timeout).await?;
            self.handshake_h1(TokioIo::new(stream)).await
        } else {
            self.handshake_h1(TokioIo::new(stream)).await
        }
    }

    async fn handshake_h1<I>(&self, io: I) -> Result<Sender, ConnectError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .handshake(io)
            .await
            .map_err(|source| ConnectError::Handshake {
                addr: self.addr.to_string(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Sender::new(sender))
    }

    /// This worker's HTTP/2 connection to the endpoint (`H2C`, `GRPC`,
    /// `GRPCS` backends), opened on first use and after it closes.
    pub async fn h2(&self, timeout: Duration) -> Result<H2Sender, ConnectError> {
        let plan = H2.with(|map| {
            let Ok(mut m) = map.try_borrow_mut() else {
                return H2Plan::Open;
            };
            match m.get_mut(&self.id) {
                Some(H2Slot::Ready(sender, used)) if !sender.is_closed() => {
                    *used = clock::now_ms();
                    H2Plan::Use(sender.clone())
                }
                Some(H2Slot::Connecting(waiters)) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    waiters.push(tx);
                    H2Plan::Wait(rx)
                }
                _ => {
                    m.insert(self.id, H2Slot::Connecting(Vec::new()));
                    H2Plan::Open
                }
            }
        });
        match plan {
            H2Plan::Use(sender) => Ok(sender),
            // The opener failed or went away: open one ourselves.
            H2Plan::Wait(rx) => match rx.await {
                Ok(sender) => Ok(sender),
                Err(_) => Box::pin(self.open_h2(timeout)).await,
            },
            H2Plan::Open => {
                let opening = Opening(self.id);
                // Boxed: a large future that requests on an open shared
                // connection never run.
                let result = Box::pin(self.open_h2(timeout)).await;
                let waiters = H2.with(|map| {
                    let Ok(mut m) = map.try_borrow_mut() else {
                        return Vec::new();
                    };
                    let previous = match &result {
                        Ok(sender) => {
                            m.insert(self.id, H2Slot::Ready(sender.clone(), clock::now_ms()))
                        }
                        Err(_) => m.remove(&self.id),
                    };
                    match previous {
                        Some(H2Slot::Connecting(waiters)) => waiters,
                        _ => Vec::new(),
                    }
                });
                drop(opening);
                if let Ok(sender) = &result {
                    for waiter in waiters {
                        let _ = waiter.send(sender.clone());
                    }
                }
                result
            }
        }
    }

    async fn open_h2(&self, timeout: Duration) -> Result<H2Sender, ConnectError> {
        let stream = self.tcp(timeout).await?;
        if self.protocol.is_tls() {
            let stream = self.tls(stream, timeout).await?;
            self.handshake_h2(TokioIo::new(stream)).await
        } else {
            self.handshake_h2(TokioIo::new(stream)).await
        }
    }

    async fn handshake_h2<I>(&self, io: I) -> Result<H2Sender, ConnectError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|source| ConnectError::Handshake {
                addr: self.addr.to_string(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        Ok(sender)
    }
}
