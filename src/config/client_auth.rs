//! Client-certificate authentication (`auth-tls-*`): the Secret's CAs
//! (`ca.crt`, and revocations in `ca.crl`) become the route's verifier,
//! and the Ingress's TLS hosts request client certificates in their
//! handshakes.
//!
//! Invariants:
//! - Fail closed: a Secret that is missing, elsewhere, or without a usable
//!   `ca.crt` is a warning naming the Ingress, the annotation and the
//!   Secret; the Secret's last good CAs keep applying, and with none every
//!   request of the Ingress is refused (403, as ingress-nginx's
//!   `AuthTLSError`). It is never served without client authentication.
//! - Like ingress-nginx, any Secret type with a `ca.crt` works (a TLS
//!   Secret's own `ca.crt` too).
//! - As in ingress-nginx (where it is the server block's setting), the
//!   policy is the host's: the paths other Ingresses give the host without
//!   `auth-tls-*` of their own get the first annotated Ingress's
//!   ([`Builder::share_client_certs`]); an Ingress with its own keeps it.
//! - Only hosts with a certificate of their own request client
//!   certificates in the handshake; on another host (the default
//!   certificate) nothing is requested, so `on` refuses: never open.
//! - Pure: parsing PEM and building verifiers is computation.

use std::sync::Arc;

use crate::config::snapshot::CompactIngress;
use k8s_openapi::api::core::v1::Secret;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use super::annotations::ClientCertSpec;
use super::builder::Builder;
use super::compiled::HashMap;
use super::problem::{Field, Problem, Reason};
use super::snapshot::ObjectKey;
use crate::table::client_cert::{CaVerifier, ClientCert, VerifyClient};
use crate::table::policy::RoutePolicy;
use crate::table::{RouteId, RouteKind};

const LAST_GOOD: &str = "its last good CAs keep applying";
const REFUSED: &str = "every request of this Ingress is refused (403) until it is fixed";
const ANNOTATION: &str = "nginx.ingress.kubernetes.io/auth-tls-secret";

/// A verifier of client chains against a Secret's `ca.crt` (and its
/// `ca.crl`, when present). `Err` says what is wrong.
pub(super) fn ca_verifier(secret: &Secret) -> Result<CaVerifier, String> {
    let pem = super::certificate::field(secret, "ca.crt").ok_or("the Secret has no ca.crt")?;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca.crt is not PEM certificates: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("ca.crt holds no usable CA certificate".into());
    }
    let crls = match super::certificate::field(secret, "ca.crl") {
        None => Vec::new(),
        Some(pem) => CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca.crl is not PEM revocation lists: {e}"))?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls(crls)
        .allow_unauthenticated()
        .build()
        .map(CaVerifier)
        .map_err(|e| format!("the CAs cannot verify client certificates: {e}"))
}

