//! A snapshot of the Kubernetes objects tollgate compiles from.
//!
//! Invariants: a snapshot is plain data, indexed by object key, and cheap
//! to clone: its maps are persistent ([`Map`], `imbl`'s B-tree, whose clone
//! shares every node and whose update copies one path), and objects sit
//! behind `Arc`s; so the copy the debug endpoints and the admission webhook
//! read costs O(1) per publish, not O(objects); EndpointSlices are also indexed by the
//! Service they belong to (label `kubernetes.io/service-name`) so resolving a
//! Service's endpoints costs O(its slices), not O(all slices). Secrets are
//! only ever of type `kubernetes.io/tls` or `Opaque` (basic-auth files):
//! providers never let another type in. Ingresses, Services and
//! EndpointSlices are kept in their compact forms ([`ingress`],
//! [`compact`]: what the compiler reads), converted on insertion;
//! providers still hand in whole objects. An [`ObjectKey`]'s
//! namespace and name are interned ([`crate::intern`]): the key of an
//! object in its map, in the slice index, in the compiler's caches and in
//! the status writers all share one allocation per distinct string.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

pub mod compact;
pub mod ingress;

pub use compact::{
    CompactService, CompactServicePort, CompactServiceSpec, CompactSlice, SliceAddress,
    SliceEndpoint, SlicePort, SERVICE_NAME_LABEL,
};
pub use ingress::{
    AnnotationMap, CompactIngress, HttpIngressPath, HttpIngressRuleValue, IngressBackend,
    IngressMeta, IngressRule, IngressServiceBackend, IngressSpec, IngressTls, ResourceBackend,
    ServiceBackendPort,
};

use crate::crd::TrafficPolicy;
use crate::gateway_api::{Gateway, GatewayClass, GrpcRoute, HttpRoute, ReferenceGrant};
use crate::intern::intern;

/// The snapshot's maps: ordered (iteration in key order, ranges) and
/// persistent (a clone shares the tree; an insert copies one path).
pub type Map<K, V> = imbl::OrdMap<K, V>;

/// The other Secret type held (basic-auth files); a Secret without a type
/// is of this type.
pub const OPAQUE_SECRET_TYPE: &str = "Opaque";

/// `namespace/name`; the namespace is empty for cluster-scoped objects.
/// Both parts are interned ([`crate::intern`]): every key for the same
/// object, wherever it is kept, shares the two allocations. `Arc<str>`
/// compares, orders and hashes by content, so keys behave as the strings
/// they hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjectKey {
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        Self {
            namespace: intern(namespace.as_ref()),
            name: intern(name.as_ref()),
        }
    }
}

impl Default for ObjectKey {
    fn default() -> Self {
        Self::new("", "")
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// An object plus where it came from (`file:line`, or `kubernetes`).
#[derive(Debug)]
pub struct Entry<T> {
    pub origin: Arc<str>,
    pub object: Arc<T>,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Self {
            origin: self.origin.clone(),
            object: self.object.clone(),
        }
    }
}

/// One object of a kind tollgate reads.
// Control plane only: an object is moved once, into an `Arc`, so variant
// sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Object {
    IngressClass(IngressClass),
    Ingress(Ingress),
    Service(Service),
    EndpointSlice(EndpointSlice),
    /// Only Secrets of type `kubernetes.io/tls` or `Opaque` are ever held.
    Secret(Secret),
    TrafficPolicy(TrafficPolicy),
    GatewayClass(GatewayClass),
    Gateway(Gateway),
    HttpRoute(HttpRoute),
    GrpcRoute(GrpcRoute),
    ReferenceGrant(ReferenceGrant),
    /// Read for its labels (`allowedRoutes.namespaces.selector`).
    Namespace(Namespace),
    /// ingress-nginx settings (`--configmap`) and header lists
    /// (`custom-headers`, `add-headers`, `proxy-set-headers`).
    ConfigMap(ConfigMap),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::IngressClass(_) => "IngressClass",
            Object::Ingress(_) => "Ingress",
            Object::Service(_) => "Service",
            Object::EndpointSlice(_) => "EndpointSlice",
            Object::Secret(_) => "Secret",
            Object::TrafficPolicy(_) => "TrafficPolicy",
            Object::GatewayClass(_) => "GatewayClass",
            Object::Gateway(_) => "Gateway",
            Object::HttpRoute(_) => "HTTPRoute",
            Object::GrpcRoute(_) => "GRPCRoute",
            Object::ReferenceGrant(_) => "ReferenceGrant",
            Object::Namespace(_) => "Namespace",
            Object::ConfigMap(_) => "ConfigMap",
        }
    }

    pub fn key(&self) -> ObjectKey {
        let meta = match self {
            Object::IngressClass(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::TrafficPolicy(o) => &o.metadata,
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::HttpRoute(o) => &o.metadata,
            Object::GrpcRoute(o) => &o.metadata,
            Object::ReferenceGrant(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
        };
        let namespace = match self {
            Object::IngressClass(_) | Object::GatewayClass(_) | Object::Namespace(_) => "",
            _ => meta.namespace.as_deref().unwrap_or("default"),
        };
        ObjectKey::new(namespace, meta.name.as_deref().unwrap_or_default())
    }
}

/// What changed between two snapshots, as the publisher needs to know it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Anything but EndpointSlices changed (TrafficPolicies included):
    /// recompile routes.
    pub routes: bool,
    /// Services whose EndpointSlices changed: swap their endpoint sets.
    pub endpoints: BTreeSet<ObjectKey>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        !self.routes && self.endpoints.is_empty()
    }

    /// Adds `other` to `self`.
    pub fn merge(&mut self, other: Changes) {
        self.routes |= other.routes;
        self.endpoints.extend(other.endpoints);
    }
}

