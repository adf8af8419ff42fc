//! The watches: one kube-runtime `watcher` per kind (per namespace with
//! `--watch-namespace`), merged into one stream of [`Update`]s.
//!
//! Invariants:
//! - Secrets are only ever listed and watched with a field selector on
//!   their type, one stream per type of [`SECRET_TYPES`]
//!   (`kubernetes.io/tls`, `Opaque`; field selectors cannot OR): no other
//!   Secret reaches this process.
//! - Objects are trimmed before they are kept ([`trim`]): fields that change
//!   without changing routing (resourceVersion, managedFields, status,
//!   `last-applied-configuration`) are dropped, so a status write or a
//!   no-op update compares equal and triggers nothing. Services and
//!   EndpointSlices keep only the fields the compiler reads; Ingresses
//!   lose their labels, owner references and finalizers (nothing reads
//!   them).
//!   `metadata.generation` is kept (TrafficPolicy conditions report it).
//! - TrafficPolicy and the Gateway API kinds ([`OPTIONAL_KINDS`]) are
//!   [`StreamInfo::optional`]: their CRDs may not be installed, and the
//!   caller treats a 404 as an empty list. Namespaces keep only their
//!   labels (what `allowedRoutes` selectors read). Gateway API objects
//!   lose their status to their status writer, like Ingresses.
//! - Failures are yielded as `Err` items; the watcher retries on its own
//!   with backoff (`default_backoff`), re-listing after a 410 Gone.

use std::fmt::Debug;

use futures_util::stream::{BoxStream, SelectAll, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressLoadBalancerIngress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::gateway_watch as gw;
use crate::config::snapshot::{OPAQUE_SECRET_TYPE, SERVICE_NAME_LABEL};
use crate::config::tls::TLS_SECRET_TYPE;
use crate::config::{Object, Snapshot};
use crate::crd::{TrafficPolicy, TrafficPolicyStatus};

/// The kinds tollgate watches, in the order their streams are created.
pub const KINDS: [&str; 12] = [
    "IngressClass",
    "Ingress",
    "Service",
    "EndpointSlice",
    "Secret",
    "TrafficPolicy",
    "Namespace",
    "GatewayClass",
    "Gateway",
    "HTTPRoute",
    "GRPCRoute",
    "ReferenceGrant",
];

/// Kinds that may not exist on the server (CRDs): a 404 on their list
/// means "no objects".
pub const OPTIONAL_KINDS: [&str; 6] = [
    "TrafficPolicy",
    "GatewayClass",
    "Gateway",
    "HTTPRoute",
    "GRPCRoute",
    "ReferenceGrant",
];

/// The kinds watched only with `--gateway-api`.
pub const GATEWAY_API_KINDS: [&str; 6] = [
    "Namespace",
    "GatewayClass",
    "Gateway",
    "HTTPRoute",
    "GRPCRoute",
    "ReferenceGrant",
];

/// Cluster-scoped kinds: one stream, whatever `--watch-namespace` says.
const CLUSTER_KINDS: [&str; 3] = ["IngressClass", "Namespace", "GatewayClass"];

/// The Secret types watched, one stream each.
pub const SECRET_TYPES: [&str; 2] = [TLS_SECRET_TYPE, OPAQUE_SECRET_TYPE];

/// The field selector that keeps every Secret but those of one type out.
pub fn secret_field_selector(secret_type: &str) -> String {
    format!("type={secret_type}")
}

/// One watch stream: a kind, in one namespace or all.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub kind: &'static str,
    /// `None`: all namespaces (or a cluster-scoped kind).
    pub namespace: Option<String>,
    /// Secrets: the one type this stream lists.
    pub secret_type: Option<&'static str>,
    /// The kind may not exist on the server (a CRD not installed): a 404
    /// means "no objects", not a failure.
    pub optional: bool,
}

