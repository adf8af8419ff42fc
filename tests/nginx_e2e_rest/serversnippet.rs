//! Ported from ingress-nginx `test/e2e/annotations/serversnippet.go`
//! (`DescribeAnnotation("server-snippet")`): as `configuration-snippet`,
//! a header-only snippet is parsed into typed header rules for the
//! Ingress's paths, never executed. (The same cases, in one test, are in
//! `tests/migration/headers.rs`.)

use crate::common::*;
use crate::{config_map, single, Site, CONFIGMAP};

const SNIPPET: &str =
    "\n\t\t\t\tmore_set_headers \"Foo: Bar\";\n\t\t\t\tmore_set_headers \"Xpto: Lalala\";";

/// Go: "add valid directives to server via server snippet".
#[tokio::test]
async fn add_valid_directives_to_server_via_server_snippet() {
    let host = "serversnippet.foo.com";
    let site = Site::start(vec![single(
        host,
        "/",
        host,
        &[("server-snippet", SNIPPET)],
    )])
    .await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("foo").as_deref(), Some("Bar"));
    assert_eq!(r.header("xpto").as_deref(), Some("Lalala"));
}

/// Go: "drops server snippet if disabled by the administrator"
/// (`allow-snippet-annotations: "false"`): served, without the headers.
#[tokio::test]
async fn drops_server_snippet_if_disabled_by_the_administrator() {
    let host = "noserversnippet.foo.com";
    let site = Site::with(
        Echo::services(&[crate::ECHO]).await,
        vec![
            config_map("nginx", &[("allow-snippet-annotations", "false")]),
            single(host, "/", host, &[("server-snippet", SNIPPET)]),
        ],
        &["--configmap", CONFIGMAP],
    )
    .await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!((r.header("foo"), r.header("xpto")), (None, None));
}
