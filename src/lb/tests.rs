//! Pickers, passive health and endpoint-set replacement.
//!
//! Passive-health backoff is checked against its deadline rather than by
//! moving a clock: `tokio::time::pause`/`advance` need tokio's `test-util`
//! feature, which the crate does not enable. `elapse` below moves an
//! endpoint's deadline instead, which is what the passing of time does to it.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use super::*;
use crate::table::upstream::PortRef;

fn addr(i: u8) -> EndpointAddr {
    EndpointAddr::Socket(SocketAddr::from(([10, 0, 0, i], 8080)))
}

/// An upstream with endpoints 10.0.0.1..=n.
fn upstream(lb: LbAlgorithm, n: u8) -> Upstream {
    let spec = UpstreamSpec {
        key: UpstreamKey {
            namespace: "ns".into(),
            service: "web".into(),
            port: PortRef::Number(80),
            lb,
            protocol: Default::default(),
            verify: None,
        },
        label: "ns/web:80".into(),
        endpoints: (1..=n).map(addr).collect(),
        trust: Default::default(),
    };
    Upstream::new(&spec, Counter::default())
}

/// Index in `set` of the endpoint picked, `None` when nothing was picked.
fn pick_index(up: &Upstream, set: &EndpointSet, exclude: &[&Endpoint]) -> Option<usize> {
    let picked = up.pick(set, exclude)?;
    Some(
        set.endpoints
            .iter()
            .position(|e| Arc::ptr_eq(e, &picked))
            .expect("picked from the set"),
    )
}

/// How often each endpoint is picked in `rounds` picks.
fn counts(up: &Upstream, exclude: &[&Endpoint], rounds: usize) -> Vec<usize> {
    let set = up.endpoints();
    let mut counts = vec![0; set.endpoints.len()];
    for _ in 0..rounds {
        counts[pick_index(up, &set, exclude).expect("an endpoint")] += 1;
    }
    counts
}

/// Remaining passive-health backoff of `e` in ms (0 when it is up).
fn backoff_left_ms(e: &Endpoint) -> u64 {
    e.down_until_ms
        .load(Ordering::Relaxed)
        .saturating_sub(clock::now_ms())
}

/// Lets `ms` of `e`'s backoff pass.
fn elapse(e: &Endpoint, ms: u64) {
    let until = e.down_until_ms.load(Ordering::Relaxed);
    e.down_until_ms
        .store(until.saturating_sub(ms).max(1), Ordering::Relaxed);
}

/// Real time passes between marking and measuring; allow for a slow machine.
const SLACK_MS: u64 = 200;

#[track_caller]
fn assert_backoff(e: &Endpoint, want_ms: u64) {
    let left = backoff_left_ms(e);
    assert!(
        left <= want_ms && left + SLACK_MS > want_ms,
        "backoff {left} ms, want {want_ms} ms"
    );
}

const BOTH: [LbAlgorithm; 2] = [LbAlgorithm::RoundRobin, LbAlgorithm::P2cEwma];

// ------------------------------------------------------------- round robin

#[test]
fn round_robin_spreads_evenly() {
    let up = upstream(LbAlgorithm::RoundRobin, 3);
    assert_eq!(counts(&up, &[], 300), [100, 100, 100]);
    // And in turn: any three consecutive picks hit all three endpoints.
    let set = up.endpoints();
    let picks: Vec<usize> = (0..3).filter_map(|_| pick_index(&up, &set, &[])).collect();
    let mut sorted = picks.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2], "{picks:?}");
}

#[test]
fn failed_endpoint_is_skipped_until_its_backoff_passes() {
    for lb in BOTH {
        let up = upstream(lb, 3);
        let set = up.endpoints();
        let failed = &set.endpoints[1];
        failed.mark_failed();
        assert_backoff(failed, BACKOFF_BASE_MS);
        assert_eq!(
            counts(&up, &[], 60)[1],
            0,
            "{lb:?}: skipped while backing off"
        );

        elapse(failed, BACKOFF_BASE_MS - 500);
        assert!(failed.is_down());
        assert_eq!(
            counts(&up, &[], 60)[1],
            0,
            "{lb:?}: skipped until the backoff has fully passed"
        );

        elapse(failed, 500);
        assert!(!failed.is_down());
        assert!(
            counts(&up, &[], 60)[1] > 0,
            "{lb:?}: picked again once the backoff passed"
        );
    }
}

