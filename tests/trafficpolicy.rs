//! TrafficPolicy and Opaque Secrets in standalone mode, through the real
//! binary: `tollgate check` reports what a cluster's API server (the CRD
//! schema) would refuse, naming the file, the policy and the field, and a
//! running `tollgate run --manifests` keeps serving around a bad policy.

mod common;

use common::*;
use serde_json::{json, Value};

const NS: &str = "shop";

fn policy(name: &str, targets: &[&str], extra: Value) -> Value {
    let refs: Vec<Value> = targets
        .iter()
        .map(|t| json!({"group": "networking.k8s.io", "kind": "Ingress", "name": t}))
        .collect();
    let mut spec = json!({"targetRefs": refs});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_invalid_policy_field_and_exits_1() {
    let echo = Echo::services(&["web"]).await;
    let dir = TempDir::new("check-policy");
    let mut docs = echo.backends(NS);
    docs.push(ingress(NS, "web", &simple_spec("web.example", "web")));
    docs.push(policy(
        "limits",
        &["web"],
        json!({"rateLimit": {"requestsPerSecond": 0}, "ipAllow": ["10.0.0.0/8", "10.0.0.300"]}),
    ));
    docs.push(policy(
        "fine",
        &["web"],
        json!({"timeouts": {"connect": "2s"}}),
    ));
    dir.write("app.yaml", &yaml_docs(&docs));

    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 1, "an invalid policy is a rejection\n{all}");
    for needed in [
        "TrafficPolicy shop/limits: spec.rateLimit.requestsPerSecond: 0 is not in 1..",
        "TrafficPolicy shop/limits: spec.ipAllow[1]: `10.0.0.300` is not an IP address or CIDR",
        "app.yaml:",
    ] {
        assert!(all.contains(needed), "missing `{needed}` in:\n{all}");
    }
    // The valid policy is not reported: it is the one that applies.
    assert!(!all.contains("shop/fine"), "{all}");
    // The route is still there.
    assert!(all.contains("web.example"), "{all}");

    // JSON output carries the same diagnostics, as structured fields.
    let (_, out, _) = check(dir.path(), &["--output", "json"]).await;
    let report: Value = serde_json::from_str(&out).expect("check JSON");
    let fields: Vec<&str> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["kind"] == "TrafficPolicy" && d["name"] == "limits")
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["spec.rateLimit.requestsPerSecond", "spec.ipAllow[1]"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_unknown_policy_fields_and_idle_policies() {
    let echo = Echo::services(&["web"]).await;
    let dir = TempDir::new("check-policy-fields");
    let mut docs = echo.backends(NS);
    docs.push(ingress(NS, "web", &simple_spec("web.example", "web")));
    docs.push(policy("lost", &["gone"], json!({})));
    dir.write("app.yaml", &yaml_docs(&docs));
    // A typo in another file: that file is refused as a whole, as
    // `kubectl apply` would refuse it.
    dir.write(
        "typo.yaml",
        &yaml_docs(&[policy(
            "typo",
            &["web"],
            json!({"rateLimit": {"requestPerSecond": 5}}),
        )]),
    );

    let (code, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("TrafficPolicy typo: field `spec.rateLimit.requestPerSecond`: unknown field"),
        "{all}"
    );
    assert!(
        all.contains("warning: TrafficPolicy shop/lost: spec.targetRefs: TargetNotFound"),
        "{all}"
    );
}

/// An Opaque Secret is read (for basic auth) but never serves as a
/// certificate: naming it in `spec.tls` says so, instead of "not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_secret_is_read_but_never_used_as_a_certificate() {
    let echo = Echo::services(&["web"]).await;
    let dir = TempDir::new("opaque");
    let mut docs = echo.backends(NS);
    let mut site = ingress(NS, "site", &simple_spec("secure.example", "web"));
    site["spec"]["tls"] = json!([{"hosts": ["secure.example"], "secretName": "htpasswd"}]);
    docs.push(site);
    docs.push(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "htpasswd", "namespace": NS},
        "type": "Opaque",
        "stringData": {"auth": "user:$apr1$x$y"},
    }));
    dir.write("site.yaml", &yaml_docs(&docs));
    let (_, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}\n{err}");
    assert!(
        all.contains(
            "Secret shop/htpasswd: type: the Secret is of type `Opaque`, not kubernetes.io/tls"
        ),
        "{all}"
    );
    assert!(!all.contains("not found"), "{all}");
}
