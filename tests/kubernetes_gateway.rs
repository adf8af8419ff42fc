//! Gateway API in Kubernetes mode: `tollgate run` against the fake API
//! server (`tests/common/fakeapi.rs`) with GatewayClasses, Gateways,
//! HTTPRoutes, ReferenceGrants and Namespaces: routes reach the table, the
//! leader writes GatewayClass, Gateway and route parent status (and only
//! for what is ours), missing CRDs do not hold readiness, a restart writes
//! nothing that is already right.
//!
//! Waits poll with generous bounds, as in `tests/kubernetes.rs`; the few
//! fixed pauses only check that nothing *more* happens.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::cluster::{expect_route, metric, Cluster, CHANGE_TIMEOUT};
use common::gateway::{gateway, gateway_class, http_route, namespace};
use common::*;
use serde_json::{json, Value};

const NS: &str = "default";
const GW: &str = "gateway.networking.k8s.io/v1";
const CONTROLLER: &str = "tollgate.dev/gateway-controller";
/// A watch retried after a 404 (the watcher's backoff, then the version
/// fallback's pause).
const BACKOFF_TIMEOUT: Duration = Duration::from_secs(30);
const PUBLISHED: &str = "10.9.8.7";
const HTTP_LISTENER: &str = "[{name: http, port: 80, protocol: HTTP}]";

impl Cluster {
    fn object(&self, kind: &str, ns: &str, name: &str) -> Value {
        self.api
            .get(GW, kind, ns, name)
            .unwrap_or_else(|| panic!("{kind} {ns}/{name} not in the fake"))
    }

    /// Status writes received for objects whose path contains `part`
    /// (e.g. `/httproutes/`, `/gateways/gw/`).
    fn status_writes_to(&self, part: &str) -> usize {
        self.api
            .status_writes()
            .iter()
            .filter(|(_, p, _)| p.contains(part))
            .count()
    }

    /// Status writes to any Gateway API object.
    fn gateway_api_writes(&self) -> usize {
        self.status_writes_to("/gateway.networking.k8s.io/")
    }

    /// Our entry of a route's `status.parents` for Gateway `gw`.
    fn our_parent(&self, kind: &str, name: &str) -> Value {
        self.object(kind, NS, name)["status"]["parents"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["controllerName"] == CONTROLLER))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

async fn until<T, Fut>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn until_leader(tg: &Tollgate) {
    until("the replica to lead", BACKOFF_TIMEOUT, || async move {
        let l = metric(tg, "tollgate_leader", &[]).await;
        if l == 1.0 {
            Ok(())
        } else {
            Err(format!("tollgate_leader {l}"))
        }
    })
    .await;
}

/// The condition `type_` of a condition list (`null` when absent).
fn condition(conditions: &Value, type_: &str) -> Value {
    conditions
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Whether a condition list has `type_` with `status` describing
/// `generation`.
fn has(conditions: &Value, type_: &str, status: &str, generation: &Value) -> bool {
    let c = condition(conditions, type_);
    c["status"] == status && &c["observedGeneration"] == generation
}

fn route_spec(parents: &str, host: &str, svc: &str) -> String {
    format!(
        "parentRefs: {parents}\nhostnames: [{host}]\nrules: [{{backendRefs: [{{name: {svc}, port: 8080}}]}}]"
    )
}

fn foreign_class() -> Value {
    json!({
        "apiVersion": GW,
        "kind": "GatewayClass",
        "metadata": {"name": "other"},
        "spec": {"controllerName": "example.com/other-controller"},
    })
}

/// Our class and Gateway `gw`, a foreign class and Gateway `theirs`, routes
/// `mine` (to gw), `foreign` (to theirs, with the other controller's
/// status) and `both` (to both, with the other controller's entry).
fn world(echo: &Echo) -> Vec<Value> {
    let mut docs = echo.backends(NS);
    let mut theirs = gateway(NS, "theirs", HTTP_LISTENER);
    theirs["spec"]["gatewayClassName"] = json!("other");
    let other_entry = json!({
        "parentRef": {"name": "theirs"},
        "controllerName": "example.com/other-controller",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
            "message": "theirs", "observedGeneration": 1,
            "lastTransitionTime": "2024-01-01T00:00:00Z"}],
    });
    let mut foreign = http_route(
        NS,
        "foreign",
        &route_spec("[{name: theirs}]", "foreign.example", "web"),
    );
    foreign["status"] = json!({"parents": [other_entry.clone()]});
    let mut both = http_route(
        NS,
        "both",
        &route_spec("[{name: gw}, {name: theirs}]", "both.example", "web"),
    );
    both["status"] = json!({"parents": [other_entry]});
    docs.extend([
        namespace(NS, &[]),
        gateway_class(),
        foreign_class(),
        gateway(NS, "gw", HTTP_LISTENER),
        theirs,
        http_route(
            NS,
            "mine",
            &route_spec("[{name: gw}]", "mine.example", "web"),
        ),
        foreign,
        both,
    ]);
    docs
}

