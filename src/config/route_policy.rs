//! Policy assembly: an Ingress's [`RoutePolicy`] from its parsed
//! annotations, the TrafficPolicy laid over them, and what needs other
//! objects: basic-auth users (Secrets), the `default-backend` fallback and
//! custom error pages (Services), and the upstream of a `mirror-target`
//! URL (resolved by DNS, or the IP address it names).
//!
//! Invariants:
//! - A TrafficPolicy wins section by section ([`super::overlay`]), and a
//!   warning names the annotations it overrode.
//! - Authentication fails closed: an Ingress whose authentication does not
//!   resolve is rejected in validation; if it is served anyway (its last
//!   good version), the Secret's last good users apply, and with none,
//!   nobody gets in.
//! - Custom error pages need a default backend; without one they are
//!   ignored with a warning, never pointed at nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::snapshot::CompactIngress;
use http::HeaderValue;

use super::annotations::{Annotations, BasicAuthSpec, MirrorSpec};
use super::backends::{has_lb_annotation, BackendPolicy};
use super::builder::Builder;
use super::overlay;
use super::problem::{Field, Problem, Reason};
use super::snapshot::{ObjectKey, Snapshot};
use crate::auth::htpasswd::Htpasswd;
use crate::intern::intern;
use crate::table::policy::{BasicAuth, CustomErrors, Mirror, MirrorTarget, RoutePolicy};
use crate::table::upstream::{
    BackendProtocol, EndpointAddr, LbAlgorithm, PortRef, TrustAnchors, UpstreamKey, UpstreamSpec,
};
use crate::table::UpstreamId;

/// The users of an Ingress's basic authentication, from its Secret (in
/// the Ingress's namespace): key `auth` holds an htpasswd file, or with
/// `auth-map` every key is a user.
pub(super) fn basic_auth_users(
    snapshot: &Snapshot,
    namespace: &str,
    spec: &BasicAuthSpec,
) -> Result<Htpasswd, Reason> {
    let name = match spec.secret.split_once('/') {
        None => spec.secret.as_str(),
        Some((ns, name)) if ns == namespace => name,
        Some(_) => {
            return Err(Reason::AuthSecretElsewhere {
                secret: spec.secret.clone(),
                namespace: namespace.to_string(),
            })
        }
    };
    let key = ObjectKey::new(namespace, name);
    let Some(entry) = snapshot.secrets.get(&key) else {
        return Err(Reason::AuthSecretNotFound(key));
    };
    let secret = &entry.object;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        fields.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    for (k, v) in secret.string_data.iter().flatten() {
        fields.insert(k.clone(), v.clone());
    }
    let users = if spec.map {
        Htpasswd::from_pairs(fields.iter())
    } else {
        let Some(file) = fields.get("auth") else {
            return Err(Reason::NoHtpasswd(key));
        };
        Htpasswd::parse(file)
    };
    let users = match users {
        Ok(users) => users,
        Err(error) => {
            return Err(Reason::BadHtpasswd {
                secret: key,
                error: Box::new(error),
            })
        }
    };
    if users.is_empty() {
        return Err(Reason::NoUsers(key));
    }
    Ok(users)
}

