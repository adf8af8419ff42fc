//! Incremental compilation gives exactly what a full compile gives: random
//! sequences of inserts, updates and deletes of Ingresses (overlapping
//! hosts and paths, canaries, TLS, default backends, aliases, regex paths,
//! rejected versions), Services, EndpointSlices, TLS Secrets,
//! TrafficPolicies, HTTPRoutes and the ingress-nginx ConfigMap; after every
//! step the incremental compiler's output (table, certificates, upstreams,
//! diagnostics, last good versions, statuses) equals a full compile's, each
//! side fed back its own last good versions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate::config::{
    self, CompileOptions, Incremental, LastGood, Object, ObjectKey, Snapshot, Touched,
};
use tollgate::provider::files::parse_manifests;

/// Hosts shared (the first five: overlaps, a wildcard, no host) and
/// hosts more likely an Ingress's own (which the incremental compiler
/// patches in).
const HOSTS: [&str; 15] = [
    "a.example.com",
    "b.example.com",
    "*.example.com",
    "",
    "c.test",
    "u0.test",
    "u1.test",
    "u2.test",
    "u3.test",
    "u4.test",
    "u5.test",
    "*.u6.test",
    "u7.example.com",
    "www.u0.test",
    "www.u1.test",
];
const PATHS: [&str; 4] = ["/", "/x", "/x/y", "/api"];
const PATH_TYPES: [&str; 3] = ["Prefix", "Exact", "ImplementationSpecific"];
const NAMESPACES: [&str; 2] = ["a", "b"];

/// Two self-signed certificates (PEM chain, PEM key), made once.
fn certs() -> &'static [(String, String); 2] {
    static CERTS: OnceLock<[(String, String); 2]> = OnceLock::new();
    CERTS.get_or_init(|| {
        let make = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let ck = rcgen::generate_simple_self_signed(names).expect("certificate");
            (ck.cert.pem(), ck.signing_key.serialize_pem())
        };
        [
            make(&["a.example.com", "b.example.com"]),
            make(&["*.example.com"]),
        ]
    })
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[derive(Debug, Clone)]
struct Rule {
    host: usize,
    path: usize,
    path_type: usize,
    svc: usize,
}

#[derive(Debug, Clone)]
struct IngressSpec {
    ns: usize,
    created: u8,
    ours: bool,
    canary: Option<u8>,
    rules: Vec<Rule>,
    tls: Option<(usize, usize)>,
    default_backend: Option<usize>,
    alias: Option<usize>,
    regex: bool,
    ssl_redirect_off: bool,
    rate: Option<u8>,
    /// An annotation value that fails closed: the version is rejected.
    broken: bool,
    /// `from-to-www-redirect` (twin hosts beyond its own).
    www: bool,
    /// `ssl-passthrough` (its hosts into the TLS passthrough map when the
    /// option is on).
    passthrough: bool,
    /// `mirror-target` to this Service (an upstream of its own).
    mirror: Option<usize>,
}

#[derive(Debug, Clone)]
enum Op {
    Ingress(usize, IngressSpec),
    DeleteIngress(usize, usize),
    Service(usize, usize, u8),
    DeleteService(usize, usize),
    Slice(usize, usize, u8),
    Secret(usize, usize, u8),
    DeleteSecret(usize, usize),
    Policy(usize, usize, u8),
    DeletePolicy(usize),
    Route(usize, usize, usize, usize),
    DeleteRoute(usize),
    ConfigMap(u8),
    DeleteConfigMap,
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        0..HOSTS.len(),
        0..PATHS.len(),
        0..PATH_TYPES.len(),
        0..4usize,
    )
        .prop_map(|(host, path, path_type, svc)| Rule {
            host,
            path,
            path_type,
            svc,
        })
}

