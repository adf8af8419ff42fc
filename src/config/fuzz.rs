//! Fuzz target: the compiler ([`super::compile`]) on generated snapshots:
//! Ingresses (classes, creation times, hosts, paths and path types, TLS,
//! default backends, annotations from the annotation target's generator
//! plus the ones that reach into other objects: basic auth, canaries,
//! regex paths, default backends), Services, EndpointSlices, TLS and
//! htpasswd Secrets, valid or broken; all through the manifest loader.
//!
//! Invariants:
//! - never panics;
//! - the same input gives the same table: two compiles of two snapshots
//!   built from the same text render the same routes (as `tollgate check`
//!   lists them, with policy, canary, redirect and endpoints) and the same
//!   diagnostics;
//! - last good: fed the last good state of a first compile, a second
//!   compile where one Ingress is broken (a refused annotation) or one
//!   Secret is broken (garbage certificate, garbage htpasswd) renders
//!   exactly the first compile's routes, and one where a Service vanished
//!   keeps every route (only its endpoints go).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::annotations::fuzz as annotation_gen;
use super::{compile, CompileOptions, Compiled, LastGood, Snapshot};
use crate::fuzzing;
use crate::provider::files::parse_manifests;

const HOSTS: &[&str] = &[
    "a.example",
    "b.example",
    "*.example",
    "",
    "A.Example",
    "bad host",
];
const PATHS: &[&str] = &[
    "/",
    "/api",
    "/api/",
    "/a/b",
    "/(x|y)/.*",
    "",
    "rel",
    "/a//b",
    "/%2e%2e/",
];
const TYPES: &[&str] = &["Prefix", "Exact", "ImplementationSpecific", "Bogus"];
const SERVICES: &[&str] = &["a", "b", "c", "missing"];
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A certificate and key for `a.example` and `*.example`.
static CERT: LazyLock<(String, String)> = LazyLock::new(|| {
    let names = vec!["a.example".to_string(), "*.example".to_string()];
    let cert = rcgen::generate_simple_self_signed(names).expect("rcgen");
    (cert.cert.pem(), cert.signing_key.serialize_pem())
});

fn backend(service: &str, port: u8) -> Value {
    let port = match port {
        0 => json!({"number": 80}),
        1 => json!({"number": 8080}),
        _ => json!({"name": "http"}),
    };
    json!({"service": {"name": service, "port": port}})
}

fn ingress() -> impl Strategy<Value = (Option<&'static str>, u8, BTreeMap<String, String>, Value)> {
    let select = |v: &'static [&'static str]| proptest::sample::select(v);
    // Mostly the first `valid` choices, so that most Ingresses are served
    // and their paths meet (conflicts, canaries); sometimes any.
    let mostly = |v: &'static [&'static str], valid: usize| {
        prop_oneof![
            8 => proptest::sample::select(&v[..valid]),
            1 => proptest::sample::select(v)
        ]
    };
    let path = (
        mostly(PATHS, 4),
        mostly(TYPES, 2),
        mostly(SERVICES, 3),
        0u8..3,
    )
        .prop_map(|(p, t, s, port)| json!({"path": p, "pathType": t, "backend": backend(s, port)}));
    let rule = (mostly(HOSTS, 5), proptest::collection::vec(path, 1..3)).prop_map(|(h, paths)| {
        if h.is_empty() {
            json!({"http": {"paths": paths}})
        } else {
            json!({"host": h, "http": {"paths": paths}})
        }
    });
    let tls = (
        proptest::collection::vec(select(HOSTS), 0..3),
        select(&["tls", "broken-tls", "missing-tls"]),
    )
        .prop_map(|(hosts, secret)| json!([{"hosts": hosts, "secretName": secret}]));
    let special = proptest::collection::btree_map(
        select(&[
            "auth-type",
            "auth-secret",
            "auth-secret-type",
            "canary",
            "canary-weight",
            "canary-by-header",
            "use-regex",
            "rewrite-target",
            "default-backend",
            "ssl-redirect",
            "server-alias",
            "custom-http-errors",
            "backend-protocol",
        ]),
        select(&[
            "basic",
            "auth",
            "auth-map",
            "true",
            "false",
            "30",
            "X-Canary",
            "/$1",
            "a",
            "b.example",
            "404,503",
            "HTTPS",
        ]),
        1..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    });
    let special = prop_oneof![2 => Just(BTreeMap::new()), 1 => special];
    // Whole features, which single annotations rarely spell.
    let preset = |pairs: &'static [(&'static str, &'static str)]| {
        Just(
            pairs
                .iter()
                .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    let special = prop_oneof![
        6 => special,
        1 => preset(&[("canary", "true"), ("canary-weight", "30")]),
        1 => preset(&[("canary", "true"), ("canary-by-header", "X-Canary")]),
        1 => preset(&[("auth-type", "basic"), ("auth-secret", "auth")]),
        1 => preset(&[("auth-type", "basic"), ("auth-secret", "auth"), ("auth-secret-type", "auth-map")]),
        1 => preset(&[("use-regex", "true"), ("rewrite-target", "/$1")]),
        1 => preset(&[("default-backend", "a"), ("custom-http-errors", "404,503")]),
    ];
    let any_annotation = prop_oneof![
        3 => Just(BTreeMap::new()),
        1 => proptest::collection::btree_map(annotation_gen::names(), annotation_gen::values(), 1..3),
    ];
    let annotations = (special, any_annotation).prop_map(|(mut a, b)| {
        a.extend(b);
        a
    });
    (
        proptest::option::weighted(0.9, mostly(&["tollgate", "other"], 1)),
        0u8..3,
        annotations,
        (
            proptest::collection::vec(rule, 0..4),
            proptest::option::of(tls),
            proptest::option::of((select(SERVICES), 0u8..3)),
        )
            .prop_map(|(rules, tls, default)| {
                let mut spec = json!({"rules": rules});
                if let Some(tls) = tls {
                    spec["tls"] = tls;
                }
                if let Some((s, port)) = default {
                    spec["defaultBackend"] = backend(s, port);
                }
                spec
            }),
    )
}

