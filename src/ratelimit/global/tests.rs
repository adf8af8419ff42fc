use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::batch::Batches;
use super::store::StoreError;

/// Concurrent requests of one key share calls: while one call is in
/// flight, the others gather into the next, which asks for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_key_requests_in_flight_together_share_a_call() {
    let batches = Arc::new(Batches::default());
    let calls = Arc::new(AtomicU32::new(0));
    let asked = Arc::new(AtomicU32::new(0));
    let passing = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (batches, calls, asked, passing) = (
            batches.clone(),
            calls.clone(),
            asked.clone(),
            passing.clone(),
        );
        tasks.push(tokio::spawn(async move {
            batches
                .decide(b"k", |n| async move {
                    calls.fetch_add(1, Ordering::Relaxed);
                    asked.fetch_add(n, Ordering::Relaxed);
                    passing.fetch_add(n.min(2), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    // Of each batch, two pass.
                    Ok((2, Duration::from_millis(300)))
                })
                .await
        }));
    }
    let mut allowed = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(None) => allowed += 1,
            Ok(Some(wait)) => {
                assert_eq!(wait, Duration::from_millis(300));
                refused += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    let calls = calls.load(Ordering::Relaxed);
    assert_eq!(
        asked.load(Ordering::Relaxed),
        50,
        "every request asked once"
    );
    assert!(calls < 50, "{calls} calls for 50 requests");
    assert_eq!(
        allowed,
        passing.load(Ordering::Relaxed),
        "{allowed} allowed in {calls} calls"
    );
    assert_eq!(allowed + refused, 50);
    assert_eq!(batches.len(), 0, "finished batches leave the map");
}

/// A leader that goes away mid-call gives its followers an error, never a
/// wait past their budget, and leaves nothing behind.
#[tokio::test]
async fn an_abandoned_batch_answers_its_followers() {
    let batches = Arc::new(Batches::default());
    let leader = {
        let batches = batches.clone();
        tokio::spawn(async move {
            batches
                .decide(b"k", |_| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok((1, Duration::ZERO))
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    let follower = {
        let batches = batches.clone();
        tokio::spawn(async move {
            batches
                .decide(b"k", |_| async { Ok((1, Duration::ZERO)) })
                .await
        })
    };
    tokio::task::yield_now().await;
    leader.abort();
    let answer = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower is answered")
        .unwrap();
    // The follower either waited on the abandoned call (Cancelled) or led
    // its own batch after it (allowed).
    assert!(
        matches!(answer, Err(StoreError::Cancelled) | Ok(None)),
        "{answer:?}"
    );
    assert_eq!(batches.len(), 0);
}
