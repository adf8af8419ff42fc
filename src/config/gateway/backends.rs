//! Backend references of Gateway API routes → upstreams: Services only,
//! in the route's namespace or, with a ReferenceGrant, in another; the
//! Service port's `appProtocol` picks how they are spoken to.
//!
//! Invariants:
//! - The same upstreams as Ingress backends (`config::backends`): one per
//!   distinct key per compile, endpoints resolved by the same code.
//! - An invalid reference (another kind, an ExternalName Service, not
//!   permitted, no such Service or port) yields no upstream and a
//!   `ResolvedRefs` reason; the caller sends its share of requests to 500.
//! - Headless Services (`clusterIP: None`) are Services like any other:
//!   their endpoints come from their EndpointSlices.

use std::sync::Arc;

use super::refs::{self, From, To};
use super::status::{REASON_BACKEND_NOT_FOUND, REASON_INVALID_KIND, REASON_REF_NOT_PERMITTED};
use crate::config::builder::Builder;
use crate::config::snapshot::ObjectKey;
use crate::gateway_api::route::BackendRef;
use crate::gateway_api::{is_core_group, GROUP};
use crate::intern::intern;
use crate::table::upstream::{
    BackendProtocol, LbAlgorithm, PortRef, TrustAnchors, UpstreamKey, UpstreamSpec,
};
use crate::table::UpstreamId;

/// `appProtocol` of a Service port asking for HTTP/2 cleartext.
pub const APP_PROTOCOL_H2C: &str = "kubernetes.io/h2c";
/// `appProtocol` of a Service port speaking WebSocket (HTTP/1.1 upgrade).
pub const APP_PROTOCOL_WS: &str = "kubernetes.io/ws";

/// A `ResolvedRefs` problem: the spec's reason and a message.
pub(super) type RefProblem = (&'static str, String);

/// A resolved backend reference.
pub(super) struct Backend {
    pub upstream: Option<UpstreamId>,
    /// `namespace/service:port`.
    pub label: Arc<str>,
}

impl Builder<'_> {
    /// The upstream of a route's backend reference. `route_kind` is the
    /// referring kind (for ReferenceGrants); `grpc`: spoken to as gRPC;
    /// `lb`: the algorithm its endpoints are picked with (a
    /// TrafficPolicy's `loadBalancer`).
    pub(super) fn gateway_backend(
        &mut self,
        route_kind: &str,
        route: &ObjectKey,
        backend: &BackendRef,
        grpc: bool,
        lb: LbAlgorithm,
    ) -> (Backend, Option<RefProblem>) {
        let namespace = backend
            .namespace
            .clone()
            .unwrap_or_else(|| route.namespace.to_string());
        let port = backend
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let label: Arc<str> = match port {
            Some(p) => intern(&format!("{namespace}/{}:{p}", backend.name)),
            None => intern(&format!("{namespace}/{}", backend.name)),
        };
        let invalid = |reason, message: String| {
            (
                Backend {
                    upstream: None,
                    label: label.clone(),
                },
                Some((reason, message)),
            )
        };
        let kind = backend.kind.as_deref().unwrap_or("Service");
        if !is_core_group(backend.group.as_deref()) || kind != "Service" {
            return invalid(
                REASON_INVALID_KIND,
                format!(
                    "backendRef {}: kind {}{kind} is not supported; use a Service",
                    backend.name,
                    backend
                        .group
                        .as_deref()
                        .filter(|g| !g.is_empty())
                        .map_or(String::new(), |g| format!("{g}/")),
                ),
            );
        }
        let permitted = refs::permitted(
            self.snapshot,
            &From {
                group: GROUP,
                kind: route_kind,
                namespace: &route.namespace,
            },
            &To {
                group: "",
                kind: "Service",
                namespace: &namespace,
                name: &backend.name,
            },
        );
        if !permitted {
            return invalid(
                REASON_REF_NOT_PERMITTED,
                format!(
                    "Service {namespace}/{} is in another namespace and no ReferenceGrant there permits {route_kind}s from `{}`",
                    backend.name, route.namespace
                ),
            );
        }
        let Some(port) = port else {
            return invalid(
                REASON_BACKEND_NOT_FOUND,
                format!(
                    "backendRef {}: port is required for a Service",
                    backend.name
                ),
            );
        };
        let svc_key = ObjectKey::new(namespace.clone(), backend.name.clone());
        let Some(service) = self.snapshot.services.get(&svc_key) else {
            return invalid(
                REASON_BACKEND_NOT_FOUND,
                format!("Service {svc_key} not found"),
            );
        };
        let spec = service.object.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            // The spec: implementations SHOULD NOT support ExternalName
            // Services (they may point anywhere; CVE-2021-25740).
            return invalid(
                REASON_INVALID_KIND,
                format!(
                    "Service {svc_key} is of type ExternalName, which Gateway API routes do not forward to (CVE-2021-25740); use a Service with endpoints"
                ),
            );
        }
        let app_protocol = service
            .object
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|ports| ports.iter().find(|p| p.port == i32::from(port)))
            .and_then(|p| p.app_protocol.clone());
        let protocol = match app_protocol.as_deref() {
            _ if grpc => BackendProtocol::Grpc,
            Some(APP_PROTOCOL_H2C) => BackendProtocol::H2c,
            Some(APP_PROTOCOL_WS) | None | Some(_) => BackendProtocol::Http,
        };
        let key = UpstreamKey {
            namespace: intern(&namespace),
            service: intern(&backend.name),
            port: PortRef::Number(i32::from(port)),
            lb,
            protocol,
            verify: None,
        };
        if let Some(&id) = self.upstreams.get(&key) {
            return (
                Backend {
                    upstream: Some(id),
                    label,
                },
                None,
            );
        }
        let endpoints = match self.resolve(&key) {
            Ok(endpoints) => endpoints,
            Err(reason) => return invalid(REASON_BACKEND_NOT_FOUND, reason.to_string()),
        };
        let id = self.push_upstream(key, endpoints);
        (
            Backend {
                upstream: Some(id),
                label,
            },
            None,
        )
    }

    /// The upstream of routes without a valid backend: no endpoints (never
    /// used for a request: such routes answer 500 or redirect first).
    pub(super) fn placeholder_upstream(&mut self) -> UpstreamId {
        let key = UpstreamKey {
            namespace: intern(""),
            service: intern(""),
            port: PortRef::Number(0),
            lb: LbAlgorithm::RoundRobin,
            protocol: BackendProtocol::Http,
            verify: None,
        };
        if let Some(&id) = self.upstreams.get(&key) {
            return id;
        }
        self.push_upstream(key, Vec::new())
    }

    fn push_upstream(
        &mut self,
        key: UpstreamKey,
        endpoints: Vec<crate::table::upstream::EndpointAddr>,
    ) -> UpstreamId {
        let id = UpstreamId::try_from(self.out.upstreams.len()).unwrap_or(UpstreamId::MAX);
        self.out.upstreams.push(UpstreamSpec {
            label: intern(&key.to_string()),
            key: key.clone(),
            endpoints,
            trust: TrustAnchors::Unverified,
        });
        self.upstreams.insert(key, id);
        id
    }
}
