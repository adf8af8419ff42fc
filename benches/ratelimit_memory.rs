//! Memory and speed of `RequestLimiter` under many distinct clients, with a
//! pruner calling `prune()` every second as the control plane will.
//!
//! Measures, in order:
//! 1. ns per `check` for one hot client: on a 100 rps / burst 500 limiter
//!    (after the first 500 every check is a rejection) and on an
//!    effectively unlimited one (every check is allowed and writes state);
//! 2. 1,000,000 distinct client IPs (`10.0.0.0 + i`, one request each)
//!    checked as fast as one thread can on a 100 rps / burst 500 limiter
//!    while another thread prunes every second: ns per `check` (every one a
//!    new client: an insert), peak tracked entries, and RSS
//!    (`/proc/self/statm`, 4 KiB pages) before, at peak, right before and
//!    right after the final prune (once every entry is prunable), and 12 s
//!    later. The prune's sweep finishes any incremental table resize papaya
//!    left pending, which touches the rest of the new table: RSS right after
//!    it is the true peak;
//! 3. ns per `check` over 1,000,000 distinct clients that are already
//!    tracked (a second pass, no pruner): the cache-missing lookup + CAS;
//! 4. the bound in steady state: 1,000,000 new clients at a paced 200,000/s
//!    with the pruner: peak tracked entries, which should stay near
//!    rate × (prune period + lifetime of a one-request entry, 20 ms).
//!
//! Same global allocator as the binary (jemalloc unless built with
//! `--no-default-features`), with its background purging turned on, as an
//! idle bench otherwise never gives the allocator a chance to return pages
//! (a busy proxy does, on its own allocations).
//!
//! Every phase is bounded: each loop stops after 120 s whatever its count,
//! and the waits are fixed.
//!
//! Run: `cargo bench --bench ratelimit_memory`.
//! Knobs (environment): `RL_BENCH_CLIENTS` (1000000), `RL_BENCH_HOT_CHECKS`
//! (5000000), `RL_BENCH_PACED_RATE` (200000 new clients/s).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tollgate::ratelimit::{RateSpec, RequestLimiter};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Page size assumed for `/proc/self/statm` (x86-64 and default arm64).
const PAGE: u64 = 4096;
/// Bound of every measuring loop.
const DEADLINE: Duration = Duration::from_secs(120);
/// Period of the pruner thread (the control plane's).
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// Tracked entries and RSS are sampled every this many checks.
const SAMPLE_EVERY: usize = 16_384;
/// Allocator decay wait before the last RSS reading.
const SETTLE: Duration = Duration::from_secs(12);
/// Paced phase: new clients are sent in batches this often.
const PACE_TICK: Duration = Duration::from_millis(10);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// Resident set size in bytes, from `/proc/self/statm` (0 if unreadable).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * PAGE)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ns_per(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_nanos() as f64 / n.max(1) as f64
}

fn client(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i as u32)))
}

/// The pruner's record.
#[derive(Default)]
struct Pruned {
    prunes: AtomicUsize,
    /// Largest `tracked_clients()` seen just before a prune.
    peak_before: AtomicUsize,
}

