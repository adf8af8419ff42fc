//! Gateway API: GatewayClasses, Gateways, HTTPRoutes and GRPCRoutes
//! compiled into the same [`RoutingTable`](crate::table::RoutingTable) as
//! Ingresses, plus their status as data ([`status`]).
//!
//! One concern per file, run in this order by [`Builder::add_gateway_api`]:
//! - `listeners`: which classes and Gateways are ours, their listeners
//!   (protocols, hostnames, certificates, allowed routes, conflicts);
//! - `attach`: routes' `parentRefs` → listeners, with hostname
//!   intersection (`hostname`) and allowed namespaces and kinds;
//! - `lower`: attached routes' rules → candidates in the table, in the
//!   spec's precedence order, with guards, weighted backends (`backends`,
//!   cross-namespace only with a ReferenceGrant: `refs`) and filters
//!   (`filters`);
//! - `grpc`: GRPCRoute rules as HTTPRoute rules (a method match is a
//!   path match), lowered by the same code;
//! - `status`: the conditions kube mode writes, with their reasons.
//!
//! TrafficPolicies reach a route through its Gateway and through the
//! HTTPRoute or GRPCRoute itself (`route_policies`): the Gateway's is laid
//! first, the route's over it section by section, and the rule's own
//! filters last (a route's own setting wins over a policy's); a policy's
//! `loadBalancer.algorithm` picks the algorithm of the route's backends.
//!
//! Invariants:
//! - Pure, like the rest of the compiler: the same snapshot and options
//!   give the same table and the same conditions.
//! - Runs after the Ingresses: on a (host, path) both serve, the Ingress
//!   route answers and the HTTPRoute candidate behind it gets a warning.
//! - A route that no parent accepts adds nothing to the table (404); a
//!   route's invalid backend reference sends its share of requests to 500,
//!   never elsewhere.
//! - Every condition that is not what a healthy object would show also
//!   becomes a diagnostic (a rejection when a Gateway or a route is not
//!   accepted, a warning otherwise), so `tollgate check` explains it.

mod attach;
mod backends;
mod filters;
mod grpc;
mod hostname;
mod listeners;
mod lower;
mod refs;
pub mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use super::builder::Builder;
use super::diagnostic::Severity;
use super::problem::{Field, Problem, Reason, Subject};
use super::snapshot::ObjectKey;
use crate::crd::{TargetKind, TrafficPolicy};
use crate::gateway_api::route::{GrpcRouteRule, HttpRouteRule, ParentRef};
use crate::gateway_api::{GRPC_ROUTE_KIND, HTTP_ROUTE_KIND};
use attach::{attach, RouteRef};
use lower::RouteInput;
use status::{
    Condition, RouteStatus, ACCEPTED, CONFLICTED, REASON_RESOLVED_REFS, REASON_UNSUPPORTED_VALUE,
    RESOLVED_REFS,
};

/// A route of either kind, as the steps read it.
struct RouteEntry<'a> {
    kind: &'static str,
    key: &'a ObjectKey,
    origin: &'a Arc<str>,
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    parent_refs: &'a [ParentRef],
    hostnames: &'a [String],
    rules: Rules<'a>,
}