/// The objects a routing table is compiled from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub ingress_classes: Map<String, Entry<IngressClass>>,
    pub ingresses: Map<ObjectKey, Entry<CompactIngress>>,
    pub services: Map<ObjectKey, Entry<CompactService>>,
    pub endpoint_slices: Map<ObjectKey, Entry<CompactSlice>>,
    /// Secrets of type `kubernetes.io/tls` and `Opaque` only.
    pub secrets: Map<ObjectKey, Entry<Secret>>,
    pub traffic_policies: Map<ObjectKey, Entry<TrafficPolicy>>,
    /// Gateway API (cluster-scoped: keyed by name).
    pub gateway_classes: Map<String, Entry<GatewayClass>>,
    pub gateways: Map<ObjectKey, Entry<Gateway>>,
    pub http_routes: Map<ObjectKey, Entry<HttpRoute>>,
    pub grpc_routes: Map<ObjectKey, Entry<GrpcRoute>>,
    pub reference_grants: Map<ObjectKey, Entry<ReferenceGrant>>,
    /// Namespaces by name (their labels select routes).
    pub namespaces: Map<String, Entry<Namespace>>,
    /// ConfigMaps: ingress-nginx settings and header lists.
    pub config_maps: Map<ObjectKey, Entry<ConfigMap>>,
    /// The EndpointSlice keys of each Service, sorted. A sorted `Vec`, not
    /// a `BTreeSet`: a Service has one slice or a few, and a set's first
    /// node costs half a kilobyte.
    slices_by_service: Map<ObjectKey, Vec<ObjectKey>>,
}

/// Puts `new` under `key` unless an equal object is there; says whether it
/// did.
fn replace<T: PartialEq>(
    map: &mut Map<ObjectKey, Entry<T>>,
    key: ObjectKey,
    origin: Arc<str>,
    new: T,
) -> bool {
    let differs = map.get(&key).is_none_or(|e| *e.object != new);
    if differs {
        let object = Arc::new(new);
        map.insert(key, Entry { origin, object });
    }
    differs
}

fn slice_service(slice: &CompactSlice, namespace: &str) -> Option<ObjectKey> {
    let name = slice.service.as_deref()?;
    Some(ObjectKey::new(namespace, name))
}

