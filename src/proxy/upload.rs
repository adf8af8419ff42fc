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
//! Invariant: requests without a body (most of them) carry no tracker and
//! cost nothing extra: one timer, as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::error::ProxyError;

/// Progress of one request body, shared by the body and the waiting request.
#[derive(Debug, Default)]
pub struct Upload {
    chunks: AtomicU64,
    done: AtomicBool,
    /// The upstream asked for more and the client had nothing yet.
    waiting_on_client: AtomicBool,
    waker: AtomicWaker,
}

/// The client's request body, forwarded upstream, reporting its progress.
#[derive(Debug)]
pub struct UploadBody {
    inner: Incoming,
    upload: Option<Arc<Upload>>,
}

impl UploadBody {
    /// Wraps a request body; returns the tracker when there is a body.
    pub fn new(inner: Incoming) -> (Self, Option<Arc<Upload>>) {
        let upload = (!inner.is_end_stream()).then(Arc::<Upload>::default);
        (
            Self {
                inner,
                upload: upload.clone(),
            },
            upload,
        )
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(upload) = &self.upload {
            match &polled {
                Poll::Pending => upload.waiting_on_client.store(true, Ordering::Relaxed),
                Poll::Ready(Some(Ok(_))) if !self.inner.is_end_stream() => {
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
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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

/// Awaits `response` under the two-phase timeout described in the module
/// documentation (a single timeout when there is no body).
pub async fn with_timeouts<F: Future>(
    response: F,
    upload: Option<&Upload>,
    timeout: Duration,
) -> Result<F::Output, ProxyError> {
    let Some(upload) = upload else {
        return tokio::time::timeout(timeout, response)
            .await
            .map_err(|_| ProxyError::Timeout);
    };
    let mut response = std::pin::pin!(response);
    let mut seen = upload.chunks.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            biased;
            output = response.as_mut() => return Ok(output),
            _ = Sent(upload) => break,
            _ = tokio::time::sleep(timeout) => {
                let now = upload.chunks.load(Ordering::Relaxed);
                if now == seen {
                    return Err(if upload.waiting_on_client.load(Ordering::Relaxed) {
                        ProxyError::ClientTimeout
                    } else {
                        ProxyError::Timeout
                    });
                }
                seen = now;
            }
        }
    }
    tokio::time::timeout(timeout, response)
        .await
        .map_err(|_| ProxyError::Timeout)
}
