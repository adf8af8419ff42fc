//! Ported from ingress-nginx `test/e2e/annotations/canary.go`, context
//! "canary affinity behavior" (`affinity-canary-behavior`).

use crate::{set_cookie_value, single_to, Site};

const HOST: &str = "foo";
const COOKIE: &str = "aff";
const MAIN: &str = "main";
const CANARY: &str = "canary";

async fn site(weight: &str, behavior: Option<&str>) -> Site {
    let main = single_to(
        HOST,
        "/info",
        HOST,
        MAIN,
        &[("affinity", "cookie"), ("session-cookie-name", COOKIE)],
    );
    let mut annotations = vec![
        ("canary", "true"),
        ("canary-by-header", "ForceCanary"),
        ("canary-by-header-value", "yes"),
        ("canary-weight", weight),
    ];
    if let Some(b) = behavior {
        annotations.push(("affinity-canary-behavior", b));
    }
    let canary = single_to("foo-canary", "/info", HOST, CANARY, &annotations);
    Site::with_services(&[MAIN, CANARY], vec![main, canary]).await
}

/// The forced request goes to the canary and its cookie keeps every
/// further request there, though the canary's weight is 1%.
async fn sticks_to_the_canary(site: &Site) {
    let forced = site.get(HOST, "/info", &[("ForceCanary", "yes")]).await;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.service().as_deref(), Some(CANARY));
    let value = set_cookie_value(&forced, COOKIE).expect("affinity cookie from the canary");
    let cookie = format!("{COOKIE}={value}");
    for _ in 0..50 {
        let r = site.get(HOST, "/info", &[("cookie", &cookie)]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.service().as_deref(), Some(CANARY), "{}", r.summary());
    }
}

#[tokio::test]
async fn always_routes_traffic_to_canary_if_first_request_was_affinitized_to_canary_default_behavior(
) {
    sticks_to_the_canary(&site("1", None).await).await;
}

#[tokio::test]
async fn always_routes_traffic_to_canary_if_first_request_was_affinitized_to_canary_explicit_sticky_behavior(
) {
    sticks_to_the_canary(&site("1", Some("sticky")).await).await;
}

#[tokio::test]
async fn routes_traffic_to_either_mainline_or_canary_backend_legacy_behavior() {
    let site = site("50", Some("legacy")).await;
    let forced = site.get(HOST, "/info", &[("ForceCanary", "yes")]).await;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.service().as_deref(), Some(CANARY));
    // Legacy: the canary sets no affinity cookie.
    assert_eq!(set_cookie_value(&forced, COOKIE), None);
    // TestMainlineCanaryDistribution: both get a fair share at 50%.
    let (mut main, mut canary) = (0, 0);
    for _ in 0..200 {
        let r = site.get(HOST, "/info", &[]).await;
        match r.service().as_deref() {
            Some(MAIN) => main += 1,
            Some(CANARY) => canary += 1,
            other => panic!("served by {other:?}"),
        }
    }
    assert!(main >= 60 && canary >= 60, "main {main}, canary {canary}");
}

/// ingress-nginx's balancer: a client with the main backend's affinity
/// cookie stays on the main backend, even at a canary weight of 100%.
#[tokio::test]
async fn balancer_keeps_a_client_affinitized_to_the_main_backend() {
    let site = site("0", None).await;
    let first = site.get(HOST, "/info", &[]).await;
    assert_eq!(first.service().as_deref(), Some(MAIN));
    let value = set_cookie_value(&first, COOKIE).expect("affinity cookie");
    let cookie = format!("{COOKIE}={value}");
    let r = site
        .get(
            HOST,
            "/info",
            &[("cookie", &cookie), ("ForceCanary", "yes")],
        )
        .await;
    assert_eq!(r.service().as_deref(), Some(MAIN), "{}", r.summary());
}