impl Snapshot {
    /// Inserts or replaces an object. Returns the origin of the object it
    /// replaced, if any (the caller reports duplicates).
    pub fn insert(&mut self, origin: Arc<str>, object: Object) -> Option<Arc<str>> {
        fn put<K: Ord + Clone, T>(
            map: &mut Map<K, Entry<T>>,
            key: K,
            origin: Arc<str>,
            object: T,
        ) -> Option<Arc<str>> {
            map.insert(
                key,
                Entry {
                    origin,
                    object: Arc::new(object),
                },
            )
            .map(|e| e.origin)
        }
        let key = object.key();
        match object {
            Object::IngressClass(o) => {
                put(&mut self.ingress_classes, key.name.to_string(), origin, o)
            }
            Object::Ingress(o) => put(&mut self.ingresses, key, origin, CompactIngress::from(o)),
            Object::Service(o) => put(&mut self.services, key, origin, CompactService::from(o)),
            Object::Secret(o) => put(&mut self.secrets, key, origin, o),
            Object::TrafficPolicy(o) => put(&mut self.traffic_policies, key, origin, o),
            Object::GatewayClass(o) => {
                put(&mut self.gateway_classes, key.name.to_string(), origin, o)
            }
            Object::Gateway(o) => put(&mut self.gateways, key, origin, o),
            Object::HttpRoute(o) => put(&mut self.http_routes, key, origin, o),
            Object::GrpcRoute(o) => put(&mut self.grpc_routes, key, origin, o),
            Object::ReferenceGrant(o) => put(&mut self.reference_grants, key, origin, o),
            Object::Namespace(o) => put(&mut self.namespaces, key.name.to_string(), origin, o),
            Object::ConfigMap(o) => put(&mut self.config_maps, key, origin, o),
            Object::EndpointSlice(o) => self.insert_slice(key, origin, CompactSlice::from(o)),
        }
    }

    fn insert_slice(
        &mut self,
        key: ObjectKey,
        origin: Arc<str>,
        slice: CompactSlice,
    ) -> Option<Arc<str>> {
        let old = self.remove_slice(&key);
        if let Some(svc) = slice_service(&slice, &key.namespace) {
            let keys = self.slices_by_service.entry(svc).or_default();
            if let Err(at) = keys.binary_search(&key) {
                // Exactly: a first push would make room for four keys,
                // and most Services have one slice.
                keys.reserve_exact(1);
                keys.insert(at, key.clone());
            }
        }
        self.endpoint_slices.insert(
            key,
            Entry {
                origin,
                object: Arc::new(slice),
            },
        );
        old
    }

    /// Inserts or replaces an object and says what that changed: nothing
    /// when an equal object is already there (a resync, or a change only to
    /// fields a provider strips or the compact forms drop), the endpoints
    /// of the Services an EndpointSlice belongs to (before and after), or
    /// routes.
    pub fn upsert(&mut self, origin: Arc<str>, object: Object) -> Changes {
        let key = object.key();
        let mut changes = Changes::default();
        match object {
            Object::EndpointSlice(new) => {
                let new = CompactSlice::from(new);
                let old = self.endpoint_slices.get(&key);
                if old.is_some_and(|e| *e.object == new) {
                    return changes;
                }
                for slice in old.map(|e| e.object.as_ref()).into_iter().chain([&new]) {
                    if let Some(svc) = slice_service(slice, &key.namespace) {
                        changes.endpoints.insert(svc);
                    }
                }
                self.insert_slice(key, origin, new);
            }
            Object::Ingress(new) => {
                changes.routes = replace(&mut self.ingresses, key, origin, new.into());
            }
            Object::Service(new) => {
                changes.routes = replace(&mut self.services, key, origin, new.into());
            }
            object => {
                changes.routes = self.differs(&key, &object);
                if changes.routes {
                    self.insert(origin, object);
                }
            }
        }
        changes
    }

    /// Whether `object` differs from the one held under `key` (or none is
    /// held). Ingresses, Services and EndpointSlices: see [`Self::upsert`].
    fn differs(&self, key: &ObjectKey, object: &Object) -> bool {
        fn differs<K, Q, T>(map: &Map<K, Entry<T>>, key: &Q, new: &T) -> bool
        where
            K: Ord + Clone + Borrow<Q>,
            Q: Ord + ?Sized,
            T: PartialEq,
        {
            map.get(key).is_none_or(|e| *e.object != *new)
        }
        match object {
            Object::IngressClass(new) => differs(&self.ingress_classes, &*key.name, new),
            Object::Secret(new) => differs(&self.secrets, key, new),
            Object::TrafficPolicy(new) => differs(&self.traffic_policies, key, new),
            Object::GatewayClass(new) => differs(&self.gateway_classes, &*key.name, new),
            Object::Gateway(new) => differs(&self.gateways, key, new),
            Object::HttpRoute(new) => differs(&self.http_routes, key, new),
            Object::GrpcRoute(new) => differs(&self.grpc_routes, key, new),
            Object::ReferenceGrant(new) => differs(&self.reference_grants, key, new),
            Object::Namespace(new) => differs(&self.namespaces, &*key.name, new),
            Object::ConfigMap(new) => differs(&self.config_maps, key, new),
            Object::Ingress(_) | Object::Service(_) | Object::EndpointSlice(_) => true,
        }
    }

