//! Releases the state a publish replaced (the previous table, upstreams,
//! metric handles, the previous debug/webhook state and last good
//! versions) on a thread of its own, so the control loop can take the next
//! change at once: freeing a 10,000-route table is proportional to the
//! whole configuration, not to the change.
//!
//! Invariants:
//! - One thread for the process, started on first use; values are dropped
//!   in the order they were sent. If the thread cannot be started (or has
//!   gone), values are dropped on the caller's thread: never leaked.
//! - Only the last references are worth sending: anything still shared
//!   (a request holding the previous [`crate::state::Published`]) is freed
//!   by whoever drops it last, as before.
//! - Nothing observable depends on when a value is freed: the values sent
//!   have no `Drop` with effects beyond freeing memory.

use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

/// Anything that can be freed on another thread.
type Garbage = Box<dyn Send>;

/// The dropper thread's end, started on first use (`None`: it could not be).
static DROPPER: OnceLock<Option<Sender<Garbage>>> = OnceLock::new();

fn start() -> Option<Sender<Garbage>> {
    let (tx, rx) = channel::<Garbage>();
    std::thread::Builder::new()
        .name("tollgate-dropper".into())
        .spawn(move || {
            for garbage in rx {
                drop(garbage);
            }
        })
        .ok()?;
    Some(tx)
}

/// Frees `value` on the dropper thread (or here when there is none).
pub(super) fn release<T: Send + 'static>(value: T) {
    let Some(tx) = DROPPER.get_or_init(start) else {
        drop(value);
        return;
    };
    // A send fails only when the thread is gone: the value comes back in
    // the error and is dropped here.
    drop(tx.send(Box::new(value)));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn released_values_are_dropped_off_the_callers_thread() {
        let dropped = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            super::release(Counted(dropped.clone()));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while dropped.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(dropped.load(Ordering::SeqCst), 3);
    }
}
