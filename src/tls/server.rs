//! TLS termination: the rustls server configuration of the HTTPS listener
//! and the certificate resolver over the published table.
//!
//! Invariants:
//! - TLS 1.2 and 1.3 only (rustls's safe defaults, ring provider), ALPN
//!   `h2` and `http/1.1`, session resumption by tickets and session ids.
//! - The resolver reads the published table at each handshake (one
//!   `ArcSwap` load, no lock), so a rotated Secret reaches new handshakes as
//!   soon as its table is published; open connections are not touched.
//! - Unknown or missing SNI: `--default-certificate`, else the certificate
//!   generated at start-up (like ingress-nginx's fake certificate). A
//!   handshake always gets a certificate; the resolver never fails it.
//! - Failure reasons are a fixed set of static labels (bounded metric
//!   cardinality, no allocation per failed handshake).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::state::Published;

/// Subject of the generated default certificate.
pub const DEFAULT_CERTIFICATE_CN: &str = "tollgate default certificate";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A self-signed certificate for names nobody configured.
pub fn generate_default_certificate() -> Result<Arc<CertifiedKey>, TlsError> {
    let mut params = rcgen::CertificateParams::new(vec!["tollgate.invalid".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, DEFAULT_CERTIFICATE_CN);
    let key_pair = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key_pair)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signing,
    )))
}

/// Picks the certificate for a handshake from the current table.
#[derive(Debug)]
pub struct Resolver {
    published: Arc<ArcSwap<Published>>,
    fallback: Arc<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut buf = [0u8; crate::table::host::MAX_HOST_LEN + 2];
        let name = hello
            .server_name()
            .and_then(|n| crate::table::host::normalize(n, &mut buf));
        let published = self.published.load();
        Some(
            published
                .tls
                .resolve(name)
                .cloned()
                .unwrap_or_else(|| self.fallback.clone()),
        )
    }
}

/// Why a server handshake failed, as a metric label.
pub fn failure_reason(error: &std::io::Error) -> &'static str {
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return "io";
    };
    match tls {
        rustls::Error::PeerIncompatible(_) => "incompatible",
        rustls::Error::InvalidMessage(_) => "invalid_message",
        rustls::Error::AlertReceived(_) => "alert",
        rustls::Error::PeerMisbehaved(_) => "misbehaved",
        rustls::Error::NoApplicationProtocol => "no_alpn",
        _ => "other",
    }
}

/// The server configuration of the HTTPS listener.
pub fn server_config(
    published: Arc<ArcSwap<Published>>,
    fallback: Arc<CertifiedKey>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver {
            published,
            fallback,
        }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}
