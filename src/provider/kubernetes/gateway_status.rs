//! The Gateway API status writers' rules: GatewayClass, Gateway, HTTPRoute
//! and GRPCRoute statuses kept equal to what the last compile decided
//! ([`crate::config::gateway::status::GatewayApiStatus`], a field of the
//! [`View`]). The loop around them (view gate, leader, retries, counting)
//! is [`super::writer`]; these are four [`Kind`]s.
//!
//! What is written (all to the `/status` subresource, JSON merge patch;
//! route patches conditional on the resourceVersion they were built from):
//! - GatewayClass (ours only): `conditions` (`Accepted`) and
//!   `supportedFeatures` ([`SUPPORTED_FEATURES`]).
//! - Gateway (of our classes): `conditions` (`Accepted`, `Programmed`),
//!   `listeners[]` (name, supportedKinds, attachedRoutes, conditions) and
//!   `addresses` (from `--publish-address` / `--publish-service`, the same
//!   addresses Ingress status gets; left alone while unknown).
//! - HTTPRoute / GRPCRoute: our entries of `parents[]` (controllerName =
//!   `--gateway-controller-name`), one per parentRef naming one of our
//!   Gateways, with `Accepted` and `ResolvedRefs`.
//!
//! Invariants:
//! - Decides only from a complete view (see [`super::view`]).
//! - Writes only a difference: the status an object should have is built
//!   from the one it has (times kept), and compared with it; equal means no
//!   write, on start, restart, leader change or re-list.
//! - `lastTransitionTime` is kept when a condition of that type already
//!   had the same status (on the same listener or parent); otherwise now.
//! - Never touches another controller's `parents[]` entries (kept as they
//!   are, in their order); never writes a class or Gateway that is not ours.
//!   `parents[]` is an atomic list (`listType=atomic` in the Gateway API
//!   CRDs), so neither a merge patch nor server-side apply can write only
//!   our entries: as the spec asks, a route's patch is a read-modify-write
//!   conditional on `metadata.resourceVersion`, the version the watch
//!   reported and the patch was built from. If another controller wrote in
//!   between, the API server answers 409 and nothing of theirs is lost; the
//!   writer retries from the newer version the watch then reports.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use serde_json::{json, Map, Value};

use super::gateway_watch::{GatewayClassV1, GatewayV1, GrpcRouteV1, HttpRouteV1, Watched};
use super::status::IngressStatus;
use super::view::View;
use super::watch::{LbStatus, Reported};
use super::writer::{self, Kind, Write};
use crate::config::gateway::status::{Condition, GatewayStatus, RouteParentStatus};
use crate::config::ObjectKey;
use crate::gateway_api::route::ParentRef;

/// What the watch reports about a Gateway API object's status.
pub type Observed = writer::Observed<Reported>;

/// The features a GatewayClass of ours reports in
/// `status.supportedFeatures` (sorted, as the spec asks): the core kinds
/// and the Extended features docs/gateway-api-conformance.md lists as
/// supported.
pub const SUPPORTED_FEATURES: &[&str] = &[
    "GRPCRoute",
    "Gateway",
    "GatewayPort8080",
    "HTTPRoute",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
];

fn now() -> Value {
    serde_json::to_value(Time(Timestamp::now())).unwrap_or(Value::Null)
}

/// `existing[key]` as an array (empty when absent or not an array).
fn array<'a>(existing: &'a Value, key: &str) -> &'a [Value] {
    existing
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The conditions as they should be written: `desired`, each with the
/// `lastTransitionTime` of the condition of its type in `existing` when
/// that one had the same status, else `now`.
pub fn conditions(desired: &[Condition], existing: &[Value], now: &Value) -> Value {
    let list = desired
        .iter()
        .map(|c| {
            let time = existing
                .iter()
                .find(|e| e["type"] == c.type_ && e["status"] == c.status)
                .and_then(|e| e.get("lastTransitionTime"))
                .unwrap_or(now);
            let mut out = Map::new();
            out.insert("type".into(), c.type_.into());
            out.insert("status".into(), c.status.into());
            out.insert("reason".into(), c.reason.into());
            out.insert("message".into(), c.message.clone().into());
            if let Some(g) = c.observed_generation {
                out.insert("observedGeneration".into(), g.into());
            }
            out.insert("lastTransitionTime".into(), time.clone());
            Value::Object(out)
        })
        .collect();
    Value::Array(list)
}