fn ingress_spec() -> impl Strategy<Value = IngressSpec> {
    (
        (0..2usize, 0..4u8, prop::bool::weighted(0.9)),
        prop::option::weighted(0.25, 0..101u8),
        prop::collection::vec(rule(), 0..4),
        prop::option::weighted(0.3, (0..3usize, 0..HOSTS.len())),
        prop::option::weighted(0.2, 0..4usize),
        prop::option::weighted(0.1, 0..HOSTS.len()),
        (
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.15),
            prop::option::weighted(0.15, 1..5u8),
            prop::bool::weighted(0.1),
        ),
        (
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.15),
            prop::option::weighted(0.1, 0..4usize),
        ),
    )
        .prop_map(
            |((ns, created, ours), canary, rules, tls, default_backend, alias, flags, more)| {
                IngressSpec {
                    ns,
                    created,
                    ours,
                    canary,
                    rules,
                    tls,
                    default_backend,
                    alias,
                    regex: flags.0,
                    ssl_redirect_off: flags.1,
                    rate: flags.2,
                    broken: flags.3,
                    www: more.0,
                    passthrough: more.1,
                    mirror: more.2,
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..6usize, ingress_spec()).prop_map(|(i, s)| Op::Ingress(i, s)),
        2 => (0..2usize, 0..6usize).prop_map(|(ns, i)| Op::DeleteIngress(ns, i)),
        2 => (0..2usize, 0..4usize, 0..3u8).prop_map(|(ns, i, v)| Op::Service(ns, i, v)),
        1 => (0..2usize, 0..4usize).prop_map(|(ns, i)| Op::DeleteService(ns, i)),
        1 => (0..2usize, 0..4usize, 0..3u8).prop_map(|(ns, i, v)| Op::Slice(ns, i, v)),
        2 => (0..2usize, 0..3usize, 0..3u8).prop_map(|(ns, i, v)| Op::Secret(ns, i, v)),
        1 => (0..2usize, 0..3usize).prop_map(|(ns, i)| Op::DeleteSecret(ns, i)),
        1 => (0..2usize, 0..6usize, 0..3u8).prop_map(|(i, t, v)| Op::Policy(i, t, v)),
        1 => (0..2usize).prop_map(Op::DeletePolicy),
        2 => (0..4usize, 0..HOSTS.len(), 0..PATHS.len(), 0..4usize)
            .prop_map(|(i, h, p, s)| Op::Route(i, h, p, s)),
        1 => (0..4usize).prop_map(Op::DeleteRoute),
        1 => (0..4u8).prop_map(Op::ConfigMap),
        1 => Just(Op::DeleteConfigMap),
    ]
}

fn ingress(i: usize, s: &IngressSpec) -> Value {
    let ns = NAMESPACES[s.ns];
    let mut annotations = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        annotations.insert(k.to_string(), Value::String(v.to_string()));
    };
    if let Some(weight) = s.canary {
        put("nginx.ingress.kubernetes.io/canary", "true");
        put(
            "nginx.ingress.kubernetes.io/canary-weight",
            &weight.to_string(),
        );
    }
    if let Some(alias) = s.alias {
        put("nginx.ingress.kubernetes.io/server-alias", HOSTS[alias]);
    }
    if s.regex {
        put("nginx.ingress.kubernetes.io/use-regex", "true");
        put("nginx.ingress.kubernetes.io/rewrite-target", "/$1");
    }
    if s.ssl_redirect_off {
        put("nginx.ingress.kubernetes.io/ssl-redirect", "false");
    }
    if let Some(rate) = s.rate {
        put("nginx.ingress.kubernetes.io/limit-rps", &rate.to_string());
    }
    if s.broken {
        put(
            "nginx.ingress.kubernetes.io/whitelist-source-range",
            "bogus",
        );
    }
    if s.www {
        put("nginx.ingress.kubernetes.io/from-to-www-redirect", "true");
    }
    if s.passthrough {
        put("nginx.ingress.kubernetes.io/ssl-passthrough", "true");
    }
    if let Some(svc) = s.mirror {
        let target = format!("http://svc-{svc}.{ns}.svc.cluster.local/mirror");
        put("nginx.ingress.kubernetes.io/mirror-target", &target);
    }
    let rules: Vec<Value> = s
        .rules
        .iter()
        .map(|r| {
            let mut rule = json!({"http": {"paths": [{
                "path": PATHS[r.path],
                "pathType": PATH_TYPES[r.path_type],
                "backend": {"service": {"name": format!("svc-{}", r.svc), "port": {"number": 80}}},
            }]}});
            if !HOSTS[r.host].is_empty() {
                rule["host"] = json!(HOSTS[r.host]);
            }
            rule
        })
        .collect();
    let mut spec = json!({
        "ingressClassName": if s.ours { "tollgate" } else { "other" },
        "rules": rules,
    });
    if let Some((secret, host)) = s.tls {
        let hosts: Vec<&str> = [HOSTS[host]]
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect();
        spec["tls"] = json!([{"secretName": format!("tls-{secret}"), "hosts": hosts}]);
    }
    if let Some(svc) = s.default_backend {
        spec["defaultBackend"] =
            json!({"service": {"name": format!("svc-{svc}"), "port": {"number": 80}}});
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": format!("ing-{i}"),
            "namespace": ns,
            "creationTimestamp": format!("2024-01-0{}T00:00:00Z", s.created + 1),
            "annotations": annotations,
        },
        "spec": spec,
    })
}

