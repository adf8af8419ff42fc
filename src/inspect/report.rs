//! The report of a routing table: its routes (host, path, service,
//! endpoints, source, policy), the diagnostics, and the Gateway API
//! conditions. `tollgate check --output json` prints it, and so does the
//! admin endpoint `/debug/routes`, so the two never differ in shape.
//!
//! Invariant: pure formatting of compiled data; no IO.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::gateway::status::{ConditionRow, GatewayApiStatus};
use crate::config::Diagnostic;
use crate::table::guard::{Guard, ValueMatch};
use crate::table::RoutingTable;

#[derive(Serialize)]
pub struct RouteRow {
    pub host: String,
    pub path: String,
    #[serde(rename = "pathType")]
    pub path_type: String,
    pub service: String,
    pub endpoints: Vec<String>,
    /// `namespace/name` of the source object (kept for compatibility).
    pub ingress: String,
    /// `Ingress ns/name`, `HTTPRoute ns/name`, or the flag that made it.
    pub source: String,
    /// Extra conditions of a Gateway route (method, headers, query).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// What the annotations and TrafficPolicy ask of this route.
    pub policy: Vec<String>,
}

/// What `check` reports: routes, diagnostics, Gateway API conditions.
#[derive(Serialize)]
pub struct Report {
    pub routes: Vec<RouteRow>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every Gateway API condition kube mode would write (GatewayClass,
    /// Gateway and listeners, route parents).
    pub conditions: Vec<ConditionRow>,
    /// Per Gateway listener: `attachedRoutes` and `supportedKinds`, as
    /// kube mode writes them beside the conditions.
    pub listeners: Vec<ListenerRow>,
    /// `nginx.ingress.kubernetes.io/` annotations of the Ingresses read,
    /// by state, then name, with the number of Ingresses using each
    /// (`check` fills it in; empty: not shown).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, BTreeMap<String, usize>>,
    /// Objects assumed present (`check --assume-external-refs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assumed: Vec<String>,
    /// Something was rejected (the exit code of `check`).
    pub rejected: bool,
}

#[derive(Serialize)]
pub struct ListenerRow {
    pub namespace: String,
    pub gateway: String,
    pub name: String,
    #[serde(rename = "attachedRoutes")]
    pub attached_routes: u32,
    #[serde(rename = "supportedKinds")]
    pub supported_kinds: Vec<&'static str>,
}

impl Report {
    /// The report of one table: its routes (with the endpoints
    /// `endpoints(upstream index)` gives), the diagnostics, and the Gateway
    /// API conditions. `tollgate check --output json` and the admin
    /// endpoint `/debug/routes` print this same value.
    pub fn new(
        table: &RoutingTable,
        endpoints: impl Fn(usize) -> Vec<String>,
        diagnostics: Vec<Diagnostic>,
        gateway_status: &GatewayApiStatus,
    ) -> Report {
        let mut routes: Vec<RouteRow> = table
            .routes()
            .iter()
            .map(|r| RouteRow {
                host: if r.host.is_empty() {
                    "*".into()
                } else {
                    r.host.to_string()
                },
                path: if r.path_type.is_none() {
                    "(default backend)".into()
                } else {
                    r.path.to_string()
                },
                path_type: r
                    .path_type
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_else(|| "-".into()),
                service: r.service.to_string(),
                endpoints: endpoints(r.upstream as usize),
                ingress: if r.ingress.is_empty() {
                    "--default-backend-service".into()
                } else {
                    r.ingress.to_string()
                },
                source: if r.ingress.is_empty() {
                    "--default-backend-service".into()
                } else {
                    format!("{} {}", r.kind.as_str(), r.ingress)
                },
                matches: r.guard.as_deref().map(describe_guard),
                policy: {
                    let mut p = r.policy.summary();
                    if let Some(c) = &r.canary {
                        p.push(format!(
                            "canary {} ({} of {})",
                            c.service, c.weight, c.weight_total
                        ));
                    }
                    p
                },
            })
            .collect();
        // Gateway routes keep their precedence order within a path (a stable
        // sort).
        routes.sort_by(|a, b| {
            (&a.host, &a.path, &a.path_type).cmp(&(&b.host, &b.path, &b.path_type))
        });
        let rejected = diagnostics.iter().any(Diagnostic::is_rejection);
        Report {
            routes,
            diagnostics,
            conditions: gateway_status.rows(),
            listeners: gateway_status
                .gateways
                .iter()
                .flat_map(|(key, g)| {
                    g.listeners.iter().map(|l| ListenerRow {
                        namespace: key.namespace.to_string(),
                        gateway: key.name.to_string(),
                        name: l.name.clone(),
                        attached_routes: l.attached_routes,
                        supported_kinds: l.supported_kinds.iter().map(|k| k.kind).collect(),
                    })
                })
                .collect(),
            annotations: BTreeMap::new(),
            assumed: Vec::new(),
            rejected,
        }
    }

    /// The report as `check --output json` prints it (pretty JSON).
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

/// A guard as `check` shows it: `GET header:x-v=2 query:q~^a.*$`.
fn describe_guard(g: &Guard) -> String {
    let value = |v: &ValueMatch| match v {
        ValueMatch::Exact(e) => format!("={e}"),
        ValueMatch::Regex(r) => format!("~{}", r.as_str()),
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = &g.method {
        parts.push(m.to_string());
    }
    for h in g.headers.iter() {
        parts.push(format!("header:{}{}", h.name, value(&h.value)));
    }
    for q in g.query.iter() {
        parts.push(format!("query:{}{}", q.name, value(&q.value)));
    }
    parts.join(" ")
}