#[test]
fn backoff_doubles_per_consecutive_failure_up_to_a_cap_and_success_resets_it() {
    let up = upstream(LbAlgorithm::RoundRobin, 1);
    let set = up.endpoints();
    let e = &set.endpoints[0];
    for want in [1_000, 2_000, 4_000, 8_000, BACKOFF_MAX_MS, BACKOFF_MAX_MS] {
        e.mark_failed();
        assert_backoff(e, want);
    }
    e.mark_ok();
    assert!(!e.is_down());
    e.mark_failed();
    assert_backoff(e, BACKOFF_BASE_MS);
}

#[test]
fn all_endpoints_down_still_picks_one() {
    for lb in BOTH {
        let up = upstream(lb, 3);
        let set = up.endpoints();
        set.endpoints.iter().for_each(|e| e.mark_failed());
        assert!(pick_index(&up, &set, &[]).is_some(), "{lb:?}");
        // Down but not yet tried beats nothing.
        let exclude = [&*set.endpoints[0], &*set.endpoints[2]];
        for _ in 0..20 {
            assert_eq!(pick_index(&up, &set, &exclude), Some(1), "{lb:?}");
        }
    }
}

#[test]
fn excluded_endpoints_are_never_picked() {
    for lb in BOTH {
        let up = upstream(lb, 3);
        let set = up.endpoints();
        let exclude = [&*set.endpoints[0], &*set.endpoints[1]];
        assert_eq!(counts(&up, &exclude, 50), [0, 0, 50], "{lb:?}");
        let all: Vec<&Endpoint> = set.endpoints.iter().map(|e| &**e).collect();
        assert_eq!(
            pick_index(&up, &set, &all),
            None,
            "{lb:?}: every endpoint already tried"
        );

        let single = upstream(lb, 1);
        let one = single.endpoints();
        assert_eq!(pick_index(&single, &one, &[]), Some(0));
        assert_eq!(
            pick_index(&single, &one, &[&*one.endpoints[0]]),
            None,
            "{lb:?}"
        );
    }
}

#[test]
fn empty_set_picks_nothing() {
    for lb in BOTH {
        let up = upstream(lb, 0);
        assert_eq!(pick_index(&up, &up.endpoints(), &[]), None);
    }
}

// ----------------------------------------------------------------- p2c-ewma

#[test]
fn p2c_ewma_prefers_lower_latency_times_in_flight() {
    let mut rng = fastrand::Rng::with_seed(0x7011_6a7e);
    fastrand::seed(7); // the picker's own draws, on this thread
    let (mut min_picks, mut uniform_min_picks) = (0usize, 0f64);
    for _ in 0..200 {
        let n = rng.u8(2..=6);
        let up = upstream(LbAlgorithm::P2cEwma, n);
        let set = up.endpoints();
        let mut in_flight = Vec::new();
        let mut cost = Vec::new();
        for e in &set.endpoints {
            let latency_ns = rng.u64(1..=50) * 1_000_000;
            let requests = rng.u64(0..4);
            e.observe_latency(latency_ns);
            in_flight.extend((0..requests).map(|_| e.start_request()));
            cost.push(latency_ns * (requests + 1));
        }
        let min = *cost.iter().min().unwrap();
        let max = *cost.iter().max().unwrap();
        let unique_max = cost.iter().filter(|&&c| c == max).count() == 1;
        for _ in 0..50 {
            let i = pick_index(&up, &set, &[]).expect("an endpoint");
            if n == 2 {
                assert_eq!(
                    cost[i], min,
                    "of two endpoints the cheaper one is picked: {cost:?}"
                );
            }
            assert!(
                !(unique_max && cost[i] == max),
                "the costliest endpoint is never picked: {cost:?}"
            );
            min_picks += usize::from(cost[i] == min);
        }
        uniform_min_picks +=
            50.0 * cost.iter().filter(|&&c| c == min).count() as f64 / f64::from(n);
    }
    assert!(
        min_picks as f64 > 1.5 * uniform_min_picks,
        "cheapest picked {min_picks} times, uniform would be {uniform_min_picks}"
    );
}

#[test]
fn in_flight_requests_count_until_dropped() {
    let up = upstream(LbAlgorithm::P2cEwma, 2);
    let set = up.endpoints();
    set.endpoints
        .iter()
        .for_each(|e| e.observe_latency(5_000_000));
    let busy: Vec<InFlight> = (0..3).map(|_| set.endpoints[0].start_request()).collect();
    assert_eq!(set.endpoints[0].inflight(), 3);
    assert_eq!(counts(&up, &[], 20), [0, 20]);
    drop(busy);
    assert_eq!(set.endpoints[0].inflight(), 0);
    // Equal again: ties go to the first sampled, so both get picked.
    assert!(counts(&up, &[], 100).iter().all(|&c| c > 0));
}