/// Patches actually made (so the test knows it exercised them).
static PATCHES: AtomicU64 = AtomicU64::new(0);

/// A snapshot with what changed in it since the last compile, noted as
/// the publisher notes it.
struct Objects {
    snap: Snapshot,
    touched: Touched,
}

impl Objects {
    fn delete(&mut self, kind: &str, key: ObjectKey) {
        let changes = self.snap.delete(kind, &key);
        self.touched.note(kind, &key, &changes);
    }

    fn insert(&mut self, doc: Value) {
        let text = doc.to_string();
        let objects = parse_manifests("gen.json", &text).unwrap_or_else(|e| panic!("{text}: {e}"));
        for (origin, object) in objects {
            let (kind, key) = (Object::kind(&object), object.key());
            let changes = self.snap.upsert(origin, object);
            self.touched.note(kind, &key, &changes);
        }
    }
}

fn apply(objects: &mut Objects, op: &Op) {
    let doc = match op {
        Op::Ingress(i, s) => {
            // Same name in both namespaces would be two objects: keep one.
            let other = NAMESPACES[1 - s.ns];
            objects.delete("Ingress", ObjectKey::new(other, format!("ing-{i}")));
            ingress(*i, s)
        }
        Op::DeleteIngress(ns, i) => {
            objects.delete(
                "Ingress",
                ObjectKey::new(NAMESPACES[*ns], format!("ing-{i}")),
            );
            return;
        }
        Op::Service(ns, i, v) => {
            let port = match v {
                0 => json!({"name": "http", "port": 80, "targetPort": 8080}),
                1 => json!({"name": "web", "port": 80, "targetPort": 9090}),
                _ => json!({"name": "http", "port": 81, "targetPort": 8080}),
            };
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i}"), "namespace": NAMESPACES[*ns]},
                "spec": {"ports": [port]}})
        }
        Op::DeleteService(ns, i) => {
            objects.delete(
                "Service",
                ObjectKey::new(NAMESPACES[*ns], format!("svc-{i}")),
            );
            return;
        }
        Op::Slice(ns, i, v) => {
            let endpoints: Vec<Value> = (0..=*v)
                .map(|e| json!({"addresses": [format!("10.0.{i}.{e}")], "conditions": {"ready": true}}))
                .collect();
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("svc-{i}-s"), "namespace": NAMESPACES[*ns],
                    "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}, {"name": "web", "port": 9090}],
                "endpoints": endpoints})
        }
        Op::Secret(ns, i, v) => {
            let (crt, key) = match v {
                0 | 1 => {
                    let (c, k) = &certs()[*v as usize];
                    (b64(c), b64(k))
                }
                _ => (b64("not a certificate"), b64("nor a key")),
            };
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": format!("tls-{i}"), "namespace": NAMESPACES[*ns]},
                "data": {"tls.crt": crt, "tls.key": key}})
        }
        Op::DeleteSecret(ns, i) => {
            objects.delete(
                "Secret",
                ObjectKey::new(NAMESPACES[*ns], format!("tls-{i}")),
            );
            return;
        }
        Op::Policy(i, target, v) => {
            let mut spec = json!({"targetRefs": [{"group": "networking.k8s.io",
                "kind": "Ingress", "name": format!("ing-{target}")}]});
            match v {
                0 => spec["rateLimit"] = json!({"requestsPerSecond": 3}),
                1 => spec["ipAllow"] = json!(["10.0.0.0/8"]),
                _ => spec["rateLimit"] = json!({"requestsPerSecond": 0}),
            }
            json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TrafficPolicy",
                "metadata": {"name": format!("tp-{i}"), "namespace": "a",
                    "creationTimestamp": format!("2024-01-0{}T00:00:00Z", i + 1)},
                "spec": spec})
        }
        Op::DeletePolicy(i) => {
            objects.delete("TrafficPolicy", ObjectKey::new("a", format!("tp-{i}")));
            return;
        }
        Op::Route(i, host, path, svc) => {
            let hostnames: Vec<&str> = [HOSTS[*host]]
                .into_iter()
                .filter(|h| !h.is_empty())
                .collect();
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": format!("rt-{i}"), "namespace": "a"},
            "spec": {
                "parentRefs": [{"name": "gw", "namespace": "a"}],
                "hostnames": hostnames,
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": PATHS[*path]}}],
                    "backendRefs": [{"name": format!("svc-{svc}"), "port": 80}],
                }],
            }})
        }
        Op::DeleteRoute(i) => {
            objects.delete("HTTPRoute", ObjectKey::new("a", format!("rt-{i}")));
            return;
        }
        Op::ConfigMap(v) => {
            let data = match v {
                0 => json!({"ssl-redirect": "false"}),
                1 => json!({"limit-rps": "7"}),
                2 => json!({"block-user-agents": "~*bot,curl"}),
                _ => json!({"force-ssl-redirect": "true"}),
            };
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "nginx", "namespace": "a"}, "data": data})
        }
        Op::DeleteConfigMap => {
            objects.delete("ConfigMap", ObjectKey::new("a", "nginx"));
            return;
        }
    };
    objects.insert(doc);
}

