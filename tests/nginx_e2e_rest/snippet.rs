//! Ported from ingress-nginx `test/e2e/annotations/snippet.go`
//! (`DescribeAnnotation("configuration-snippet")`). tollgate never
//! executes a snippet: one made only of header directives with literal
//! values is parsed into typed header rules (applied); anything else is
//! refused with a diagnostic naming the directive (docs/annotations.md).
//! (The same cases, in one test, are in `tests/migration/headers.rs`.)

use crate::common::*;
use crate::{assert_refused, config_map, single, Site, CONFIGMAP};

const SNIPPET: &str = r#"more_set_headers "Foo1: Bar1";"#;

/// Go: "set snippet more_set_headers in all locations". Also: the same
/// annotation with a directive outside the header subset is refused.
#[tokio::test]
async fn set_snippet_more_set_headers_in_all_locations() {
    let host = "configurationsnippet.foo.com";
    let site = Site::start(vec![single(
        host,
        "/",
        host,
        &[("configuration-snippet", SNIPPET)],
    )])
    .await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let values: Vec<_> = r.headers.get_all("foo1").iter().collect();
    assert_eq!(values, ["Bar1"]);
    let other = vec![single(
        host,
        "/",
        host,
        &[("configuration-snippet", "rewrite ^ /other break;")],
    )];
    assert_refused(&other, "rewrite").await;
}

/// Go: "drops snippet more_set_header in all locations if disabled by
/// admin" (`allow-snippet-annotations: "false"` in the ConfigMap): served,
/// without the header.
#[tokio::test]
async fn drops_snippet_more_set_header_in_all_locations_if_disabled_by_admin() {
    let host = "noconfigurationsnippet.foo.com";
    let site = Site::with(
        Echo::services(&[crate::ECHO]).await,
        vec![
            config_map("nginx", &[("allow-snippet-annotations", "false")]),
            single(host, "/", host, &[("configuration-snippet", SNIPPET)]),
        ],
        &["--configmap", CONFIGMAP],
    )
    .await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("foo1"), None);
}
