//! TLS Secrets → certificates, and `spec.tls` → certificates per host
//! (the compile step `Builder::add_tls`).
//!
//! Invariants:
//! - Pure: parsing PEM and X.509 is computation; the current time comes in
//!   as an argument (for the expiry check), never from a clock.
//! - A Secret that does not parse, or whose key does not match its
//!   certificate, is rejected with a diagnostic naming it; its hosts keep
//!   the last good certificate of that Secret if there was one, else they
//!   get the default certificate. Other hosts are never affected.
//! - A certificate is used only for hosts its names (SANs, else CN) cover;
//!   an expired certificate is still served, with a warning.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::problem::{Field, Problem, Reason, Subject};
use super::{Builder, ObjectKey, Severity};
use crate::table::tls::CertId;

/// The Secret type certificates come from.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// A parsed, usable certificate with what the compiler checks against.
#[derive(Debug)]
pub struct Certificate {
    pub key: Arc<CertifiedKey>,
    /// DNS names the certificate is valid for (SANs, else the subject CN).
    pub names: Vec<String>,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
}

fn field<'a>(secret: &'a Secret, name: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(name))
        .map(|b| b.0.as_slice())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(name))
                .map(|s| s.as_bytes())
        })
}

/// Only `kubernetes.io/tls` Secrets hold certificates and backend CAs
/// (the snapshot also holds `Opaque` ones, for basic auth).
fn check_type(secret: &Secret) -> Result<(), String> {
    match secret.type_.as_deref() {
        Some(TLS_SECRET_TYPE) => Ok(()),
        other => Err(format!(
            "the Secret is of type `{}`, not {TLS_SECRET_TYPE}",
            other.unwrap_or("Opaque")
        )),
    }
}

/// Parses a `kubernetes.io/tls` Secret. `Err` carries (field, reason).
pub fn parse_secret(secret: &Secret) -> Result<Certificate, (Field, String)> {
    check_type(secret).map_err(|reason| (Field::SecretType, reason))?;
    let crt =
        field(secret, "tls.crt").ok_or((Field::SecretData("tls.crt"), "missing".to_string()))?;
    let key =
        field(secret, "tls.key").ok_or((Field::SecretData("tls.key"), "missing".to_string()))?;
    let chain = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            (
                Field::SecretData("tls.crt"),
                format!("not a PEM certificate chain: {e}"),
            )
        })?;
    let Some(leaf) = chain.first() else {
        return Err((
            Field::SecretData("tls.crt"),
            "no certificate in the PEM data".into(),
        ));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
        (
            Field::SecretData("tls.crt"),
            format!("not an X.509 certificate: {e}"),
        )
    })?;
    let mut names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            parsed
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let not_after = parsed.validity().not_after.timestamp();
    let private = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        (
            Field::SecretData("tls.key"),
            format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private).map_err(|e| {
        (
            Field::SecretData("tls.key"),
            format!("unsupported private key: {e}"),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        (
            Field::SecretData("tls.key"),
            "the private key does not match the certificate".to_string(),
        )
    })?;
    Ok(Certificate {
        key: Arc::new(certified),
        names,
        not_after,
    })
}

/// The CA certificates in a Secret's `ca.crt`, as trust anchors.
pub fn parse_ca(secret: &Secret) -> Result<rustls::RootCertStore, String> {
    check_type(secret)?;
    let pem = field(secret, "ca.crt").ok_or_else(|| "the Secret has no ca.crt".to_string())?;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca.crt is not PEM certificates: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("ca.crt holds no usable CA certificate".into());
    }
    Ok(roots)
}

/// Whether a certificate name (possibly `*.suffix`) covers `host` (which may
/// itself be a `*.suffix` TLS host).
pub fn covers(name: &str, host: &str) -> bool {
    if name == host {
        return true;
    }
    match (name.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((label, rest))) => label != "*" && !label.is_empty() && rest == suffix,
        _ => false,
    }
}

