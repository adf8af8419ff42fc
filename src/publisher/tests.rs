//! The publisher's bookkeeping after a publish: the upstream-by-Service
//! index kept up to date by patches, the shared snapshot of the debug
//! endpoints and the webhook.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{Applied, Publisher};
use crate::config::{CompileOptions, Object, ObjectKey};
use crate::metrics::Metrics;
use crate::state::Health;

fn object(v: Value) -> Object {
    let parsed = match v["kind"].as_str().unwrap_or_default() {
        "Ingress" => serde_json::from_value(v).map(Object::Ingress),
        "IngressClass" => serde_json::from_value(v).map(Object::IngressClass),
        "Service" => serde_json::from_value(v).map(Object::Service),
        "EndpointSlice" => serde_json::from_value(v).map(Object::EndpointSlice),
        other => panic!("unexpected kind {other}"),
    };
    parsed.expect("valid object")
}

fn ingress(i: usize) -> Object {
    object(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": format!("ing-{i}"), "namespace": "ns"},
        "spec": {"ingressClassName": "tollgate", "rules": [{
            "host": format!("h{i}.example.com"),
            "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": format!("svc-{i}"), "port": {"number": 80}}}}]},
        }]},
    }))
}

fn service(i: usize) -> Object {
    object(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": "ns"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
}

fn slice(i: usize, last_octet: u8) -> Object {
    object(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{i}-x"), "namespace": "ns",
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [format!("10.0.{i}.{last_octet}")], "conditions": {"ready": true}}],
    }))
}

fn publisher() -> Publisher {
    let mut p = Publisher::new(
        CompileOptions::default(),
        Arc::new(Metrics::new()),
        Arc::new(Health::default()),
    );
    let origin: Arc<str> = "test".into();
    p.upsert(
        origin.clone(),
        object(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "tollgate"},
            "spec": {"controller": "tollgate.dev/ingress-controller"},
        })),
    );
    for i in 0..4 {
        p.upsert(origin.clone(), service(i));
        p.upsert(origin.clone(), slice(i, 1));
    }
    p.upsert(origin, ingress(0));
    assert!(matches!(p.commit(&[]), Applied::Recompiled { .. }));
    p
}

/// The addresses the published upstreams of Service `svc-{i}` balance over.
fn endpoints_of(p: &Publisher, i: usize) -> Vec<String> {
    let published = p.published().load_full();
    published
        .upstreams
        .iter()
        .filter(|u| *u.key.service == *format!("svc-{i}"))
        .flat_map(|u| {
            u.endpoints()
                .endpoints
                .iter()
                .map(|e| e.addr.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn an_endpoint_change_reaches_upstreams_added_by_patches() {
    let mut p = publisher();
    let origin: Arc<str> = "test".into();
    for i in 1..4 {
        p.upsert(origin.clone(), ingress(i));
        assert!(matches!(p.commit(&[]), Applied::Recompiled { .. }));
    }
    assert_eq!(
        p.compile_counts(),
        (3, 1),
        "three patches after the full compile"
    );
    for i in 0..4 {
        assert_eq!(endpoints_of(&p, i), vec![format!("10.0.{i}.1:8080")]);
        p.upsert(origin.clone(), slice(i, 2));
        assert_eq!(p.commit(&[]), Applied::Endpoints { services: 1 });
        assert_eq!(
            endpoints_of(&p, i),
            vec![format!("10.0.{i}.2:8080")],
            "svc-{i}"
        );
    }
}

#[test]
fn the_debug_state_shares_the_snapshot_as_it_was_compiled() {
    let mut p = publisher();
    let origin: Arc<str> = "test".into();
    p.upsert(origin.clone(), ingress(1));
    p.commit(&[]);
    let inspect = p.inspect().load_full();
    let key = ObjectKey::new("ns", "ing-1");
    assert!(inspect.snapshot.ingresses.contains_key(&key));
    // Later changes do not reach the stored snapshot: it is a version.
    p.delete("Ingress", &key);
    assert!(inspect.snapshot.ingresses.contains_key(&key));
    assert!(!p.snapshot().ingresses.contains_key(&key));
    p.commit(&[]);
    assert!(!p
        .inspect()
        .load_full()
        .snapshot
        .ingresses
        .contains_key(&key));
    assert_eq!(p.served(), &[ObjectKey::new("ns", "ing-0")]);
    assert!(p.last_timings().total >= p.last_timings().published);
}
