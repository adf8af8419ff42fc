//! TrafficPolicies targeting Gateway API objects, standalone mode, through
//! the real binary to `tollgate echo`: a policy on an HTTPRoute (rate limit,
//! IP allow list, headers under the route's own filters), a policy on a
//! Gateway reaching every route attached to it (and an HTTPRoute's own
//! policy winning section by section), and a policy whose HTTPRoute does
//! not exist reported by `tollgate check`.

mod common;

use common::gateway::*;
use common::*;
use serde_json::{json, Value};

/// A TrafficPolicy in the infra namespace targeting Gateway API objects
/// (`(kind, name)`), with `extra` merged into its spec.
fn gateway_policy(name: &str, targets: &[(&str, &str)], extra: Value) -> Value {
    let refs: Vec<Value> = targets
        .iter()
        .map(|(kind, name)| json!({"group": "gateway.networking.k8s.io", "kind": kind, "name": name}))
        .collect();
    let mut spec = json!({"targetRefs": refs});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": spec,
    })
}

/// An HTTPRoute on Gateway `same-namespace` for `host` to infra-backend-v1,
/// with `filters` (YAML flow) on its one rule.
fn route(name: &str, host: &str, filters: &str) -> Value {
    http_route(
        INFRA,
        name,
        &format!(
            "parentRefs: [{{name: same-namespace}}]\nhostnames: [{host}]\nrules:\n- filters: {filters}\n  backendRefs: [{{name: infra-backend-v1, port: 8080}}]"
        ),
    )
}

async fn get_from(t: &Tollgate, src: &str, host: &str) -> Resp {
    send_from(
        src.parse().unwrap(),
        t.http_addr(),
        req("GET", host, "/")
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("GET http://{host}/ from {src}: {e}"))
}

#[tokio::test]
async fn a_policy_on_an_httproute_limits_and_allows_its_requests_only() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let t = Tollgate::with_docs(&infra(
        &echo,
        vec![
            route("limited", "limited.example", "[]"),
            route(
                "own-headers",
                "own.example",
                "[{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Who, value: route}]}}]",
            ),
            route("free", "free.example", "[]"),
            gateway_policy(
                "limits",
                &[("HTTPRoute", "limited"), ("HTTPRoute", "own-headers")],
                json!({
                    "ipAllow": ["127.0.0.1/32", "127.0.0.3/32"],
                    "rateLimit": {"requestsPerSecond": 1, "burst": 2},
                    "headers": {"response": {"set": [{"name": "X-Who", "value": "policy"}]}},
                }),
            ),
        ],
    ))
    .await;
    let mut f = Failures::default();
    // The allow list: .2 is refused, .1 gets in.
    let r = get_from(&t, "127.0.0.2", "limited.example").await;
    f.check(r.status == 403, || format!("not allowed: {}", r.summary()));
    // The rate limit: a burst of 2, then 429 with Retry-After.
    for i in 0..2 {
        let r = get_from(&t, "127.0.0.1", "limited.example").await;
        f.check(r.status == 200, || format!("request {i}: {}", r.summary()));
        f.check(r.header("x-who").as_deref() == Some("policy"), || {
            format!("the policy's response header: {}", r.summary())
        });
    }
    let r = get_from(&t, "127.0.0.1", "limited.example").await;
    f.check(r.status == 429 && r.header("retry-after").is_some(), || {
        format!("over the limit: {}", r.summary())
    });
    // The route's own ResponseHeaderModifier wins over the policy's
    // header section; the policy's other sections still apply.
    let r = get_from(&t, "127.0.0.3", "own.example").await;
    f.check(
        r.status == 200 && r.header("x-who").as_deref() == Some("route"),
        || format!("route filter wins: {}", r.summary()),
    );
    let r = get_from(&t, "127.0.0.2", "own.example").await;
    f.check(r.status == 403, || {
        format!(
            "the policy's allow list on the filtered route: {}",
            r.summary()
        )
    });
    // Another route of the same Gateway is not touched.
    for i in 0..4 {
        let r = get_from(&t, "127.0.0.2", "free.example").await;
        f.check(r.status == 200 && r.header("x-who").is_none(), || {
            format!("free {i}: {}", r.summary())
        });
    }
    f.assert_none();
}

