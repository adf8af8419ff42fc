//! The request body on its way upstream, and the timeouts around it.
//!
//! `--upstream-response-timeout` must not count the time a client takes to
//! upload: a 1 GiB upload from a slow client is not a slow upstream. So a
//! request with a body is timed in two phases (as nginx's
//! `proxy_send_timeout` / `proxy_read_timeout` do):
//! - while the body streams, the timeout bounds the time *between* body
//!   chunks: if it passes with no progress, the client stalled (408) or the
//!   upstream stopped reading (504);
//! - once the body is sent, the timeout bounds the wait for response headers
//!   (504).
//!
//! A body that breaks its framing (a bad chunk, a client that stops before
//! its Content-Length) is the client's fault: the tracker records it so the
//! sender answers 400, not 502; hyper's client has by then closed the
//! upstream connection mid-request, so the backend sees a truncated body
//! and a closed connection, never a complete request.
//!
//! Invariant: requests without a body (most of them) carry no tracker and
//! cost nothing extra: one timer, as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::tee::{Abandoned, Tee, TeeBody};
use crate::metrics::BadRequest;

/// [`Upload::client_fault`] values.
const FAULT_NONE: u8 = 0;
const FAULT_MALFORMED: u8 = 1;
const FAULT_INCOMPLETE: u8 = 2;

/// Progress of one request body, shared by the body and the waiting request.
#[derive(Debug, Default)]
pub struct Upload {
    chunks: AtomicU64,
    done: AtomicBool,
    /// The upstream asked for more and the client had nothing yet.
    waiting_on_client: AtomicBool,
    /// The body passed its route's size limit (`proxy-body-size`): 413.
    too_large: AtomicBool,
    /// The client's body failed: [`FAULT_MALFORMED`] or [`FAULT_INCOMPLETE`].
    client_fault: AtomicU8,
    waker: AtomicWaker,
}

impl Upload {
    /// Whether the body was cut off for passing its size limit.
    pub fn too_large(&self) -> bool {
        self.too_large.load(Ordering::Relaxed)
    }

    /// Whether the whole body was read from the client (and handed to the
    /// upstream connection).
    pub fn is_sent(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Whether the body stopped because the client's bytes broke its
    /// framing (malformed) or ended early (incomplete).
    pub fn client_fault(&self) -> Option<BadRequest> {
        match self.client_fault.load(Ordering::Relaxed) {
            FAULT_MALFORMED => Some(BadRequest::BodyMalformed),
            FAULT_INCOMPLETE => Some(BadRequest::BodyIncomplete),
            _ => None,
        }
    }

    /// Records why the client's body failed: hyper reports a framing
    /// violation as `InvalidData`, everything else (an early end, a reset)
    /// is an incomplete body.
    fn client_failed(&self, error: &hyper::Error) {
        let mut source = std::error::Error::source(error);
        let mut fault = FAULT_INCOMPLETE;
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::InvalidData {
                    fault = FAULT_MALFORMED;
                }
                break;
            }
            source = e.source();
        }
        let _ = self.client_fault.compare_exchange(
            FAULT_NONE,
            fault,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("client body: {0}")]
    Client(#[from] hyper::Error),
    #[error("request body larger than the route allows")]
    TooLarge,
    /// A mirror's copy of the body stopped before its end.
    #[error(transparent)]
    MirrorAbandoned(#[from] Abandoned),
}

/// The client's request body, forwarded upstream, reporting its progress.
#[derive(Debug)]
pub struct UploadBody {
    /// `None`: an empty body (a retried request without one).
    inner: Option<Incoming>,
    upload: Option<Arc<Upload>>,
    /// Bytes still allowed (`proxy-body-size`); `u64::MAX` when unlimited.
    remaining: u64,
    /// Mirrors fed a copy of what is read (`None`: no mirror, most requests).
    tee: Option<Box<Tee>>,
    /// A mirror's copy of another request's body (then `inner` is `None`).
    mirrored: Option<Box<TeeBody>>,
}

impl UploadBody {
    /// Wraps a request body; returns the tracker when there is a body.
    pub fn new(inner: Incoming) -> (Self, Option<Arc<Upload>>) {
        Self::limited(inner, None)
    }

    /// As [`Self::new`], cutting the body off (413) after `limit` bytes.
    pub fn limited(inner: Incoming, limit: Option<u64>) -> (Self, Option<Arc<Upload>>) {
        let upload = (!inner.is_end_stream()).then(Arc::<Upload>::default);
        (
            Self {
                inner: Some(inner),
                upload: upload.clone(),
                remaining: limit.unwrap_or(u64::MAX),
                tee: None,
                mirrored: None,
            },
            upload,
        )
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            inner: None,
            upload: None,
            remaining: u64::MAX,
            tee: None,
            mirrored: None,
        }
    }

    /// A copy of this body for a mirror, fed as this one is read (see
    /// [`crate::proxy::tee`]); `None` when there is no body to copy.
    pub fn tee(&mut self, exact: Option<u64>) -> Option<UploadBody> {
        if self.inner.as_ref().is_none_or(|i| i.is_end_stream()) {
            return None;
        }
        let copy = self.tee.get_or_insert_with(Box::default).copy(exact);
        Some(Self {
            mirrored: Some(Box::new(copy)),
            ..Self::empty()
        })
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = UploadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UploadError>>> {
        let Some(inner) = self.inner.as_mut() else {
            return match self.mirrored.as_mut() {
                Some(copy) => Pin::new(&mut **copy)
                    .poll_frame(cx)
                    .map(|f| f.map(|r| r.map_err(UploadError::from))),
                None => Poll::Ready(None),
            };
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        let end = inner.is_end_stream();
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let len = data.len() as u64;
                if len > self.remaining {
                    if let Some(tee) = self.tee.as_mut() {
                        tee.fail();
                    }
                    if let Some(upload) = &self.upload {
                        upload.too_large.store(true, Ordering::Relaxed);
                        upload.done.store(true, Ordering::Release);
                        upload.waker.wake();
                    }
                    return Poll::Ready(Some(Err(UploadError::TooLarge)));
                }
                self.remaining -= len;
            }
        }
        if let Some(tee) = self.tee.as_mut() {
            match &polled {
                Poll::Pending => {}
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        tee.push(data);
                    }
                    if end {
                        tee.end();
                    }
                }
                Poll::Ready(Some(Err(_))) => tee.fail(),
                Poll::Ready(None) => tee.end(),
            }
        }
        if let Some(upload) = &self.upload {
            if let Poll::Ready(Some(Err(e))) = &polled {
                upload.client_failed(e);
            }
            match &polled {
                Poll::Pending => upload.waiting_on_client.store(true, Ordering::Relaxed),
                Poll::Ready(Some(Ok(_))) if !end => {
                    upload.waiting_on_client.store(false, Ordering::Relaxed);
                    upload.chunks.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Ready(_) => {
                    upload.waiting_on_client.store(false, Ordering::Relaxed);
                    upload.chunks.fetch_add(1, Ordering::Relaxed);
                    upload.done.store(true, Ordering::Release);
                    upload.waker.wake();
                }
            }
        }
        polled.map(|frame| frame.map(|f| f.map_err(UploadError::Client)))
    }

