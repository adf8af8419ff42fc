//! The compact form a [`Snapshot`](super::Snapshot) keeps of an Ingress:
//! the fields the compiler, `tollgate check`, the webhook and the status
//! writer read, in boxed slices and interned strings instead of
//! k8s-openapi's `Vec`s, `String`s, `BTreeMap`s and unused `Option`s.
//!
//! Invariants:
//! - A compact Ingress holds exactly what is read: name, namespace, uid,
//!   creation time and annotations; the class name, default backend, rules
//!   (host, paths: path, type, backend) and TLS entries (hosts, Secret
//!   name). Everything else (labels, owner references, managed fields,
//!   status...) is dropped, so two Ingresses that differ only there
//!   compare equal and trigger no recompile.
//! - Nothing a diagnostic needs is lost: an absent list stays distinct
//!   from an empty one, an unknown `pathType` keeps its text, a backend
//!   naming both a Service and a resource keeps both.
//! - The field paths keep their k8s-openapi shape (`spec.rules[].http.
//!   paths[].backend.service.port.number`...), so reading code reads the
//!   same as against the whole object.
//! - Names many objects repeat (namespace, Ingress name, class, Service
//!   names) are [`intern`](crate::intern::intern)ed: one allocation each,
//!   shared with the snapshot's keys and the table.
//! - An [`AnnotationMap`] is sorted by name with no name twice (as the map
//!   it comes from): [`AnnotationMap::get`] is a binary search.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::compact::{boxed, interned};
use crate::intern::intern;

/// An Ingress as the compiler reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactIngress {
    pub metadata: IngressMeta,
    pub spec: Option<IngressSpec>,
}

/// The fields of `metadata` that are read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngressMeta {
    pub name: Option<Arc<str>>,
    pub namespace: Option<Arc<str>>,
    /// Events name the object they regard.
    pub uid: Option<Box<str>>,
    /// The oldest Ingress wins a conflict.
    pub creation_timestamp: Option<Time>,
    pub annotations: Option<AnnotationMap>,
}

/// `metadata.annotations`, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AnnotationMap(Box<[(Box<str>, Box<str>)]>);

impl AnnotationMap {
    /// The value of one annotation.
    pub fn get(&self, name: &str) -> Option<&str> {
        let at = self.0.binary_search_by(|(k, _)| (**k).cmp(name)).ok()?;
        self.0.get(at).map(|(_, v)| &**v)
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(|(k, _)| &**k)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.into_iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One stored pair as borrowed strings.
fn pair(p: &(Box<str>, Box<str>)) -> (&str, &str) {
    (&p.0, &p.1)
}

impl<'a> IntoIterator for &'a AnnotationMap {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Box<str>, Box<str>)>,
        fn(&'a (Box<str>, Box<str>)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(pair)
    }
}

/// An object's annotations as decoded: already sorted with no name twice,
/// so the strings move in as they are.
impl From<BTreeMap<String, String>> for AnnotationMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        AnnotationMap(
            map.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for AnnotationMap {
    /// Sorts by name; of a name given twice, the last value is kept.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut all: Vec<(Box<str>, Box<str>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().into(), v.as_ref().into()))
            .collect();
        // Stable: equal names keep their order, so the last one given is
        // the last of its run.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(all.len());
        for pair in all {
            match out.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => out.push(pair),
            }
        }
        AnnotationMap(out.into_boxed_slice())
    }
}

/// The fields of `spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngressSpec {
    pub ingress_class_name: Option<Arc<str>>,
    pub default_backend: Option<IngressBackend>,
    pub rules: Option<Box<[IngressRule]>>,
    pub tls: Option<Box<[IngressTls]>>,
}

/// One rule: a host (or none) and its paths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngressRule {
    pub host: Option<Box<str>>,
    pub http: Option<HttpIngressRuleValue>,
}

/// A rule's `http`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpIngressRuleValue {
    pub paths: Box<[HttpIngressPath]>,
}

/// One path of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpIngressPath {
    pub path: Option<Box<str>>,
    /// As written: `Exact`, `Prefix`, `ImplementationSpecific`, or text
    /// validation refuses.
    pub path_type: Arc<str>,
    pub backend: IngressBackend,
}

/// A backend: a Service port, or a resource (refused by the compiler, but
/// kept to be named in its diagnostic).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngressBackend {
    pub service: Option<IngressServiceBackend>,
    pub resource: Option<Box<ResourceBackend>>,
}

/// A resource backend (`spec.rules[].http.paths[].backend.resource`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceBackend {
    pub api_group: Option<Box<str>>,
    pub kind: Box<str>,
    pub name: Box<str>,
}

/// A Service backend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngressServiceBackend {
    pub name: Arc<str>,
    pub port: Option<ServiceBackendPort>,
}

/// A Service port, by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceBackendPort {
    pub name: Option<Box<str>>,
    pub number: Option<i32>,
}

/// One TLS entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngressTls {
    pub hosts: Option<Box<[Box<str>]>>,
    pub secret_name: Option<Box<str>>,
}

fn slice<T, U: From<T>>(v: Option<Vec<T>>) -> Option<Box<[U]>> {
    v.map(|v| v.into_iter().map(U::from).collect())
}

impl From<k8s::ServiceBackendPort> for ServiceBackendPort {
    fn from(p: k8s::ServiceBackendPort) -> Self {
        Self {
            name: boxed(p.name),
            number: p.number,
        }
    }
}