/// The objects every sequence starts from: our classes and a Gateway.
fn base() -> Objects {
    let mut objects = Objects {
        snap: Snapshot::default(),
        touched: Touched::default(),
    };
    for doc in [
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "tollgate"},
            "spec": {"controller": "tollgate.dev/ingress-controller"}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "tollgate"},
            "spec": {"controllerName": "tollgate.dev/gateway-controller"}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "a"},
            "spec": {"gatewayClassName": "tollgate", "listeners": [{
                "name": "http", "port": 80, "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
    ] {
        objects.insert(doc);
    }
    objects
}

fn options(passthrough: bool) -> CompileOptions {
    CompileOptions {
        configmap: Some(ObjectKey::new("a", "nginx")),
        ssl_passthrough: passthrough,
        ..CompileOptions::default()
    }
}

/// Runs `ops`, comparing after every step; returns the steps compiled.
/// `passthrough`: with `--enable-ssl-passthrough`.
fn check_sequence(ops: &[Op], passthrough: bool) -> Result<usize, TestCaseError> {
    check_sequence_with(ops, passthrough, false)
}

/// [`check_sequence`]; `given`: as the publisher compiles, passing the
/// previous output's table back ([`Incremental::compile_touched_on`])
/// instead of letting the compiler keep a copy.
fn check_sequence_with(ops: &[Op], passthrough: bool, given: bool) -> Result<usize, TestCaseError> {
    let opts = options(passthrough);
    let mut published = tollgate::table::RoutingTable::default();
    let mut objects = base();
    let mut inc = Incremental::default();
    let mut full_good = LastGood::new();
    let mut inc_good = LastGood::new();
    for (step, op) in ops.iter().enumerate() {
        apply(&mut objects, op);
        let snap = &objects.snap;
        let touched = std::mem::take(&mut objects.touched);
        let full = config::compile(snap, &opts, &full_good);
        let incremental = if given {
            inc.compile_touched_on(snap, &opts, &inc_good, &touched, &published)
        } else {
            inc.compile_touched(snap, &opts, &inc_good, &touched)
        };
        let (a, b) = (full.canonical(), incremental.canonical());
        if a != b {
            let diff: Vec<String> = a
                .lines()
                .zip(b.lines())
                .filter(|(x, y)| x != y)
                .take(6)
                .map(|(x, y)| format!("full: {x}\n inc: {y}"))
                .collect();
            return Err(TestCaseError::fail(format!(
                "step {step} ({op:?}) differs:\n{}",
                diff.join("\n")
            )));
        }
        full_good = full.last_good;
        inc_good = incremental.last_good;
        published = incremental.table;
    }
    PATCHES.fetch_add(inc.counts().0, Ordering::Relaxed);
    Ok(ops.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_compile_equals_full_compile(
        ops in prop::collection::vec(op(), 1..40),
        passthrough in prop::bool::weighted(0.5),
    ) {
        check_sequence(&ops, passthrough)?;
    }

    #[test]
    fn incremental_compile_on_the_published_table_equals_full_compile(
        ops in prop::collection::vec(op(), 1..40),
        passthrough in prop::bool::weighted(0.5),
    ) {
        check_sequence_with(&ops, passthrough, true)?;
    }
}

/// The same with only Ingress changes over a larger base (the case the
/// incremental compiler reuses most in).
#[test]
fn ingress_only_changes_over_many_ingresses_equal_full_compiles() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    });
    let seed: Vec<Op> = (0..4)
        .flat_map(|i| {
            [
                Op::Service(0, i, 0),
                Op::Service(1, i, 1),
                Op::Secret(0, i % 3, 0),
            ]
        })
        .collect();
    let strategy = prop::collection::vec(
        (0..6usize, ingress_spec()).prop_map(|(i, s)| Op::Ingress(i, s)),
        1..30,
    );
    let before = PATCHES.load(Ordering::Relaxed);
    runner
        .run(&strategy, |ops| {
            let all: Vec<Op> = seed.iter().cloned().chain(ops).collect();
            check_sequence(&all, all.len().is_multiple_of(2)).map(|_| ())
        })
        .expect("incremental equals full");
    assert!(
        PATCHES.load(Ordering::Relaxed) > before,
        "no change was patched: the test did not exercise incremental compilation"
    );
}

