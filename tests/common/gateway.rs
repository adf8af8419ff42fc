//! Gateway API objects for the end-to-end tests: our GatewayClass,
//! Gateways, HTTPRoutes, ReferenceGrants and Namespaces, built from YAML
//! text as the upstream conformance manifests write them.

use serde_json::{json, Value};

use super::{yaml, Echo};

/// The namespace the upstream conformance suite puts its infrastructure in.
pub const INFRA: &str = "gateway-conformance-infra";
pub const APP_BACKEND: &str = "gateway-conformance-app-backend";
pub const WEB_BACKEND: &str = "gateway-conformance-web-backend";

/// GatewayClass `tollgate` with our controller name.
pub fn gateway_class() -> Value {
    yaml(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tollgate}
spec: {controllerName: tollgate.dev/gateway-controller}",
    )
}

/// A Gateway of class `tollgate` with `listeners` (YAML flow or block text).
pub fn gateway(ns: &str, name: &str, listeners: &str) -> Value {
    let mut v = yaml(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec:
  gatewayClassName: tollgate
  listeners: {listeners}"
    ));
    v["metadata"]["namespace"] = json!(ns);
    v
}

/// An HTTPRoute with `spec` as YAML text.
pub fn http_route(ns: &str, name: &str, spec: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": yaml(spec),
    })
}

/// A Namespace with labels.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    })
}

/// A ReferenceGrant in `ns` letting HTTPRoutes of `from_ns` refer to the
/// Service `to_name` (every Service when `None`).
pub fn service_grant(ns: &str, name: &str, from_ns: &str, to_name: Option<&str>) -> Value {
    let mut to = json!({"group": "", "kind": "Service"});
    if let Some(n) = to_name {
        to["name"] = json!(n);
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": from_ns}],
            "to": [to],
        },
    })
}

/// Our class, Gateway `same-namespace` in [`INFRA`] (one HTTP listener on
/// port 80), the echo backends' Services there, and `extra`.
pub fn infra(echo: &Echo, extra: Vec<Value>) -> Vec<Value> {
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "same-namespace",
            "[{name: http, port: 80, protocol: HTTP}]",
        ),
    ];
    docs.extend(echo.backends(INFRA));
    docs.extend(extra);
    docs
}
