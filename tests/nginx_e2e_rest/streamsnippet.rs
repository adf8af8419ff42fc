//! Ported from ingress-nginx `test/e2e/annotations/streamsnippet.go`
//! (`DescribeSetting("stream-snippet")`). tollgate refuses
//! `stream-snippet` (raw configuration is never executed, CVE-2025-1974):
//! the Ingress carrying it is rejected with a diagnostic naming it and not
//! served, and no stream server is opened; the ConfigMap's `stream-snippet`
//! key has no effect and is reported.

use crate::common::*;
use crate::{assert_refused, check_docs, config_map, single, Site, CONFIGMAP};

const SNIPPET: &str = "server {listen 8000; proxy_pass 127.0.0.1:80;}";

/// Go: "should add value of stream-snippet to nginx config". Refused: the
/// Ingress is not served, and the snippet's port is not listened on.
#[tokio::test]
async fn should_add_value_of_stream_snippet_to_nginx_config() {
    let host = "foo.com";
    let docs = vec![single(host, "/", host, &[("stream-snippet", SNIPPET)])];
    assert_refused(&docs, "stream-snippet").await;
    let site = Site::start(docs).await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 404, "{}", r.summary());
    assert_eq!(r.service(), None);
    assert!(
        tokio::net::TcpStream::connect("127.0.0.1:8000")
            .await
            .is_err(),
        "nothing listens on the snippet's port"
    );
}

/// Go: "should add stream-snippet and drop annotations per admin config".
/// The Ingress without the annotation is served; the one with it is
/// rejected; the ConfigMap's `stream-snippet` is reported as unknown (no
/// stream server either).
#[tokio::test]
async fn should_add_stream_snippet_and_drop_annotations_per_admin_config() {
    let host = "cm.foo.com";
    let host_annot = "annot.foo.com";
    let docs = vec![
        config_map(
            "nginx",
            &[
                ("allow-snippet-annotations", "false"),
                ("stream-snippet", SNIPPET),
            ],
        ),
        single(host, "/", host, &[]),
        single(
            host_annot,
            "/",
            host_annot,
            &[(
                "stream-snippet",
                "server {listen 8001; proxy_pass 127.0.0.1:80;}",
            )],
        ),
    ];
    let (code, out) = check_docs(&docs, &["--configmap", CONFIGMAP]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("rejected") && l.contains("stream-snippet")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("ConfigMap")
            && l.contains("unknown keys")
            && l.contains("stream-snippet")),
        "{out}"
    );
    let site = Site::with(
        Echo::services(&[crate::ECHO]).await,
        docs,
        &["--configmap", CONFIGMAP],
    )
    .await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let r = site.get(host_annot, "/", &[]).await;
    assert_eq!(r.status, 404, "{}", r.summary());
}
