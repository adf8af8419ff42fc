//! Batching: requests of the same key that arrive while a store call for
//! that key is in flight (in this replica) wait for it to finish and then
//! go as one call, which asks for all of them at once.
//!
//! Invariants:
//! - At most one call per key is in flight per replica; a batch is sent
//!   only after the previous batch of its key has its result.
//! - A batch's result is set exactly once, by its leader, or by the
//!   leader's drop guard (the leader's request went away or ran out of
//!   budget), so followers never wait past their own budget.
//! - The map holds a key only while a batch of it is open or in flight:
//!   the leader removes its batch when done, unless a newer one replaced it.
//! - No lock of ours: the map is papaya (lock-free), a batch is atomics
//!   and a `OnceLock` written once. Waiting uses tokio's `Notify`, whose
//!   waiter list has a short internal lock: only requests that wait for a
//!   batch (and its leader, once, to wake them) touch it, never a route
//!   without a global limit.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use papaya::{Compute, Operation};
use tokio::sync::Notify;

use super::store::StoreError;

/// Set in [`Batch::joined`] once the batch was sent: nobody joins after.
const CLOSED: u32 = 1 << 31;

/// A call's result: how many of the batch pass, and the wait of the rest.
pub(super) type Answer = Result<(u32, Duration), StoreError>;

/// Open and in-flight batches by key.
#[derive(Default)]
pub(super) struct Batches {
    map: papaya::HashMap<Box<[u8]>, Arc<Batch>, foldhash::fast::RandomState>,
}

#[derive(Default)]
struct Batch {
    /// Requests in the batch (the leader is 0), plus [`CLOSED`].
    joined: AtomicU32,
    result: OnceLock<Answer>,
    done: Notify,
}

impl Batch {
    /// Joins an open batch: the request's place in it.
    fn join(&self) -> Option<u32> {
        self.joined
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n & CLOSED == 0 && n < CLOSED - 1).then_some(n + 1)
            })
            .ok()
    }

    fn is_closed(&self) -> bool {
        self.joined.load(Ordering::Acquire) & CLOSED != 0
    }

    fn finish(&self, answer: Answer) {
        if self.result.set(answer).is_ok() {
            self.done.notify_waiters();
        }
    }

    async fn wait(&self) -> Answer {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(answer) = self.result.get() {
                return answer.clone();
            }
            notified.await;
        }
    }
}

/// Finishes a leader's batch however the leader ends, and takes the batch
/// out of the map unless a newer one replaced it.
struct LeaderGuard<'a> {
    batches: &'a Batches,
    key: &'a [u8],
    batch: Arc<Batch>,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        // Closed first, so nobody joins a batch that will never be sent.
        self.batch.joined.fetch_or(CLOSED, Ordering::AcqRel);
        self.batch.finish(Err(StoreError::Cancelled));
        let map = self.batches.map.pin();
        let _ = map.remove_if(self.key, |_, b| Arc::ptr_eq(b, &self.batch));
    }
}

impl Batches {
    /// Keys with an open or in-flight batch.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Decides one request of `key`: joins the open batch of the key, or
    /// opens one and, once the key's previous call is done, sends it with
    /// `send(n)` for all `n` requests that joined. `Ok(None)`: allowed;
    /// `Ok(Some(wait))`: refused; `Err`: no decision.
    pub(super) async fn decide<F, Fut>(
        &self,
        key: &[u8],
        send: F,
    ) -> Result<Option<Duration>, StoreError>
    where
        F: FnOnce(u32) -> Fut,
        Fut: Future<Output = Answer>,
    {
        let (batch, place, previous) = loop {
            let mine = Arc::new(Batch::default());
            mine.joined.store(1, Ordering::Release);
            let mut previous = None;
            let outcome = {
                let map = self.map.pin();
                if let Some(open) = map.get(key) {
                    if let Some(place) = open.join() {
                        break (open.clone(), place, None);
                    }
                }
                let result = map.compute(Box::from(key), |entry| match entry {
                    Some((_, open)) if !open.is_closed() => Operation::Abort(()),
                    Some((_, closed)) => {
                        previous = Some(closed.clone());
                        Operation::Insert(mine.clone())
                    }
                    None => {
                        previous = None;
                        Operation::Insert(mine.clone())
                    }
                });
                !matches!(result, Compute::Aborted(()))
            };
            if outcome {
                break (mine, 0, previous);
            }
            // Someone opened a batch between our look and our insert: join it.
        };
        let answer = if place == 0 {
            let guard = LeaderGuard {
                batches: self,
                key,
                batch: batch.clone(),
            };
            if let Some(previous) = previous {
                // One call per key in flight: this batch fills meanwhile.
                let _ = previous.wait().await;
            }
            let n = batch.joined.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED;
            let answer = send(n.max(1)).await;
            batch.finish(answer.clone());
            drop(guard);
            answer
        } else {
            batch.wait().await
        };
        let (allowed, wait) = answer?;
        Ok((place >= allowed).then_some(wait))
    }
}
