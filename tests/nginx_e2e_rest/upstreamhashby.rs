//! Ported from ingress-nginx `test/e2e/annotations/upstreamhashby.go`
//! (`DescribeAnnotation("upstream-hash-by-*")`): six echo endpoints, 100
//! requests for `/`, the set of endpoints that answered.

use std::collections::BTreeSet;

use crate::common::*;
use crate::{assert_no_op, single, Site};

const HOST: &str = "upstream-hash-by.foo.com";

async fn pods_answering(annotations: &[(&str, &str)]) -> BTreeSet<String> {
    let echo = Echo::replicas(crate::ECHO, 6).await;
    let site = Site::with(echo, vec![single(HOST, "/", HOST, annotations)], &[]).await;
    let mut pods = BTreeSet::new();
    for _ in 0..100 {
        let r = site.get(HOST, "/", &[]).await;
        assert_eq!(r.status, 200, "{}", r.summary());
        pods.insert(r.echo().pod());
    }
    pods
}

/// Go: "should connect to the same pod".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_connect_to_the_same_pod() {
    let pods = pods_answering(&[("upstream-hash-by", "$request_uri")]).await;
    assert_eq!(pods.len(), 1, "{pods:?}");
}

/// Go: "should connect to the same subset of pods". ingress-nginx spreads
/// a key over a subset of 3 endpoints; tollgate's `upstream-hash-by-subset`
/// is a no-op (consistent hashing over all endpoints: a key still maps to
/// one endpoint, docs/annotations.md), so one endpoint answers where
/// ingress-nginx has three: the documented difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_connect_to_the_same_subset_of_pods() {
    let annotations = [
        ("upstream-hash-by", "$request_uri"),
        ("upstream-hash-by-subset", "true"),
        ("upstream-hash-by-subset-size", "3"),
    ];
    assert_no_op(
        &[single(HOST, "/", HOST, &annotations)],
        "upstream-hash-by-subset",
    )
    .await;
    let pods = pods_answering(&annotations).await;
    // Difference: ingress-nginx answers from 3 endpoints.
    assert_eq!(pods.len(), 1, "{pods:?}");
}