    fn is_end_stream(&self) -> bool {
        match (&self.inner, &self.mirrored) {
            (Some(i), _) => i.is_end_stream(),
            (None, Some(copy)) => copy.is_end_stream(),
            (None, None) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inner, &self.mirrored) {
            (Some(i), _) => i.size_hint(),
            (None, Some(copy)) => copy.size_hint(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}

/// Resolves when the upload is complete.
struct Sent<'a>(&'a Upload);

impl Future for Sent<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.waker.register(cx.waker());
        if self.0.done.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Why an exchange stopped before its response (the proxy's error layer
/// maps each to its status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// No response headers in time, or the upstream stopped reading the
    /// body.
    Upstream,
    /// The client stopped sending its body.
    Client,
    /// The body passed the route's size limit.
    TooLarge,
}

/// How long one exchange with an upstream may take (see the module
/// documentation). Borrowed by [`with_timeouts`], so its future holds one
/// pointer, not the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeLimits {
    /// Longest pause while the request body streams.
    pub send: Duration,
    /// Waiting for response headers.
    pub read: Duration,
    /// Each attempt, from sending to the response headers (Gateway
    /// `timeouts.backendRequest`).
    pub attempt: Option<Duration>,
    /// When the whole request must have its response headers (Gateway
    /// `timeouts.request`, counted from routing).
    pub deadline: Option<tokio::time::Instant>,
}

impl ExchangeLimits {
    /// When an attempt starting now must have its response headers: the
    /// earlier of `attempt` from now and `deadline`; `None` (no clock
    /// read) when neither is set.
    #[inline]
    pub fn attempt_deadline(&self) -> Option<tokio::time::Instant> {
        let attempt = self.attempt.map(|d| tokio::time::Instant::now() + d);
        match (attempt, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Awaits `response` under the two-phase timeout described in the module
/// documentation (a single timeout when there is no body): `limits.send`
/// bounds pauses while the body streams, `limits.read` the wait for
/// response headers; neither runs past the attempt's deadline (a route's
/// request and attempt timeouts), which reads the clock only when set.
pub async fn with_timeouts<F: Future>(
    response: F,
    upload: Option<&Upload>,
    limits: &ExchangeLimits,
) -> Result<F::Output, Stall> {
    let (send, read) = (limits.send, limits.read);
    let deadline = limits.attempt_deadline();
    let within = |limit: Duration| match deadline {
        None => limit,
        Some(at) => limit.min(at.saturating_duration_since(tokio::time::Instant::now())),
    };
    let Some(upload) = upload else {
        return tokio::time::timeout(within(read), response)
            .await
            .map_err(|_| Stall::Upstream);
    };
    let mut response = std::pin::pin!(response);
    let mut seen = upload.chunks.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            biased;
            output = response.as_mut() => return Ok(output),
            _ = Sent(upload) => break,
            _ = tokio::time::sleep(within(send)) => {
                if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
                    return Err(Stall::Upstream);
                }
                let now = upload.chunks.load(Ordering::Relaxed);
                if now == seen {
                    return Err(if upload.waiting_on_client.load(Ordering::Relaxed) {
                        Stall::Client
                    } else {
                        Stall::Upstream
                    });
                }
                seen = now;
            }
        }
    }
    if upload.too_large() {
        return Err(Stall::TooLarge);
    }
    tokio::time::timeout(within(read), response)
        .await
        .map_err(|_| Stall::Upstream)
}