impl StreamInfo {
    /// Whether an object of the snapshot is one this stream lists (what a
    /// completed re-list replaces).
    pub fn covers(&self, snapshot: &Snapshot, key: &crate::config::ObjectKey) -> bool {
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != &*key.namespace)
        {
            return false;
        }
        match self.secret_type {
            None => true,
            Some(t) => snapshot
                .secrets
                .get(key)
                .is_some_and(|e| e.object.type_.as_deref() == Some(t)),
        }
    }
}

/// One item of the merged stream.
pub struct Update {
    /// Index into the [`StreamInfo`] list.
    pub stream: usize,
    pub event: Result<watcher::Event<Object>, watcher::Error>,
}

/// An Ingress's `status.loadBalancer.ingress`, taken off the object by
/// [`trim`] for the status writer.
pub type LbStatus = Vec<IngressLoadBalancerIngress>;

/// A status [`trim`] took off an object, for its status writer.
#[derive(Debug, PartialEq)]
pub enum Taken {
    Ingress(LbStatus),
    TrafficPolicy(TrafficPolicyStatus),
    /// A Gateway API object's `status` (`null` when it has none) and
    /// resourceVersion, with the object's kind.
    GatewayApi(&'static str, Reported),
}

/// A Gateway API object's status as the watch reported it (what the
/// Gateway API status writers plan from).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reported {
    /// `status` (`null` when it has none).
    pub status: serde_json::Value,
    /// The object's resourceVersion (routes only: their status writes are
    /// conditional on it).
    pub version: Option<String>,
}

fn trim_meta(meta: &mut ObjectMeta) {
    meta.resource_version = None;
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Drops what does not affect routing (see the module invariants). Returns
/// the status of an Ingress or a TrafficPolicy.
///
/// Services and EndpointSlices are most of a large cluster's objects, so
/// they keep only what the compiler reads (ports, type, externalName;
/// addresses and conditions): that is most of the memory tollgate holds.
pub fn trim(object: &mut Object) -> Option<Taken> {
    match object {
        Object::IngressClass(o) => trim_meta(&mut o.metadata),
        Object::Service(o) => {
            trim_meta(&mut o.metadata);
            o.metadata.owner_references = None;
            o.status = None;
            if let Some(spec) = o.spec.take() {
                o.spec = Some(ServiceSpec {
                    ports: spec.ports,
                    type_: spec.type_,
                    external_name: spec.external_name,
                    ..Default::default()
                });
            }
        }
        Object::EndpointSlice(o) => {
            trim_meta(&mut o.metadata);
            o.metadata.owner_references = None;
            o.metadata.annotations = None;
            o.metadata.generate_name = None;
            if let Some(labels) = o.metadata.labels.as_mut() {
                labels.retain(|k, _| k == SERVICE_NAME_LABEL);
            }
            for endpoint in &mut o.endpoints {
                *endpoint = Endpoint {
                    addresses: std::mem::take(&mut endpoint.addresses),
                    conditions: endpoint.conditions.take(),
                    ..Default::default()
                };
            }
        }
        Object::Secret(o) => trim_meta(&mut o.metadata),
        Object::ConfigMap(o) => {
            trim_meta(&mut o.metadata);
            o.binary_data = None;
        }
        Object::GatewayClass(o) => {
            trim_meta(&mut o.metadata);
            return Some(gateway_status(object, None));
        }
        Object::Gateway(o) => {
            trim_meta(&mut o.metadata);
            return Some(gateway_status(object, None));
        }
        Object::HttpRoute(o) => {
            let version = o.metadata.resource_version.take();
            trim_meta(&mut o.metadata);
            return Some(gateway_status(object, version));
        }
        Object::GrpcRoute(o) => {
            let version = o.metadata.resource_version.take();
            trim_meta(&mut o.metadata);
            return Some(gateway_status(object, version));
        }
        Object::ReferenceGrant(o) => trim_meta(&mut o.metadata),
        Object::Namespace(o) => {
            // Labels only (allowedRoutes selectors).
            trim_meta(&mut o.metadata);
            o.metadata.annotations = None;
            o.metadata.owner_references = None;
            o.metadata.finalizers = None;
            o.spec = None;
            o.status = None;
        }
        Object::Ingress(o) => {
            trim_meta(&mut o.metadata);
            // Nothing reads an Ingress's labels, owners or finalizers (a
            // label map's first node alone is half a kilobyte).
            o.metadata.labels = None;
            o.metadata.owner_references = None;
            o.metadata.finalizers = None;
            o.metadata.generate_name = None;
            let status = o
                .status
                .take()
                .and_then(|s| s.load_balancer)
                .and_then(|lb| lb.ingress)
                .unwrap_or_default();
            return Some(Taken::Ingress(status));
        }
        Object::TrafficPolicy(o) => {
            trim_meta(&mut o.metadata);
            return Some(Taken::TrafficPolicy(o.status.take().unwrap_or_default()));
        }
    }
    None
}

/// Takes the status off a Gateway API object that has one; `version`:
/// its resourceVersion, kept for the writes conditional on it (routes).
fn gateway_status(object: &mut Object, version: Option<String>) -> Taken {
    let (kind, status) = match object {
        Object::GatewayClass(o) => ("GatewayClass", o.status.take()),
        Object::Gateway(o) => ("Gateway", o.status.take()),
        Object::HttpRoute(o) => ("HTTPRoute", o.status.take()),
        Object::GrpcRoute(o) => ("GRPCRoute", o.status.take()),
        _ => ("", None),
    };
    Taken::GatewayApi(
        kind,
        Reported {
            status: status.unwrap_or(serde_json::Value::Null),
            version,
        },
    )
}

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    stream: usize,
    wrap: fn(K) -> Object,
) -> BoxStream<'static, Update>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    watcher(api, config)
        .default_backoff()
        .map(move |event| Update {
            stream,
            event: event.map(|e| match e {
                watcher::Event::Apply(o) => watcher::Event::Apply(wrap(o)),
                watcher::Event::Delete(o) => watcher::Event::Delete(wrap(o)),
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitApply(o) => watcher::Event::InitApply(wrap(o)),
                watcher::Event::InitDone => watcher::Event::InitDone,
            }),
        })
        .boxed()
}

