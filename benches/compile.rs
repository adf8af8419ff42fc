//! The control plane's cost of one configuration change at scale, in
//! process (no API server, no proxy): N Ingresses (one host and one Service
//! each, 2N Services with one 5-endpoint EndpointSlice each) and optionally
//! M HTTPRoutes on one Gateway.
//!
//! Measures, each as a distribution over `COMPILE_BENCH_N` changes:
//! 1. `config::compile` of the whole snapshot (a full compile);
//! 2. `Incremental::compile_touched` after one new Ingress (a patch);
//! 3. `Publisher::commit` after one new Ingress: until the new table is
//!    published (what the first request waits for: compile, upstreams,
//!    metric handles, limiters, the swap), and in all (with the
//!    bookkeeping after the swap);
//! 4. the same after an edit of an existing Ingress (its backend moves);
//! 5. the same after a Service edit (not patched: a full recompile, as
//!    every change was before incremental compilation);
//! 6. with HTTPRoutes, the same after one new HTTPRoute (not patched).
//!
//! Run: `cargo bench --profile profiling --bench compile`.
//! Knobs (environment): `COMPILE_BENCH_INGRESSES` (10000),
//! `COMPILE_BENCH_HTTPROUTES` (0), `COMPILE_BENCH_N` (30).

use std::sync::Arc;
use std::time::Instant;

// The binary's allocator (src/main.rs), so the figures are the binary's.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use serde_json::{json, Value};
use tollgate::config::{self, CompileOptions, Incremental, LastGood, Object, Snapshot, Touched};
use tollgate::metrics::Metrics;
use tollgate::publisher::{InstallTimings, Publisher};
use tollgate::state::Health;

const NAMESPACES: usize = 50;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn ns(i: usize) -> String {
    format!("ns-{}", i % NAMESPACES)
}

fn object(v: Value) -> Object {
    let kind = v["kind"].as_str().unwrap_or_default().to_string();
    let parsed = match kind.as_str() {
        "Ingress" => serde_json::from_value(v).map(Object::Ingress),
        "IngressClass" => serde_json::from_value(v).map(Object::IngressClass),
        "Service" => serde_json::from_value(v).map(Object::Service),
        "EndpointSlice" => serde_json::from_value(v).map(Object::EndpointSlice),
        "GatewayClass" => serde_json::from_value(v).map(Object::GatewayClass),
        "Gateway" => serde_json::from_value(v).map(Object::Gateway),
        "HTTPRoute" => serde_json::from_value(v).map(Object::HttpRoute),
        other => panic!("unexpected kind {other}"),
    };
    parsed.expect("valid object")
}

fn ingress(name: &str, host: &str, svc: usize) -> Object {
    object(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns(svc)},
        "spec": {
            "ingressClassName": "tollgate",
            "rules": [{
                "host": host,
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": format!("svc-{svc}"), "port": {"number": 80}}},
                }]},
            }],
        },
    }))
}

fn http_route(name: &str, host: &str, svc: usize) -> Object {
    object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns(svc)},
        "spec": {
            "parentRefs": [{"name": "gw", "namespace": "gw"}],
            "hostnames": [host],
            "rules": [{"backendRefs": [{"name": format!("svc-{svc}"), "port": 80}]}],
        },
    }))
}

fn snapshot(ingresses: usize, routes: usize) -> Snapshot {
    let origin: Arc<str> = "bench".into();
    let mut snap = Snapshot::default();
    snap.insert(
        origin.clone(),
        object(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "tollgate"},
            "spec": {"controller": "tollgate.dev/ingress-controller"},
        })),
    );
    for i in 0..2 * ingresses {
        snap.insert(
            origin.clone(),
            object(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i}"), "namespace": ns(i)},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            })),
        );
        let endpoints: Vec<Value> = (0..5)
            .map(|e| json!({"addresses": [format!("10.1.{}.{}", i % 250, e + 1)], "conditions": {"ready": true}}))
            .collect();
        snap.insert(
            origin.clone(),
            object(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("svc-{i}-x"), "namespace": ns(i),
                    "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": endpoints,
            })),
        );
    }
    for i in 0..ingresses {
        snap.insert(
            origin.clone(),
            ingress(&format!("ing-{i}"), &format!("h{i}.example.com"), i),
        );
    }
    if routes > 0 {
        snap.insert(
            origin.clone(),
            object(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": "tollgate"},
                "spec": {"controllerName": "tollgate.dev/gateway-controller"},
            })),
        );
        snap.insert(
            origin.clone(),
            object(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "gw", "namespace": "gw"},
                "spec": {"gatewayClassName": "tollgate", "listeners": [{
                    "name": "http", "port": 80, "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                }]},
            })),
        );
        for i in 0..routes {
            snap.insert(
                origin.clone(),
                http_route(&format!("rt-{i}"), &format!("r{i}.example.com"), i),
            );
        }
    }
    snap
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Service `svc-{i}` with a second port: a change the compiler reads (the
/// snapshot keeps port names and numbers, not `targetPort`).
fn service(i: usize, port: u16) -> Object {
    object(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": ns(i)},
        "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "extra", "port": port, "targetPort": port},
        ]},
    }))
}

