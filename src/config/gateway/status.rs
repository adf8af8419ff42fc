//! Gateway API status as data: the conditions kube mode writes on
//! GatewayClasses, Gateways (and their listeners) and routes' parents,
//! with the spec's types and reasons, each with the `observedGeneration`
//! of the object it describes. `tollgate check` prints them; a status
//! writer copies them.
//!
//! Invariants:
//! - Only objects that are ours get a status: GatewayClasses naming our
//!   controller, Gateways of those classes, and route parents that are such
//!   Gateways. Nothing here is ever written for another controller.
//! - Every condition carries a reason from the spec (the constants below)
//!   and a message a user can act on.
//! - Pure data: building a status formats no diagnostic and reads no clock
//!   (`lastTransitionTime` is the writer's business).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::snapshot::ObjectKey;
use crate::gateway_api::route::ParentRef;

// Condition types.
pub const ACCEPTED: &str = "Accepted";
pub const PROGRAMMED: &str = "Programmed";
pub const RESOLVED_REFS: &str = "ResolvedRefs";
pub const CONFLICTED: &str = "Conflicted";

// Reasons.
pub const REASON_ACCEPTED: &str = "Accepted";
pub const REASON_PROGRAMMED: &str = "Programmed";
pub const REASON_RESOLVED_REFS: &str = "ResolvedRefs";
pub const REASON_NO_CONFLICTS: &str = "NoConflicts";
pub const REASON_HOSTNAME_CONFLICT: &str = "HostnameConflict";
pub const REASON_PROTOCOL_CONFLICT: &str = "ProtocolConflict";
pub const REASON_INVALID: &str = "Invalid";
pub const REASON_LISTENERS_NOT_VALID: &str = "ListenersNotValid";
pub const REASON_UNSUPPORTED_ADDRESS: &str = "UnsupportedAddress";
pub const REASON_UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
pub const REASON_UNSUPPORTED_VALUE: &str = "UnsupportedValue";
pub const REASON_INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
pub const REASON_INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
pub const REASON_REF_NOT_PERMITTED: &str = "RefNotPermitted";
pub const REASON_NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
pub const REASON_NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
pub const REASON_NO_MATCHING_PARENT: &str = "NoMatchingParent";
pub const REASON_BACKEND_NOT_FOUND: &str = "BackendNotFound";
pub const REASON_INVALID_KIND: &str = "InvalidKind";

/// One condition, as `status.conditions[]` holds it (without the time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `"True"` or `"False"`.
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
    #[serde(rename = "observedGeneration")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn new(
        type_: &'static str,
        ok: bool,
        reason: &'static str,
        message: impl Into<String>,
        observed_generation: Option<i64>,
    ) -> Self {
        Self {
            type_,
            status: if ok { "True" } else { "False" },
            reason,
            message: message.into(),
            observed_generation,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GatewayClassStatus {
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GatewayStatus {
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
}

/// A route kind a listener supports (`status.listeners[].supportedKinds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteKindRef {
    pub group: &'static str,
    pub kind: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListenerStatus {
    pub name: String,
    #[serde(rename = "attachedRoutes")]
    pub attached_routes: u32,
    #[serde(rename = "supportedKinds")]
    pub supported_kinds: Vec<RouteKindRef>,
    pub conditions: Vec<Condition>,
}

/// One entry of a route's `status.parents[]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteParentStatus {
    #[serde(rename = "parentRef")]
    pub parent_ref: ParentRef,
    #[serde(rename = "controllerName")]
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteStatus {
    pub parents: Vec<RouteParentStatus>,
}

/// Every Gateway API status one compile decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayApiStatus {
    pub classes: BTreeMap<String, GatewayClassStatus>,
    pub gateways: BTreeMap<ObjectKey, GatewayStatus>,
    pub http_routes: BTreeMap<ObjectKey, RouteStatus>,
    pub grpc_routes: BTreeMap<ObjectKey, RouteStatus>,
}

/// One condition with the object (and listener or parent) it is on: the
/// flat form `tollgate check` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionRow {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// `""` for the object itself, `listener NAME`, or `parent
    /// NAMESPACE/GATEWAY[/SECTION][:PORT]`.
    pub scope: String,
    #[serde(flatten)]
    pub condition: Condition,
}

/// How a parent reference is shown (`ns/gateway/section:port`).
pub fn parent_label(parent: &ParentRef, route_namespace: &str) -> String {
    let namespace = parent.namespace.as_deref().unwrap_or(route_namespace);
    let mut out = format!("{namespace}/{}", parent.name);
    if let Some(section) = &parent.section_name {
        out.push('/');
        out.push_str(section);
    }
    if let Some(port) = parent.port {
        out.push_str(&format!(":{port}"));
    }
    out
}

impl GatewayApiStatus {
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
            && self.gateways.is_empty()
            && self.http_routes.is_empty()
            && self.grpc_routes.is_empty()
    }

    /// Every condition, flat, in a stable order (classes, Gateways and
    /// their listeners, HTTPRoutes, GRPCRoutes).
    pub fn rows(&self) -> Vec<ConditionRow> {
        let mut rows = Vec::new();
        let mut push = |kind, key: &ObjectKey, scope: String, c: &Condition| {
            rows.push(ConditionRow {
                kind,
                namespace: key.namespace.to_string(),
                name: key.name.to_string(),
                scope,
                condition: c.clone(),
            })
        };
        for (name, status) in &self.classes {
            let key = ObjectKey::new("", name.clone());
            for c in &status.conditions {
                push("GatewayClass", &key, String::new(), c);
            }
        }
        for (key, status) in &self.gateways {
            for c in &status.conditions {
                push("Gateway", key, String::new(), c);
            }
            for listener in &status.listeners {
                for c in &listener.conditions {
                    push("Gateway", key, format!("listener {}", listener.name), c);
                }
            }
        }
        for (kind, routes) in [
            ("HTTPRoute", &self.http_routes),
            ("GRPCRoute", &self.grpc_routes),
        ] {
            for (key, status) in routes {
                for parent in &status.parents {
                    let scope = format!(
                        "parent {}",
                        parent_label(&parent.parent_ref, &key.namespace)
                    );
                    for c in &parent.conditions {
                        push(kind, key, scope.clone(), c);
                    }
                }
            }
        }
        rows
    }
}