#[test]
fn p2c_ewma_skips_a_cheaper_endpoint_that_is_down() {
    let up = upstream(LbAlgorithm::P2cEwma, 2);
    let set = up.endpoints();
    set.endpoints[0].observe_latency(1_000_000);
    set.endpoints[1].observe_latency(50_000_000);
    assert_eq!(counts(&up, &[], 20), [20, 0]);
    set.endpoints[0].mark_failed();
    assert_eq!(counts(&up, &[], 20), [0, 20]);
}

// ------------------------------------------------------------ set_endpoints

#[test]
fn set_endpoints_keeps_the_endpoints_that_stay() {
    let up = upstream(LbAlgorithm::RoundRobin, 3);
    let before = up.endpoints();
    before.endpoints[1].mark_failed();

    assert!(up.set_endpoints(&[addr(2), addr(3), addr(4)]));
    let after = up.endpoints();
    let addrs: Vec<&EndpointAddr> = after.endpoints.iter().map(|e| &e.addr).collect();
    assert_eq!(addrs, [&addr(2), &addr(3), &addr(4)]);
    assert!(
        Arc::ptr_eq(&after.endpoints[0], &before.endpoints[1]),
        "10.0.0.2 is the same endpoint"
    );
    assert!(
        Arc::ptr_eq(&after.endpoints[1], &before.endpoints[2]),
        "10.0.0.3 is the same endpoint"
    );
    assert!(after.endpoints[0].is_down(), "health state carries over");
    assert!(!after.endpoints[2].is_down());
    // Requests that loaded the old set keep it intact.
    assert_eq!(before.endpoints.len(), 3);
    assert_eq!(before.endpoints[0].addr, addr(1));
}

#[test]
fn set_endpoints_with_the_same_addresses_changes_nothing() {
    let up = upstream(LbAlgorithm::RoundRobin, 2);
    let before = up.endpoints();
    assert!(!up.set_endpoints(&[addr(1), addr(2)]));
    assert!(
        Arc::ptr_eq(&*before, &*up.endpoints()),
        "the set was not replaced"
    );
    assert!(up.set_endpoints(&[]));
    assert_eq!(pick_index(&up, &up.endpoints(), &[]), None);
}

/// The addresses the ring sends each of `keys` to.
fn ring_owners(up: &Upstream, keys: u64) -> Vec<EndpointAddr> {
    let set = up.endpoints();
    (0..keys)
        .map(|k| {
            up.pick_hashed(&set, stable_hash(&[&k.to_le_bytes()]), &[])
                .expect("an endpoint")
                .addr
                .clone()
        })
        .collect()
}

#[test]
fn consistent_hashing_spreads_keys_and_moves_few_on_change() {
    let up = upstream(LbAlgorithm::ConsistentHash, 4);
    let before = ring_owners(&up, 4000);
    for i in 1..=4 {
        let share = before.iter().filter(|a| **a == addr(i)).count();
        assert!(
            (600..=1400).contains(&share),
            "endpoint {i}: {share} of 4000"
        );
    }
    // A fifth endpoint takes about a fifth of the keys, all from the others.
    up.set_endpoints(&(1..=5).map(addr).collect::<Vec<_>>());
    let after = ring_owners(&up, 4000);
    let moved: Vec<usize> = (0..4000).filter(|&k| before[k] != after[k]).collect();
    assert!(
        (500..=1300).contains(&moved.len()),
        "{} of 4000 keys moved",
        moved.len()
    );
    assert!(
        moved.iter().all(|&k| after[k] == addr(5)),
        "keys move only to the new endpoint"
    );
    // Removing it sends exactly those keys back.
    up.set_endpoints(&(1..=4).map(addr).collect::<Vec<_>>());
    assert_eq!(ring_owners(&up, 4000), before);
}

#[test]
fn hashing_skips_excluded_and_down_endpoints_and_sticky_ids_find_theirs() {
    let up = upstream(LbAlgorithm::ConsistentHash, 3);
    let set = up.endpoints();
    let hash = stable_hash(&[b"key"]);
    let first = up.pick_hashed(&set, hash, &[]).unwrap();
    let second = up.pick_hashed(&set, hash, &[first.as_ref()]).unwrap();
    assert!(!Arc::ptr_eq(&first, &second), "a retry goes elsewhere");
    first.mark_failed();
    let while_down = up.pick_hashed(&set, hash, &[]).unwrap();
    assert!(!Arc::ptr_eq(&first, &while_down));
    for e in &set.endpoints {
        let found = up.pick_sticky(&set, e.sticky_id, &[]);
        if e.is_down() {
            assert!(found.is_none());
        } else {
            assert!(Arc::ptr_eq(&found.unwrap(), e));
        }
    }
    assert!(up.pick_sticky(&set, 42, &[]).is_none());
}