impl Builder<'_> {
    /// The certificate of a TLS Secret, parsed once per compile. A Secret
    /// that fails gets a diagnostic and falls back to its last good
    /// certificate, if any.
    pub(super) fn certificate(
        &mut self,
        secret: &ObjectKey,
        origin: &Option<Arc<str>>,
    ) -> Option<CertId> {
        if let Some(done) = self.certs.get(secret) {
            return done.as_ref().map(|(id, _)| *id);
        }
        let entry = self.snapshot.secrets.get(secret);
        let parsed = match entry {
            None => Err((Field::Name, format!("TLS Secret {secret} not found"))),
            Some(e) => parse_secret(&e.object),
        };
        let secret_origin = entry.map(|e| e.origin.clone()).or_else(|| origin.clone());
        let subject = Subject {
            kind: "Secret",
            key: secret,
            origin: &secret_origin,
        };
        let certificate = match parsed {
            Ok(c) => {
                if let (Some(now), true) = (
                    self.opts.now,
                    c.not_after < self.opts.now.unwrap_or(i64::MIN),
                ) {
                    let days = (now - c.not_after) / 86_400;
                    self.report(
                        Severity::Warning,
                        subject,
                        Problem::new(Field::SecretData("tls.crt"), Reason::Expired { days }),
                    );
                }
                Some(Arc::new(c))
            }
            Err((field, reason)) => {
                let fallback = self.last_good.certificates.get(secret).cloned();
                let last_good = fallback.is_some();
                self.report(
                    Severity::Rejected,
                    subject,
                    Problem::new(field, Reason::BadCertificate { reason, last_good }),
                );
                fallback
            }
        };
        let resolved = certificate.map(|c| {
            self.out
                .last_good
                .certificates
                .insert(secret.clone(), c.clone());
            (self.out.tls.push_cert(c.key.clone()), c)
        });
        let id = resolved.as_ref().map(|(id, _)| *id);
        self.certs.insert(secret.clone(), resolved);
        id
    }

    /// `spec.tls`: certificates for the listed hosts.
    pub(super) fn add_tls(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        ingress: &k8s_openapi::api::networking::v1::Ingress,
    ) {
        let Some(spec) = &ingress.spec else {
            return;
        };
        let rule_hosts: Vec<String> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.clone())
            .filter(|h| !h.is_empty())
            .collect();
        for (i, entry) in spec.tls.iter().flatten().enumerate() {
            let hosts: Vec<String> = match &entry.hosts {
                Some(h) if !h.is_empty() => h.iter().map(|h| h.to_ascii_lowercase()).collect(),
                _ => rule_hosts.clone(),
            };
            let Some(secret_name) = entry.secret_name.as_deref().filter(|n| !n.is_empty()) else {
                self.warn(
                    key,
                    origin,
                    Problem::new(Field::TlsSecretName { entry: i }, Reason::NoSecretName),
                );
                continue;
            };
            let secret = ObjectKey::new(key.namespace.clone(), secret_name);
            let Some(id) = self.certificate(&secret, origin) else {
                continue;
            };
            let names = self
                .certs
                .get(&secret)
                .and_then(|c| c.as_ref())
                .map(|(_, c)| c.names.clone())
                .unwrap_or_default();
            for host in &hosts {
                if !names.iter().any(|n| covers(n, host)) {
                    let reason = Reason::NotCovered {
                        secret: Box::new(secret.clone()),
                        host: host.clone(),
                        names: names.clone(),
                    };
                    self.warn(
                        key,
                        origin,
                        Problem::new(Field::TlsHosts { entry: i }, reason),
                    );
                    continue;
                }
                if self.out.tls.insert_host(host, id) != id {
                    self.warn(
                        key,
                        origin,
                        Problem::new(
                            Field::TlsHosts { entry: i },
                            Reason::HostHasCertificate(host.clone()),
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn names_cover_hosts() {
        assert!(covers("a.example.com", "a.example.com"));
        assert!(covers("*.example.com", "a.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(!covers("a.example.com", "*.example.com"));
    }
}
