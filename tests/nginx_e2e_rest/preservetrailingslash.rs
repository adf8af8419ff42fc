//! Ported from ingress-nginx `test/e2e/annotations/preservetrailingslash.go`.
//! In tollgate the annotation is a no-op: the HTTPS redirect always keeps
//! the path as requested, which is what it asks for.

use crate::common::*;
use crate::{assert_no_op, single, Site, NS};

/// Go: "should allow preservation of trailing slashes". An Ingress with TLS
/// for the host (`NewSingleIngressWithTLS`) and `ssl-redirect`: `/` is
/// redirected to `https://forcesslredirect.bar.com/`, slash kept.
#[tokio::test]
async fn should_allow_preservation_of_trailing_slashes() {
    let host = "forcesslredirect.bar.com";
    let ca = TestCa::new("preservetrailingslash CA");
    let leaf = ca.leaf(host, &[host]);
    let mut ing = single(
        host,
        "/",
        host,
        &[
            ("ssl-redirect", "true"),
            ("preserve-trailing-slash", "true"),
        ],
    );
    ing["spec"]["tls"] = serde_json::json!([{"hosts": [host], "secretName": host}]);
    let docs = vec![tls_secret(NS, host, &leaf.chain_pem, &leaf.key_pem), ing];
    assert_no_op(&docs, "preserve-trailing-slash").await;
    let site = Site::start(docs).await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 308, "{}", r.summary());
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://forcesslredirect.bar.com/")
    );
}
