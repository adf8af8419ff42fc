//! Backends: the Services an Ingress routes to, as upstreams. How they are
//! spoken to (`backend-protocol`), balanced (`load-balance`, hashing) and
//! verified (backend CA), and their endpoints.
//!
//! Invariants:
//! - One upstream per distinct [`UpstreamKey`] per compile; endpoint
//!   resolutions are reused across compiles while the Service and its
//!   EndpointSlices are the very same objects (`Arc` identity).
//! - A backend that cannot be resolved (no Service, no such port) still
//!   gets an upstream, without endpoints: its routes answer 503 and a
//!   warning says why. The Ingress is not rejected.
//! - Backend TLS verification fails closed: a CA that is missing, unusable
//!   or in another namespace yields an upstream that answers 503, never an
//!   unverified connection.

use std::sync::Arc;

use crate::config::snapshot::{CompactIngress, IngressBackend};

use super::annotations::parser::annotation;
use super::builder::Builder;
use super::certificate::parse_ca;
use super::compiled::Resolved;
use super::diagnostic::Severity;
use super::problem::{Field, Problem, Reason, Subject};
use super::snapshot::{ObjectKey, Snapshot};
use crate::intern::intern;
use crate::table::policy::RoutePolicy;
use crate::table::upstream::{
    BackendProtocol, BackendVerify, EndpointAddr, LbAlgorithm, PortRef, TrustAnchors, UpstreamKey,
    UpstreamSpec,
};
use crate::table::{Route, RouteKind, UpstreamId};

/// Annotation selecting the load-balancing algorithm of an Ingress's backends.
pub const LOAD_BALANCE_ANNOTATION: &str = "tollgate.dev/load-balance";
/// ingress-nginx's equivalent, honoured for migrated Ingresses.
pub const NGINX_LOAD_BALANCE_ANNOTATION: &str = "nginx.ingress.kubernetes.io/load-balance";
/// `HTTP | HTTPS | AUTO_HTTP | H2C | GRPC | GRPCS` (`FCGI` is refused): the
/// protocol spoken to the backends.
pub const BACKEND_PROTOCOL_ANNOTATION: &str = "tollgate.dev/backend-protocol";
pub const NGINX_BACKEND_PROTOCOL_ANNOTATION: &str = "nginx.ingress.kubernetes.io/backend-protocol";
/// A TLS Secret (in the Ingress's namespace) whose `ca.crt` verifies
/// HTTPS/GRPCS backends; `backend-tls-name` is the name they must present
/// (default `<service>.<namespace>.svc`).
pub const BACKEND_CA_ANNOTATION: &str = "tollgate.dev/backend-ca-secret";
pub const BACKEND_TLS_NAME_ANNOTATION: &str = "tollgate.dev/backend-tls-name";
pub const NGINX_PROXY_SSL_SECRET: &str = "nginx.ingress.kubernetes.io/proxy-ssl-secret";
pub const NGINX_PROXY_SSL_VERIFY: &str = "nginx.ingress.kubernetes.io/proxy-ssl-verify";
pub const NGINX_PROXY_SSL_NAME: &str = "nginx.ingress.kubernetes.io/proxy-ssl-name";

/// How an Ingress's backends are spoken to.
pub(super) struct BackendPolicy {
    pub lb: LbAlgorithm,
    pub protocol: BackendProtocol,
    /// `AUTO_HTTP`: `protocol` is HTTP, and requests that came over TLS go
    /// to each backend's HTTPS twin ([`Builder::tls_twin`]), as
    /// ingress-nginx's `proxy_pass $scheme://`.
    pub auto_http: bool,
    /// CA Secret and server name to verify TLS backends with.
    pub verify: Option<(ObjectKey, Option<String>)>,
}

/// The Service and port a (validated) backend names.
pub(super) fn port_ref(backend: &IngressBackend) -> Option<(&str, PortRef)> {
    let svc = backend.service.as_ref()?;
    let port = svc.port.as_ref()?;
    let port = match (port.number, &port.name) {
        (Some(n), _) => PortRef::Number(n),
        (None, Some(name)) => PortRef::Name(name.to_string()),
        (None, None) => return None,
    };
    Some((&*svc.name, port))
}