/// A GatewayClass's status as it should be, from the one it has.
pub fn class_status(desired: &[Condition], existing: &Value, now: &Value) -> Value {
    json!({
        "conditions": conditions(desired, array(existing, "conditions"), now),
        "supportedFeatures": SUPPORTED_FEATURES
            .iter()
            .map(|f| json!({"name": f}))
            .collect::<Vec<_>>(),
    })
}

/// `--publish-*` addresses as Gateway `status.addresses`.
pub fn gateway_addresses(addresses: &LbStatus) -> Value {
    addresses
        .iter()
        .filter_map(|a| match (&a.ip, &a.hostname) {
            (Some(ip), _) => Some(json!({"type": "IPAddress", "value": ip})),
            (None, Some(host)) => Some(json!({"type": "Hostname", "value": host})),
            (None, None) => None,
        })
        .collect()
}

/// A Gateway's status as it should be, from the one it has (`addresses`
/// only when known).
pub fn gateway_status(
    desired: &GatewayStatus,
    addresses: Option<&LbStatus>,
    existing: &Value,
    now: &Value,
) -> Value {
    let listeners: Vec<Value> = desired
        .listeners
        .iter()
        .map(|l| {
            let had = array(existing, "listeners")
                .iter()
                .find(|e| e["name"] == l.name.as_str())
                .map_or(&[][..], |e| array(e, "conditions"));
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds,
                "attachedRoutes": l.attached_routes,
                "conditions": conditions(&l.conditions, had, now),
            })
        })
        .collect();
    let mut out = json!({
        "conditions": conditions(&desired.conditions, array(existing, "conditions"), now),
        "listeners": listeners,
    });
    if let (Some(a), Some(map)) = (addresses, out.as_object_mut()) {
        map.insert("addresses".into(), gateway_addresses(a));
    }
    out
}

/// Whether every field of `built` is already what `existing` says.
fn up_to_date(built: &Value, existing: &Value) -> bool {
    built
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| existing.get(k) == Some(v)))
}

/// Whether a `parents[]` entry is ours.
fn ours(entry: &Value, controller: &str) -> bool {
    entry["controllerName"] == controller
}

fn parent_ref_of(entry: &Value) -> Option<ParentRef> {
    serde_json::from_value(entry.get("parentRef")?.clone()).ok()
}

/// A route's `parents[]` as it should be: other controllers' entries as
/// they are, then ours (`desired`, times kept from our entry for the same
/// parentRef). `None` when our entries are already right.
pub fn route_parents(
    desired: &[RouteParentStatus],
    controller: &str,
    existing: &Value,
    now: &Value,
) -> Option<Value> {
    let current = array(existing, "parents");
    let (mine, others): (Vec<&Value>, Vec<&Value>) =
        current.iter().partition(|e| ours(e, controller));
    let built: Vec<Value> = desired
        .iter()
        .map(|p| {
            let had = mine
                .iter()
                .find(|e| parent_ref_of(e).as_ref() == Some(&p.parent_ref))
                .map_or(&[][..], |e| array(e, "conditions"));
            json!({
                "parentRef": p.parent_ref,
                "controllerName": p.controller_name,
                "conditions": conditions(&p.conditions, had, now),
            })
        })
        .collect();
    if mine.len() == built.len() && mine.iter().zip(&built).all(|(a, b)| *a == b) {
        return None;
    }
    Some(Value::Array(
        others.into_iter().cloned().chain(built).collect(),
    ))
}

/// The writes of one kind: `build(key, existing)` gives the `status`
/// patch (and what it is for) of each object that should change; the patch
/// names the reported resourceVersion when there is one (routes).
fn writes(
    observed: &BTreeMap<ObjectKey, Reported>,
    sent: &BTreeMap<ObjectKey, Value>,
    mut build: impl FnMut(&ObjectKey, &Value) -> Option<(Value, Value)>,
) -> Vec<Write<Value>> {
    observed
        .iter()
        .filter_map(|(key, existing)| {
            let (want, status) = build(key, &existing.status)?;
            if sent.get(key) == Some(&want) {
                return None;
            }
            let patch = match &existing.version {
                Some(version) => json!({
                    "metadata": {"resourceVersion": version},
                    "status": status,
                }),
                None => json!({ "status": status }),
            };
            Some(Write {
                key: key.clone(),
                want,
                patch,
            })
        })
        .collect()
}

/// GatewayClass `status` [`Kind`].
pub struct ClassStatus;

