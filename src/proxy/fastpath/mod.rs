//! The HTTP/1.1 fast path (`--http1-fast-path`): plain keep-alive `GET`
//! requests to plain routes, proxied from bytes to bytes without hyper's
//! server and client state machines, header maps or per-connection
//! upstream task. Everything else is the hyper path's, which takes over the
//! connection, with the bytes read so far, at the first request the fast
//! path does not serve.
//!
//! Invariants:
//! - Serves only what it serves exactly as the hyper path does (the same
//!   bytes to the upstream and to the client, up to header order, the same
//!   metrics and access-log line): a request [`request`] qualifies (on
//!   HTTPS, for the connection's own server name, with HSTS added as the
//!   response side does), from an untrusted peer, with no ConfigMap trust
//!   or user-agent block, in a table without Gateway routes, to a plain
//!   route (no policy, no canary, no redirect to HTTPS) whose upstream is
//!   plain HTTP/1.1 and has an endpoint.
//! - Hands over before any side effect: until an upstream connection is in
//!   hand, nothing was counted, logged or sent, and the request's bytes are
//!   still in the buffer ([`Exit::Hyper`]); a refused connection only marks
//!   the endpoint, as the hyper path would, and the hyper path then serves
//!   the request with its retries.
//! - Once committed, every request ends in exactly one response (the
//!   upstream's, or a 502/504 as the hyper path answers) or a cut
//!   connection (an upstream body that breaks midway), and its record is
//!   finished once, after the last byte written.
//! - The connection's watchdog sees this path as it sees hyper: reads and
//!   writes go through the listener's tracked IO, a request in flight is an
//!   [`crate::proxy::conn::ActiveRequest`], and a close or drain request
//!   ends the connection between requests (a drained connection's last
//!   response says `connection: close`).
//! - No lock, no task per upstream connection, per-connection buffers
//!   reused across requests; the upstream connection is this worker's
//!   ([`upstream`]) and returns to it only at a clean request boundary.

pub mod names;
pub mod request;
pub mod response;
pub mod upstream;

mod exchange;

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::conn::ConnCtx;
use exchange::Served;
use request::NotFast;

/// The client buffer: large enough for the heads the fast path takes
/// (a larger one goes to hyper).
const CLIENT_BUF: usize = 8 * 1024;

/// How the fast path left a connection.
#[derive(Debug)]
pub enum Exit {
    /// Closed (by either side, the watchdog, or a drain).
    Closed,
    /// The hyper path serves the rest, starting from these bytes.
    Hyper(Vec<u8>),
}

/// The connection's unparsed input: `buf[start..end]`.
struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn into_pending(self) -> Vec<u8> {
        self.pending().to_vec()
    }
}

/// Serves the connection's requests until one is not for the fast path
/// (see the module invariants).
pub async fn serve<I>(io: &mut I, ctx: &Arc<ConnCtx>) -> Exit
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let limit = ctx.state.settings.max_header_bytes.min(CLIENT_BUF);
    let mut input = Input {
        buf: vec![0; CLIENT_BUF],
        start: 0,
        end: 0,
    };
    let mut bufs = exchange::Buffers::default();
    loop {
        let pending = input.end - input.start;
        let step = {
            // The pending bytes are parsed in place; while the request is
            // served, what the client sends next (a pipelined request) is
            // read into the spare part behind them.
            let (filled, spare) = input.buf.split_at_mut(input.end);
            let mut fields = [const { MaybeUninit::uninit() }; request::MAX_HEADERS];
            match request::parse(filled.get(input.start..).unwrap_or_default(), &mut fields) {
                Err(NotFast) => Step::Hyper,
                Ok(None) if pending >= limit => Step::Hyper,
                Ok(None) => Step::Read,
                Ok(Some(head)) if head.len > limit => Step::Hyper,
                Ok(Some(head)) => {
                    let mut client = exchange::Client::new(io, spare);
                    let served = exchange::serve_one(&mut client, ctx, &head, &mut bufs).await;
                    let read = client.read;
                    match served {
                        Served::Next => Step::Consume(head.len, read),
                        Served::Close => return Exit::Closed,
                        Served::Hyper => Step::Hyper,
                    }
                }
            }
        };
        match step {
            Step::Hyper => return Exit::Hyper(input.into_pending()),
            Step::Consume(n, read) => {
                input.end += read;
                input.consume(n);
            }
            Step::Read => {
                if !read(io, ctx, &mut input).await {
                    return Exit::Closed;
                }
            }
        }
    }
}

enum Step {
    Read,
    /// The head's length, and the bytes read behind it meanwhile.
    Consume(usize, usize),
    Hyper,
}

/// Reads more of the client's bytes; `false`: the client closed, the read
/// failed, or the watchdog or a drain asked to close (no request is in
/// flight here).
async fn read<I: AsyncRead + Unpin>(io: &mut I, ctx: &ConnCtx, input: &mut Input) -> bool {
    let activity = &ctx.activity;
    if input.end == input.buf.len() {
        let len = input.end - input.start;
        input.buf.copy_within(input.start..input.end, 0);
        input.start = 0;
        input.end = len;
    }
    poll_fn(|cx| {
        // Register before reading the flag, so a signal is never missed.
        activity.waker.register(cx.waker());
        if activity.control.load(Ordering::Acquire) != 0 {
            return Poll::Ready(false);
        }
        let Some(spare) = input.buf.get_mut(input.end..) else {
            return Poll::Ready(false);
        };
        let mut read = ReadBuf::new(spare);
        match std::pin::Pin::new(&mut *io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                input.end += n;
                Poll::Ready(n > 0)
            }
            Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests;
