//! Ported from ingress-nginx `test/e2e/annotations/rewrite.go` (its
//! `request_uri=` checks are the path the echo backend received).

use crate::{single, typed, Site};

const HOST: &str = "rewrite.bar.com";

async fn path_seen(site: &Site, target: &str) -> String {
    let r = site.get(HOST, target, &[]).await;
    assert_eq!(r.status, 200, "{target}: {}", r.summary());
    r.echo().path()
}

#[tokio::test]
async fn should_use_correct_longest_path_match() {
    let site = Site::start(vec![
        single("kube-lego", "/.well-known/acme/challenge", HOST, &[]),
        single(
            "rewrite-index",
            "/",
            HOST,
            &[("rewrite-target", "/new/backend")],
        ),
    ])
    .await;
    assert_eq!(
        path_seen(&site, "/.well-known/acme/challenge").await,
        "/.well-known/acme/challenge"
    );
    assert_eq!(path_seen(&site, "/other").await, "/new/backend");
}

#[tokio::test]
async fn should_use_location_modifier_if_regex_annotation_is_present() {
    let site = Site::start(vec![
        single("foo", "/foo", HOST, &[]),
        typed(
            "regex",
            "/foo.+",
            "ImplementationSpecific",
            HOST,
            &[("use-regex", "true"), ("rewrite-target", "/new/backend")],
        ),
    ])
    .await;
    assert_eq!(path_seen(&site, "/foo").await, "/foo");
    assert_eq!(path_seen(&site, "/foo/bar").await, "/new/backend");
}

#[tokio::test]
async fn should_fail_to_use_longest_match_for_documented_warning() {
    let site = Site::start(vec![
        single("foo", "/foo/bar/bar", HOST, &[]),
        typed(
            "regex",
            "/foo/bar/[a-z]{3}",
            "ImplementationSpecific",
            HOST,
            &[("use-regex", "true"), ("rewrite-target", "/new/backend")],
        ),
    ])
    .await;
    assert_eq!(path_seen(&site, "/foo/bar/bar").await, "/new/backend");
}

#[tokio::test]
async fn should_allow_for_custom_rewrite_parameters() {
    let site = Site::start(vec![typed(
        "regex",
        "/foo/bar/(.+)",
        "ImplementationSpecific",
        HOST,
        &[("use-regex", "true"), ("rewrite-target", "/new/backend/$1")],
    )])
    .await;
    assert_eq!(path_seen(&site, "/foo/bar/bar").await, "/new/backend/bar");
}