fn numbered(events: gw::Events, stream: usize) -> BoxStream<'static, Update> {
    events.map(move |event| Update { stream, event }).boxed()
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts every watch. `namespaces` empty means all namespaces; without
/// `gateway_api`, the Gateway API kinds and Namespaces are not watched.
/// `configmaps`: the namespace of `--configmap`, whose ConfigMaps (the
/// settings and the header lists they name) are watched.
pub fn start(
    client: &Client,
    namespaces: &[String],
    gateway_api: bool,
    configmaps: Option<&str>,
) -> (Vec<StreamInfo>, SelectAll<BoxStream<'static, Update>>) {
    let mut infos = Vec::new();
    let mut streams = SelectAll::new();
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let streams_of_kind = |kind: &str| -> Vec<Option<&'static str>> {
        match kind {
            "Secret" => SECRET_TYPES.iter().copied().map(Some).collect(),
            _ => vec![None],
        }
    };
    for kind in KINDS {
        if !gateway_api && GATEWAY_API_KINDS.contains(&kind) {
            continue;
        }
        let kind_scopes: &[Option<&str>] = if CLUSTER_KINDS.contains(&kind) {
            &[None]
        } else {
            &scopes
        };
        for (scope, secret_type) in kind_scopes
            .iter()
            .flat_map(|s| streams_of_kind(kind).into_iter().map(move |t| (s, t)))
        {
            let index = infos.len();
            let config = watcher::Config::default();
            let stream = match kind {
                "IngressClass" => watch(
                    Api::<IngressClass>::all(client.clone()),
                    config,
                    index,
                    Object::IngressClass,
                ),
                "Ingress" => watch(
                    api::<Ingress>(client, *scope),
                    config,
                    index,
                    Object::Ingress,
                ),
                "Service" => watch(
                    api::<Service>(client, *scope),
                    config,
                    index,
                    Object::Service,
                ),
                "EndpointSlice" => watch(
                    api::<EndpointSlice>(client, *scope),
                    config,
                    index,
                    Object::EndpointSlice,
                ),
                "TrafficPolicy" => watch(
                    api::<TrafficPolicy>(client, *scope),
                    config,
                    index,
                    Object::TrafficPolicy,
                ),
                "Namespace" => watch(
                    Api::<Namespace>::all(client.clone()),
                    config,
                    index,
                    Object::Namespace,
                ),
                "GatewayClass" => numbered(
                    gw::events::<gw::GatewayClassV1>(Api::all(client.clone()), config),
                    index,
                ),
                "Gateway" => numbered(
                    gw::events::<gw::GatewayV1>(api(client, *scope), config),
                    index,
                ),
                "HTTPRoute" => numbered(
                    gw::events::<gw::HttpRouteV1>(api(client, *scope), config),
                    index,
                ),
                "GRPCRoute" => numbered(
                    gw::events::<gw::GrpcRouteV1>(api(client, *scope), config),
                    index,
                ),
                "ReferenceGrant" => numbered(
                    gw::reference_grants(client.clone(), scope.map(str::to_string)),
                    index,
                ),
                _ => watch(
                    api::<Secret>(client, *scope),
                    config.fields(&secret_field_selector(
                        secret_type.unwrap_or(TLS_SECRET_TYPE),
                    )),
                    index,
                    Object::Secret,
                ),
            };
            infos.push(StreamInfo {
                kind,
                namespace: scope.map(str::to_string),
                secret_type,
                optional: OPTIONAL_KINDS.contains(&kind),
            });
            streams.push(stream);
        }
    }
    if let Some(ns) = configmaps {
        streams.push(watch(
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            watcher::Config::default(),
            infos.len(),
            Object::ConfigMap,
        ));
        infos.push(StreamInfo {
            kind: "ConfigMap",
            namespace: Some(ns.to_string()),
            secret_type: None,
            optional: false,
        });
    }
    (infos, streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::EndpointConditions;

    #[test]
    fn trim_keeps_what_endpoint_resolution_reads() {
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                labels: Some(
                    [
                        (SERVICE_NAME_LABEL.to_string(), "web".to_string()),
                        ("app".to_string(), "web".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![Endpoint {
                addresses: vec!["10.0.0.1".into()],
                conditions: Some(EndpointConditions {
                    ready: Some(false),
                    serving: Some(true),
                    terminating: Some(true),
                }),
                node_name: Some("node-1".into()),
                target_ref: Some(ObjectReference {
                    name: Some("web-abc-123".into()),
                    ..Default::default()
                }),
                zone: Some("z1".into()),
                ..Default::default()
            }],
            ports: None,
        };
        let mut object = Object::EndpointSlice(slice);
        assert!(trim(&mut object).is_none());
        let Object::EndpointSlice(trimmed) = object else {
            panic!("kind changed")
        };
        let labels = trimmed.metadata.labels.unwrap_or_default();
        assert_eq!(labels.len(), 1);
        assert_eq!(
            labels.get(SERVICE_NAME_LABEL).map(String::as_str),
            Some("web")
        );
        let endpoint = &trimmed.endpoints[0];
        assert_eq!(endpoint.addresses, vec!["10.0.0.1".to_string()]);
        assert_eq!(
            endpoint.conditions.as_ref().and_then(|c| c.terminating),
            Some(true)
        );
        assert!(endpoint.node_name.is_none() && endpoint.target_ref.is_none());
    }
    use k8s_openapi::api::networking::v1::{IngressLoadBalancerStatus, IngressStatus};

    #[test]
    fn trim_takes_status_and_volatile_metadata() {
        let mut ingress = Ingress {
            metadata: ObjectMeta {
                name: Some("a".into()),
                resource_version: Some("12".into()),
                labels: Some([("app".to_string(), "a".to_string())].into()),
                annotations: Some(
                    [
                        (
                            "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                            "{...}".to_string(),
                        ),
                        ("keep".to_string(), "me".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(vec![IngressLoadBalancerIngress {
                        ip: Some("10.0.0.1".into()),
                        ..Default::default()
                    }]),
                }),
            }),
            ..Default::default()
        };
        let mut object = Object::Ingress(ingress.clone());
        let Some(Taken::Ingress(status)) = trim(&mut object) else {
            panic!("no Ingress status taken")
        };
        assert_eq!(status.len(), 1);
        let Object::Ingress(trimmed) = object else {
            panic!("kind changed")
        };
        assert!(trimmed.status.is_none());
        assert!(trimmed.metadata.resource_version.is_none());
        assert!(trimmed.metadata.labels.is_none());
        let annotations = trimmed.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations.get("keep").map(String::as_str), Some("me"));

        // Two versions differing only in status and resourceVersion compare
        // equal once trimmed: a status write triggers no recompile.
        ingress.metadata.resource_version = Some("13".into());
        ingress.status = None;
        let mut other = Object::Ingress(ingress);
        trim(&mut other);
        let Object::Ingress(other) = other else {
            panic!("kind changed")
        };
        assert_eq!(other.metadata.name, Some("a".into()));
        assert_eq!(other.status, None);
    }

    #[test]
    fn trim_takes_policy_status_and_keeps_the_generation() {
        let spec: crate::crd::TrafficPolicySpec = serde_yaml::from_str(
            "targetRefs: [{group: networking.k8s.io, kind: Ingress, name: web}]",
        )
        .unwrap();
        let mut policy = TrafficPolicy::new("p", spec);
        policy.metadata.generation = Some(7);
        policy.metadata.resource_version = Some("42".into());
        policy.status = Some(TrafficPolicyStatus::default());
        let mut object = Object::TrafficPolicy(policy);
        assert_eq!(
            trim(&mut object),
            Some(Taken::TrafficPolicy(TrafficPolicyStatus::default()))
        );
        let Object::TrafficPolicy(trimmed) = object else {
            panic!("kind changed")
        };
        assert_eq!(trimmed.metadata.generation, Some(7));
        assert!(trimmed.status.is_none() && trimmed.metadata.resource_version.is_none());
    }

    #[test]
    fn a_secret_stream_covers_only_its_type() {
        let mut snapshot = Snapshot::default();
        for (name, ty) in [("cert", TLS_SECRET_TYPE), ("auth", OPAQUE_SECRET_TYPE)] {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("ns".into()),
                    ..Default::default()
                },
                type_: Some(ty.into()),
                ..Default::default()
            };
            snapshot.insert("test".into(), Object::Secret(secret));
        }
        let stream = |secret_type| StreamInfo {
            kind: "Secret",
            namespace: None,
            secret_type: Some(secret_type),
            optional: false,
        };
        let cert = crate::config::ObjectKey::new("ns", "cert");
        let auth = crate::config::ObjectKey::new("ns", "auth");
        assert!(stream(TLS_SECRET_TYPE).covers(&snapshot, &cert));
        assert!(!stream(TLS_SECRET_TYPE).covers(&snapshot, &auth));
        assert!(stream(OPAQUE_SECRET_TYPE).covers(&snapshot, &auth));
        let scoped = StreamInfo {
            namespace: Some("other".into()),
            ..stream(OPAQUE_SECRET_TYPE)
        };
        assert!(!scoped.covers(&snapshot, &auth));
    }
}
