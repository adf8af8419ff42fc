//! Behaviour of the limiters as the proxy sees it, on governor's fake clock
//! (no sleeping), plus races of many threads against `prune` and against
//! each other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use governor::clock::FakeRelativeClock;

use super::{ConnLimiter, RateSpec, RequestLimiter};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// 10 requests per second, 5 at once, on a fake clock.
fn ten_rps_burst_five() -> (RequestLimiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let limiter = RequestLimiter::with_clock(RateSpec::per_second(nz(10), nz(5)), clock.clone());
    (limiter, clock)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn burst_passes_at_once_then_one_per_interval() {
    let (limiter, clock) = ten_rps_burst_five();
    let client = v4(192, 0, 2, 1);
    for i in 0..5 {
        assert_eq!(limiter.check(client), Ok(()), "request {i} of the burst");
    }
    assert_eq!(limiter.check(client), Err(ms(100)));
    for round in 0..10 {
        clock.advance(ms(99));
        assert!(limiter.check(client).is_err(), "round {round}: 1 ms early");
        clock.advance(ms(1));
        assert_eq!(limiter.check(client), Ok(()), "round {round}");
        assert_eq!(limiter.check(client), Err(ms(100)), "round {round}");
    }
}

#[test]
fn wait_is_the_time_until_a_retry_passes() {
    let (limiter, clock) = ten_rps_burst_five();
    let client = v4(192, 0, 2, 1);
    for _ in 0..5 {
        assert_eq!(limiter.check(client), Ok(()));
    }
    assert_eq!(limiter.check(client), Err(ms(100)));
    clock.advance(ms(30));
    // Rejections do not count: the wait only shrinks with time.
    assert_eq!(limiter.check(client), Err(ms(70)));
    assert_eq!(limiter.check(client), Err(ms(70)));
    clock.advance(ms(70));
    assert_eq!(limiter.check(client), Ok(()));
}

#[test]
fn per_minute_rate() {
    let clock = FakeRelativeClock::default();
    let limiter = RequestLimiter::with_clock(RateSpec::per_minute(nz(6), nz(2)), clock.clone());
    let client = v4(192, 0, 2, 1);
    assert_eq!(limiter.check(client), Ok(()));
    assert_eq!(limiter.check(client), Ok(()));
    assert_eq!(limiter.check(client), Err(Duration::from_secs(10)));
    clock.advance(Duration::from_secs(9));
    assert_eq!(limiter.check(client), Err(Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(limiter.check(client), Ok(()));
    assert!(limiter.check(client).is_err());
}

#[test]
fn distinct_clients_have_their_own_buckets() {
    let (limiter, _clock) = ten_rps_burst_five();
    let a = v4(192, 0, 2, 1);
    let b = v4(192, 0, 2, 2);
    let c = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    for _ in 0..5 {
        assert_eq!(limiter.check(a), Ok(()));
    }
    assert!(limiter.check(a).is_err());
    for client in [b, c] {
        for _ in 0..5 {
            assert_eq!(limiter.check(client), Ok(()), "{client}");
        }
        assert!(limiter.check(client).is_err(), "{client}");
    }
    assert_eq!(limiter.tracked_clients(), 3);
}

#[test]
fn ipv4_mapped_ipv6_is_the_ipv4_client() {
    let (limiter, _clock) = ten_rps_burst_five();
    let plain = v4(192, 0, 2, 7);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    for _ in 0..3 {
        assert_eq!(limiter.check(mapped), Ok(()));
    }
    assert_eq!(limiter.check(plain), Ok(()));
    assert_eq!(limiter.check(plain), Ok(()));
    assert!(limiter.check(mapped).is_err());
    assert!(limiter.check(plain).is_err());
    assert_eq!(limiter.tracked_clients(), 1);
}

#[test]
fn prune_forgets_a_client_only_once_its_bucket_is_full() {
    let (limiter, clock) = ten_rps_burst_five();
    let busy = v4(192, 0, 2, 1);
    let light = v4(192, 0, 2, 2);
    for _ in 0..5 {
        assert_eq!(limiter.check(busy), Ok(()));
    }
    assert_eq!(limiter.check(light), Ok(()));
    assert_eq!(limiter.tracked_clients(), 2);

    // One request is earned back after 100 ms; governor keeps a state one
    // interval longer than that, so `light` goes at 200 ms, `busy` (5 used)
    // at 600 ms.
    clock.advance(ms(199));
    limiter.prune();
    assert_eq!(limiter.tracked_clients(), 2);
    clock.advance(ms(1));
    limiter.prune();
    assert_eq!(limiter.tracked_clients(), 1);
    clock.advance(ms(399));
    limiter.prune();
    assert_eq!(limiter.tracked_clients(), 1);
    clock.advance(ms(1));
    limiter.prune();
    assert_eq!(limiter.tracked_clients(), 0);

    // Forgotten is the same as full: a whole burst again, not more.
    for _ in 0..5 {
        assert_eq!(limiter.check(busy), Ok(()));
    }
    assert_eq!(limiter.check(busy), Err(ms(100)));
}

#[test]
fn threads_on_one_client_share_exactly_one_burst() {
    let clock = FakeRelativeClock::default();
    let limiter = RequestLimiter::with_clock(RateSpec::per_second(nz(10), nz(100)), clock);
    let client = v4(192, 0, 2, 1);
    let allowed = AtomicU32::new(0);
    thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    if limiter.check(client).is_ok() {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.load(Ordering::Relaxed), 100);
}

/// Every round makes all states prunable (time jumps 10 s), then checkers
/// and a pruner race on 1024 clients at a frozen instant: each client must get
/// exactly one burst, whether its first check met its old state, a retired
/// one, or none. A prune that removed a state a check had just updated
/// would hand out one more. (A stress test: the interleaving is left to the
/// scheduler; `store::tests` pins the lost-update case down exactly.)
#[test]
fn prune_racing_checks_never_loses_a_count() {
    const CLIENTS: usize = 1024;
    const ROUNDS: usize = 20;
    const CHECKERS: usize = 4;
    let (limiter, clock) = ten_rps_burst_five();
    let clients: Vec<IpAddr> = (0..CLIENTS)
        .map(|i| v4(198, 51, (i >> 8) as u8, i as u8))
        .collect();
    for round in 0..ROUNDS {
        clock.advance(Duration::from_secs(10));
        let allowed: Vec<AtomicU32> = (0..CLIENTS).map(|_| AtomicU32::new(0)).collect();
        let done = AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                // Bounded: stops when the checkers are done, or after 100k.
                for _ in 0..100_000 {
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    limiter.prune();
                }
            });
            let checkers: Vec<_> = (0..CHECKERS)
                .map(|t| {
                    let (limiter, clients, allowed) = (&limiter, &clients, &allowed);
                    s.spawn(move || {
                        for pass in 0..3 {
                            for i in 0..CLIENTS {
                                // Threads walk the clients in different orders.
                                let i = (i * (2 * t + 1) + pass) % CLIENTS;
                                for _ in 0..3 {
                                    if limiter.check(clients[i]).is_ok() {
                                        allowed[i].fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            for checker in checkers {
                let _ = checker.join();
            }
            done.store(true, Ordering::Release);
        });
        for (i, count) in allowed.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                5,
                "round {round}, client {i}"
            );
        }
    }
    assert_eq!(limiter.tracked_clients(), CLIENTS);
}

#[test]
fn limiter_is_shareable_between_workers() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RequestLimiter>();
    assert_send_sync::<RequestLimiter<FakeRelativeClock>>();
    assert_send_sync::<ConnLimiter>();
    assert_send_sync::<super::ConnPermit>();
}

#[test]
fn conn_limiter_counts_until_the_permit_drops() {
    let limiter = Arc::new(ConnLimiter::new(nz(2)));
    let client = v4(192, 0, 2, 1);
    let first = limiter.acquire(client);
    let second = limiter.acquire(client);
    assert!(first.is_some() && second.is_some());
    assert!(limiter.acquire(client).is_none());
    assert_eq!(limiter.held(client), 2);

    drop(first);
    let third = limiter.acquire(client);
    assert!(third.is_some());
    assert!(limiter.acquire(client).is_none());

    drop(second);
    drop(third);
    assert_eq!(limiter.held(client), 0);
    assert_eq!(limiter.tracked_clients(), 0);
}

#[test]
fn conn_limiter_keys_by_canonical_client() {
    let limiter = Arc::new(ConnLimiter::new(nz(2)));
    let plain = v4(192, 0, 2, 7);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    let other = v4(192, 0, 2, 8);
    let a = limiter.acquire(mapped);
    let b = limiter.acquire(plain);
    assert_eq!(a.as_ref().map(|p| p.client()), Some(plain));
    assert!(b.is_some());
    assert!(limiter.acquire(plain).is_none());
    assert!(limiter.acquire(mapped).is_none());
    // Another client is not affected.
    let c = limiter.acquire(other);
    assert!(c.is_some());
    assert_eq!(limiter.tracked_clients(), 2);
    drop((a, b, c));
    assert_eq!(limiter.tracked_clients(), 0);
}

/// 8 threads each try to hold 4 permits of the same client (max 3) over and
/// over: a thread's 4th is always refused, the number of holders never
/// exceeds 3, and when all are dropped no entry remains.
#[test]
fn conn_limiter_never_exceeds_max_under_contention() {
    const MAX: u32 = 3;
    const THREADS: usize = 8;
    const ITERATIONS: usize = 2_000;
    let limiter = Arc::new(ConnLimiter::new(nz(MAX)));
    let clients = [v4(192, 0, 2, 1), v4(192, 0, 2, 2)];
    // Holders per client as the test sees them: incremented after a
    // successful acquire, decremented before the permit drops, so it can
    // only exceed MAX if the limiter over-admitted.
    let holding = [AtomicU32::new(0), AtomicU32::new(0)];
    let peak = AtomicU32::new(0);
    let granted = AtomicU32::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (limiter, holding, peak, granted) = (&limiter, &holding, &peak, &granted);
            s.spawn(move || {
                for i in 0..ITERATIONS {
                    let c = (t + i) % clients.len();
                    let mut permits = Vec::with_capacity(4);
                    for _ in 0..4 {
                        if let Some(permit) = limiter.acquire(clients[c]) {
                            let now = holding[c].fetch_add(1, Ordering::AcqRel) + 1;
                            peak.fetch_max(now, Ordering::Relaxed);
                            granted.fetch_add(1, Ordering::Relaxed);
                            permits.push(permit);
                        }
                    }
                    assert!(permits.len() <= MAX as usize);
                    if i % 16 == 0 {
                        thread::yield_now();
                    }
                    for permit in permits {
                        holding[c].fetch_sub(1, Ordering::AcqRel);
                        drop(permit);
                    }
                }
            });
        }
    });
    let peak = peak.load(Ordering::Relaxed);
    assert!((1..=MAX).contains(&peak), "peak holders {peak}");
    assert!(granted.load(Ordering::Relaxed) >= ITERATIONS as u32);
    assert_eq!(limiter.tracked_clients(), 0);
    for client in clients {
        assert_eq!(limiter.held(client), 0);
    }
    // Nothing leaked: a client gets its full allowance again.
    let again: Vec<_> = (0..MAX)
        .filter_map(|_| limiter.acquire(clients[0]))
        .collect();
    assert_eq!(again.len(), MAX as usize);
}

#[test]
fn rate_spec_intervals() {
    let rps = RateSpec::per_second(nz(10), nz(5));
    assert_eq!(rps.replenish_interval(), ms(100));
    assert_eq!(rps.refill_time(), ms(500));
    let rpm = RateSpec::per_minute(nz(6), nz(2));
    assert_eq!(rpm.replenish_interval(), Duration::from_secs(10));
    let degenerate = RateSpec {
        requests: nz(10),
        per: Duration::ZERO,
        burst: nz(1),
    };
    assert_eq!(degenerate.replenish_interval(), Duration::from_nanos(1));
    // A limiter built from it does not panic and lets requests through.
    let limiter = RequestLimiter::with_clock(degenerate, FakeRelativeClock::default());
    assert_eq!(limiter.check(v4(192, 0, 2, 1)), Ok(()));
}