impl Kind for ClassStatus {
    type Status = Reported;
    type Want = Value;
    type Resource = Watched<GatewayClassV1>;
    const KIND: &'static str = "gatewayclass";

    fn api(client: Client, _: &ObjectKey) -> Api<Self::Resource> {
        Api::all(client)
    }

    fn plan(
        &mut self,
        view: &View,
        observed: &BTreeMap<ObjectKey, Reported>,
        sent: &BTreeMap<ObjectKey, Value>,
    ) -> Vec<Write<Value>> {
        let now = now();
        writes(observed, sent, |key, existing| {
            let desired = view.gateway.classes.get(&*key.name)?;
            let built = class_status(&desired.conditions, existing, &now);
            if up_to_date(&built, existing) {
                return None;
            }
            let want = class_status(&desired.conditions, &Value::Null, &Value::Null);
            Some((want, built))
        })
    }
}

/// Gateway `status` [`Kind`]; its addresses follow the same publish flags
/// as Ingress status.
pub struct GatewayStatusKind {
    addresses: IngressStatus,
}

impl GatewayStatusKind {
    pub fn new(addresses: IngressStatus) -> Self {
        Self { addresses }
    }
}

impl Kind for GatewayStatusKind {
    type Status = Reported;
    type Want = Value;
    type Resource = Watched<GatewayV1>;
    const KIND: &'static str = "gateway";

    fn api(client: Client, key: &ObjectKey) -> Api<Self::Resource> {
        Api::namespaced(client, &key.namespace)
    }

    async fn changed(&mut self) {
        self.addresses.changed().await
    }

    fn plan(
        &mut self,
        view: &View,
        observed: &BTreeMap<ObjectKey, Reported>,
        sent: &BTreeMap<ObjectKey, Value>,
    ) -> Vec<Write<Value>> {
        let now = now();
        let addresses = self.addresses.current();
        writes(observed, sent, |key, existing| {
            let desired = view.gateway.gateways.get(key)?;
            let built = gateway_status(desired, addresses, existing, &now);
            if up_to_date(&built, existing) {
                return None;
            }
            let want = gateway_status(desired, addresses, &Value::Null, &Value::Null);
            Some((want, built))
        })
    }
}

/// HTTPRoute or GRPCRoute `status.parents` [`Kind`] (`GRPC`: which).
pub struct RouteParents<const GRPC: bool> {
    /// Our controller name: the entries we own.
    pub controller: String,
}

fn plan_routes(
    desired: &BTreeMap<ObjectKey, crate::config::gateway::status::RouteStatus>,
    controller: &str,
    observed: &BTreeMap<ObjectKey, Reported>,
    sent: &BTreeMap<ObjectKey, Value>,
) -> Vec<Write<Value>> {
    let now = now();
    writes(observed, sent, |key, existing| {
        let parents = desired.get(key).map_or(&[][..], |s| s.parents.as_slice());
        let built = route_parents(parents, controller, existing, &now)?;
        let want =
            route_parents(parents, controller, &Value::Null, &Value::Null).unwrap_or(Value::Null);
        Some((want, json!({ "parents": built })))
    })
}

impl Kind for RouteParents<false> {
    type Status = Reported;
    type Want = Value;
    type Resource = Watched<HttpRouteV1>;
    const KIND: &'static str = "httproute";

    fn api(client: Client, key: &ObjectKey) -> Api<Self::Resource> {
        Api::namespaced(client, &key.namespace)
    }

    fn plan(
        &mut self,
        view: &View,
        observed: &BTreeMap<ObjectKey, Reported>,
        sent: &BTreeMap<ObjectKey, Value>,
    ) -> Vec<Write<Value>> {
        plan_routes(&view.gateway.http_routes, &self.controller, observed, sent)
    }
}

impl Kind for RouteParents<true> {
    type Status = Reported;
    type Want = Value;
    type Resource = Watched<GrpcRouteV1>;
    const KIND: &'static str = "grpcroute";

    fn api(client: Client, key: &ObjectKey) -> Api<Self::Resource> {
        Api::namespaced(client, &key.namespace)
    }

    fn plan(
        &mut self,
        view: &View,
        observed: &BTreeMap<ObjectKey, Reported>,
        sent: &BTreeMap<ObjectKey, Value>,
    ) -> Vec<Write<Value>> {
        plan_routes(&view.gateway.grpc_routes, &self.controller, observed, sent)
    }
}

#[cfg(test)]
mod tests;