impl Builder<'_> {
    /// Lays the TrafficPolicy targeting this Ingress (if any) over the
    /// annotations' policy; returns the policy's load-balancing algorithm,
    /// if it sets one.
    pub(super) fn apply_traffic_policy(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        ingress: &CompactIngress,
        policy: &mut RoutePolicy,
    ) -> Option<LbAlgorithm> {
        let (policy_key, traffic_policy) = self
            .policies
            .get(&(crate::crd::TargetKind::Ingress, key.clone()))
            .cloned()?;
        let applied = overlay::apply(
            policy,
            &traffic_policy.spec,
            self.opts.limit_statuses,
            has_lb_annotation(ingress),
        );
        if !applied.overridden.is_empty() {
            self.warn(
                key,
                origin,
                Problem::new(
                    Field::Annotations,
                    Reason::OverriddenByPolicy {
                        policy: policy_key,
                        overridden: applied.overridden,
                    },
                ),
            );
        }
        applied.lb
    }

    /// The route policy of an Ingress: `policy` (from its annotations, with
    /// any TrafficPolicy laid over) completed with what needs other
    /// objects. Reports the problems found on the way.
    pub(super) fn route_policy(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        mut policy: RoutePolicy,
        parsed: &Annotations,
        backend: &BackendPolicy,
    ) -> RoutePolicy {
        // Authentication that does not resolve never serves unauthenticated:
        // 503 without the Secret, 401 with unusable content. (A
        // `basic_auth` already set is the parser's refuse-all for an
        // `auth-url` that did not parse: it stays.)
        if let Some(spec) = parsed
            .basic_auth
            .as_ref()
            .filter(|_| policy.basic_auth.is_none())
        {
            let challenge = format!("Basic realm=\"{}\"", spec.realm.replace(['"', '\\'], ""));
            let secret = (
                ObjectKey::new(key.namespace.clone(), spec.secret.clone()),
                spec.map,
            );
            let mut missing = false;
            let users = match basic_auth_users(self.snapshot, &key.namespace, spec) {
                Ok(users) => Some(Arc::new(users)),
                // As ingress-nginx, the Ingress is served anyway: the
                // Secret's last good users keep working; with none, a
                // missing Secret answers 503 and unusable content lets
                // nobody in (401).
                Err(reason) => {
                    let last = self.last_good.auth_users.get(&secret).cloned();
                    missing = last.is_none()
                        && matches!(
                            reason,
                            Reason::AuthSecretNotFound(_) | Reason::AuthSecretElsewhere { .. }
                        );
                    let field = Field::annotation("nginx.ingress.kubernetes.io/auth-secret");
                    self.warn(key, origin, Problem::new(field, reason));
                    last
                }
            };
            if let Some(users) = &users {
                self.out.last_good.auth_users.insert(secret, users.clone());
            }
            policy.basic_auth = Some(BasicAuth {
                users: users.unwrap_or_default(),
                challenge: HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| HeaderValue::from_static("Basic")),
                unavailable: missing,
            });
        }
        if let Some(name) = &parsed.default_backend {
            let field = Field::annotation("nginx.ingress.kubernetes.io/default-backend");
            policy.fallback = self.named_service_upstream(key, origin, field, name, backend);
        }
        if !parsed.custom_errors.is_empty() {
            let upstream = policy.fallback.or_else(|| {
                let route = self.out.table.default_route()?;
                self.out.table.route(route).map(|r| r.upstream)
            });
            match upstream {
                Some(upstream) => {
                    policy.custom_errors = Some(CustomErrors {
                        codes: parsed.custom_errors.clone(),
                        upstream,
                    })
                }
                None => self.warn(
                    key,
                    origin,
                    Problem::new(
                        Field::annotation("nginx.ingress.kubernetes.io/custom-http-errors"),
                        Reason::CustomErrorsWithoutDefaultBackend,
                    ),
                ),
            }
        }
        if let Some(spec) = &parsed.mirror {
            let upstream = self.mirror_upstream(key, spec);
            let mirror = Mirror {
                upstream,
                service: self.upstream_label(upstream),
                per_million: 1_000_000,
                target: Some(Arc::new(MirrorTarget {
                    path: spec.path.as_str().into(),
                    request_uri: spec.request_uri,
                    host: spec.host_header.clone(),
                    body: spec.body,
                })),
            };
            policy.mirrors = std::iter::once(mirror)
                .chain(policy.mirrors.iter().cloned())
                .collect();
        }
        policy
    }
}

impl Builder<'_> {
    /// The upstream of a `mirror-target` URL: its host (by DNS when not an
    /// IP address) and port, HTTPS unverified as nginx's `proxy_pass`
    /// does by default. Its key names no Service (`mirror-target URL` is
    /// not a Service name), so no EndpointSlice change ever touches it.
    fn mirror_upstream(&mut self, ingress: &ObjectKey, spec: &MirrorSpec) -> UpstreamId {
        let scheme = if spec.https { "https" } else { "http" };
        let key = UpstreamKey {
            namespace: ingress.namespace.clone(),
            service: intern(&format!("mirror-target {scheme}://{}", spec.host)),
            port: PortRef::Number(i32::from(spec.port)),
            lb: LbAlgorithm::RoundRobin,
            protocol: if spec.https {
                BackendProtocol::Https
            } else {
                BackendProtocol::Http
            },
            verify: None,
        };
        if let Some(&id) = self.upstreams.get(&key) {
            return id;
        }
        let endpoint = match spec.host.parse::<std::net::IpAddr>() {
            Ok(ip) => EndpointAddr::Socket(std::net::SocketAddr::new(ip, spec.port)),
            Err(_) => EndpointAddr::Dns {
                host: spec.host.as_str().into(),
                port: spec.port,
            },
        };
        let id = UpstreamId::try_from(self.out.upstreams.len()).unwrap_or(UpstreamId::MAX);
        self.out.upstreams.push(UpstreamSpec {
            label: format!("{scheme}://{}:{}", spec.host, spec.port).into(),
            key: key.clone(),
            endpoints: vec![endpoint],
            trust: TrustAnchors::Unverified,
        });
        self.upstreams.insert(key, id);
        id
    }
}
