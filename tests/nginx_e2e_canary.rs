//! ingress-nginx's canary end-to-end expectations, ported: each test
//! repeats one `ginkgo.It` case of kubernetes/ingress-nginx
//! `test/e2e/annotations/canary.go` (the doc comment names the context and
//! the case) against the real `tollgate run` binary in standalone mode,
//! two echo Services (mainline `main`, canary `canary`) and real sockets.
//! Assertions are on what a client sees: the status and which Service
//! answered. Where the Go case only inspects nginx.conf, the port asserts
//! the routing that configuration produces. The "canary affinity behavior"
//! context lives in `nginx_e2e_more/canary_affinity.rs`.
//!
//! Not ported: "should routes to mainline upstream when the given Regex
//! causes error". ingress-nginx drops the canary when
//! `canary-by-header-pattern` does not compile; tollgate follows its
//! documented rule for bad values (docs/annotations.md: a warning, and the
//! annotation's default applies), so the canary's cookie still selects it.

mod common;

use common::*;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

const NS: &str = "default";
/// ingress-nginx's `fooHost`.
const HOST: &str = "foo";
/// ingress-nginx's `framework.HTTPBunService` (the mainline).
const MAIN: &str = "main";
/// ingress-nginx's `canaryService`.
const CANARY: &str = "canary";
/// The canary Ingress's name (`fmt.Sprintf("%v-canary", host)`).
const CANARY_ING: &str = "foo-canary";

/// `nginx.ingress.kubernetes.io/` annotations given without the prefix.
fn annotations(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), json!(v)))
        .collect()
}

fn ingress(name: &str, annotations: Map<String, Value>, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": spec
    })
}

fn backend(service: &str) -> Value {
    json!({"service": {"name": service, "port": {"number": 8080}}})
}

/// `framework.NewSingleIngressWithMultiplePaths(name, paths, host, ...)`:
/// one rule, Prefix paths to `service` (port 8080).
fn multi(name: &str, paths: &[&str], host: &str, service: &str, anno: &[(&str, &str)]) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|p| json!({"path": p, "pathType": "Prefix", "backend": backend(service)}))
        .collect();
    ingress(
        name,
        annotations(anno),
        json!({"ingressClassName": "tollgate",
               "rules": [{"host": host, "http": {"paths": paths}}]}),
    )
}

/// `framework.NewSingleIngress(name, "/info", host, ...)`.
fn single(name: &str, host: &str, service: &str, anno: &[(&str, &str)]) -> Value {
    multi(name, &["/info"], host, service, anno)
}

/// `framework.NewSingleCatchAllIngress(name, ...)`: only a default backend.
fn catch_all(name: &str, service: &str, anno: &[(&str, &str)]) -> Value {
    ingress(
        name,
        annotations(anno),
        json!({"ingressClassName": "tollgate", "defaultBackend": backend(service)}),
    )
}

/// The mainline Ingress on `foo` `/info`.
fn mainline() -> Value {
    single(HOST, HOST, MAIN, &[])
}

/// The canary Ingress on `foo` `/info` with these annotations (plus
/// `canary: "true"`).
fn canary(anno: &[(&str, &str)]) -> Value {
    let mut all = vec![("canary", "true")];
    all.extend_from_slice(anno);
    single(CANARY_ING, HOST, CANARY, &all)
}

/// A running tollgate with the `main` and `canary` echo Services.
struct Site {
    tg: Tollgate,
    echo: Echo,
}

impl Site {
    async fn start(ingresses: Vec<Value>) -> Site {
        let echo = Echo::services(&[MAIN, CANARY]).await;
        let tg = Tollgate::builder()
            .file("manifests.yaml", &yaml_docs(&docs(&echo, ingresses)))
            .start()
            .await;
        Site { tg, echo }
    }