impl Builder<'_> {
    /// The client-certificate policy of Ingress `key`, its Secret resolved.
    pub(super) fn client_cert(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        spec: &ClientCertSpec,
    ) -> Arc<ClientCert> {
        let (namespace, name) = match spec.secret.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (&*key.namespace, spec.secret.as_str()),
        };
        let secret = ObjectKey::new(namespace, name);
        let resolved = if namespace != &*key.namespace {
            Err(Reason::ClientCaElsewhere {
                secret: spec.secret.clone(),
                namespace: key.namespace.to_string(),
                consequence: REFUSED,
            })
        } else {
            match self.snapshot.secrets.get(&secret) {
                None => Err(Reason::ClientCaNotFound {
                    secret: secret.clone(),
                    consequence: LAST_GOOD,
                }),
                Some(entry) => {
                    ca_verifier(&entry.object).map_err(|problem| Reason::UnusableClientCa {
                        secret: secret.clone(),
                        problem,
                        consequence: LAST_GOOD,
                    })
                }
            }
        };
        let verifier = match resolved {
            Ok(verifier) => {
                self.out
                    .last_good
                    .client_cas
                    .insert(secret.clone(), verifier.clone());
                Some(verifier)
            }
            Err(reason) => {
                let last = match &reason {
                    Reason::ClientCaElsewhere { .. } => None,
                    _ => self.last_good.client_cas.get(&secret).cloned(),
                };
                if let Some(verifier) = &last {
                    self.out
                        .last_good
                        .client_cas
                        .insert(secret.clone(), verifier.clone());
                }
                let reason = match (last.is_some(), reason) {
                    (false, Reason::ClientCaNotFound { secret, .. }) => Reason::ClientCaNotFound {
                        secret,
                        consequence: REFUSED,
                    },
                    (
                        false,
                        Reason::UnusableClientCa {
                            secret, problem, ..
                        },
                    ) => Reason::UnusableClientCa {
                        secret,
                        problem,
                        consequence: REFUSED,
                    },
                    (_, reason) => reason,
                };
                self.warn(
                    key,
                    origin,
                    Problem::new(Field::annotation(ANNOTATION), reason),
                );
                last
            }
        };
        Arc::new(ClientCert {
            secret: secret.to_string().into(),
            verifier: verifier.map(|v| v.0),
            verify: spec.verify,
            depth: spec.depth,
            error_page: spec.error_page.clone(),
            pass_certificate: spec.pass_certificate,
            match_cn: spec.match_cn.clone(),
        })
    }

    /// The Ingress's rule and alias hosts that have a certificate of their
    /// own request client certificates in their handshakes (unless
    /// `auth-tls-verify-client` is `off`).
    pub(super) fn request_client_certs(
        &mut self,
        ingress: &CompactIngress,
        aliases: &[String],
        policy: &ClientCert,
    ) {
        if policy.verify == VerifyClient::Off {
            return;
        }
        let Some(spec) = &ingress.spec else { return };
        let hosts: Vec<String> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.as_deref())
            .map(str::to_ascii_lowercase)
            .chain(aliases.iter().cloned())
            .filter(|h| !h.is_empty())
            .collect();
        for host in hosts {
            if self.out.tls.lookup(&host).is_some() {
                self.out.tls.client_auth.insert(&host);
            }
        }
    }
}

impl Builder<'_> {
    /// Gives every Ingress route on a host with client-certificate
    /// authentication, whose own Ingress asks for none, the host's (that
    /// of the host's first route with one, in Ingress order).
    pub(super) fn share_client_certs(&mut self) {
        let mut by_host: HashMap<Arc<str>, Arc<ClientCert>> = HashMap::default();
        for route in self.out.table.routes() {
            if route.kind != RouteKind::Ingress || route.host.is_empty() {
                continue;
            }
            if let Some(cert) = &route.policy.client_cert {
                by_host
                    .entry(route.host.clone())
                    .or_insert_with(|| cert.clone());
            }
        }
        if by_host.is_empty() {
            return;
        }
        let count = RouteId::try_from(self.out.table.routes().len()).unwrap_or(RouteId::MAX);
        for id in 0..count {
            let Some(route) = self.out.table.route_mut(id) else {
                continue;
            };
            if route.kind != RouteKind::Ingress || route.policy.client_cert.is_some() {
                continue;
            }
            let Some(cert) = by_host.get(&route.host) else {
                continue;
            };
            route.policy = Arc::new(RoutePolicy {
                client_cert: Some(cert.clone()),
                ..(*route.policy).clone()
            });
            route.plain = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(data: &[(&str, String)]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn ca_crt_of_any_secret_type_verifies() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        assert!(ca_verifier(&secret(&[("ca.crt", ca.pem())])).is_ok());
    }

    #[test]
    fn unusable_ca_is_an_error() {
        assert!(ca_verifier(&secret(&[])).is_err());
        assert!(ca_verifier(&secret(&[("ca.crt", "not pem".into())])).is_err());
    }
}