/// The generated world: its documents (JSON, which is YAML), in order.
#[derive(Debug, Clone)]
struct World {
    docs: Vec<Value>,
}

fn ingress_doc(
    i: usize,
    (class, created, annotations, spec): &(Option<&str>, u8, BTreeMap<String, String>, Value),
) -> Value {
    let mut meta = json!({"name": format!("i{i}"), "namespace": "ns", "annotations": annotations});
    if *created > 0 {
        meta["creationTimestamp"] = json!(format!("2024-01-0{created}T00:00:00Z"));
    }
    let mut spec = spec.clone();
    if let Some(class) = class {
        spec["ingressClassName"] = json!(class);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec})
}

fn service_doc(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "ns"},
           "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 8080}]}})
}

fn slice_doc(name: &str, endpoints: u8) -> Value {
    let eps: Vec<Value> = (0..endpoints)
        .map(|e| json!({"addresses": [format!("10.0.0.{e}")]}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{name}-1"), "namespace": "ns", "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4", "ports": [{"port": 80, "name": "http"}], "endpoints": eps})
}

fn tls_doc(name: &str, valid: bool) -> Value {
    let (cert, key) = if valid {
        CERT.clone()
    } else {
        ("garbage".to_string(), "garbage".to_string())
    };
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name, "namespace": "ns"},
           "data": {"tls.crt": B64.encode(cert), "tls.key": B64.encode(key)}})
}

fn auth_doc(valid: bool) -> Value {
    let auth = if valid {
        "u:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n"
    } else {
        "u:plain\n"
    };
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "auth", "namespace": "ns"},
           "data": {"auth": B64.encode(auth), "u": B64.encode("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=")}})
}

fn worlds() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec(ingress(), 1..6),
        proptest::collection::vec(0u8..3, 3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ingresses, slices, class, broken_tls)| {
            let mut docs: Vec<Value> = ingresses.iter().enumerate().map(|(i, g)| ingress_doc(i, g)).collect();
            for (name, endpoints) in ["a", "b", "c"].iter().zip(slices) {
                docs.push(service_doc(name));
                docs.push(slice_doc(name, endpoints));
            }
            docs.push(tls_doc("tls", true));
            docs.push(tls_doc("broken-tls", !broken_tls));
            docs.push(auth_doc(true));
            if class {
                docs.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                                 "metadata": {"name": "tollgate"}, "spec": {"controller": "tollgate.dev/ingress-controller"}}));
            }
            World { docs }
        })
}