impl From<k8s::IngressServiceBackend> for IngressServiceBackend {
    fn from(s: k8s::IngressServiceBackend) -> Self {
        Self {
            name: intern(&s.name),
            port: s.port.map(ServiceBackendPort::from),
        }
    }
}

impl From<k8s::IngressBackend> for IngressBackend {
    fn from(b: k8s::IngressBackend) -> Self {
        Self {
            service: b.service.map(IngressServiceBackend::from),
            resource: b.resource.map(|r| {
                Box::new(ResourceBackend {
                    api_group: boxed(r.api_group),
                    kind: r.kind.into(),
                    name: r.name.into(),
                })
            }),
        }
    }
}

impl From<k8s::HTTPIngressPath> for HttpIngressPath {
    fn from(p: k8s::HTTPIngressPath) -> Self {
        Self {
            path: boxed(p.path),
            path_type: intern(&p.path_type),
            backend: p.backend.into(),
        }
    }
}

impl From<k8s::IngressRule> for IngressRule {
    fn from(r: k8s::IngressRule) -> Self {
        Self {
            host: boxed(r.host),
            http: r.http.map(|h| HttpIngressRuleValue {
                paths: h.paths.into_iter().map(HttpIngressPath::from).collect(),
            }),
        }
    }
}

impl From<k8s::IngressTLS> for IngressTls {
    fn from(t: k8s::IngressTLS) -> Self {
        Self {
            hosts: t
                .hosts
                .map(|h| h.into_iter().map(String::into_boxed_str).collect()),
            secret_name: boxed(t.secret_name),
        }
    }
}

impl From<k8s::IngressSpec> for IngressSpec {
    fn from(s: k8s::IngressSpec) -> Self {
        Self {
            ingress_class_name: interned(s.ingress_class_name),
            default_backend: s.default_backend.map(IngressBackend::from),
            rules: slice(s.rules),
            tls: slice(s.tls),
        }
    }
}

impl From<k8s::Ingress> for CompactIngress {
    fn from(ingress: k8s::Ingress) -> Self {
        let meta = ingress.metadata;
        Self {
            metadata: IngressMeta {
                name: interned(meta.name),
                namespace: interned(meta.namespace),
                uid: boxed(meta.uid),
                creation_timestamp: meta.creation_timestamp,
                annotations: meta.annotations.map(AnnotationMap::from),
            },
            spec: ingress.spec.map(IngressSpec::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(yaml: &str) -> k8s::Ingress {
        serde_yaml::from_str(yaml).expect("test Ingress")
    }

    #[test]
    fn keeps_what_is_read_and_drops_the_rest() {
        let full = ingress(
            r#"
metadata:
  name: web
  namespace: shop
  uid: u-1
  labels: {app: web}
  annotations: {b: "2", a: "1"}
spec:
  ingressClassName: tollgate
  defaultBackend: {resource: {kind: Bucket, name: assets}}
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Sideways, backend: {service: {name: web, port: {name: http}}}}
  - host: other.example
  tls:
  - {hosts: [shop.example], secretName: shop-tls}
  - {}
"#,
        );
        let compact = CompactIngress::from(full.clone());
        assert_eq!(compact.metadata.name.as_deref(), Some("web"));
        assert_eq!(compact.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(compact.metadata.uid.as_deref(), Some("u-1"));
        let annotations = compact.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(
            annotations.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "2")]
        );
        assert_eq!(annotations.get("b"), Some("2"));
        assert_eq!(annotations.get("c"), None);
        let spec = compact.spec.as_ref().expect("spec");
        assert_eq!(spec.ingress_class_name.as_deref(), Some("tollgate"));
        let resource = spec
            .default_backend
            .as_ref()
            .and_then(|b| b.resource.as_ref());
        assert_eq!(resource.map(|r| &*r.kind), Some("Bucket"));
        let rules = spec.rules.as_deref().expect("rules");
        assert_eq!(rules.len(), 2);
        let path = &rules[0].http.as_ref().expect("http").paths[0];
        assert_eq!(&*path.path_type, "Sideways");
        let service = path.backend.service.as_ref().expect("service");
        assert_eq!(&*service.name, "web");
        assert_eq!(
            service.port.as_ref().and_then(|p| p.name.as_deref()),
            Some("http")
        );
        assert!(rules[1].http.is_none(), "a rule without http stays so");
        let tls = spec.tls.as_deref().expect("tls");
        assert_eq!(tls[0].secret_name.as_deref(), Some("shop-tls"));
        assert!(tls[1].hosts.is_none() && tls[1].secret_name.is_none());

        // Labels (and anything else not read) make no difference.
        let mut relabelled = full;
        relabelled.metadata.labels = None;
        relabelled.metadata.resource_version = Some("9".into());
        assert_eq!(CompactIngress::from(relabelled), compact);
    }

    #[test]
    fn names_are_shared() {
        let a = CompactIngress::from(ingress("metadata: {name: a, namespace: shared-ns}"));
        let b = CompactIngress::from(ingress("metadata: {name: b, namespace: shared-ns}"));
        let (Some(na), Some(nb)) = (&a.metadata.namespace, &b.metadata.namespace) else {
            panic!("namespaces")
        };
        assert!(Arc::ptr_eq(na, nb));
    }

    #[test]
    fn annotations_keep_the_last_of_a_name() {
        let a: AnnotationMap = [("x", "1"), ("a", "0"), ("x", "2")].into_iter().collect();
        assert_eq!(a.iter().collect::<Vec<_>>(), [("a", "0"), ("x", "2")]);
        assert_eq!(a.len(), 2);
        assert!(a.contains_key("a") && !a.contains_key("b"));
    }
}
