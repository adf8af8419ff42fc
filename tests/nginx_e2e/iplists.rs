//! Ported from ingress-nginx `test/e2e/annotations/ipallowlist.go` and
//! `ipdenylist.go`. The e2e framework trusts `X-Forwarded-For`; here the
//! test client (127.0.0.1) is a `--trusted-proxies` address.

use crate::{single, Site};

const HOST: &str = "ipallow.foo.com";

async fn lists(annotations: &[(&str, &str)]) -> Site {
    Site::start_args(
        vec![single(HOST, "/", HOST, annotations)],
        Vec::new(),
        &["--trusted-proxies", "127.0.0.0/8"],
    )
    .await
}

async fn status_from(site: &Site, client: &str) -> u16 {
    site.get(HOST, "/", &[("X-Forwarded-For", client)])
        .await
        .status
}

// ipallowlist.go
#[tokio::test]
async fn should_set_valid_ip_allowlist_range() {
    let site = lists(&[("allowlist-source-range", "18.0.0.0/8, 56.0.0.0/8")]).await;
    assert_eq!(status_from(&site, "18.1.2.3").await, 200);
    assert_eq!(status_from(&site, "56.0.0.9").await, 200);
    assert_eq!(status_from(&site, "10.0.0.1").await, 403, "deny all");
}

// ipdenylist.go
#[tokio::test]
async fn only_deny_explicitly_denied_ips_allow_all_others() {
    let site = lists(&[("denylist-source-range", "18.0.0.0/8, 56.0.0.1")]).await;
    assert_eq!(status_from(&site, "18.0.0.1").await, 403);
    assert_eq!(status_from(&site, "56.0.0.1").await, 403);
    assert_eq!(status_from(&site, "56.0.0.2").await, 200);
}

// ipdenylist.go
#[tokio::test]
async fn only_allow_explicitly_allowed_ips_deny_all_others() {
    let site = lists(&[
        ("denylist-source-range", "18.1.0.0/16, 56.0.0.0/8"),
        ("whitelist-source-range", "18.0.0.0/8, 55.0.0.0/8"),
    ])
    .await;
    assert_eq!(status_from(&site, "18.1.0.1").await, 403);
    assert_eq!(status_from(&site, "10.10.10.10").await, 403);
    assert_eq!(status_from(&site, "18.4.0.1").await, 200);
    assert_eq!(status_from(&site, "55.55.55.55").await, 200);
}