    /// Removes an object and says what that changed (see [`Self::upsert`]).
    pub fn delete(&mut self, kind: &str, key: &ObjectKey) -> Changes {
        let mut changes = Changes::default();
        if kind == "EndpointSlice" {
            let service = self
                .endpoint_slices
                .get(key)
                .and_then(|e| slice_service(&e.object, &key.namespace));
            if self.remove_slice(key).is_some() {
                changes.endpoints.extend(service);
            }
        } else {
            changes.routes = self.remove(kind, key);
        }
        changes
    }

    /// Keys of the objects of one kind (for a provider's re-list).
    pub fn keys_of(&self, kind: &str) -> Vec<ObjectKey> {
        fn keys<K: Ord + Clone, T>(
            map: &Map<K, Entry<T>>,
            f: impl Fn(&K) -> ObjectKey,
        ) -> Vec<ObjectKey> {
            map.keys().map(f).collect()
        }
        match kind {
            "IngressClass" => keys(&self.ingress_classes, |n| ObjectKey::new("", n.clone())),
            "Ingress" => keys(&self.ingresses, ObjectKey::clone),
            "Service" => keys(&self.services, ObjectKey::clone),
            "EndpointSlice" => keys(&self.endpoint_slices, ObjectKey::clone),
            "Secret" => keys(&self.secrets, ObjectKey::clone),
            "TrafficPolicy" => keys(&self.traffic_policies, ObjectKey::clone),
            "GatewayClass" => keys(&self.gateway_classes, |n| ObjectKey::new("", n.clone())),
            "Gateway" => keys(&self.gateways, ObjectKey::clone),
            "HTTPRoute" => keys(&self.http_routes, ObjectKey::clone),
            "GRPCRoute" => keys(&self.grpc_routes, ObjectKey::clone),
            "ReferenceGrant" => keys(&self.reference_grants, ObjectKey::clone),
            "Namespace" => keys(&self.namespaces, |n| ObjectKey::new("", n.clone())),
            "ConfigMap" => keys(&self.config_maps, ObjectKey::clone),
            _ => Vec::new(),
        }
    }

    /// Removes an object by kind and key; returns whether it existed.
    pub fn remove(&mut self, kind: &str, key: &ObjectKey) -> bool {
        match kind {
            "IngressClass" => self.ingress_classes.remove(&*key.name).is_some(),
            "Ingress" => self.ingresses.remove(key).is_some(),
            "Service" => self.services.remove(key).is_some(),
            "EndpointSlice" => self.remove_slice(key).is_some(),
            "Secret" => self.secrets.remove(key).is_some(),
            "TrafficPolicy" => self.traffic_policies.remove(key).is_some(),
            "GatewayClass" => self.gateway_classes.remove(&*key.name).is_some(),
            "Gateway" => self.gateways.remove(key).is_some(),
            "HTTPRoute" => self.http_routes.remove(key).is_some(),
            "GRPCRoute" => self.grpc_routes.remove(key).is_some(),
            "ReferenceGrant" => self.reference_grants.remove(key).is_some(),
            "Namespace" => self.namespaces.remove(&*key.name).is_some(),
            "ConfigMap" => self.config_maps.remove(key).is_some(),
            _ => false,
        }
    }

    fn remove_slice(&mut self, key: &ObjectKey) -> Option<Arc<str>> {
        let old = self.endpoint_slices.remove(key)?;
        if let Some(svc) = slice_service(&old.object, &key.namespace) {
            if let Some(set) = self.slices_by_service.get_mut(&svc) {
                set.retain(|k| k != key);
                if set.is_empty() {
                    self.slices_by_service.remove(&svc);
                }
            }
        }
        Some(old.origin)
    }