/// Commits after each of `changes`: (until published, in all) in ms;
/// prints both, then where the time went phase by phase
/// (`COMPILE_BENCH_PHASES=0`: not).
fn commits(label: &str, publisher: &mut Publisher, changes: impl Iterator<Item = Object>) {
    let origin: Arc<str> = "bench".into();
    let (mut published, mut total) = (Vec::new(), Vec::new());
    let mut phases: Vec<InstallTimings> = Vec::new();
    for object in changes {
        publisher.upsert(origin.clone(), object);
        let t = Instant::now();
        publisher.commit(&[]);
        total.push(t.elapsed().as_secs_f64() * 1e3);
        published.push(publisher.last_publish_latency().as_secs_f64() * 1e3);
        phases.push(publisher.last_timings());
    }
    row(&format!("commit: {label}, until published"), published);
    row(&format!("commit: {label}, in all"), total);
    if env_num("COMPILE_BENCH_PHASES", 1) == 1 {
        let phase = |f: fn(&InstallTimings) -> std::time::Duration| {
            phases
                .iter()
                .map(|t| f(t).as_secs_f64() * 1e3)
                .collect::<Vec<f64>>()
        };
        row("  · compile", phase(|t| t.compile));
        row("  · upstreams", phase(|t| t.upstreams));
        row("  · route metrics and limiters", phase(|t| t.routes));
        row(
            "  · after swap: upstream-by-Service index",
            phase(|t| t.index),
        );
        row(
            "  · after swap: diagnostics, statuses",
            phase(|t| t.diagnostics),
        );
        row("  · after swap: debug/webhook state", phase(|t| t.inspect));
        row("  · after swap: release previous state", phase(|t| t.drop));
    }
}

fn row(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "  {label:<44} p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let ingresses = env_num("COMPILE_BENCH_INGRESSES", 10_000);
    let routes = env_num("COMPILE_BENCH_HTTPROUTES", 0);
    let n = env_num("COMPILE_BENCH_N", 30).max(1);
    let started = Instant::now();
    let snap = snapshot(ingresses, routes);
    println!(
        "compile bench: {ingresses} Ingresses, {} Services, {routes} HTTPRoutes (built in {:.1} s)",
        2 * ingresses,
        started.elapsed().as_secs_f64()
    );
    let opts = CompileOptions::default();

    let mut full = Vec::with_capacity(n);
    let mut last_good = LastGood::new();
    for _ in 0..n.min(10) {
        let t = Instant::now();
        let compiled = config::compile(&snap, &opts, &last_good);
        full.push(t.elapsed().as_secs_f64() * 1e3);
        last_good = compiled.last_good;
    }
    row("full compile (config::compile)", full);

    // The incremental compiler alone: one new Ingress at a time.
    let mut inc = Incremental::new();
    let mut inc_snap = snap.clone();
    let mut good = inc.compile(&inc_snap, &opts, &LastGood::new()).last_good;
    let mut patched = Vec::with_capacity(n);
    let origin: Arc<str> = "bench".into();
    for k in 0..n {
        let object = ingress(&format!("inc-{k}"), &format!("inc{k}.example.com"), k);
        let mut touched = Touched::default();
        let key = object.key();
        let changes = inc_snap.upsert(origin.clone(), object);
        touched.note("Ingress", &key, &changes);
        let t = Instant::now();
        good = inc
            .compile_touched(&inc_snap, &opts, &good, &touched)
            .last_good;
        patched.push(t.elapsed().as_secs_f64() * 1e3);
    }
    row("incremental compile: one new Ingress", patched);
    println!("  (patched, full) compiles: {:?}", inc.counts());
    drop((inc, inc_snap, good));

    let mut publisher = Publisher::new(opts, Arc::new(Metrics::new()), Arc::new(Health::default()));
    let t = Instant::now();
    publisher.apply(snap, &[]);
    println!(
        "  {:<44} {:>8.1} ms",
        "first commit (initial sync)",
        t.elapsed().as_secs_f64() * 1e3
    );
    let new = (0..n).map(|k| {
        ingress(
            &format!("new-{k}"),
            &format!("new{k}.example.com"),
            ingresses + k,
        )
    });
    commits("one new Ingress", &mut publisher, new);
    let edits = (0..n).map(|k| {
        let i = (k * 7919) % ingresses;
        ingress(
            &format!("ing-{i}"),
            &format!("h{i}.example.com"),
            i + ingresses,
        )
    });
    commits("one Ingress edited", &mut publisher, edits);
    let services = (0..n.min(10)).map(|k| service(k, 9000 + k as u16));
    commits("one Service edited (full)", &mut publisher, services);
    if routes > 0 {
        let new = (0..n.min(10))
            .map(|k| http_route(&format!("new-rt-{k}"), &format!("newr{k}.example.com"), k));
        commits("one new HTTPRoute (full)", &mut publisher, new);
    }
    println!(
        "  publisher (patched, full) compiles: {:?}",
        publisher.compile_counts()
    );
}
