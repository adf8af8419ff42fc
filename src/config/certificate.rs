//! TLS Secrets → certificates: parsing `kubernetes.io/tls` Secrets (chain
//! and key, or a CA bundle) and deciding which hosts a certificate name
//! covers.
//!
//! Invariants:
//! - Pure: parsing PEM and X.509 is computation; no clock, no IO.
//! - Only `kubernetes.io/tls` Secrets are read; a key that does not match
//!   its certificate is an error, never a certificate.
//! - Reports problems as (field, reason); never panics on any Secret.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::problem::Field;

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

/// A Secret's field `name`, from `data` or else `stringData`.
pub(super) fn field<'a>(secret: &'a Secret, name: &str) -> Option<&'a [u8]> {
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
