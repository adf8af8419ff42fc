//! `tollgate check --assume-external-refs`: the objects an Ingress names
//! but the manifests do not hold (Services, TLS, basic-auth and
//! client-CA Secrets, header ConfigMaps, the `--configmap` ConfigMap) are assumed present, so
//! an Ingress-only repository lints without its cluster.
//!
//! Invariants:
//! - Only what is missing is added; an object the manifests hold is never
//!   replaced. Each assumed object is named in the report.
//! - Assumed objects are the least that makes a reference resolve: a
//!   Service with the referenced ports and no endpoints, a TLS Secret with
//!   a certificate generated for the Ingress's TLS hosts, a basic-auth
//!   Secret with one placeholder user, a client-CA Secret whose `ca.crt`
//!   is a CA generated here (no client holds its key), an empty ConfigMap.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use crate::config::annotations::{self, LimitStatuses};
use crate::config::nginx_config::config_map_ref;
use crate::config::snapshot::{IngressServiceBackend, ServiceBackendPort, OPAQUE_SECRET_TYPE};
use crate::config::tls::TLS_SECRET_TYPE;
use crate::config::{Object, ObjectKey, Snapshot};

/// An htpasswd line nobody can use by accident (`{SHA}` of a random
/// string, user `assumed`).
const PLACEHOLDER_USER: &str = "assumed:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=";

fn meta(key: &ObjectKey) -> ObjectMeta {
    ObjectMeta {
        name: Some(key.name.to_string()),
        namespace: Some(key.namespace.to_string()),
        ..ObjectMeta::default()
    }
}

/// A Service port as an Ingress references it: number, name.
type PortRef = (Option<i32>, Option<String>);

/// What the Ingresses reference: Services (with the ports referenced),
/// TLS Secrets (with their hosts), basic-auth Secrets (auth-map or not),
/// ConfigMaps.
#[derive(Default)]
struct Wanted {
    services: BTreeMap<ObjectKey, BTreeSet<PortRef>>,
    tls: BTreeMap<ObjectKey, BTreeSet<String>>,
    auth: BTreeMap<ObjectKey, bool>,
    /// `auth-tls-secret` Secrets (client CAs).
    client_cas: BTreeSet<ObjectKey>,
    config_maps: BTreeSet<ObjectKey>,
}

impl Wanted {
    fn service(&mut self, namespace: &str, backend: &IngressServiceBackend) {
        let port = backend.port.as_ref().map(|p: &ServiceBackendPort| {
            (
                p.number,
                p.name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
            )
        });
        self.services
            .entry(ObjectKey::new(namespace, &*backend.name))
            .or_default()
            .insert(port.unwrap_or((Some(80), None)));
    }
}

