//! The fast path's upstream connections: plain TCP keep-alive connections
//! per endpoint, per worker thread, each with its read buffer and its
//! response timer.
//!
//! Invariants:
//! - Shared-nothing, as [`crate::proxy::forward::pool`]: a thread-local map
//!   (endpoint id → stack of idle connections); checkout and checkin take
//!   no lock and no atomic, and a connection never moves to another worker.
//! - A connection is checked in only at a request boundary: its response
//!   was read to the end, nothing more was buffered, and the upstream did
//!   not ask to close; and checked out only while the upstream has neither
//!   closed it nor sent anything since ([`Upstream::is_open`]).
//! - At most [`crate::proxy::forward::idle::MAX_IDLE_PER_ENDPOINT`] idle
//!   connections per endpoint and worker ([`IdleStacks`]); connections
//!   idle longer than the upstream idle timeout are dropped at checkout and
//!   by [`sweep`] (removed endpoints included).
//! - The read buffer is allocated once per connection and grows only for a
//!   response head larger than it, up to [`MAX_HEAD`].

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::proxy::forward::idle::IdleStacks;

/// The read buffer of a new connection.
const BUF: usize = 16 * 1024;
/// The largest response head read (hyper's client reads heads up to about
/// this much too); a larger one is a 502.
pub const MAX_HEAD: usize = 400 * 1024;

/// One upstream connection of the fast path.
#[derive(Debug)]
pub struct Upstream {
    pub stream: TcpStream,
    /// The response timer, reset before every exchange (one `Sleep` per
    /// connection instead of one per request).
    pub timer: Pin<Box<Sleep>>,
    /// What was read and not yet consumed: `buf[start..end]`.
    pub buf: Vec<u8>,
    pub start: usize,
    pub end: usize,
}

thread_local! {
    /// This worker's idle fast-path connections, by endpoint id.
    static IDLE: RefCell<IdleStacks<Upstream>> = RefCell::new(IdleStacks::default());
}

impl Upstream {
    pub fn new(stream: TcpStream) -> Self {
        Upstream {
            stream,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            buf: vec![0; BUF],
            start: 0,
            end: 0,
        }
    }

    /// Whether an idle connection can take a request: the upstream neither
    /// closed it nor sent anything since its last response. The event loop
    /// marks the socket readable when either happens, so a connection that
    /// is not readable is open without a system call; a readable one is
    /// read once to tell (hyper's pool learns the same from its
    /// connection task, which reads idle connections).
    pub fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if self.stream.poll_read_ready(&mut cx).is_pending() {
            return true;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// The bytes read and not consumed.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Marks `n` pending bytes consumed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more into the buffer (moving pending bytes to its front, or
    /// growing it up to [`MAX_HEAD`] when full); `Ok(0)` is end of stream,
    /// and a full buffer at [`MAX_HEAD`] an error.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_HEAD {
                let len = (self.buf.len() * 2).min(MAX_HEAD);
                self.buf.resize(len, 0);
            } else {
                return Poll::Ready(Err(io::Error::other("response head too large")));
            }
        }
        let Some(spare) = self.buf.get_mut(self.end..) else {
            return Poll::Ready(Err(io::Error::other("buffer")));
        };
        let mut read = ReadBuf::new(spare);
        match Pin::new(&mut self.stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// An idle connection of this worker to endpoint `id`, not idle longer
/// than `max_idle` and still open (most recently used first).
pub fn take(id: u64, max_idle: Duration) -> Option<Upstream> {
    IDLE.with(|idle| {
        idle.try_borrow_mut()
            .ok()?
            .take(id, max_idle, Upstream::is_open)
    })
}

/// Returns a connection at a request boundary to this worker's stack for
/// endpoint `id`.
pub fn put(id: u64, conn: Upstream) {
    let _ = IDLE.try_with(|idle| {
        if let Ok(mut stacks) = idle.try_borrow_mut() {
            stacks.put(id, conn);
        }
    });
}

/// Drops this worker's idle connections unused for longer than
/// `max_idle`. Run periodically on every worker, beside
/// [`crate::proxy::forward::pool::sweep`].
pub fn sweep(max_idle: Duration) {
    IDLE.with(|idle| {
        if let Ok(mut stacks) = idle.try_borrow_mut() {
            stacks.sweep(max_idle, |_| true);
        }
    });
}