fn snapshot(docs: &[Value]) -> Result<Snapshot, TestCaseError> {
    let mut snapshot = Snapshot::default();
    for (i, doc) in docs.iter().enumerate() {
        let objects = parse_manifests(&format!("doc{i}.json"), &doc.to_string())
            .map_err(|e| TestCaseError::fail(format!("generated manifests: {e}")))?;
        for (origin, object) in objects {
            snapshot.insert(origin, object);
        }
    }
    Ok(snapshot)
}

/// One route as `tollgate check` lists it: host, path, type, service,
/// ingress, policy, canary, redirect, endpoints.
type Row = (
    String,
    String,
    String,
    String,
    String,
    Vec<String>,
    String,
    bool,
    Vec<String>,
);

fn render(c: &Compiled) -> (Vec<Row>, Vec<String>) {
    let mut rows: Vec<Row> = c
        .table
        .routes()
        .iter()
        .map(|r| {
            (
                r.host.to_string(),
                r.path.to_string(),
                r.path_type.map_or("-", |t| t.as_str()).to_string(),
                r.service.to_string(),
                r.ingress.to_string(),
                r.policy.summary(),
                r.canary
                    .as_ref()
                    .map(|c| format!("{} {}/{}", c.service, c.weight, c.weight_total))
                    .unwrap_or_default(),
                r.redirect_https,
                c.upstreams
                    .get(r.upstream as usize)
                    .map(|u| u.endpoints.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
            )
        })
        .collect();
    rows.sort();
    let diagnostics = c.diagnostics.iter().map(ToString::to_string).collect();
    (rows, diagnostics)
}

fn check((world, pick): (World, usize)) -> Result<(), TestCaseError> {
    let opts = CompileOptions::default();
    let first = compile(&snapshot(&world.docs)?, &opts, &LastGood::new());
    let again = compile(&snapshot(&world.docs)?, &opts, &LastGood::new());
    let rendered = render(&first);
    prop_assert_eq!(&rendered, &render(&again), "same input, another table");
    let last_good = &first.last_good;
    let ingresses: Vec<usize> = (0..world.docs.len())
        .filter(|&i| world.docs[i]["kind"] == "Ingress")
        .collect();

    // One Ingress broken: everything still renders as before.
    let broken = ingresses[pick % ingresses.len()];
    let mut docs = world.docs.clone();
    docs[broken]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/server-snippet"] =
        json!("return 200;");
    let second = compile(&snapshot(&docs)?, &opts, last_good);
    prop_assert_eq!(
        &render(&second).0,
        &rendered.0,
        "a broken Ingress (i{}) changed the routes",
        broken
    );

    // The same, and the broken version claims to be older than every
    // other Ingress (a file edit can say anything): still nothing moves.
    docs[broken]["metadata"]["creationTimestamp"] = json!("2023-01-01T00:00:00Z");
    let older = compile(&snapshot(&docs)?, &opts, last_good);
    prop_assert_eq!(
        &render(&older).0,
        &rendered.0,
        "a broken, older Ingress (i{}) changed the routes",
        broken
    );

    // A Secret broken: the last good certificate and users keep serving.
    let mut docs = world.docs.clone();
    for doc in docs.iter_mut() {
        match doc["metadata"]["name"].as_str() {
            Some("tls") => *doc = tls_doc("tls", false),
            Some("auth") => *doc = auth_doc(false),
            _ => {}
        }
    }
    let third = compile(&snapshot(&docs)?, &opts, last_good);
    prop_assert_eq!(
        &render(&third).0,
        &rendered.0,
        "a broken Secret changed the routes"
    );

    // A Service gone: its routes stay (and answer 503).
    let gone = ["a", "b", "c"][pick % 3];
    let docs: Vec<Value> = world
        .docs
        .iter()
        .filter(|d| !(d["kind"] == "Service" && d["metadata"]["name"] == gone))
        .cloned()
        .collect();
    let fourth = compile(&snapshot(&docs)?, &opts, last_good);
    let keys = |rows: &[Row]| {
        rows.iter()
            .map(|r| (r.0.clone(), r.1.clone(), r.2.clone(), r.4.clone()))
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(
        keys(&render(&fourth).0),
        keys(&rendered.0),
        "a missing Service removed routes"
    );
    Ok(())
}

#[test]
fn compiler() {
    fuzzing::run("config::compile", 64, (worlds(), any::<usize>()), check);
}
