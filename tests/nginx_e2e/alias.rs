//! Ported from ingress-nginx `test/e2e/annotations/alias.go`.

use crate::{single, Site};

const FOO: &str = "foo";

#[tokio::test]
async fn should_return_status_code_200_for_host_foo_and_404_for_bar() {
    let site = Site::start(vec![single(FOO, "/", FOO, &[])]).await;
    let r = site.get(FOO, "/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.echo().host(), FOO);
    assert_eq!(site.get("bar", "/", &[]).await.status, 404);
}

#[tokio::test]
async fn should_return_status_code_200_for_host_foo_and_bar() {
    let site = Site::start(vec![single(FOO, "/", FOO, &[("server-alias", "bar")])]).await;
    for host in [FOO, "bar"] {
        let r = site.get(host, "/", &[]).await;
        assert_eq!(r.status, 200, "{host}: {}", r.summary());
        assert_eq!(r.echo().host(), host);
    }
}

#[tokio::test]
async fn should_return_status_code_200_for_hosts_defined_in_two_ingresses_different_path_with_one_alias(
) {
    let site = Site::start(vec![
        single("app-a", "/app-a", FOO, &[]),
        single("app-b", "/app-b", FOO, &[("server-alias", "bar")]),
    ])
    .await;
    for host in [FOO, "bar"] {
        let r = site.get(host, "/app-a", &[]).await;
        assert_eq!(r.status, 200, "{host}: {}", r.summary());
        assert_eq!(r.echo().host(), host);
    }
}

/// ingress-nginx ignores an alias that is another server's name: the
/// host's own Ingress keeps it.
#[tokio::test]
async fn controller_alias_never_takes_over_a_host_with_its_own_ingress() {
    let site = Site::start(vec![
        single("main", "/", FOO, &[("server-alias", "bar")]),
        single("bar", "/only-bar", "bar", &[]),
    ])
    .await;
    assert_eq!(site.get("bar", "/only-bar", &[]).await.status, 200);
    assert_eq!(site.get("bar", "/elsewhere", &[]).await.status, 404);
}