/// Adds what the Ingresses of `snapshot` (and `configmap`) name but the
/// snapshot lacks; returns `Kind namespace/name` of each object added.
pub fn assume_external_refs(snapshot: &mut Snapshot, configmap: Option<&ObjectKey>) -> Vec<String> {
    let mut wanted = Wanted::default();
    wanted.config_maps.extend(configmap.cloned());
    for (key, entry) in &snapshot.ingresses {
        let ingress = &entry.object;
        let ns = &*key.namespace;
        if let Some(spec) = &ingress.spec {
            if let Some(svc) = spec
                .default_backend
                .as_ref()
                .and_then(|b| b.service.as_ref())
            {
                wanted.service(ns, svc);
            }
            for path in spec
                .rules
                .iter()
                .flatten()
                .filter_map(|r| r.http.as_ref())
                .flat_map(|h| h.paths.iter())
            {
                if let Some(svc) = &path.backend.service {
                    wanted.service(ns, svc);
                }
            }
            for tls in spec.tls.iter().flatten() {
                if let Some(name) = &tls.secret_name {
                    wanted
                        .tls
                        .entry(ObjectKey::new(ns, &**name))
                        .or_default()
                        .extend(tls.hosts.iter().flatten().map(|h| h.to_string()));
                }
            }
        }
        let (parsed, _) = annotations::parse(
            ingress.metadata.annotations.as_ref(),
            LimitStatuses::default(),
        );
        if let Some(spec) = &parsed.basic_auth {
            let name = spec.secret.rsplit('/').next().unwrap_or(&spec.secret);
            wanted.auth.insert(ObjectKey::new(ns, name), spec.map);
        }
        if let Some(spec) = &parsed.client_cert {
            let (ca_ns, name) = spec.secret.split_once('/').unwrap_or((ns, &spec.secret));
            wanted.client_cas.insert(ObjectKey::new(ca_ns, name));
        }
        if let Some(name) = &parsed.default_backend {
            wanted
                .services
                .entry(ObjectKey::new(ns, &**name))
                .or_default()
                .insert((Some(80), None));
        }
        if let Some(value) = &parsed.headers.custom_headers {
            wanted.config_maps.insert(config_map_ref(value, ns));
        }
    }
    let mut added = Vec::new();
    let origin: std::sync::Arc<str> = "--assume-external-refs".into();
    for (key, ports) in wanted.services {
        if snapshot.services.contains_key(&key) {
            continue;
        }
        let ports = ports
            .into_iter()
            .enumerate()
            .map(|(i, (number, name))| ServicePort {
                port: number.unwrap_or(80 + i32::try_from(i).unwrap_or(0)),
                name: Some(name.unwrap_or_else(|| format!("port-{i}"))),
                ..ServicePort::default()
            })
            .collect();
        let service = Service {
            metadata: meta(&key),
            spec: Some(ServiceSpec {
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        snapshot.insert(origin.clone(), Object::Service(service));
        added.push(format!("Service {key}"));
    }
    for (key, hosts) in wanted.tls {
        if snapshot.secrets.contains_key(&key) {
            continue;
        }
        let mut names: Vec<String> = hosts.into_iter().collect();
        if names.is_empty() {
            names.push("assumed.invalid".into());
        }
        let Ok(cert) = rcgen::generate_simple_self_signed(names) else {
            continue;
        };
        let data = [
            ("tls.crt", cert.cert.pem()),
            ("tls.key", cert.signing_key.serialize_pem()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
        .collect();
        let secret = Secret {
            metadata: meta(&key),
            type_: Some(TLS_SECRET_TYPE.into()),
            data: Some(data),
            ..Secret::default()
        };
        snapshot.insert(origin.clone(), Object::Secret(secret));
        added.push(format!("Secret {key}"));
    }
    for (key, map) in wanted.auth {
        if snapshot.secrets.contains_key(&key) {
            continue;
        }
        let (user, hash) = PLACEHOLDER_USER.split_once(':').unwrap_or(("assumed", ""));
        let data = if map {
            [(user.to_string(), hash.to_string())].into()
        } else {
            [("auth".to_string(), PLACEHOLDER_USER.to_string())].into()
        };
        let secret = Secret {
            metadata: meta(&key),
            type_: Some(OPAQUE_SECRET_TYPE.into()),
            string_data: Some(data),
            ..Secret::default()
        };
        snapshot.insert(origin.clone(), Object::Secret(secret));
        added.push(format!("Secret {key}"));
    }
    for key in wanted.client_cas {
        if snapshot.secrets.contains_key(&key) {
            continue;
        }
        let Ok(ca) = rcgen::generate_simple_self_signed(vec!["assumed.invalid".to_string()]) else {
            continue;
        };
        let secret = Secret {
            metadata: meta(&key),
            type_: Some(OPAQUE_SECRET_TYPE.into()),
            string_data: Some([("ca.crt".to_string(), ca.cert.pem())].into()),
            ..Secret::default()
        };
        snapshot.insert(origin.clone(), Object::Secret(secret));
        added.push(format!("Secret {key}"));
    }
    for key in wanted.config_maps {
        if snapshot.config_maps.contains_key(&key) {
            continue;
        }
        let config_map = ConfigMap {
            metadata: meta(&key),
            ..ConfigMap::default()
        };
        snapshot.insert(origin.clone(), Object::ConfigMap(config_map));
        added.push(format!("ConfigMap {key}"));
    }
    added
}
