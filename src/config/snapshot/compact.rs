//! The compact forms a [`Snapshot`](super::Snapshot) keeps of Services and
//! EndpointSlices: in a large cluster they are most of the objects, and the
//! compiler reads a handful of their fields.
//!
//! Invariants:
//! - A compact form holds exactly what the compiler and the status writers
//!   read (ports, type, externalName, uid; the Service name label, address
//!   type, ports, the first address and conditions of every endpoint), and
//!   nothing else, so two objects that differ elsewhere compare equal and
//!   trigger no recompile or endpoint swap.
//! - The field paths the compiler reads keep their k8s-openapi shape
//!   (`spec.ports[].port`, `spec.type_`, ...), so reading code looks the
//!   same as against the full objects.
//! - Names many objects repeat (Service names, port names, types,
//!   `appProtocol`s) are [`intern`]ed: one allocation each, shared with
//!   the snapshot's keys.
//! - Conversion is total: any object converts; an IP-family slice's
//!   endpoint whose address is not an IP is dropped here (resolution
//!   skipped it anyway).

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};

use crate::intern::intern;

/// Label on an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service as the compiler reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactService {
    /// `metadata.uid` (Events name the object they regard).
    pub uid: Option<Box<str>>,
    pub spec: Option<CompactServiceSpec>,
}

/// The fields of `spec` the compiler reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactServiceSpec {
    pub type_: Option<Arc<str>>,
    pub external_name: Option<Box<str>>,
    pub ports: Option<Box<[CompactServicePort]>>,
}

/// One Service port: its name, number and `appProtocol`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactServicePort {
    pub name: Option<Arc<str>>,
    pub port: i32,
    pub app_protocol: Option<Arc<str>>,
}

/// An EndpointSlice as endpoint resolution reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactSlice {
    /// The `kubernetes.io/service-name` label: the Service it belongs to.
    pub service: Option<Arc<str>>,
    /// `addressType: FQDN`: addresses are DNS names.
    pub fqdn: bool,
    pub ports: Box<[SlicePort]>,
    pub endpoints: Box<[SliceEndpoint]>,
}

/// One EndpointSlice port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlicePort {
    pub name: Option<Arc<str>>,
    pub port: Option<i32>,
}

/// One endpoint: its first address and its conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    pub address: SliceAddress,
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

/// An endpoint's first address, parsed once at ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SliceAddress {
    Ip(IpAddr),
    /// An FQDN slice's name, without its trailing dots.
    Name(Arc<str>),
}

pub(super) fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

/// The shared copy of a name many objects repeat (port names, types,
/// Service names).
pub(super) fn interned(s: Option<String>) -> Option<Arc<str>> {
    s.as_deref().map(intern)
}

impl From<ServicePort> for CompactServicePort {
    fn from(p: ServicePort) -> Self {
        Self {
            name: interned(p.name),
            port: p.port,
            app_protocol: interned(p.app_protocol),
        }
    }
}

impl From<ServiceSpec> for CompactServiceSpec {
    fn from(spec: ServiceSpec) -> Self {
        Self {
            type_: interned(spec.type_),
            external_name: boxed(spec.external_name),
            ports: spec
                .ports
                .map(|ports| ports.into_iter().map(CompactServicePort::from).collect()),
        }
    }
}

impl From<Service> for CompactService {
    fn from(service: Service) -> Self {
        Self {
            uid: boxed(service.metadata.uid),
            spec: service.spec.map(CompactServiceSpec::from),
        }
    }
}

impl From<EndpointPort> for SlicePort {
    fn from(p: EndpointPort) -> Self {
        Self {
            name: interned(p.name),
            port: p.port,
        }
    }
}

impl SliceEndpoint {
    fn new(endpoint: Endpoint, fqdn: bool) -> Option<Self> {
        let first = endpoint.addresses.into_iter().next()?;
        let address = if fqdn {
            SliceAddress::Name(first.trim_end_matches('.').into())
        } else {
            SliceAddress::Ip(first.parse().ok()?)
        };
        let conditions = endpoint.conditions.unwrap_or_default();
        Some(Self {
            address,
            ready: conditions.ready,
            serving: conditions.serving,
            terminating: conditions.terminating,
        })
    }
}

impl From<EndpointSlice> for CompactSlice {
    fn from(slice: EndpointSlice) -> Self {
        let fqdn = slice.address_type == "FQDN";
        let service = slice
            .metadata
            .labels
            .and_then(|mut labels| labels.remove(SERVICE_NAME_LABEL))
            .as_deref()
            .map(intern);
        Self {
            service,
            fqdn,
            ports: slice
                .ports
                .into_iter()
                .flatten()
                .map(SlicePort::from)
                .collect(),
            endpoints: slice
                .endpoints
                .into_iter()
                .filter_map(|e| SliceEndpoint::new(e, fqdn))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointConditions;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(address_type: &str, addresses: &[&str], node: &str) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                labels: Some(
                    [
                        (SERVICE_NAME_LABEL.to_string(), "web".to_string()),
                        ("app".to_string(), "web".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            address_type: address_type.into(),
            endpoints: addresses
                .iter()
                .map(|a| Endpoint {
                    addresses: vec![a.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: None,
                        terminating: Some(false),
                    }),
                    node_name: Some(node.into()),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                ..Default::default()
            }]),
        }
    }

    #[test]
    fn a_slice_keeps_what_resolution_reads_and_nothing_else() {
        let compact = CompactSlice::from(slice("IPv4", &["10.0.0.1", "not-an-ip"], "n1"));
        assert_eq!(compact.service.as_deref(), Some("web"));
        assert!(!compact.fqdn);
        assert_eq!(compact.ports.len(), 1);
        assert_eq!(compact.ports[0].port, Some(8080));
        assert_eq!(compact.endpoints.len(), 1, "the non-IP address is dropped");
        assert_eq!(
            compact.endpoints[0],
            SliceEndpoint {
                address: SliceAddress::Ip([10, 0, 0, 1].into()),
                ready: Some(true),
                serving: None,
                terminating: Some(false),
            }
        );
        // Another node name or label: the same compact slice.
        assert_eq!(
            compact,
            CompactSlice::from(slice("IPv4", &["10.0.0.1", "not-an-ip"], "n2"))
        );
    }

    #[test]
    fn fqdn_names_lose_their_trailing_dot() {
        let compact = CompactSlice::from(slice("FQDN", &["db.example.com."], "n1"));
        assert!(compact.fqdn);
        assert_eq!(
            compact.endpoints[0].address,
            SliceAddress::Name("db.example.com".into())
        );
    }

    #[test]
    fn a_service_keeps_ports_type_and_uid() {
        let service = Service {
            metadata: ObjectMeta {
                uid: Some("u-1".into()),
                annotations: Some([("a".to_string(), "b".to_string())].into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("db.example.com".into()),
                cluster_ip: Some("10.96.0.1".into()),
                ports: Some(vec![ServicePort {
                    name: Some("grpc".into()),
                    port: 50051,
                    app_protocol: Some("kubernetes.io/h2c".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let compact = CompactService::from(service);
        assert_eq!(compact.uid.as_deref(), Some("u-1"));
        let spec = compact.spec.as_ref().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
        assert_eq!(spec.external_name.as_deref(), Some("db.example.com"));
        let port = spec.ports.as_ref().and_then(|p| p.first()).expect("port");
        assert_eq!(port.port, 50051);
        assert_eq!(port.name.as_deref(), Some("grpc"));
        assert_eq!(port.app_protocol.as_deref(), Some("kubernetes.io/h2c"));
    }
}
