//! `spec.tls` → certificates per host (the compile step `Builder::add_tls`),
//! each TLS Secret parsed once per compile (parsing itself is in
//! `certificate`, re-exported here).
//!
//! Invariants:
//! - Pure: the current time comes in as an argument (for the expiry
//!   check), never from a clock.
//! - A Secret that does not parse, or whose key does not match its
//!   certificate, is rejected with a diagnostic naming it; its hosts keep
//!   the last good certificate of that Secret if there was one, else they
//!   get the default certificate. Other hosts are never affected.
//! - A certificate is used only for hosts its names (SANs, else CN) cover;
//!   an expired certificate is still served, with a warning.

use std::sync::Arc;

use super::builder::Builder;
use super::diagnostic::Severity;
use super::problem::{Field, Problem, Reason, Subject};
use super::snapshot::ObjectKey;
use crate::table::tls::CertId;

pub use super::certificate::{covers, parse_ca, parse_secret, Certificate, TLS_SECRET_TYPE};

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
        ingress: &crate::config::snapshot::CompactIngress,
    ) {
        let Some(spec) = &ingress.spec else {
            return;
        };
        let rule_hosts: Vec<String> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.as_deref().map(str::to_string))
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
