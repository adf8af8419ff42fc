//! Upstream HTTP/1.1 connection pools: per endpoint, per worker thread.
//!
//! Invariants:
//! - Shared-nothing: each data-plane worker is a single-threaded runtime and
//!   keeps its idle connections in a thread-local map (endpoint id → stack of
//!   idle connections). Checkout and checkin touch no atomic, no lock, and
//!   never hand a connection to another thread, so a connection's task and
//!   the requests using it always run on the same worker.
//! - A connection is checked in only after its response body was read to the
//!   end (see [`super::body`]), so a pooled connection is always at a request
//!   boundary. Closed or expired connections are dropped at checkout, and
//!   [`sweep`] drops the ones nobody asks for (removed endpoints included).
//! - At most [`MAX_IDLE_PER_ENDPOINT`] idle connections per endpoint and
//!   worker; an endpoint that no worker used allocates nothing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::upload::UploadBody;
use crate::lb::clock;
use crate::table::upstream::EndpointAddr;

/// Most idle keep-alive connections kept per endpoint (per worker).
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

pub type Sender = http1::SendRequest<UploadBody>;

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since_ms: u64,
}

type IdleMap = HashMap<u64, Vec<Idle>, foldhash::fast::RandomState>;

thread_local! {
    /// This worker's idle connections, by endpoint id.
    static IDLE: RefCell<IdleMap> = RefCell::new(IdleMap::default());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The pool handle of one endpoint: its identity and how to connect.
#[derive(Debug)]
pub struct Pool {
    id: u64,
    addr: EndpointAddr,
}

/// Drops this worker's idle connections that are closed or idle longer than
/// `max_idle`. Run periodically on every worker.
pub fn sweep(max_idle: Duration) {
    let max_idle_ms = u64::try_from(max_idle.as_millis()).unwrap_or(u64::MAX);
    let now = clock::now_ms();
    IDLE.with(|idle| {
        if let Ok(mut map) = idle.try_borrow_mut() {
            map.retain(|_, conns| {
                conns.retain(|c| {
                    !c.sender.is_closed() && now.saturating_sub(c.since_ms) <= max_idle_ms
                });
                !conns.is_empty()
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
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            addr,
        }
    }

    /// An idle connection of this worker that is still open and not older
    /// than `max_idle` (most recently used first).
    pub fn take_idle(&self, max_idle: Duration) -> Option<Sender> {
        let max_idle_ms = u64::try_from(max_idle.as_millis()).unwrap_or(u64::MAX);
        IDLE.with(|idle| {
            let mut map = idle.try_borrow_mut().ok()?;
            let conns = map.get_mut(&self.id)?;
            let mut now = None;
            while let Some(c) = conns.pop() {
                if c.sender.is_closed() {
                    continue;
                }
                let now = *now.get_or_insert_with(clock::now_ms);
                if now.saturating_sub(c.since_ms) > max_idle_ms {
                    continue;
                }
                return Some(c.sender);
            }
            None
        })
    }

    /// Returns a connection at a request boundary to this worker's pool.
    pub fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        IDLE.with(|idle| {
            if let Ok(mut map) = idle.try_borrow_mut() {
                let conns = map.entry(self.id).or_default();
                if conns.len() < MAX_IDLE_PER_ENDPOINT {
                    conns.push(Idle {
                        sender,
                        since_ms: clock::now_ms(),
                    });
                }
            }
        });
    }

    /// Idle connections of this endpoint on the calling worker.
    pub fn idle_len(&self) -> usize {
        IDLE.with(|idle| {
            idle.try_borrow()
                .ok()
                .and_then(|m| m.get(&self.id).map(Vec::len))
                .unwrap_or(0)
        })
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
            .writev(false)
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