/// `AUTO_HTTP`: the client's scheme, HTTP or HTTPS (ingress-nginx's
/// `proxy_pass $scheme://`).
const AUTO_HTTP: &str = "AUTO_HTTP";

/// Why an Ingress's `backend-protocol` is not used as written.
enum ProtocolProblem {
    /// Served over HTTP with a warning (an unknown value).
    Warn(Problem),
    /// The Ingress is rejected: no fallback can talk to such a backend
    /// (`FCGI`, as the `fastcgi-*` annotations).
    Reject(Problem),
}

/// `backend-protocol`: how to speak to this Ingress's backends; `Ok(None)`
/// for `AUTO_HTTP`.
fn backend_protocol(ingress: &CompactIngress) -> Result<Option<BackendProtocol>, ProtocolProblem> {
    for name in [
        BACKEND_PROTOCOL_ANNOTATION,
        NGINX_BACKEND_PROTOCOL_ANNOTATION,
    ] {
        if let Some(value) = annotation(ingress, name) {
            let problem = |reason| Problem::new(Field::annotation(name), reason);
            return match value.to_ascii_uppercase().as_str() {
                "HTTP" => Ok(Some(BackendProtocol::Http)),
                "HTTPS" => Ok(Some(BackendProtocol::Https)),
                "H2C" => Ok(Some(BackendProtocol::H2c)),
                "GRPC" => Ok(Some(BackendProtocol::Grpc)),
                "GRPCS" => Ok(Some(BackendProtocol::Grpcs)),
                AUTO_HTTP => Ok(None),
                "FCGI" => Err(ProtocolProblem::Reject(problem(
                    Reason::FastCgiBackendProtocol,
                ))),
                other => Err(ProtocolProblem::Warn(problem(
                    Reason::UnknownBackendProtocol(other.to_string()),
                ))),
            };
        }
    }
    Ok(Some(BackendProtocol::Http))
}

/// A `backend-protocol` that rejects the Ingress (fail closed: no fallback
/// can talk to its backends), for the selection of the versions served.
pub(super) fn backend_protocol_refusal(ingress: &CompactIngress) -> Option<Problem> {
    match backend_protocol(ingress) {
        Err(ProtocolProblem::Reject(problem)) => Some(problem),
        Ok(_) | Err(ProtocolProblem::Warn(_)) => None,
    }
}

/// `load-balance`: the algorithm over this Ingress's endpoints.
fn lb_algorithm(ingress: &CompactIngress) -> Result<LbAlgorithm, Problem> {
    let annotations = ingress.metadata.annotations.as_ref();
    for name in [LOAD_BALANCE_ANNOTATION, NGINX_LOAD_BALANCE_ANNOTATION] {
        if let Some(value) = annotations.and_then(|a| a.get(name)) {
            return match value.trim() {
                "round-robin" | "round_robin" => Ok(LbAlgorithm::RoundRobin),
                "p2c-ewma" | "ewma" => Ok(LbAlgorithm::P2cEwma),
                other => Err(Problem::new(
                    Field::annotation(name),
                    Reason::UnknownLoadBalance(other.to_string()),
                )),
            };
        }
    }
    Ok(LbAlgorithm::RoundRobin)
}

/// Whether the Ingress sets a load-balancing annotation at all.
pub(super) fn has_lb_annotation(ingress: &CompactIngress) -> bool {
    [LOAD_BALANCE_ANNOTATION, NGINX_LOAD_BALANCE_ANNOTATION]
        .iter()
        .any(|a| annotation(ingress, a).is_some())
}