#[tokio::test]
async fn a_policy_on_a_gateway_reaches_all_its_routes_and_a_route_policy_wins() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let t = Tollgate::with_docs(&infra(
        &echo,
        vec![
            route("one", "one.example", "[]"),
            route("two", "two.example", "[]"),
            route("opened", "opened.example", "[]"),
            gateway_policy(
                "gateway-wide",
                &[("Gateway", "same-namespace")],
                json!({
                    "ipAllow": ["127.0.0.1/32"],
                    "headers": {"response": {"set": [{"name": "X-Gateway-Policy", "value": "yes"}]}},
                }),
            ),
            // The route's own policy replaces the Gateway's allow list and
            // keeps its header section.
            gateway_policy(
                "opened",
                &[("HTTPRoute", "opened")],
                json!({"ipAllow": ["127.0.0.0/24"]}),
            ),
        ],
    ))
    .await;
    let mut f = Failures::default();
    for host in ["one.example", "two.example"] {
        let r = get_from(&t, "127.0.0.2", host).await;
        f.check(r.status == 403, || {
            format!("{host} from .2: {}", r.summary())
        });
        let r = get_from(&t, "127.0.0.1", host).await;
        f.check(
            r.status == 200 && r.header("x-gateway-policy").as_deref() == Some("yes"),
            || format!("{host} from .1: {}", r.summary()),
        );
    }
    let r = get_from(&t, "127.0.0.2", "opened.example").await;
    f.check(
        r.status == 200 && r.header("x-gateway-policy").as_deref() == Some("yes"),
        || format!("the route's policy opens .2: {}", r.summary()),
    );
    f.assert_none();
}

#[tokio::test]
async fn check_reports_a_policy_whose_httproute_is_missing() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let dir = TempDir::new("gateway-policy-check");
    let docs = infra(
        &echo,
        vec![
            route("present", "present.example", "[]"),
            gateway_policy(
                "lost",
                &[("HTTPRoute", "gone")],
                json!({"ipAllow": ["10.0.0.0/8"]}),
            ),
            gateway_policy(
                "partly",
                &[("HTTPRoute", "present"), ("HTTPRoute", "also-gone")],
                json!({"rateLimit": {"requestsPerSecond": 5}}),
            ),
            gateway_policy(
                "gateway",
                &[("Gateway", "same-namespace")],
                json!({"maxRequestBodyBytes": 1024}),
            ),
        ],
    );
    dir.write("m.yaml", &yaml_docs(&docs));
    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 0, "a policy that applies nowhere warns: {all}");
    assert!(
        all.contains(&format!(
            "warning: TrafficPolicy {INFRA}/lost: spec.targetRefs: TargetNotFound"
        )) && all.contains("HTTPRoute gone does not exist"),
        "{all}"
    );
    for accepted in ["partly", "gateway"] {
        assert!(
            !all.contains(&format!("TrafficPolicy {INFRA}/{accepted}:")),
            "{accepted} applies: {all}"
        );
    }
    // The routes show what took effect.
    assert!(
        out.contains("rate 5/s") && out.contains("max-body 1024"),
        "{out}"
    );
}

/// `loadBalancer.algorithm` of a policy on an HTTPRoute picks the
/// algorithm of the route's backends: with `p2c-ewma`, a slow endpoint
/// beside a fast one gets few requests once its latency is seen; the same
/// Service behind a route without the policy stays round robin (half).
#[tokio::test]
async fn a_policy_load_balancer_applies_to_an_httproute() {
    let echo = Echo::services(&["infra-backend-v1"]).await;
    let slow = serve(|_req| async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        http::Response::new(full(r#"{"service": "slow"}"#))
    })
    .await;
    let pair = |name: &str, host: &str| {
        http_route(
            INFRA,
            name,
            &format!(
                "parentRefs: [{{name: same-namespace}}]\nhostnames: [{host}]\nrules: [{{backendRefs: [{{name: pair, port: 8080}}]}}]"
            ),
        )
    };
    let mut extra = backend(INFRA, "pair", &[echo.port("infra-backend-v1"), slow.port]);
    extra.extend([
        pair("balanced", "balanced.example"),
        pair("plain", "plain.example"),
        gateway_policy(
            "ewma",
            &[("HTTPRoute", "balanced")],
            json!({"loadBalancer": {"algorithm": "p2c-ewma"}}),
        ),
    ]);
    let t = Tollgate::with_docs(&infra(&echo, extra)).await;
    let slow_share = |host: &'static str| {
        let t = &t;
        async move {
            let mut slow = 0;
            for _ in 0..20 {
                let r = t.get(host, "/").await;
                assert_eq!(r.status, 200, "{host}: {}", r.summary());
                if r.service().as_deref() == Some("slow") {
                    slow += 1;
                }
            }
            slow
        }
    };
    let ewma = slow_share("balanced.example").await;
    let round_robin = slow_share("plain.example").await;
    assert!(ewma <= 5, "p2c-ewma avoids the slow endpoint: {ewma} of 20");
    assert!(
        (9..=11).contains(&round_robin),
        "round robin without the policy: {round_robin} of 20"
    );
}
