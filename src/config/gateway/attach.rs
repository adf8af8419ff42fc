//! Attaching routes to listeners: `parentRefs` (with `sectionName` and
//! `port`), the listeners' `allowedRoutes` (namespaces and kinds), and the
//! intersection of route and listener hostnames. Produces the hosts a route
//! is served on and each parent's `Accepted` condition.
//!
//! Invariants:
//! - Only parent references to our Gateways get a status; a reference to
//!   another controller's Gateway (or to another kind) is left alone.
//! - A parent accepts a route when at least one of the listeners it
//!   selects is programmed, allows the route's namespace and kind, and
//!   shares a hostname with it; otherwise the reason says which step
//!   failed first (`NoMatchingParent`, `NotAllowedByListeners`,
//!   `NoMatchingListenerHostname`).
//! - Each listener counts a route once in `attachedRoutes`, however many
//!   of its parent references select it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::hostname;
use super::listeners::{FromNamespaces, GatewayView, ListenerView};
use super::status::*;
use crate::config::snapshot::{ObjectKey, Snapshot};
use crate::gateway_api::route::ParentRef;
use crate::gateway_api::{is_gateway_group, GATEWAY_KIND};

/// Label every Namespace carries with its own name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A host a route is served on, and through which listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostBinding {
    /// `""` for every host, `*.suffix` for a wildcard.
    pub host: String,
    /// The port of an HTTP listener serving it (for redirects), if any.
    pub http_port: Option<u16>,
    /// The port of an HTTPS listener serving it, if any.
    pub https_port: Option<u16>,
}

/// What attaching one route decided.
#[derive(Debug, Default)]
pub(super) struct Attached {
    pub hosts: Vec<HostBinding>,
    /// One per parent reference to a Gateway of ours (`Accepted` only; the
    /// caller adds `ResolvedRefs`).
    pub parents: Vec<RouteParentStatus>,
    /// Parent references naming a Gateway that does not exist.
    pub missing: Vec<(usize, ObjectKey)>,
    /// (Gateway, listener) indexes the route attached to: each counts it
    /// once in `attachedRoutes` if the route is served.
    pub listeners: Vec<(usize, usize)>,
}

/// The route being attached.
pub(super) struct RouteRef<'a> {
    pub kind: &'static str,
    pub key: &'a ObjectKey,
    pub generation: Option<i64>,
    pub parent_refs: &'a [ParentRef],
    pub hostnames: &'a [String],
}