#[test]
fn certificates_are_reused_across_compiles() {
    // A smoke check of the test's own inputs: both certificates parse.
    let mut objects = base();
    apply(&mut objects, &Op::Secret(0, 0, 0));
    apply(&mut objects, &Op::Secret(0, 1, 1));
    let key = ObjectKey::new("a", "tls-0");
    let secret = objects
        .snap
        .secrets
        .get(&key)
        .map(|e| Arc::clone(&e.object));
    assert!(secret.is_some_and(|s| config::parse_secret(&s).is_ok()));
}

/// An Ingress of `u0.test` (`/`, Prefix, svc-0), otherwise plain.
fn plain(path: usize) -> IngressSpec {
    IngressSpec {
        ns: 0,
        created: 0,
        ours: true,
        canary: None,
        rules: vec![Rule {
            host: 5,
            path,
            path_type: 0,
            svc: 0,
        }],
        tls: None,
        default_backend: None,
        alias: None,
        regex: false,
        ssl_redirect_off: false,
        rate: None,
        broken: false,
        www: false,
        passthrough: false,
        mirror: None,
    }
}

/// Each annotation reaching beyond its hosts, added, changed and
/// removed, next to a plain Ingress that patches alone.
#[test]
fn ingresses_reaching_beyond_their_hosts_equal_full_compiles() {
    let reaching: [fn(&mut IngressSpec); 3] = [
        |s| s.www = true,
        |s| s.passthrough = true,
        |s| s.mirror = Some(1),
    ];
    for (n, set) in reaching.iter().enumerate() {
        for passthrough in [false, true] {
            let (mut first, mut second) = (plain(0), plain(1));
            set(&mut first);
            set(&mut second);
            let mut other = plain(0);
            other.rules[0].host = 6;
            let ops = vec![
                Op::Service(0, 0, 0),
                Op::Service(0, 1, 0),
                Op::Ingress(1, other.clone()),
                Op::Ingress(0, plain(0)),
                Op::Ingress(0, first),
                Op::Ingress(0, second),
                Op::Ingress(0, plain(1)),
                Op::Ingress(0, plain(0)),
                Op::DeleteIngress(0, 0),
                Op::Ingress(2, {
                    let mut twin = plain(0);
                    twin.rules[0].host = 13;
                    twin
                }),
                Op::Ingress(0, {
                    let mut s = plain(0);
                    set(&mut s);
                    s
                }),
                Op::DeleteIngress(0, 2),
                Op::DeleteIngress(0, 0),
            ];
            check_sequence(&ops, passthrough)
                .unwrap_or_else(|e| panic!("annotation {n}, passthrough {passthrough}: {e}"));
        }
    }
}