impl Builder<'_> {
    /// The backend policy of an Ingress. `lb`: the algorithm decided
    /// elsewhere (a TrafficPolicy, hashing), else the annotation's. `warn`:
    /// whether bad annotation values are reported (a canary's are not).
    pub(super) fn backend_policy(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        ingress: &CompactIngress,
        lb: Option<LbAlgorithm>,
        warn: bool,
    ) -> BackendPolicy {
        let lb = match lb.map_or_else(|| lb_algorithm(ingress), Ok) {
            Ok(lb) => lb,
            Err(problem) => {
                if warn {
                    self.warn(key, origin, problem);
                }
                LbAlgorithm::RoundRobin
            }
        };
        let protocol = match backend_protocol(ingress) {
            Ok(p) => p,
            Err(ProtocolProblem::Warn(problem)) => {
                if warn {
                    self.warn(key, origin, problem);
                }
                Some(BackendProtocol::Http)
            }
            // Refused before the Ingress is selected for serving
            // ([`backend_protocol_refusal`]): never compiled.
            Err(ProtocolProblem::Reject(_)) => Some(BackendProtocol::Http),
        };
        // AUTO_HTTP's TLS twins are verified as HTTPS backends are.
        let tls = protocol.unwrap_or(BackendProtocol::Https);
        let verify = self.backend_verify(key, origin, ingress, tls);
        BackendPolicy {
            lb,
            protocol: protocol.unwrap_or(BackendProtocol::Http),
            auto_http: protocol.is_none(),
            verify,
        }
    }

    /// [`resolve_upstream`], memoized across compiles by object identity.
    pub(super) fn resolve(&mut self, key: &UpstreamKey) -> Result<Vec<EndpointAddr>, Reason> {
        let svc_key = ObjectKey::new(key.namespace.clone(), key.service.clone());
        let Some(service) = self.snapshot.services.get(&svc_key) else {
            return resolve_upstream(self.snapshot, key);
        };
        let slices = self.snapshot.slice_entries_of(&svc_key);
        if let Some(memo) = self.last_good.endpoints.get(key) {
            let mut same = Arc::ptr_eq(&memo.service, &service.object);
            let mut remembered = memo.slices.iter();
            for entry in slices {
                same &= remembered
                    .next()
                    .is_some_and(|s| Arc::ptr_eq(s, &entry.object));
                if !same {
                    break;
                }
            }
            if same && remembered.next().is_none() {
                let endpoints = memo.endpoints.clone();
                self.out
                    .last_good
                    .endpoints
                    .insert(key.clone(), memo.clone());
                return Ok(endpoints);
            }
        }
        let endpoints = resolve_upstream(self.snapshot, key)?;
        let memo = Arc::new(Resolved {
            service: service.object.clone(),
            slices: self
                .snapshot
                .slice_entries_of(&svc_key)
                .map(|e| e.object.clone())
                .collect(),
            endpoints: endpoints.clone(),
        });
        self.out.last_good.endpoints.insert(key.clone(), memo);
        Ok(endpoints)
    }

    /// The upstream for a backend, created on first use; warns (on the
    /// Ingress, at `field.service`) when the Service or port cannot be
    /// resolved.
    pub(super) fn upstream(
        &mut self,
        ingress: &ObjectKey,
        origin: &Option<Arc<str>>,
        field: &Field,
        service: &str,
        port: PortRef,
        policy: &BackendPolicy,
    ) -> UpstreamId {
        let verify = policy.verify.as_ref().map(|(ca, name)| BackendVerify {
            ca_secret: ca.to_string(),
            server_name: name
                .clone()
                .unwrap_or_else(|| format!("{service}.{}.svc", ingress.namespace)),
        });
        let key = UpstreamKey {
            namespace: ingress.namespace.clone(),
            service: intern(service),
            port,
            lb: policy.lb,
            protocol: policy.protocol,
            verify,
        };
        if let Some(&id) = self.upstreams.get(&key) {
            return id;
        }
        let trust = match &policy.verify {
            None => TrustAnchors::Unverified,
            Some((ca, _)) => self.trust_anchors(ca, ingress, origin),
        };
        let endpoints = match self.resolve(&key) {
            Ok(endpoints) => endpoints,
            Err(reason) => {
                self.warn(
                    ingress,
                    origin,
                    Problem::new(field.clone().service(), reason),
                );
                Vec::new()
            }
        };
        let id = UpstreamId::try_from(self.out.upstreams.len()).unwrap_or(UpstreamId::MAX);
        self.out.upstreams.push(UpstreamSpec {
            label: intern(&key.to_string()),
            key: key.clone(),
            endpoints,
            trust,
        });
        self.upstreams.insert(key, id);
        id
    }

    /// `AUTO_HTTP`: `policy` with the HTTPS twin of a route's backend (same
    /// Service, port and balancing), which takes the requests that came
    /// over TLS; `policy` itself for any other protocol. Called after the
    /// HTTP upstream was made: the twin's problems (resolution, CA) are
    /// that upstream's, already reported.
    pub(super) fn with_tls_twin(
        &mut self,
        ingress: &ObjectKey,
        origin: &Option<Arc<str>>,
        field: &Field,
        (service, port): (&str, PortRef),
        backend: &BackendPolicy,
        policy: &Arc<RoutePolicy>,
    ) -> Arc<RoutePolicy> {
        if !backend.auto_http {
            return policy.clone();
        }
        let tls = BackendPolicy {
            lb: backend.lb,
            protocol: BackendProtocol::Https,
            auto_http: false,
            verify: backend.verify.clone(),
        };
        let reported = self.out.diagnostics.len();
        let twin = self.upstream(ingress, origin, field, service, port, &tls);
        self.out.diagnostics.truncate(reported);
        Arc::new(RoutePolicy {
            tls_upstream: Some(twin),
            ..(**policy).clone()
        })
    }

    /// The label (`namespace/service:port`) of an upstream.
    pub(super) fn upstream_label(&self, id: UpstreamId) -> Arc<str> {
        self.out
            .upstreams
            .get(id as usize)
            .map(|u| u.label.clone())
            .unwrap_or_else(|| "".into())
    }

    /// The CAs in a TLS Secret's `ca.crt`, for verifying HTTPS backends.
    /// Fails closed: an unusable CA blocks the upstream (503), it never
    /// falls back to an unverified connection.
    fn trust_anchors(
        &mut self,
        ca: &ObjectKey,
        ingress: &ObjectKey,
        origin: &Option<Arc<str>>,
    ) -> TrustAnchors {
        if let Some(roots) = self.roots.get(ca) {
            return roots.clone();
        }
        let parsed = match self.snapshot.secrets.get(ca) {
            None => Err(Reason::CaSecretNotFound(ca.clone())),
            Some(e) => parse_ca(&e.object).map_err(Reason::UnusableCa),
        };
        let anchors = match parsed {
            Ok(roots) => TrustAnchors::Roots(Arc::new(roots)),
            Err(reason) => {
                let field = Field::annotation(BACKEND_CA_ANNOTATION);
                self.reject(ingress, origin, Problem::new(field, reason));
                TrustAnchors::Unusable
            }
        };
        self.roots.insert(ca.clone(), anchors.clone());
        anchors
    }

    /// Backend certificate verification from the annotations:
    /// `tollgate.dev/backend-ca-secret` (+ `tollgate.dev/backend-tls-name`),
    /// or ingress-nginx's `proxy-ssl-secret` with `proxy-ssl-verify: "on"`
    /// (+ `proxy-ssl-name`). The CA Secret must be in the Ingress's
    /// namespace; anything else fails closed.
    fn backend_verify(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        ingress: &CompactIngress,
        protocol: BackendProtocol,
    ) -> Option<(ObjectKey, Option<String>)> {
        let (field, reference) = match annotation(ingress, BACKEND_CA_ANNOTATION) {
            Some(name) => (BACKEND_CA_ANNOTATION, name.to_string()),
            None => match (
                annotation(ingress, NGINX_PROXY_SSL_SECRET),
                annotation(ingress, NGINX_PROXY_SSL_VERIFY),
            ) {
                (Some(secret), Some("on")) => (NGINX_PROXY_SSL_SECRET, secret.to_string()),
                _ => return None,
            },
        };
        let name = annotation(ingress, BACKEND_TLS_NAME_ANNOTATION)
            .or_else(|| annotation(ingress, NGINX_PROXY_SSL_NAME))
            .map(str::to_string);
        if !protocol.is_tls() {
            self.warn(
                key,
                origin,
                Problem::new(
                    Field::annotation(field),
                    Reason::NoBackendTls(protocol.as_str()),
                ),
            );
            return None;
        }
        let secret = match reference.split_once('/') {
            None => ObjectKey::new(key.namespace.clone(), reference),
            Some((ns, name)) if ns == &*key.namespace => ObjectKey::new(ns, name),
            Some(_) => {
                // Fail closed: point verification at a Secret that cannot
                // exist here, so the backends get 503, not an unverified
                // connection.
                self.reject(
                    key,
                    origin,
                    Problem::new(
                        Field::annotation(field),
                        Reason::CaSecretElsewhere {
                            reference,
                            namespace: key.namespace.to_string(),
                        },
                    ),
                );
                ObjectKey::new(key.namespace.clone(), "")
            }
        };
        Some((secret, name))
    }

    /// The upstream of a Service named by an annotation, in the Ingress's
    /// namespace, on its first port.
    pub(super) fn named_service_upstream(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        field: Field,
        name: &str,
        backend: &BackendPolicy,
    ) -> Option<UpstreamId> {
        if name.contains('/') {
            self.warn(
                key,
                origin,
                Problem::new(field, Reason::ServiceElsewhere(name.to_string())),
            );
            return None;
        }
        let svc = ObjectKey::new(key.namespace.clone(), name);
        let Some(port) = self.first_port(&svc) else {
            self.warn(
                key,
                origin,
                Problem::new(field, Reason::NoServicePorts(svc)),
            );
            return None;
        };
        let plain = BackendPolicy {
            lb: LbAlgorithm::RoundRobin,
            protocol: backend.protocol,
            auto_http: false,
            verify: backend.verify.clone(),
        };
        Some(self.upstream(key, origin, &field, name, PortRef::Number(port), &plain))
    }

    /// The first port of a Service, for backends named without one.
    fn first_port(&self, service: &ObjectKey) -> Option<i32> {
        self.snapshot
            .services
            .get(service)?
            .object
            .spec
            .as_ref()?
            .ports
            .as_ref()?
            .first()
            .map(|p| p.port)
    }

    /// `--default-backend-service`: the route of requests nothing else
    /// matches.
    pub(super) fn add_default_backend_flag(&mut self, service: &ObjectKey, port: Option<&PortRef>) {
        let origin: Option<Arc<str>> = Some("--default-backend-service".into());
        let subject = Subject {
            kind: "Service",
            key: service,
            origin: &origin,
        };
        let port = match port {
            Some(p) => p.clone(),
            None => match self.first_port(service) {
                Some(n) => PortRef::Number(n),
                None => {
                    self.report(
                        Severity::Warning,
                        subject,
                        Problem::new(Field::ServicePorts, Reason::NoDefaultBackendPorts),
                    );
                    return;
                }
            },
        };
        let key = UpstreamKey {
            namespace: service.namespace.clone(),
            service: service.name.clone(),
            port,
            lb: LbAlgorithm::RoundRobin,
            protocol: BackendProtocol::Http,
            verify: None,
        };
        let endpoints = match self.resolve(&key) {
            Ok(e) => e,
            Err(reason) => {
                self.report(
                    Severity::Warning,
                    subject,
                    Problem::new(Field::ServicePorts, reason),
                );
                Vec::new()
            }
        };
        let id = UpstreamId::try_from(self.out.upstreams.len()).unwrap_or(UpstreamId::MAX);
        let label = intern(&key.to_string());
        self.out.upstreams.push(UpstreamSpec {
            key,
            label: label.clone(),
            endpoints,
            trust: TrustAnchors::Unverified,
        });
        let route = self.out.table.push_route(Route {
            ingress: "".into(),
            kind: RouteKind::Ingress,
            guard: None,
            host: "".into(),
            path: "".into(),
            path_type: None,
            service: label,
            upstream: id,
            redirect_https: false,
            policy: Default::default(),
            canary: None,
            plain: true,
        });
        self.out.table.set_default_route(route);
    }
}

/// Resolves the current endpoints of an upstream from a snapshot. Used by the
/// compiler and by the publisher's endpoint-only fast path.
pub fn resolve_upstream(
    snapshot: &Snapshot,
    key: &UpstreamKey,
) -> Result<Vec<EndpointAddr>, Reason> {
    let svc_key = ObjectKey::new(key.namespace.clone(), key.service.clone());
    let Some(service) = snapshot.services.get(&svc_key) else {
        return Err(Reason::ServiceNotFound(svc_key));
    };
    super::endpoints::resolve(&service.object, &key.port, snapshot.slices_of(&svc_key)).map_err(
        |problem| Reason::ServicePort {
            service: svc_key,
            problem,
        },
    )
}
