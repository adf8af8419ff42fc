//! Response bandwidth per request, as nginx's `limit_rate` /
//! `limit_rate_after` (`limit-rate`, `limit-rate-after`): the first
//! `after` bytes of a body go at full speed, the rest at most
//! `bytes_per_sec`, in slices of a tenth of a second's worth.
//!
//! Invariants:
//! - Never blocks a worker and takes no lock: a held slice waits on one
//!   tokio timer, reset (not reallocated) for every wait.
//! - Bytes are only delayed and split, never dropped or reordered;
//!   trailers pass at once (after every held byte).
//! - Time is tokio's (`tokio::time::Instant`, a tokio timer), so a paused
//!   tokio clock drives it.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Sleep};

use crate::table::policy::LimitRate;

type Polled = Poll<Option<Result<Frame<Bytes>, hyper::Error>>>;

/// The pacing state of one response body.
#[derive(Debug)]
pub struct Pace {
    limit: LimitRate,
    /// Bytes handed on so far.
    sent: u64,
    /// When the limited part began (its first slice).
    start: Option<Instant>,
    /// Data read from the body but not yet handed on.
    held: Option<Bytes>,
    /// The wait before `held` may go; created at the first wait.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl Pace {
    pub fn new(limit: LimitRate) -> Pace {
        Pace {
            limit,
            sent: 0,
            start: None,
            held: None,
            timer: None,
            waiting: false,
        }
    }

    /// Whether data is held back (the body is not at its end).
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// The next frame, from `inner` once nothing is held.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        mut inner: impl FnMut(&mut Context<'_>) -> Polled,
    ) -> Polled {
        loop {
            if self.waiting {
                if let Some(timer) = &mut self.timer {
                    ready!(timer.as_mut().poll(cx));
                }
                self.waiting = false;
            }
            let mut data = match self.held.take() {
                Some(data) => data,
                None => match ready!(inner(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                    other => return Poll::Ready(other),
                },
            };
            if self.sent < self.limit.after {
                let free = usize::try_from(self.limit.after - self.sent)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let head = data.split_to(free);
                self.keep(data);
                self.sent += head.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(head))));
            }
            let now = Instant::now();
            let start = *self.start.get_or_insert(now);
            let limited = self.sent - self.limit.after;
            let due =
                start + Duration::from_secs_f64(limited as f64 / self.limit.bytes_per_sec as f64);
            if due > now {
                self.held = Some(data);
                match &mut self.timer {
                    Some(timer) => timer.as_mut().reset(due),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(due))),
                }
                self.waiting = true;
                continue;
            }
            let slice = usize::try_from(self.limit.bytes_per_sec / 10)
                .unwrap_or(usize::MAX)
                .clamp(1, data.len().max(1));
            let head = data.split_to(slice.min(data.len()));
            self.keep(data);
            self.sent += head.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
    }

    fn keep(&mut self, rest: Bytes) {
        if !rest.is_empty() {
            self.held = Some(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    async fn drain(limit: LimitRate, chunks: Vec<usize>) -> (usize, Duration) {
        let mut source: VecDeque<Bytes> = chunks
            .into_iter()
            .map(|n| Bytes::from(vec![0u8; n]))
            .collect();
        let mut pace = Pace::new(limit);
        let begin = Instant::now();
        let mut total = 0;
        loop {
            let frame = std::future::poll_fn(|cx| {
                pace.poll_frame(cx, |_| {
                    Poll::Ready(source.pop_front().map(|b| Ok(Frame::data(b))))
                })
            })
            .await;
            match frame {
                Some(Ok(f)) => total += f.into_data().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        (total, begin.elapsed())
    }

    #[tokio::test]
    async fn paces_after_the_free_bytes() {
        let limit = LimitRate {
            bytes_per_sec: 10_000,
            after: 500,
        };
        let (total, took) = drain(limit, vec![1500, 1500]).await;
        assert_eq!(total, 3000);
        // 2500 limited bytes at 10,000/s in 1000-byte slices: the last
        // slice leaves once 2000 bytes had their time, at 0.2 s.
        assert!(took >= Duration::from_millis(195), "{took:?}");
        assert!(took <= Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn free_bytes_go_at_once() {
        let limit = LimitRate {
            bytes_per_sec: 10,
            after: 4096,
        };
        let (total, took) = drain(limit, vec![4096]).await;
        assert_eq!(total, 4096);
        assert!(took < Duration::from_millis(50), "{took:?}");
    }
}