/// Attaches a route to the listeners of our Gateways its parent references
/// select.
pub(super) fn attach(
    snapshot: &Snapshot,
    controller: &str,
    gateways: &[GatewayView],
    route: &RouteRef<'_>,
) -> Attached {
    let mut out = Attached::default();
    let mut bindings: BTreeMap<String, HostBinding> = BTreeMap::new();
    // (gateway index, listener index) already counted for this route.
    let mut counted: Vec<(usize, usize)> = Vec::new();
    let labels = namespace_labels(snapshot, &route.key.namespace);
    for (i, parent) in route.parent_refs.iter().enumerate() {
        if !is_gateway_group(parent.group.as_deref())
            || parent.kind.as_deref().is_some_and(|k| k != GATEWAY_KIND)
        {
            continue;
        }
        let namespace = parent
            .namespace
            .clone()
            .unwrap_or_else(|| route.key.namespace.to_string());
        let gateway_key = ObjectKey::new(namespace, parent.name.clone());
        let Some(g) = gateways.iter().position(|g| g.key == gateway_key) else {
            if !snapshot.gateways.contains_key(&gateway_key) {
                out.missing.push((i, gateway_key));
            }
            continue;
        };
        let condition = |ok, reason, message: String| {
            Condition::new(ACCEPTED, ok, reason, message, route.generation)
        };
        let gateway = &gateways[g];
        let selected: Vec<usize> = gateway
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                parent.section_name.as_ref().is_none_or(|s| *s == l.name)
                    && parent.port.is_none_or(|p| i64::from(l.port) == p)
            })
            .map(|(j, _)| j)
            .collect();
        let accepted = if selected.is_empty() {
            condition(
                false,
                REASON_NO_MATCHING_PARENT,
                format!(
                    "Gateway {gateway_key} has no listener{}{}",
                    parent
                        .section_name
                        .as_ref()
                        .map_or(String::new(), |s| format!(" named `{s}`")),
                    parent
                        .port
                        .map_or(String::new(), |p| format!(" on port {p}")),
                ),
            )
        } else {
            let allowed: Vec<usize> = selected
                .iter()
                .copied()
                .filter(|&j| {
                    let l = &gateway.listeners[j];
                    l.usable
                        && l.kinds.contains(&route.kind)
                        && allows_namespace(
                            l,
                            &gateway.key.namespace,
                            &route.key.namespace,
                            &labels,
                        )
                })
                .collect();
            if allowed.is_empty() {
                condition(
                    false,
                    REASON_NOT_ALLOWED_BY_LISTENERS,
                    not_allowed_message(&gateway.listeners, &selected, route.kind),
                )
            } else {
                let mut attached_any = false;
                for j in allowed {
                    let l = &gateway.listeners[j];
                    let hosts = hostname::intersect(l.hostname.as_deref(), route.hostnames);
                    if hosts.is_empty() {
                        continue;
                    }
                    attached_any = true;
                    if !counted.contains(&(g, j)) {
                        counted.push((g, j));
                    }
                    for host in hosts {
                        let b = bindings.entry(host.clone()).or_insert(HostBinding {
                            host,
                            http_port: None,
                            https_port: None,
                        });
                        if l.https {
                            b.https_port.get_or_insert(l.port);
                        } else {
                            b.http_port.get_or_insert(l.port);
                        }
                    }
                }
                if attached_any {
                    condition(true, REASON_ACCEPTED, "accepted".into())
                } else {
                    condition(
                        false,
                        REASON_NO_MATCHING_LISTENER_HOSTNAME,
                        format!(
                            "no hostname of the route ({}) matches a listener's",
                            route.hostnames.join(", ")
                        ),
                    )
                }
            }
        };
        out.parents.push(RouteParentStatus {
            parent_ref: parent.clone(),
            controller_name: controller.to_string(),
            conditions: vec![accepted],
        });
    }
    out.listeners = counted;
    out.hosts = bindings.into_values().collect();
    out
}

fn not_allowed_message(listeners: &[ListenerView], selected: &[usize], kind: &str) -> String {
    let reasons: Vec<String> = selected
        .iter()
        .filter_map(|&j| listeners.get(j))
        .map(|l| {
            let why = if !l.usable {
                "is not programmed".to_string()
            } else if !l.kinds.contains(&kind) {
                format!("does not allow {kind}")
            } else {
                "does not allow routes from this namespace".to_string()
            };
            format!("listener `{}` {why}", l.name)
        })
        .collect();
    reasons.join("; ")
}

/// The labels of a Namespace (with its implicit name label), even when
/// the Namespace object is not known.
fn namespace_labels(snapshot: &Snapshot, namespace: &str) -> BTreeMap<String, String> {
    let mut labels = snapshot
        .namespaces
        .get(namespace)
        .and_then(|e| e.object.metadata.labels.clone())
        .unwrap_or_default();
    labels.insert(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string());
    labels
}

fn allows_namespace(
    listener: &ListenerView,
    gateway_namespace: &str,
    route_namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    match &listener.from {
        FromNamespaces::All => true,
        FromNamespaces::Same => gateway_namespace == route_namespace,
        FromNamespaces::Selector(selector) => selects(selector, labels),
    }
}

/// Whether a label selector selects a set of labels (an empty selector
/// selects everything; an unknown operator selects nothing).
pub(super) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}
