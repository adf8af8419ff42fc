//! Criterion benchmarks for the control plane's compile and the data
//! plane's route lookup.
//!
//! - `compile/10000-ingresses`: 10,000 Ingresses with 3 paths each (30,000
//!   paths), 10,000 Services and EndpointSlices. Target: ≤ 200 ms.
//! - `lookup/hosts-10` vs `lookup/hosts-10000`: one lookup (host and path
//!   normalization included) in tables of 10 and 10,000 hosts. Target: the
//!   larger within 1.2× of the smaller.
//! - `lookup-gateway/{exact,wildcard-1,wildcard-3}`: one lookup with the
//!   request head (as the proxy does once any Gateway route exists) in a
//!   table of 10,000 HTTPRoute hosts plus `*.wild.example.com`: an exact
//!   host, a wildcard one label deep, and one three labels deep (Gateway
//!   wildcards cover several labels; the walk goes suffix by suffix).
//!
//! Run: `cargo bench --bench lookup`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::config::{compile, CompileOptions, LastGood, Snapshot};
use tollgate::provider::files::parse_manifests;
use tollgate::table::{host, path};

fn manifests(hosts: usize) -> String {
    let mut out = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: tollgate}\nspec: {controller: tollgate.dev/ingress-controller}\n",
    );
    for i in 0..hosts {
        out.push_str(&format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: ing-{i}, namespace: ns-{ns}}}\nspec:\n  ingressClassName: tollgate\n  rules:\n  - host: host-{i}.example.com\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: svc-{i}, port: {{number: 80}}}}}}}}\n      - {{path: /api/v1, pathType: Prefix, backend: {{service: {{name: svc-{i}, port: {{number: 80}}}}}}}}\n      - {{path: /healthz, pathType: Exact, backend: {{service: {{name: svc-{i}, port: {{number: 80}}}}}}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: ns-{ns}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: svc-{i}-a, namespace: ns-{ns}, labels: {{kubernetes.io/service-name: svc-{i}}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [\"10.{a}.{b}.1\"]}}, {{addresses: [\"10.{a}.{b}.2\"]}}]\n",
            ns = i % 50,
            a = i / 250,
            b = i % 250,
        ));
    }
    out
}

fn snapshot(hosts: usize) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for (origin, object) in
        parse_manifests("bench.yaml", &manifests(hosts)).expect("generated manifests parse")
    {
        snapshot.insert(origin, object);
    }
    snapshot
}

fn bench_compile(c: &mut Criterion) {
    let snapshot = snapshot(10_000);
    let opts = CompileOptions::default();
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("10000-ingresses", |b| {
        b.iter(|| {
            let compiled = compile(black_box(&snapshot), &opts, &LastGood::new());
            assert_eq!(compiled.table.routes().len(), 30_000);
            compiled
        })
    });
    group.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for hosts in [10usize, 10_000] {
        let compiled = compile(
            &snapshot(hosts),
            &CompileOptions::default(),
            &LastGood::new(),
        );
        let table = compiled.table;
        // Requests spread over all hosts, so the large table is not served
        // from a warm corner of the cache.
        let requests: Vec<(String, &str)> = (0..1024)
            .map(|i| {
                (
                    format!("Host-{}.Example.com:8080", (i * 7919) % hosts),
                    "/api/v1/users/42",
                )
            })
            .collect();
        let mut i = 0usize;
        group.bench_function(format!("hosts-{hosts}"), |b| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                let (raw_host, raw_path) = &requests[i];
                let mut buf = [0u8; host::MAX_HOST_LEN + 2];
                let h = host::normalize(black_box(raw_host), &mut buf).unwrap_or("");
                let p = path::normalize(black_box(raw_path));
                let found = table.lookup(h, &p);
                assert!(found.is_some());
                found
            })
        });
    }
    group.finish();
}

fn gateway_manifests(hosts: usize) -> String {
    let mut out = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: tollgate}\nspec: {controllerName: tollgate.dev/gateway-controller}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: ns}\nspec:\n  gatewayClassName: tollgate\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: ns}\nspec: {ports: [{name: http, port: 80}]}\n",
    );
    let route = |name: &str, host: &str| {
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  parentRefs: [{{name: gw}}]\n  hostnames: ['{host}']\n  rules: [{{backendRefs: [{{name: svc, port: 80}}]}}]\n"
        )
    };
    for i in 0..hosts {
        out.push_str(&route(&format!("r-{i}"), &format!("host-{i}.example.com")));
    }
    out.push_str(&route("wild", "*.wild.example.com"));
    out
}

fn bench_lookup_gateway(c: &mut Criterion) {
    let mut snapshot = Snapshot::default();
    for (origin, object) in parse_manifests("bench.yaml", &gateway_manifests(10_000))
        .expect("generated manifests parse")
    {
        snapshot.insert(origin, object);
    }
    let table = compile(&snapshot, &CompileOptions::default(), &LastGood::new()).table;
    let mut group = c.benchmark_group("lookup-gateway");
    for (name, host_of) in [
        (
            "exact",
            (|i: usize| format!("host-{i}.example.com")) as fn(usize) -> String,
        ),
        ("wildcard-1", |i| format!("h{i}.wild.example.com")),
        ("wildcard-3", |i| format!("h{i}.b.c.wild.example.com")),
    ] {
        let requests: Vec<(String, http::request::Parts)> = (0..1024)
            .map(|i| {
                let (parts, ()) = http::Request::get("/api/v1/users/42")
                    .body(())
                    .expect("request")
                    .into_parts();
                (host_of((i * 7919) % 10_000), parts)
            })
            .collect();
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                let (raw_host, parts) = &requests[i];
                let mut buf = [0u8; host::MAX_HOST_LEN + 2];
                let h = host::normalize(black_box(raw_host), &mut buf).unwrap_or("");
                let p = path::normalize(parts.uri.path());
                let found = table.lookup_request(h, &p, parts);
                assert!(found.is_some());
                found
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_compile, bench_lookup, bench_lookup_gateway);
criterion_main!(benches);