/// Waits until every status of [`world`] we write is there.
async fn until_world_written(c: &Cluster) {
    until(
        "Gateway API status written",
        CHANGE_TIMEOUT,
        || async move {
            let mine = c.our_parent("HTTPRoute", "mine");
            let both = c.our_parent("HTTPRoute", "both");
            let gw = c.object("Gateway", NS, "gw")["status"].clone();
            let class = c
                .api
                .get(GW, "GatewayClass", "", "tollgate")
                .unwrap_or_default();
            let attached = gw["listeners"][0]["attachedRoutes"].clone();
            if mine.is_null() || both.is_null() || attached != json!(2) || class["status"].is_null()
            {
                Err(format!("mine {mine}\nboth {both}\ngw {gw}\nclass {class}"))
            } else {
                Ok(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_on_our_gateway_is_routed_and_status_is_written_for_ours_only() {
    let c = Cluster::new();
    let echo = Echo::services(&["web"]).await;
    c.api.apply_many(world(&echo));
    let tg = c
        .tollgate()
        .args(&["--publish-address", PUBLISHED])
        .start()
        .await;
    expect_route(&tg, "mine.example", "/", 200, Some("web")).await;
    expect_route(&tg, "both.example", "/x", 200, Some("web")).await;
    // A route only on another controller's Gateway is not ours to serve.
    expect_route(&tg, "foreign.example", "/", 404, None).await;
    until_world_written(&c).await;

    // HTTPRoute parents: ours, with the spec's conditions.
    let generation = c.object("HTTPRoute", NS, "mine")["metadata"]["generation"].clone();
    let mine = c.our_parent("HTTPRoute", "mine");
    assert_eq!(mine["parentRef"], json!({"name": "gw"}), "{mine}");
    assert!(
        has(&mine["conditions"], "Accepted", "True", &generation),
        "{mine}"
    );
    assert!(
        has(&mine["conditions"], "ResolvedRefs", "True", &generation),
        "{mine}"
    );
    assert!(condition(&mine["conditions"], "Accepted")["lastTransitionTime"].is_string());

    // The other controller's entries are untouched.
    let both = c.object("HTTPRoute", NS, "both")["status"]["parents"].clone();
    let both = both.as_array().cloned().unwrap_or_default();
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[0]["controllerName"], "example.com/other-controller");
    assert_eq!(both[0]["conditions"][0]["message"], "theirs");
    assert_eq!(c.status_writes_to("/httproutes/foreign/"), 0);
    assert_eq!(
        c.object("HTTPRoute", NS, "foreign")["status"]["parents"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // GatewayClass: ours accepted, with supported features; theirs alone.
    let class = c
        .api
        .get(GW, "GatewayClass", "", "tollgate")
        .unwrap_or_default();
    assert_eq!(
        condition(&class["status"]["conditions"], "Accepted")["status"],
        "True"
    );
    let features: Vec<&str> = class["status"]["supportedFeatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        features.contains(&"HTTPRoute") && features.contains(&"Gateway"),
        "{features:?}"
    );
    assert_eq!(c.status_writes_to("/gatewayclasses/other/"), 0);

    // Gateway: conditions, addresses, listeners.
    let gw = c.object("Gateway", NS, "gw");
    let gen = gw["metadata"]["generation"].clone();
    let status = &gw["status"];
    assert!(
        has(&status["conditions"], "Accepted", "True", &gen),
        "{status}"
    );
    assert!(
        has(&status["conditions"], "Programmed", "True", &gen),
        "{status}"
    );
    assert_eq!(
        status["addresses"],
        json!([{"type": "IPAddress", "value": PUBLISHED}])
    );
    let listener = &status["listeners"][0];
    assert_eq!(listener["name"], "http");
    assert_eq!(listener["attachedRoutes"], 2);
    assert!(listener["supportedKinds"]
        .as_array()
        .is_some_and(|ks| ks.iter().any(|k| k["kind"] == "HTTPRoute")));
    assert!(
        has(&listener["conditions"], "Accepted", "True", &gen),
        "{listener}"
    );
    assert_eq!(c.status_writes_to("/gateways/theirs/"), 0);

    // A route that stops naming our Gateway loses our entry (theirs stays).
    let mut edited = c.object("HTTPRoute", NS, "both");
    edited["spec"]["parentRefs"] = json!([{"name": "theirs"}]);
    c.api.apply(edited);
    until("our entry removed from both", CHANGE_TIMEOUT, || async {
        let parents = c.object("HTTPRoute", NS, "both")["status"]["parents"].clone();
        match parents.as_array() {
            Some(ps) if ps.len() == 1 && ps[0]["controllerName"] != CONTROLLER => Ok(()),
            _ => Err(parents.to_string()),
        }
    })
    .await;
    until("attachedRoutes 1", CHANGE_TIMEOUT, || async {
        let n = c.object("Gateway", NS, "gw")["status"]["listeners"][0]["attachedRoutes"].clone();
        if n == 1 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;
    expect_route(&tg, "both.example", "/", 404, None).await;
}

/// Issue 16's property for Gateway API objects: a restart over statuses
/// that are already right writes nothing; a spec change writes once, with
/// the new generation and the old transition time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_unchanged_objects_writes_no_gateway_status() {
    let c = Cluster::new();
    let echo = Echo::services(&["web"]).await;
    c.api.apply_many(world(&echo));
    let mut a = c
        .tollgate()
        .args(&["--publish-address", PUBLISHED])
        .start()
        .await;
    until_world_written(&c).await;
    // Let the watch report the writes back (nothing more to write).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let written = c.gateway_api_writes();
    let before = c.our_parent("HTTPRoute", "mine");
    a.proc_.signal("TERM");
    let exit = a.proc_.wait_exit(Duration::from_secs(20)).await;
    assert!(exit.is_some_and(|e| e.success()), "{exit:?}");

    let b = c
        .tollgate()
        .args(&["--publish-address", PUBLISHED])
        .start()
        .await;
    until_leader(&b).await;
    expect_route(&b, "mine.example", "/", 200, Some("web")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        c.gateway_api_writes(),
        written,
        "a status already right was written"
    );
    for kind in ["gatewayclass", "gateway", "httproute", "grpcroute"] {
        assert_eq!(
            metric(&b, "tollgate_status_writes_total", &[("kind", kind)]).await,
            0.0,
            "{kind}"
        );
    }

    // A spec change: one write, new observedGeneration, same transition time.
    let mut edited = c.object("HTTPRoute", NS, "mine");
    edited["spec"]["rules"][0]["matches"] =
        json!([{"path": {"type": "PathPrefix", "value": "/v2"}}]);
    c.api.apply(edited);
    let generation = c.object("HTTPRoute", NS, "mine")["metadata"]["generation"].clone();
    assert_ne!(generation, before["conditions"][0]["observedGeneration"]);
    let after = until("the new generation in status", CHANGE_TIMEOUT, || async {
        let p = c.our_parent("HTTPRoute", "mine");
        if has(&p["conditions"], "Accepted", "True", &generation) {
            Ok(p)
        } else {
            Err(p.to_string())
        }
    })
    .await;
    assert_eq!(
        condition(&after["conditions"], "Accepted")["lastTransitionTime"],
        condition(&before["conditions"], "Accepted")["lastTransitionTime"]
    );
    expect_route(&b, "mine.example", "/v2/x", 200, Some("web")).await;
    expect_route(&b, "mine.example", "/", 404, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        metric(&b, "tollgate_status_writes_total", &[("kind", "httproute")]).await,
        1.0
    );
}

const GATEWAY_PLURALS: [&str; 5] = [
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "referencegrants",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_gateway_api_crds_ingresses_are_served_and_routes_come_later() {
    let c = Cluster::new();
    for plural in GATEWAY_PLURALS {
        c.api.set_installed(plural, false);
    }
    let echo = Echo::services(&["web"]).await;
    c.api.apply_many(echo.backends(NS));
    c.api.apply_many(vec![
        ingress_class("tollgate", false),
        ingress(NS, "web", &simple_spec("web.example", "web")),
    ]);
    // `start` waits for /readyz 200.
    let tg = c.tollgate().start().await;
    expect_route(&tg, "web.example", "/", 200, Some("web")).await;
    let ready = tg.admin("/readyz").await.map(|r| r.status);
    assert_eq!(ready, Ok(200));
    for kind in [
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
        "ReferenceGrant",
    ] {
        assert_eq!(
            metric(&tg, "tollgate_kube_watch_synced", &[("kind", kind)]).await,
            1.0,
            "{kind}"
        );
    }

    // Installing the CRDs later brings the routes in.
    for plural in GATEWAY_PLURALS {
        c.api.set_installed(plural, true);
    }
    c.api.apply_many(vec![
        namespace(NS, &[]),
        gateway_class(),
        gateway(NS, "gw", HTTP_LISTENER),
        http_route(NS, "r", &route_spec("[{name: gw}]", "gw.example", "web")),
    ]);
    let r = tg
        .eventually_within("gw.example", "/", BACKOFF_TIMEOUT, |r| r.status == 200)
        .await;
    assert_eq!(r.status, 200, "{}\n{}", r.summary(), tg.proc_.logs());
    expect_route(&tg, "web.example", "/", 200, Some("web")).await;
}

/// ReferenceGrant `v1` not served: grants come from `v1beta1`, and a
/// cross-namespace backend is routed only through one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_grants_fall_back_to_v1beta1() {
    let c = Cluster::new();
    c.api.set_installed("referencegrants.v1", false);
    let echo = Echo::services(&["web"]).await;
    c.api.apply_many(echo.backends(NS));
    let route = |name: &str, host: &str| {
        http_route(
            "apps",
            name,
            &format!(
                "parentRefs: [{{name: gw, namespace: {NS}}}]\nhostnames: [{host}]\nrules: [{{backendRefs: [{{name: web, namespace: {NS}, port: 8080}}]}}]"
            ),
        )
    };
    c.api.apply_many(vec![
        namespace(NS, &[]),
        namespace("apps", &[]),
        gateway_class(),
        gateway(
            NS,
            "gw",
            "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]",
        ),
        route("granted", "granted.example"),
        common::gateway::service_grant(NS, "allow-apps", "apps", Some("web")),
    ]);
    let tg = c.tollgate().start().await;
    expect_route(&tg, "granted.example", "/", 200, Some("web")).await;
    // Without the grant the backend reference is refused (500).
    assert!(c.api.delete(
        "gateway.networking.k8s.io/v1beta1",
        "ReferenceGrant",
        NS,
        "allow-apps"
    ));
    expect_route(&tg, "granted.example", "/", 500, None).await;
    let resolved = until(
        "ResolvedRefs False RefNotPermitted",
        CHANGE_TIMEOUT,
        || async {
            let p = c
                .api
                .get(GW, "HTTPRoute", "apps", "granted")
                .map(|r| r["status"]["parents"][0]["conditions"].clone())
                .unwrap_or_default();
            let r = condition(&p, "ResolvedRefs");
            if r["reason"] == "RefNotPermitted" {
                Ok(r)
            } else {
                Err(p.to_string())
            }
        },
    )
    .await;
    assert_eq!(resolved["status"], "False");
}

/// HTTPRoute change → first routed request, 50 new routes 200 ms apart
/// (as the Ingress figure is taken), polled every millisecond. Prints
/// p50/p99; asserts only a loose bound (a debug build on a shared VM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_changes_reach_the_table_quickly() {
    const N: usize = 50;
    let c = Cluster::new();
    let echo = Echo::services(&["web"]).await;
    c.api.apply_many(echo.backends(NS));
    c.api.apply_many(vec![
        namespace(NS, &[]),
        gateway_class(),
        gateway(NS, "gw", HTTP_LISTENER),
        http_route(NS, "r0", &route_spec("[{name: gw}]", "warm.example", "web")),
    ]);
    let tg = c.tollgate().start().await;
    expect_route(&tg, "warm.example", "/", 200, Some("web")).await;
    let addr = tg.http_addr();
    let mut ms = Vec::with_capacity(N);
    for i in 0..N {
        let host = format!("t{i}.example");
        let route = http_route(
            NS,
            &format!("t{i}"),
            &route_spec("[{name: gw}]", &host, "web"),
        );
        let t0 = Instant::now();
        c.api.apply(route);
        loop {
            let r = get(addr, &host, "/").await;
            if r.status == 200 {
                break;
            }
            assert!(t0.elapsed() < CHANGE_TIMEOUT, "{host} never routed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "HTTPRoute change -> first routed request over {N} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.99),
        ms[ms.len() - 1]
    );
    assert!(pct(0.99) < 2000.0, "{ms:?}");
}

/// `--gateway-api=false` (the chart without `gatewayAPI.enabled`, whose
/// RBAC grants none of it): no Gateway API kind and no Namespace is ever
/// requested, and Ingresses are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_off_requests_none_of_it() {
    let c = Cluster::new();
    let echo = Echo::services(&["web"]).await;
    c.api.apply_many(world(&echo));
    c.api.apply_many(vec![
        ingress_class("tollgate", false),
        ingress(NS, "web", &simple_spec("web.example", "web")),
    ]);
    let tg = c.tollgate().arg("--gateway-api=false").start().await;
    expect_route(&tg, "web.example", "/", 200, Some("web")).await;
    expect_route(&tg, "mine.example", "/", 404, None).await;
    let requested: Vec<String> = c
        .api
        .requests()
        .into_iter()
        .map(|(_, p, _)| p)
        .filter(|p| {
            p.contains("gateway.networking.k8s.io")
                || p.starts_with("/api/v1/namespaces?")
                || p == "/api/v1/namespaces"
        })
        .collect();
    assert!(requested.is_empty(), "{requested:?}");
    assert_eq!(c.gateway_api_writes(), 0);
}

/// httproute-observed-generation-bump (HTTPRouteObservedGenerationBump):
/// after a spec change (the backendRef's name), every condition of our
/// parent entry carries the new generation, `Accepted` and `ResolvedRefs`
/// are `True`, and the change is routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_observed_generation_bump() {
    let c = Cluster::new();
    let echo = Echo::services(&["infra-backend-v1", "infra-backend-v2"]).await;
    let mut docs = echo.backends(NS);
    docs.extend([
        namespace(NS, &[]),
        gateway_class(),
        gateway(NS, "gw", HTTP_LISTENER),
        http_route(
            NS,
            "observed-generation-bump",
            &route_spec("[{name: gw}]", "bump.example", "infra-backend-v1"),
        ),
    ]);
    c.api.apply_many(docs);
    let tg = c.tollgate().start().await;
    expect_route(&tg, "bump.example", "/", 200, Some("infra-backend-v1")).await;
    let latest = |c: &Cluster| {
        let generation =
            c.object("HTTPRoute", NS, "observed-generation-bump")["metadata"]["generation"].clone();
        let parent = c.our_parent("HTTPRoute", "observed-generation-bump");
        let conditions = parent["conditions"].as_array().cloned().unwrap_or_default();
        let all_latest = !conditions.is_empty()
            && conditions
                .iter()
                .all(|c| c["observedGeneration"] == generation);
        let ok = all_latest
            && has(&parent["conditions"], "Accepted", "True", &generation)
            && has(&parent["conditions"], "ResolvedRefs", "True", &generation);
        (generation, ok, parent)
    };
    let original = until("the first status", CHANGE_TIMEOUT, || async {
        match latest(&c) {
            (generation, true, _) => Ok(generation),
            (_, false, parent) => Err(parent.to_string()),
        }
    })
    .await;
    let mut edited = c.object("HTTPRoute", NS, "observed-generation-bump");
    edited["spec"]["rules"][0]["backendRefs"][0]["name"] = json!("infra-backend-v2");
    c.api.apply(edited);
    let updated = until(
        "the bumped generation in status",
        CHANGE_TIMEOUT,
        || async {
            match latest(&c) {
                (generation, true, _) if generation != original => Ok(generation),
                (_, _, parent) => Err(parent.to_string()),
            }
        },
    )
    .await;
    assert_ne!(
        original, updated,
        "generation should change after an update"
    );
    expect_route(&tg, "bump.example", "/", 200, Some("infra-backend-v2")).await;
}

/// `status.parents` is an atomic list in the Gateway API CRDs, so a
/// route's status write is a read-modify-write conditional on the
/// resourceVersion it was built from (as the spec asks): another
/// controller's entry written between tollgate's read and its write is
/// never lost. The fake slips that entry in just before tollgate's write;
/// the write is refused (409) and made again from the newer version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_status_writes_never_lose_another_controllers_entry() {
    let c = Cluster::new();
    let echo = Echo::services(&["web"]).await;
    let mut docs = echo.backends(NS);
    docs.extend([
        namespace(NS, &[]),
        gateway_class(),
        gateway(NS, "gw", HTTP_LISTENER),
        http_route(
            NS,
            "raced",
            &route_spec("[{name: gw}]", "raced.example", "web"),
        ),
    ]);
    c.api.apply_many(docs);
    let _tg = c.tollgate().start().await;
    until("our entry", CHANGE_TIMEOUT, || async {
        let p = c.our_parent("HTTPRoute", "raced");
        if condition(&p["conditions"], "ResolvedRefs")["status"] == "True" {
            Ok(())
        } else {
            Err(p.to_string())
        }
    })
    .await;
    let theirs = json!({
        "parentRef": {"name": "theirs"},
        "controllerName": "example.com/other-controller",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
            "message": "theirs", "observedGeneration": 1,
            "lastTransitionTime": "2024-01-01T00:00:00Z"}],
    });
    let slipped = theirs.clone();
    c.api
        .before_next_status_write("httproutes", "raced", move |route| {
            if let Some(parents) = route["status"]["parents"].as_array_mut() {
                parents.push(slipped);
            }
        });
    let writes_before = c.status_writes_to("/httproutes/raced/");
    // Our status changes (the backend is gone): tollgate writes again.
    assert!(c.api.delete("v1", "Service", NS, "web"));
    let parents = until("both entries, ours updated", CHANGE_TIMEOUT, || async {
        let route = c.object("HTTPRoute", NS, "raced");
        let parents = route["status"]["parents"].clone();
        let ours = c.our_parent("HTTPRoute", "raced");
        let has_theirs = parents.as_array().is_some_and(|ps| ps.contains(&theirs));
        if has_theirs
            && condition(&ours["conditions"], "ResolvedRefs")["reason"] == "BackendNotFound"
        {
            Ok(parents)
        } else {
            Err(parents.to_string())
        }
    })
    .await;
    assert_eq!(parents.as_array().map(Vec::len), Some(2), "{parents}");
    assert!(
        c.status_writes_to("/httproutes/raced/") >= writes_before + 2,
        "the refused write, then the one from the newer version"
    );
}
