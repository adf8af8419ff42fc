//! The request body teed to mirrors (Gateway `RequestMirror`): every data
//! chunk the main request reads from the client is also queued, by
//! reference (`Bytes` clones share the buffer), for each mirror copy.
//!
//! Invariants:
//! - Never slows the main request: queueing is `try_send`, never an await;
//!   a copy whose queue would pass [`MAX_QUEUED_BYTES`] (its mirror reads
//!   slower than the client sends) is abandoned there, so memory per copy
//!   is bounded by that figure whatever the body's size.
//! - An abandoned copy, or one whose client body failed, ends in an error,
//!   so its mirror sees an aborted request, never a truncated body that
//!   looks complete; only a body the main request read to its end ends
//!   the copy cleanly.
//! - The main request's body is read once, by its own upstream exchange:
//!   a mirror gets only what the main request has read so far.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Most bytes queued for one mirror copy before it is abandoned.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// Most chunks queued for one mirror copy (a bound on the channel itself;
/// the byte bound is the one that matters).
const MAX_QUEUED_CHUNKS: usize = 256;

/// What a copy's queue carries: a chunk, or the body's clean end.
#[derive(Debug)]
enum Piece {
    Data(Bytes),
    End,
}

/// The main request's side: the copies still being fed.
#[derive(Debug, Default)]
pub struct Tee {
    copies: Vec<Copy>,
}

#[derive(Debug)]
struct Copy {
    tx: mpsc::Sender<Piece>,
    queued: Arc<AtomicUsize>,
}

/// A mirror's side: the body of its copy of the request.
#[derive(Debug)]
pub struct TeeBody {
    rx: mpsc::Receiver<Piece>,
    queued: Arc<AtomicUsize>,
    /// The size the client declared, when it did.
    exact: Option<u64>,
    ended: bool,
}

/// Why a mirror's copy of the body stopped before its end.
#[derive(Debug, thiserror::Error)]
#[error("mirror body abandoned: the mirror fell behind or the client body failed")]
pub struct Abandoned;

impl Tee {
    /// A new copy; its body carries what is queued from now on.
    pub fn copy(&mut self, exact: Option<u64>) -> TeeBody {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_CHUNKS);
        let queued = Arc::new(AtomicUsize::new(0));
        self.copies.push(Copy {
            tx,
            queued: queued.clone(),
        });
        TeeBody {
            rx,
            queued,
            exact,
            ended: false,
        }
    }

    /// Queues `data` for every copy; a copy that is too far behind, or
    /// gone, is dropped (its body then ends in [`Abandoned`]).
    pub fn push(&mut self, data: &Bytes) {
        let len = data.len();
        self.copies.retain(|c| {
            let queued = c.queued.fetch_add(len, Ordering::AcqRel);
            queued.saturating_add(len) <= MAX_QUEUED_BYTES
                && c.tx.try_send(Piece::Data(data.clone())).is_ok()
        });
    }

    /// The body ended cleanly: every copy ends too.
    pub fn end(&mut self) {
        for c in self.copies.drain(..) {
            let _ = c.tx.try_send(Piece::End);
        }
    }

    /// The client's body failed: every copy is abandoned.
    pub fn fail(&mut self) {
        self.copies.clear();
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = Abandoned;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Abandoned>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Piece::Data(data))) => {
                self.queued.fetch_sub(data.len(), Ordering::AcqRel);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Piece::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(Abandoned)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_copy_gets_the_body_and_its_end() {
        let mut tee = Tee::default();
        let body = tee.copy(Some(6));
        tee.push(&Bytes::from_static(b"abc"));
        tee.push(&Bytes::from_static(b"def"));
        tee.end();
        let got = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(got.ok().as_deref(), Some(&b"abcdef"[..]));
    }

    #[tokio::test]
    async fn a_copy_too_far_behind_is_abandoned_and_the_others_fed() {
        let mut tee = Tee::default();
        let mut slow = tee.copy(None);
        let chunk = Bytes::from(vec![0u8; MAX_QUEUED_BYTES / 2 + 1]);
        tee.push(&chunk);
        assert_eq!(tee.copies.len(), 1);
        tee.push(&chunk);
        assert!(tee.copies.is_empty(), "the second chunk passes the bound");
        let mut got = 0;
        let mut failed = false;
        while let Some(frame) = slow.frame().await {
            match frame {
                Ok(f) => got += f.data_ref().map_or(0, |d| d.len()),
                Err(Abandoned) => failed = true,
            }
        }
        assert_eq!(got, chunk.len(), "what was queued is delivered");
        assert!(failed, "then the copy ends in an error, not a clean end");
        // A failed client body abandons the copies too.
        let mut tee = Tee::default();
        let body = tee.copy(None);
        tee.push(&Bytes::from_static(b"x"));
        tee.fail();
        assert!(body.collect().await.is_err());
    }
}