    /// The EndpointSlices of one Service.
    pub fn slices_of<'a>(
        &'a self,
        service: &ObjectKey,
    ) -> impl Iterator<Item = &'a CompactSlice> + 'a {
        self.slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|k| self.endpoint_slices.get(k))
            .map(|e| e.object.as_ref())
    }

    /// The entries (with their `Arc`s, whose identity says "unchanged") of
    /// one Service's EndpointSlices, in key order.
    pub fn slice_entries_of<'a>(
        &'a self,
        service: &ObjectKey,
    ) -> impl Iterator<Item = &'a Entry<CompactSlice>> + 'a {
        self.slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|k| self.endpoint_slices.get(k))
    }

    /// Compares `self` (new) against `old`.
    pub fn changes_from(&self, old: &Snapshot) -> Changes {
        fn same<K: Ord + Clone, T: PartialEq>(a: &Map<K, Entry<T>>, b: &Map<K, Entry<T>>) -> bool {
            a.ptr_eq(b)
                || a.len() == b.len()
                    && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| {
                        ka == kb && (Arc::ptr_eq(&va.object, &vb.object) || va.object == vb.object)
                    })
        }
        let routes = !same(&self.ingress_classes, &old.ingress_classes)
            || !same(&self.ingresses, &old.ingresses)
            || !same(&self.services, &old.services)
            || !same(&self.secrets, &old.secrets)
            || !same(&self.traffic_policies, &old.traffic_policies)
            || !same(&self.gateway_classes, &old.gateway_classes)
            || !same(&self.gateways, &old.gateways)
            || !same(&self.http_routes, &old.http_routes)
            || !same(&self.grpc_routes, &old.grpc_routes)
            || !same(&self.reference_grants, &old.reference_grants)
            || !same(&self.namespaces, &old.namespaces)
            || !same(&self.config_maps, &old.config_maps);
        let mut endpoints = BTreeSet::new();
        let keys: BTreeSet<&ObjectKey> = self
            .endpoint_slices
            .keys()
            .chain(old.endpoint_slices.keys())
            .collect();
        for key in keys {
            let new = self.endpoint_slices.get(key);
            let before = old.endpoint_slices.get(key);
            let equal = match (new, before) {
                (Some(a), Some(b)) => Arc::ptr_eq(&a.object, &b.object) || a.object == b.object,
                _ => false,
            };
            if !equal {
                for entry in [new, before].into_iter().flatten() {
                    if let Some(svc) = slice_service(&entry.object, &key.namespace) {
                        endpoints.insert(svc);
                    }
                }
            }
        }
        Changes { routes, endpoints }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn keys_from_separate_equal_strings_share_their_allocations() {
        // Two separate allocations of each string.
        let (ns_a, name_a) = (String::from("intern-ns"), String::from("web"));
        let (ns_b, name_b) = (ns_a.clone(), name_a.clone());
        let a = ObjectKey::new(&ns_a, &name_a);
        let b = ObjectKey::new(ns_b, name_b);
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert!(Arc::ptr_eq(&a.name, &b.name));
        // Still compared, ordered and shown by content.
        assert_eq!(a, b);
        assert!(a < ObjectKey::new("intern-ns", "web2"));
        assert_eq!(a.to_string(), "intern-ns/web");
        assert_eq!(ObjectKey::new("", "class").to_string(), "class");
    }

    #[test]
    fn a_service_and_its_slice_index_share_the_key_strings() {
        let mut snapshot = Snapshot::default();
        let origin: Arc<str> = Arc::from("test");
        let service = Service {
            metadata: meta("intern-shop", "cart"),
            ..Service::default()
        };
        snapshot.insert(origin.clone(), Object::Service(service));
        let mut slice_meta = meta("intern-shop", "cart-x1");
        slice_meta.labels = Some([(SERVICE_NAME_LABEL.to_string(), "cart".to_string())].into());
        let slice = EndpointSlice {
            metadata: slice_meta,
            address_type: "IPv4".to_string(),
            endpoints: Vec::new(),
            ports: None,
        };
        snapshot.insert(origin, Object::EndpointSlice(slice));

        let (service_key, _) = snapshot.services.iter().next().expect("the Service");
        let (index_key, slices) = snapshot
            .slices_by_service
            .iter()
            .next()
            .expect("the slice index");
        assert_eq!(index_key, service_key);
        assert!(Arc::ptr_eq(&index_key.namespace, &service_key.namespace));
        assert!(Arc::ptr_eq(&index_key.name, &service_key.name));
        let (slice_key, _) = snapshot.endpoint_slices.iter().next().expect("the slice");
        assert!(Arc::ptr_eq(&slices[0].name, &slice_key.name));
        assert!(Arc::ptr_eq(&slice_key.namespace, &service_key.namespace));
    }
}