/// Runs `work` while another thread prunes `limiter` every [`PRUNE_EVERY`].
fn with_pruner<R>(limiter: &RequestLimiter, work: impl FnOnce() -> R) -> (R, Pruned) {
    let done = AtomicBool::new(false);
    let pruned = Pruned::default();
    let result = thread::scope(|s| {
        s.spawn(|| {
            let stop_at = Instant::now() + DEADLINE + PRUNE_EVERY;
            let mut next = Instant::now() + PRUNE_EVERY;
            while !done.load(Ordering::Acquire) && Instant::now() < stop_at {
                if Instant::now() < next {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
                next += PRUNE_EVERY;
                pruned
                    .peak_before
                    .fetch_max(limiter.tracked_clients(), Ordering::Relaxed);
                limiter.prune();
                pruned.prunes.fetch_add(1, Ordering::Relaxed);
            }
        });
        let result = work();
        done.store(true, Ordering::Release);
        result
    });
    (result, pruned)
}

fn hot_key(label: &str, spec: RateSpec, checks: usize) {
    let limiter = RequestLimiter::new(spec);
    let ip = client(1);
    let mut allowed = 0usize;
    let start = Instant::now();
    for _ in 0..checks {
        if limiter.check(black_box(ip)).is_ok() {
            allowed += 1;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "hot key, {label}: {:.1} ns/check ({checks} checks, {allowed} allowed)",
        ns_per(elapsed, checks)
    );
}

/// Phase 2: as fast as possible, with the pruner; RSS throughout.
fn distinct_flood(spec: RateSpec, clients: usize) {
    let limiter = RequestLimiter::new(spec);
    let rss_before = rss();
    let mut peak_tracked = 0usize;
    let mut peak_rss = rss_before;
    let ((checked, elapsed, tracked_at_end), pruned) = with_pruner(&limiter, || {
        let start = Instant::now();
        let mut checked = 0usize;
        for i in 0..clients {
            // Every check is a new client, so every one is allowed.
            let _ = black_box(limiter.check(client(i)));
            checked += 1;
            if i % SAMPLE_EVERY == 0 {
                peak_tracked = peak_tracked.max(limiter.tracked_clients());
                peak_rss = peak_rss.max(rss());
                if start.elapsed() > DEADLINE {
                    break;
                }
            }
        }
        (checked, start.elapsed(), limiter.tracked_clients())
    });
    peak_tracked = peak_tracked
        .max(tracked_at_end)
        .max(pruned.peak_before.load(Ordering::Relaxed));
    peak_rss = peak_rss.max(rss());

    // Wait until every entry is prunable: at most (burst + 1) intervals
    // after its last request.
    thread::sleep(spec.refill_time() + spec.replenish_interval() + Duration::from_millis(100));
    let rss_before_prune = rss();
    let prune_start = Instant::now();
    limiter.prune();
    let prune_time = prune_start.elapsed();
    let tracked_after = limiter.tracked_clients();
    let rss_after = rss();
    thread::sleep(SETTLE);
    let rss_settled = rss();

    println!(
        "distinct new clients, as fast as possible: {checked} checks in {:.2} s = {:.1} ns/check, \
         {} prunes meanwhile",
        elapsed.as_secs_f64(),
        ns_per(elapsed, checked),
        pruned.prunes.load(Ordering::Relaxed),
    );
    println!(
        "  tracked entries: peak {peak_tracked}, at end of inserts {tracked_at_end}, \
         after final prune {tracked_after} (that prune took {:.1} ms)",
        prune_time.as_secs_f64() * 1e3,
    );
    let grown = peak_rss.saturating_sub(rss_before);
    println!(
        "  RSS: before {:.1} MiB, peak while inserting {:.1} MiB (+{:.1} MiB = {:.0} B per peak entry), \
         just before final prune {:.1} MiB, after it {:.1} MiB ({:.0} B per peak entry), \
         {} s later {:.1} MiB",
        mib(rss_before),
        mib(peak_rss),
        mib(grown),
        grown as f64 / peak_tracked.max(1) as f64,
        mib(rss_before_prune),
        mib(rss_after),
        rss_after.saturating_sub(rss_before) as f64 / peak_tracked.max(1) as f64,
        SETTLE.as_secs(),
        mib(rss_settled),
    );
    if tracked_after != 0 {
        eprintln!("FAIL: {tracked_after} entries survived the final prune");
        std::process::exit(1);
    }
}

/// Phase 3: checks of distinct clients that are already tracked.
fn distinct_known(spec: RateSpec, clients: usize) {
    let limiter = RequestLimiter::new(spec);
    let start = Instant::now();
    let mut inserted = 0usize;
    for i in 0..clients {
        let _ = black_box(limiter.check(client(i)));
        inserted += 1;
        if i % SAMPLE_EVERY == 0 && start.elapsed() > DEADLINE {
            break;
        }
    }
    let insert_time = start.elapsed();
    let start = Instant::now();
    let mut allowed = 0usize;
    for i in 0..inserted {
        if limiter.check(black_box(client(i))).is_ok() {
            allowed += 1;
        }
    }
    let known_time = start.elapsed();
    println!(
        "distinct clients, no pruner: new {:.1} ns/check, already tracked {:.1} ns/check \
         ({inserted} clients, {allowed} allowed on the second pass)",
        ns_per(insert_time, inserted),
        ns_per(known_time, inserted),
    );
}

/// Phase 4: new clients at a steady rate, with the pruner.
fn distinct_paced(spec: RateSpec, clients: usize, rate: usize) {
    let limiter = RequestLimiter::new(spec);
    let per_tick = (rate as f64 * PACE_TICK.as_secs_f64()).max(1.0) as usize;
    let mut peak_tracked = 0usize;
    let ((sent, elapsed), pruned) = with_pruner(&limiter, || {
        let start = Instant::now();
        let mut sent = 0usize;
        let mut next = start;
        while sent < clients && start.elapsed() < DEADLINE {
            let now = Instant::now();
            if now < next {
                thread::sleep(next - now);
            }
            next += PACE_TICK;
            let batch = per_tick.min(clients - sent);
            for i in sent..sent + batch {
                let _ = black_box(limiter.check(client(i)));
            }
            sent += batch;
            peak_tracked = peak_tracked.max(limiter.tracked_clients());
        }
        (sent, start.elapsed())
    });
    peak_tracked = peak_tracked.max(pruned.peak_before.load(Ordering::Relaxed));
    println!(
        "distinct new clients, paced {:.0}/s: {sent} in {:.2} s, {} prunes, peak tracked {peak_tracked} \
         (rate x (prune period + 20 ms) = {:.0})",
        sent as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        pruned.prunes.load(Ordering::Relaxed),
        rate as f64 * (PRUNE_EVERY + spec.replenish_interval() * 2).as_secs_f64(),
    );
}

fn main() {
    #[cfg(feature = "jemalloc")]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("jemalloc background purging not enabled: {e}");
    }
    let clients = env_usize("RL_BENCH_CLIENTS", 1_000_000);
    let hot_checks = env_usize("RL_BENCH_HOT_CHECKS", 5_000_000);
    let paced_rate = env_usize("RL_BENCH_PACED_RATE", 200_000);
    let spec = RateSpec::per_second(nz(100), nz(500));

    hot_key("100 rps burst 500 (rejections)", spec, hot_checks);
    hot_key(
        "unlimited (allowed, state written)",
        RateSpec::per_second(NonZeroU32::MAX, NonZeroU32::MAX),
        hot_checks,
    );
    distinct_flood(spec, clients);
    distinct_known(spec, clients);
    distinct_paced(spec, clients, paced_rate);
}
