//! Ported from ingress-nginx `test/e2e/annotations/affinitymode.go`
//! (`DescribeAnnotation("affinitymode")`): cookie affinity in `balanced`
//! and `persistent` mode over a Service with several endpoints (one echo
//! listener per "pod"; scaling rewrites the EndpointSlices).
//! `session-cookie-hash` is gone from ingress-nginx's annotations: tollgate
//! reports it as unknown and serves.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::{single_to, Site, NS};

const COOKIE: &str = "hello-cookie";

fn annotations(mode: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("affinity", "cookie"),
        ("session-cookie-name", COOKIE),
        ("session-cookie-expires", "172800"),
        ("session-cookie-max-age", "172800"),
        ("ssl-redirect", "false"),
        ("affinity-mode", mode),
        ("session-cookie-hash", "sha1"),
    ]
}

/// The value of `hello-cookie` in the response's `Set-Cookie`.
fn cookie_of(r: &Resp) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The manifests with `ports` as the Service's endpoints.
fn manifests(svc: &str, host: &str, ports: &[u16], mode: &'static str) -> String {
    let mut docs = backend(NS, svc, ports);
    docs.push(single_to(host, "/", host, svc, &annotations(mode)));
    yaml_docs(&docs)
}

/// Polls `host` with the cookie until `pred` holds (bounded).
async fn until(site: &Site, host: &str, cookie: &str, pred: impl Fn(&Resp) -> bool) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = site.get(host, "/", &[("cookie", cookie)]).await;
        if pred(&r) || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Go: "Balanced affinity mode should balance". The Go case checks that
/// the annotations are kept as written; the port asserts what they do: a
/// cookie with `Max-Age=172800`, every request with it on one endpoint,
/// and clients without it spread over the five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_affinity_mode_should_balance() {
    let host = "affinity-mode-balance.com";
    let svc = "affinitybalanceecho";
    let echo = Echo::replicas(svc, 5).await;
    let docs = vec![single_to(host, "/", host, svc, &annotations("balanced"))];
    let site = Site::with(echo, docs, &[]).await;
    let r = site.get(host, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let set = r.header("set-cookie").unwrap_or_default();
    assert!(set.contains("Max-Age=172800"), "{set}");
    let cookie = format!("{COOKIE}={}", cookie_of(&r).expect("hello-cookie set"));
    let pod = r.echo().pod();
    for _ in 0..10 {
        let r = site.get(host, "/", &[("cookie", &cookie)]).await;
        assert_eq!(r.echo().pod(), pod, "the cookie keeps the endpoint");
    }
    let mut pods = std::collections::BTreeSet::new();
    for _ in 0..40 {
        pods.insert(site.get(host, "/", &[]).await.echo().pod());
    }
    assert!(pods.len() > 1, "new sessions are balanced: {pods:?}");
}

/// Go: "Check persistent affinity mode". Endpoints are added ten times:
/// the session stays on its endpoint; with none left the answer is 503;
/// with brand new endpoints the session goes to one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_persistent_affinity_mode() {
    let host = "affinity-mode-persistent.com";
    let svc = "affinitypersistentecho";
    let echo = Echo::replicas(svc, 17).await;
    let ports = echo.ports(svc);
    let site = Site::with(Echo::services(&["unused"]).await, vec![], &[]).await;
    site.tg.write(
        "manifests.yaml",
        &manifests(svc, host, &ports[..5], "persistent"),
    );
    let r = site.tg.eventually(host, "/", |r| r.status == 200).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let original = r.echo().pod();
    let cookie = format!("{COOKIE}={}", cookie_of(&r).expect("hello-cookie set"));
    for replicas in 6..=15 {
        site.tg.write(
            "manifests.yaml",
            &manifests(svc, host, &ports[..replicas], "persistent"),
        );
        // Applied once a new client can land on the newest endpoint.
        let newest = format!(":{}", ports[replicas - 1]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !site
            .get(host, "/", &[])
            .await
            .echo()
            .pod()
            .contains(&newest)
        {
            assert!(
                Instant::now() < deadline,
                "{replicas} replicas never applied"
            );
        }
        let r = site.get(host, "/", &[("cookie", &cookie)]).await;
        assert_eq!(r.echo().pod(), original, "{replicas} replicas");
    }
    site.tg
        .write("manifests.yaml", &manifests(svc, host, &[], "persistent"));
    let r = until(&site, host, &cookie, |r| r.status == 503).await;
    assert_eq!(r.status, 503, "no endpoint: {}", r.summary());
    site.tg.write(
        "manifests.yaml",
        &manifests(svc, host, &ports[15..], "persistent"),
    );
    let r = until(&site, host, &cookie, |r| r.status == 200).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_ne!(r.echo().pod(), original, "brand new endpoints");
}