    /// ingress-nginx's `EnsureIngress`/`UpdateIngress`: replaces the
    /// Ingresses and waits until tollgate has installed the new table.
    async fn update(&self, ingresses: Vec<Value>) {
        let before = self.generation().await;
        self.tg
            .write("manifests.yaml", &yaml_docs(&docs(&self.echo, ingresses)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.generation().await <= before {
            assert!(Instant::now() < deadline, "the update never applied");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn generation(&self) -> u64 {
        self.tg
            .metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix("tollgate_table_generation "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// ingress-nginx's `HTTPTestClient().GET(path)` with these headers.
    async fn get(&self, host: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.tg.request("GET", host, target, headers).await
    }

    /// GET `foo/info` with these headers: asserts a 200 and returns the
    /// Service that answered.
    async fn answered(&self, headers: &[(&str, &str)]) -> String {
        let r = self.get(HOST, "/info", headers).await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.summary());
        r.service()
            .unwrap_or_else(|| panic!("{headers:?}: not an echo reply: {}", r.summary()))
    }
}

fn docs(echo: &Echo, ingresses: Vec<Value>) -> Vec<Value> {
    let mut docs = echo.backends(NS);
    docs.extend(ingresses);
    docs
}

/// ingress-nginx's `TestMainlineCanaryDistribution`: each backend answers at
/// least 40% of the requests. The choice is random per request, so the
/// sample is 1,000 requests: a fair split falls outside 400..=600 with
/// probability ~2e-10 (with 200 requests and 80..=120 it was ~0.5%, which
/// failed a CI run).
async fn split_between_mainline_and_canary(site: &Site) {
    let (mut main, mut canary) = (0, 0);
    for _ in 0..1000 {
        match site.answered(&[]).await.as_str() {
            MAIN => main += 1,
            CANARY => canary += 1,
            other => panic!("answered by {other}"),
        }
    }
    assert!(
        main >= 400 && canary >= 400,
        "main {main}, canary {canary} of 1000"
    );
}

/// "when canary is created": "should response with a 200 status from the
/// mainline upstream when requests are made to the mainline ingress".
#[tokio::test]
async fn should_response_with_a_200_status_from_the_mainline_upstream_when_requests_are_made_to_the_mainline_ingress(
) {
    let site = Site::start(vec![mainline()]).await;
    site.update(vec![
        mainline(),
        canary(&[("canary-by-header", "CanaryByHeader")]),
    ])
    .await;
    assert_eq!(site.answered(&[]).await, MAIN);
}

/// "when canary is created": "should return 404 status for requests to the
/// canary if no matching ingress is found".
#[tokio::test]
async fn should_return_404_status_for_requests_to_the_canary_if_no_matching_ingress_is_found() {
    let site = Site::start(vec![canary(&[("canary-by-header", "CanaryByHeader")])]).await;
    let r = site
        .get(HOST, "/info", &[("CanaryByHeader", "always")])
        .await;
    assert_eq!(r.status, 404, "{}", r.summary());
}

/// The header "never" goes to the mainline, "always" to the canary.
async fn never_and_always(site: &Site, header: &str) {
    assert_eq!(site.answered(&[(header, "never")]).await, MAIN);
    assert_eq!(site.answered(&[(header, "always")]).await, CANARY);
}

/// "when canary is created": "should route requests to the correct upstream
/// if mainline ingress is created before the canary ingress".
#[tokio::test]
async fn should_route_requests_to_the_correct_upstream_if_mainline_ingress_is_created_before_the_canary_ingress(
) {
    let site = Site::start(vec![mainline()]).await;
    site.update(vec![
        mainline(),
        canary(&[("canary-by-header", "CanaryByHeader")]),
    ])
    .await;
    never_and_always(&site, "CanaryByHeader").await;
}

/// "when canary is created": "should route requests to the correct upstream
/// if mainline ingress is created after the canary ingress".
#[tokio::test]
async fn should_route_requests_to_the_correct_upstream_if_mainline_ingress_is_created_after_the_canary_ingress(
) {
    let by_header = canary(&[("canary-by-header", "CanaryByHeader")]);
    let site = Site::start(vec![by_header.clone()]).await;
    site.update(vec![by_header, mainline()]).await;
    never_and_always(&site, "CanaryByHeader").await;
}

/// "when canary is created": "should route requests to the correct upstream
/// if the mainline ingress is modified".
#[tokio::test]
async fn should_route_requests_to_the_correct_upstream_if_the_mainline_ingress_is_modified() {
    let by_header = canary(&[("canary-by-header", "CanaryByHeader")]);
    let site = Site::start(vec![mainline(), by_header.clone()]).await;
    // The Go case sets an unprefixed annotation `foo: bar` on the mainline.
    let mut modified = mainline();
    modified["metadata"]["annotations"] = json!({HOST: "bar"});
    site.update(vec![modified, by_header]).await;
    never_and_always(&site, "CanaryByHeader").await;
}

/// "when canary is created": "should route requests to the correct upstream
/// if the canary ingress is modified".
#[tokio::test]
async fn should_route_requests_to_the_correct_upstream_if_the_canary_ingress_is_modified() {
    let site = Site::start(vec![
        mainline(),
        canary(&[("canary-by-header", "CanaryByHeader")]),
    ])
    .await;
    site.update(vec![
        mainline(),
        canary(&[("canary-by-header", "CanaryByHeader2")]),
    ])
    .await;
    never_and_always(&site, "CanaryByHeader2").await;
}

/// "when canaried by header with no value": "should route requests to the
/// correct upstream".
#[tokio::test]
async fn when_canaried_by_header_with_no_value_should_route_requests_to_the_correct_upstream() {
    let site = Site::start(vec![
        mainline(),
        canary(&[("canary-by-header", "CanaryByHeader")]),
    ])
    .await;
    never_and_always(&site, "CanaryByHeader").await;
    assert_eq!(
        site.answered(&[("CanaryByHeader", "badheadervalue")]).await,
        MAIN
    );
}

/// "when canaried by header with value": "should route requests to the
/// correct upstream".
#[tokio::test]
async fn when_canaried_by_header_with_value_should_route_requests_to_the_correct_upstream() {
    let site = Site::start(vec![
        mainline(),
        canary(&[
            ("canary-by-header", "CanaryByHeader"),
            ("canary-by-header-value", "DoCanary"),
        ]),
    ])
    .await;
    assert_eq!(
        site.answered(&[("CanaryByHeader", "DoCanary")]).await,
        CANARY
    );
    for value in ["always", "never", "otherheadervalue"] {
        assert_eq!(
            site.answered(&[("CanaryByHeader", value)]).await,
            MAIN,
            "{value}: only the configured value selects the canary"
        );
    }
}

/// "when canaried by header with value and pattern": the first "should
/// route requests to the correct upstream" (pattern only).
#[tokio::test]
async fn when_canaried_by_header_pattern_should_route_requests_to_the_correct_upstream() {
    let site = Site::start(vec![
        mainline(),
        canary(&[
            ("canary-by-header", "CanaryByHeader"),
            ("canary-by-header-pattern", "^Do[A-Z][a-z]+y$"),
        ]),
    ])
    .await;
    assert_eq!(
        site.answered(&[("CanaryByHeader", "DoCanary")]).await,
        CANARY
    );
    assert_eq!(site.answered(&[("CanaryByHeader", "Docanary")]).await, MAIN);
}

/// "when canaried by header with value and pattern": the second "should
/// route requests to the correct upstream" (a value set takes precedence
/// over the pattern, which `DoCananry` would match).
#[tokio::test]
async fn when_canaried_by_header_with_value_and_pattern_should_route_requests_to_the_correct_upstream(
) {
    let site = Site::start(vec![
        mainline(),
        canary(&[
            ("canary-by-header", "CanaryByHeader"),
            ("canary-by-header-value", "DoCanary"),
            ("canary-by-header-pattern", "^Do[A-Z][a-z]+y$"),
        ]),
    ])
    .await;
    assert_eq!(
        site.answered(&[("CanaryByHeader", "DoCananry")]).await,
        MAIN
    );
}

/// "when canaried by header with value and cookie": "should route requests
/// to the correct upstream" (a non-matching header value falls through to
/// the cookie).
#[tokio::test]
async fn when_canaried_by_header_with_value_and_cookie_should_route_requests_to_the_correct_upstream(
) {
    let site = Site::start(vec![
        mainline(),
        canary(&[
            ("canary-by-header", "CanaryByHeader"),
            ("canary-by-header-value", "DoCanary"),
            ("canary-by-cookie", "CanaryByCookie"),
        ]),
    ])
    .await;
    assert_eq!(
        site.answered(&[
            ("CanaryByHeader", "otherheadervalue"),
            ("cookie", "CanaryByCookie=always")
        ])
        .await,
        CANARY
    );
}

/// "when canaried by cookie": "respects always and never values" (50
/// requests each, as upstream).
#[tokio::test]
async fn when_canaried_by_cookie_respects_always_and_never_values() {
    let site = Site::start(vec![
        mainline(),
        canary(&[("canary-by-cookie", "Canary-By-Cookie")]),
    ])
    .await;
    for (value, expected) in [
        ("always", CANARY),
        ("never", MAIN),
        ("badcookievalue", MAIN),
    ] {
        let cookie = format!("Canary-By-Cookie={value}");
        for _ in 0..50 {
            assert_eq!(
                site.answered(&[("cookie", &cookie)]).await,
                expected,
                "{cookie}"
            );
        }
    }
}

/// "when canaried by weight": "should route requests only to mainline if
/// canary weight is 0".
#[tokio::test]
async fn should_route_requests_only_to_mainline_if_canary_weight_is_0() {
    let site = Site::start(vec![mainline(), canary(&[("canary-weight", "0")])]).await;
    for _ in 0..20 {
        assert_eq!(site.answered(&[]).await, MAIN);
    }
}

/// "when canaried by weight": "should route requests only to canary if
/// canary weight is 100".
#[tokio::test]
async fn should_route_requests_only_to_canary_if_canary_weight_is_100() {
    let site = Site::start(vec![mainline(), canary(&[("canary-weight", "100")])]).await;
    for _ in 0..20 {
        assert_eq!(site.answered(&[]).await, CANARY);
    }
}

/// "when canaried by weight": "should route requests only to canary if
/// canary weight is equal to canary weight total".
#[tokio::test]
async fn should_route_requests_only_to_canary_if_canary_weight_is_equal_to_canary_weight_total() {
    let site = Site::start(vec![
        mainline(),
        canary(&[("canary-weight", "1000"), ("canary-weight-total", "1000")]),
    ])
    .await;
    for _ in 0..20 {
        assert_eq!(site.answered(&[]).await, CANARY);
    }
}

/// "when canaried by weight": "should route requests split between
/// mainline and canary if canary weight is 50".
#[tokio::test]
async fn should_route_requests_split_between_mainline_and_canary_if_canary_weight_is_50() {
    let site = Site::start(vec![mainline(), canary(&[("canary-weight", "50")])]).await;
    split_between_mainline_and_canary(&site).await;
}

/// "when canaried by weight": "should route requests split between
/// mainline and canary if canary weight is 100 and weight total is 200".
#[tokio::test]
async fn should_route_requests_split_between_mainline_and_canary_if_canary_weight_is_100_and_weight_total_is_200(
) {
    let site = Site::start(vec![
        mainline(),
        canary(&[("canary-weight", "100"), ("canary-weight-total", "200")]),
    ])
    .await;
    split_between_mainline_and_canary(&site).await;
}

/// "Single canary Ingress": "should not use canary as a catch-all server"
/// (the Go case checks that the catch-all server proxies to the mainline,
/// not to the canary nor to the default backend).
#[tokio::test]
async fn should_not_use_canary_as_a_catch_all_server() {
    let site = Site::start(vec![
        catch_all(
            CANARY_ING,
            CANARY,
            &[("canary", "true"), ("canary-by-header", "CanaryByHeader")],
        ),
        catch_all(HOST, MAIN, &[]),
    ])
    .await;
    for host in [HOST, "unknown.example"] {
        let r = site.get(host, "/info", &[]).await;
        assert_eq!(r.status, 200, "{host}: {}", r.summary());
        assert_eq!(r.service().as_deref(), Some(MAIN), "{host}");
    }
}

/// "Single canary Ingress": "should not use canary with domain as a
/// server" (a canary whose host has no mainline creates no server: its
/// host gets the default backend's 404, even when asking for the canary).
#[tokio::test]
async fn should_not_use_canary_with_domain_as_a_server() {
    let site = Site::start(vec![
        canary(&[("canary-by-header", "CanaryByHeader")]),
        single("bar", "bar", MAIN, &[]),
    ])
    .await;
    let r = site.get("bar", "/info", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.service().as_deref(), Some(MAIN));
    for headers in [&[][..], &[("CanaryByHeader", "always")][..]] {
        let r = site.get(HOST, "/info", headers).await;
        assert_eq!(r.status, 404, "{headers:?}: {}", r.summary());
    }
}

/// "does not crash when canary ingress has multiple paths to the same
/// non-matching backend".
#[tokio::test]
async fn does_not_crash_when_canary_ingress_has_multiple_paths_to_the_same_non_matching_backend() {
    let site = Site::start(vec![
        multi(
            CANARY_ING,
            &["/foo", "/bar"],
            HOST,
            "httpy-svc-canary",
            &[("canary", "true"), ("canary-by-header", "CanaryByHeader")],
        ),
        mainline(),
    ])
    .await;
    assert_eq!(site.answered(&[]).await, MAIN);
    assert_eq!(site.answered(&[("CanaryByHeader", "always")]).await, MAIN);
}