enum Rules<'a> {
    Http(&'a [HttpRouteRule]),
    Grpc(&'a [GrpcRouteRule]),
}

impl RouteEntry<'_> {
    /// The rules as HTTPRoute rules (a GRPCRoute's converted; `Err`: a
    /// method match that cannot be served).
    fn http_rules(&self) -> Result<std::borrow::Cow<'_, [HttpRouteRule]>, String> {
        match self.rules {
            Rules::Http(rules) => Ok(std::borrow::Cow::Borrowed(rules)),
            Rules::Grpc(rules) => rules
                .iter()
                .enumerate()
                .map(|(i, r)| grpc::as_http_rule(r).map_err(|e| format!("spec.rules[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()
                .map(std::borrow::Cow::Owned),
        }
    }
}

/// The TrafficPolicy target kind of a route kind.
fn policy_target(route_kind: &str) -> TargetKind {
    if route_kind == GRPC_ROUTE_KIND {
        TargetKind::GrpcRoute
    } else {
        TargetKind::HttpRoute
    }
}

/// The first route hostname the CRD schema refuses (field, message).
fn hostname_problem(hostnames: &[String]) -> Option<(String, String)> {
    if hostnames.len() > hostname::MAX_ROUTE_HOSTNAMES {
        return Some((
            "spec.hostnames".into(),
            format!(
                "at most {} hostnames (the CRD schema refuses the route; it is not served)",
                hostname::MAX_ROUTE_HOSTNAMES
            ),
        ));
    }
    let (i, bad) = hostnames
        .iter()
        .enumerate()
        .find(|(_, h)| !hostname::schema_valid(h))?;
    Some((
        format!("spec.hostnames[{i}]"),
        format!(
            "`{bad}` is not a valid hostname (lowercase DNS labels, optionally after `*.`, no port, at most 253 characters): the CRD schema refuses the route; it is not served"
        ),
    ))
}

impl Builder<'_> {
    /// Compiles every Gateway API object of ours into the table and the
    /// status.
    pub(super) fn add_gateway_api(&mut self) {
        self.report_unknown_fields();
        let mut gateways = self.gateways();
        if gateways.is_empty() {
            return;
        }
        let snapshot = self.snapshot;
        // HTTPRoutes and GRPCRoutes, oldest first (their order breaks
        // precedence ties), each with its rules as HTTPRoute rules.
        let mut routes: Vec<RouteEntry<'_>> = snapshot
            .http_routes
            .iter()
            .map(|(key, e)| RouteEntry {
                kind: HTTP_ROUTE_KIND,
                key,
                origin: &e.origin,
                meta: &e.object.metadata,
                parent_refs: &e.object.spec.parent_refs,
                hostnames: &e.object.spec.hostnames,
                rules: Rules::Http(&e.object.spec.rules),
            })
            .chain(snapshot.grpc_routes.iter().map(|(key, e)| RouteEntry {
                kind: GRPC_ROUTE_KIND,
                key,
                origin: &e.origin,
                meta: &e.object.metadata,
                parent_refs: &e.object.spec.parent_refs,
                hostnames: &e.object.spec.hostnames,
                rules: Rules::Grpc(&e.object.spec.rules),
            }))
            .collect();
        routes.sort_by(|a, b| {
            let ta = a.meta.creation_timestamp.as_ref().map(|t| &t.0);
            let tb = b.meta.creation_timestamp.as_ref().map(|t| &t.0);
            ta.cmp(&tb)
                .then_with(|| a.key.cmp(b.key))
                .then_with(|| a.kind.cmp(b.kind))
        });
        let mut candidates = Vec::new();
        for gateway in &gateways {
            self.out
                .gateway_targets
                .push((TargetKind::Gateway, gateway.key.clone()));
        }
        for (order, route) in routes.into_iter().enumerate() {
            if let Some((status, lowered)) = self.add_route(&mut gateways, order, &route) {
                if !lowered.is_empty() {
                    self.out
                        .gateway_targets
                        .push((policy_target(route.kind), route.key.clone()));
                }
                candidates.extend(lowered);
                let statuses = match route.kind {
                    GRPC_ROUTE_KIND => &mut self.out.gateway_status.grpc_routes,
                    _ => &mut self.out.gateway_status.http_routes,
                };
                statuses.insert(route.key.clone(), status);
            }
        }
        self.insert_candidates(candidates);
        for gateway in gateways {
            self.out
                .gateway_status
                .gateways
                .insert(gateway.key.clone(), gateway.status);
        }
        self.report_conditions();
    }

    /// Attaches one route, lowers it if a parent accepts it, and returns
    /// its status (`None`: no parent of ours) with its candidates.
    fn add_route(
        &mut self,
        gateways: &mut [listeners::GatewayView],
        order: usize,
        route: &RouteEntry<'_>,
    ) -> Option<(RouteStatus, Vec<lower::Candidate>)> {
        let snapshot = self.snapshot;
        let generation = route.meta.generation;
        let key = route.key;
        if let Some(problem) = hostname_problem(route.hostnames) {
            // The API server would refuse the object: it is not served and
            // gets no status.
            self.report(
                Severity::Rejected,
                Subject {
                    kind: route.kind,
                    key,
                    origin: &Some(route.origin.clone()),
                },
                Problem::new(Field::Reported(problem.0), Reason::GatewayApi(problem.1)),
            );
            return None;
        }
        let attached = attach(
            snapshot,
            &self.opts.gateway_controller_name,
            gateways,
            &RouteRef {
                kind: route.kind,
                key,
                generation,
                parent_refs: route.parent_refs,
                hostnames: route.hostnames,
            },
        );
        let origin = Some(route.origin.clone());
        for (i, gateway) in &attached.missing {
            self.report(
                Severity::Warning,
                Subject {
                    kind: route.kind,
                    key,
                    origin: &origin,
                },
                Problem::new(
                    Field::Reported(format!("spec.parentRefs[{i}]")),
                    Reason::GatewayApi(format!("Gateway {gateway} not found")),
                ),
            );
        }
        if attached.parents.is_empty() {
            return None;
        }
        let mut parents = attached.parents;
        let mut refs = Vec::new();
        let mut candidates = Vec::new();
        if !attached.hosts.is_empty() {
            let policies = self.route_policies(gateways, route, &attached.listeners);
            let lowered = route.http_rules().and_then(|rules| {
                self.lower_http_route(&RouteInput {
                    kind: route.kind,
                    key,
                    order,
                    hosts: &attached.hosts,
                    rules: &rules,
                    policies: &policies,
                })
            });
            match lowered {
                Ok(lowered) => {
                    candidates = lowered.candidates;
                    refs = lowered.refs;
                    for (g, j) in attached.listeners {
                        if let Some(l) = gateways
                            .get_mut(g)
                            .and_then(|gw| gw.status.listeners.get_mut(j))
                        {
                            l.attached_routes += 1;
                        }
                    }
                }
                Err(message) => {
                    for p in &mut parents {
                        if let Some(c) = p.conditions.iter_mut().find(|c| c.type_ == ACCEPTED) {
                            *c = Condition::new(
                                ACCEPTED,
                                false,
                                REASON_UNSUPPORTED_VALUE,
                                message.clone(),
                                generation,
                            );
                        }
                    }
                }
            }
        }
        let resolved = match refs.first() {
            None => Condition::new(
                RESOLVED_REFS,
                true,
                REASON_RESOLVED_REFS,
                "all references resolved",
                generation,
            ),
            Some((reason, _)) => Condition::new(
                RESOLVED_REFS,
                false,
                reason,
                refs.iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                generation,
            ),
        };
        for p in &mut parents {
            p.conditions.push(resolved.clone());
        }
        Some((RouteStatus { parents }, candidates))
    }

    /// The TrafficPolicies reaching a route, least specific first: the
    /// policy of the oldest Gateway it attached to that has one, then the
    /// route's own (an HTTPRoute's or a GRPCRoute's, alike).
    fn route_policies(
        &self,
        gateways: &[listeners::GatewayView],
        route: &RouteEntry<'_>,
        listeners: &[(usize, usize)],
    ) -> Vec<Arc<TrafficPolicy>> {
        let mut out = Vec::new();
        if self.policies.is_empty() {
            return out;
        }
        // Gateways are in age order: the lowest index is the oldest.
        let mut attached: Vec<usize> = listeners.iter().map(|(g, _)| *g).collect();
        attached.sort_unstable();
        attached.dedup();
        let gateway = attached
            .iter()
            .filter_map(|g| gateways.get(*g))
            .find_map(|gw| {
                self.policies
                    .get(&(TargetKind::Gateway, gw.key.clone()))
                    .map(|(_, p)| p.clone())
            });
        out.extend(gateway);
        out.extend(
            self.policies
                .get(&(policy_target(route.kind), route.key.clone()))
                .map(|(_, p)| p.clone()),
        );
        out
    }

    /// A warning for each field of a Gateway API object tollgate does not
    /// read.
    fn report_unknown_fields(&mut self) {
        let snapshot = self.snapshot;
        let mut found: Vec<(&'static str, ObjectKey, Arc<str>, String)> = Vec::new();
        let mut note = |kind, key: ObjectKey, origin: &Arc<str>, fields: &[String]| {
            for f in fields {
                found.push((kind, key.clone(), origin.clone(), f.clone()));
            }
        };
        for (name, e) in &snapshot.gateway_classes {
            note(
                "GatewayClass",
                ObjectKey::new("", name.clone()),
                &e.origin,
                &e.object.unknown_fields,
            );
        }
        for (key, e) in &snapshot.gateways {
            note("Gateway", key.clone(), &e.origin, &e.object.unknown_fields);
        }
        for (key, e) in &snapshot.http_routes {
            note(
                "HTTPRoute",
                key.clone(),
                &e.origin,
                &e.object.unknown_fields,
            );
        }
        for (key, e) in &snapshot.grpc_routes {
            note(
                "GRPCRoute",
                key.clone(),
                &e.origin,
                &e.object.unknown_fields,
            );
        }
        for (key, e) in &snapshot.reference_grants {
            note(
                "ReferenceGrant",
                key.clone(),
                &e.origin,
                &e.object.unknown_fields,
            );
        }
        for (kind, key, origin, field) in found {
            let origin = Some(origin);
            self.report(
                Severity::Warning,
                Subject {
                    kind,
                    key: &key,
                    origin: &origin,
                },
                Problem::new(Field::Reported(field), Reason::UnknownField),
            );
        }
    }

    /// A diagnostic for every condition that is not healthy: `Accepted` or
    /// `Programmed` false rejects (not served), anything else warns.
    fn report_conditions(&mut self) {
        let rows = self.out.gateway_status.rows();
        for row in rows {
            let c: &Condition = &row.condition;
            let healthy = if c.type_ == CONFLICTED {
                !c.is_true()
            } else {
                c.is_true()
            };
            if healthy {
                continue;
            }
            // A listener that is not served leaves the Gateway's others
            // serving: a warning; a Gateway or route that is not: rejected.
            let severity = if c.type_ == ACCEPTED && !row.scope.starts_with("listener") {
                Severity::Rejected
            } else {
                Severity::Warning
            };
            let origin = self.gateway_api_origin(row.kind, &row.namespace, &row.name);
            let key = ObjectKey::new(row.namespace.clone(), row.name.clone());
            let field = if row.scope.is_empty() {
                "status".to_string()
            } else {
                row.scope.clone()
            };
            self.report(
                severity,
                Subject {
                    kind: row.kind,
                    key: &key,
                    origin: &origin,
                },
                Problem::new(
                    Field::Reported(field),
                    Reason::GatewayCondition {
                        type_: c.type_,
                        reason: c.reason,
                        message: c.message.clone(),
                    },
                ),
            );
        }
    }

    fn gateway_api_origin(&self, kind: &str, namespace: &str, name: &str) -> Option<Arc<str>> {
        let key = ObjectKey::new(namespace, name);
        let s = self.snapshot;
        match kind {
            "GatewayClass" => s.gateway_classes.get(name).map(|e| e.origin.clone()),
            "Gateway" => s.gateways.get(&key).map(|e| e.origin.clone()),
            "HTTPRoute" => s.http_routes.get(&key).map(|e| e.origin.clone()),
            "GRPCRoute" => s.grpc_routes.get(&key).map(|e| e.origin.clone()),
            _ => None,
        }
    }
}
