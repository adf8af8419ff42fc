//! Service + EndpointSlices → endpoint addresses for one Service port.
//!
//! Invariants:
//! - Pure; costs O(slices of that Service).
//! - Only endpoints whose `conditions.ready` is not `false` are used; when a
//!   Service has none, endpoints that are `serving` and `terminating` are
//!   used instead (as kube-proxy does), so a rollout causes no 503s.
//! - The EndpointSlice port is the one whose name equals the Service port's
//!   name (both may be empty for single-port Services).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::snapshot::{CompactService, CompactServicePort, CompactSlice, SliceAddress};
use crate::table::upstream::{EndpointAddr, PortRef};

/// Why a backend cannot be resolved to a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortProblem {
    NoSuchPort(PortRef),
    ExternalNameWithoutHost,
}

impl std::fmt::Display for PortProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortProblem::NoSuchPort(PortRef::Number(n)) => {
                write!(f, "the Service has no port {n}; requests get 503")
            }
            PortProblem::NoSuchPort(PortRef::Name(n)) => {
                write!(f, "the Service has no port named `{n}`; requests get 503")
            }
            PortProblem::ExternalNameWithoutHost => {
                f.write_str("ExternalName Service without spec.externalName; requests get 503")
            }
        }
    }
}

fn find_port<'a>(service: &'a CompactService, port: &PortRef) -> Option<&'a CompactServicePort> {
    let ports = service.spec.as_ref()?.ports.as_ref()?;
    ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

/// Resolves the endpoints behind `service`'s `port`.
pub fn resolve<'a>(
    service: &CompactService,
    port: &PortRef,
    slices: impl Iterator<Item = &'a CompactSlice>,
) -> Result<Vec<EndpointAddr>, PortProblem> {
    let spec = service.spec.as_ref();
    let service_port = find_port(service, port);
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        let host = spec
            .and_then(|s| s.external_name.as_deref())
            .filter(|h| !h.is_empty())
            .ok_or(PortProblem::ExternalNameWithoutHost)?;
        let number = match (port, service_port) {
            (PortRef::Number(n), _) => *n,
            (PortRef::Name(_), Some(p)) => p.port,
            (PortRef::Name(_), None) => return Err(PortProblem::NoSuchPort(port.clone())),
        };
        let number = u16::try_from(number).map_err(|_| PortProblem::NoSuchPort(port.clone()))?;
        return Ok(vec![EndpointAddr::Dns {
            host: host.trim_end_matches('.').into(),
            port: number,
        }]);
    }
    let service_port = service_port.ok_or_else(|| PortProblem::NoSuchPort(port.clone()))?;
    let port_name = service_port.name.as_deref().unwrap_or("");

    let mut ready = BTreeSet::new();
    let mut fallback = BTreeSet::new();
    for slice in slices {
        let Some(number) = slice
            .ports
            .iter()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in slice.endpoints.iter() {
            let addr = match &endpoint.address {
                SliceAddress::Name(host) if slice.fqdn => EndpointAddr::Dns {
                    host: host.clone(),
                    port: number,
                },
                SliceAddress::Ip(ip) if !slice.fqdn => {
                    EndpointAddr::Socket(SocketAddr::new(*ip, number))
                }
                _ => continue,
            };
            if endpoint.ready.unwrap_or(true) {
                ready.insert(addr);
            } else if endpoint.serving == Some(true) && endpoint.terminating == Some(true) {
                fallback.insert(addr);
            }
        }
    }
    let chosen = if ready.is_empty() { fallback } else { ready };
    Ok(chosen.into_iter().collect())
}
