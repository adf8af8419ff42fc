//! Upstream HTTP/1.1 connection pool, one per endpoint.
//!
//! Invariants:
//! - Lock-free: idle connections sit in a `crossbeam` `SegQueue`; checkout is
//!   a pop, checkin a push. A bounded count keeps at most
//!   [`MAX_IDLE_PER_ENDPOINT`] idle connections.
//! - A connection is checked in only after its response body was read to the
//!   end (see [`super::body`]), so a pooled connection is always at a request
//!   boundary. Closed or expired connections are dropped at checkout.
//! - Empty pools allocate nothing (endpoints can number 100,000).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::lb::clock;
use crate::table::upstream::EndpointAddr;

/// Most idle keep-alive connections kept per endpoint.
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

pub type Sender = http1::SendRequest<Incoming>;

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since_ms: u64,
}

#[derive(Debug)]
pub struct Pool {
    addr: EndpointAddr,
    idle: SegQueue<Idle>,
    idle_count: AtomicUsize,
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
    #[error("HTTP/1.1 handshake with {addr}: {source}")]
    Handshake {
        addr: String,
        #[source]
        source: hyper::Error,
    },
}

impl Pool {
    pub fn new(addr: EndpointAddr) -> Self {
        Self {
            addr,
            idle: SegQueue::new(),
            idle_count: AtomicUsize::new(0),
        }
    }

    /// An idle connection that is still open and not older than `max_idle`.
    pub fn take_idle(&self, max_idle: Duration) -> Option<Sender> {
        let max_idle_ms = u64::try_from(max_idle.as_millis()).unwrap_or(u64::MAX);
        let mut now = None;
        while let Some(idle) = self.idle.pop() {
            self.idle_count.fetch_sub(1, Ordering::Relaxed);
            if idle.sender.is_closed() {
                continue;
            }
            let now = *now.get_or_insert_with(clock::now_ms);
            if now.saturating_sub(idle.since_ms) > max_idle_ms {
                continue;
            }
            return Some(idle.sender);
        }
        None
    }

    /// Returns a connection at a request boundary to the pool.
    pub fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if self.idle_count.fetch_add(1, Ordering::Relaxed) >= MAX_IDLE_PER_ENDPOINT {
            self.idle_count.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.idle.push(Idle {
            sender,
            since_ms: clock::now_ms(),
        });
    }

    pub fn idle_len(&self) -> usize {
        self.idle_count.load(Ordering::Relaxed)
    }

    /// Opens a new connection (with upgrades enabled, for WebSocket).
    pub async fn connect(&self, timeout: Duration) -> Result<Sender, ConnectError> {
        let addr = || self.addr.to_string();
        let connect = async {
            match &self.addr {
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
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake {
                addr: addr(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}
