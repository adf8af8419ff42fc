//! Client-side TLS: connections to `HTTPS` and `GRPCS` upstreams.
//!
//! Invariants:
//! - How an upstream's connections are secured ([`UpstreamTls`]) is decided
//!   once, from its compiled spec, when it is published; a connection only
//!   clones the connector (an `Arc`).
//! - Verification asked for but impossible (an unusable CA, a server name
//!   that is not a DNS name or IP address) blocks the upstream: it is never
//!   connected to, never silently unverified (fail closed).
//! - Without verification (ingress-nginx's `proxy_ssl_verify off` default)
//!   handshake signatures are still checked, so the peer holds the key of
//!   the certificate it sent.
//! - ALPN offers exactly the protocol the upstream speaks (`h2` or
//!   `http/1.1`).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::table::upstream::{EndpointAddr, TrustAnchors, UpstreamSpec};

/// How the connections to one upstream are secured, built from its spec.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    mode: Mode,
    /// The anchors this was built from: when they change the upstream is
    /// rebuilt, so no pooled connection outlives the trust it was made with.
    trust: TrustAnchors,
}

#[derive(Debug, Clone)]
enum Mode {
    /// Not verified (also every plaintext upstream: TLS is not used).
    Unverified,
    /// Verified against configured CAs.
    Verified(Arc<VerifiedTls>),
    /// Verification was required but is impossible: never connect (503).
    Blocked,
}

/// Why no TLS connector is available for a connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("certificate verification required but impossible")]
    Blocked,
    #[error("invalid server name: {0}")]
    ServerName(#[from] rustls::pki_types::InvalidDnsNameError),
}

/// A TLS connector that verifies backends against configured CAs.
pub struct VerifiedTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for VerifiedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Decides how `spec`'s connections are secured (off the request path:
    /// building a verifying configuration parses the CAs).
    pub fn new(spec: &UpstreamSpec) -> Self {
        let mode = match (&spec.trust, &spec.key.verify) {
            (TrustAnchors::Roots(roots), Some(v)) => {
                match VerifiedTls::new(roots.clone(), spec.key.protocol.is_http2(), &v.server_name)
                {
                    Some(verified) => Mode::Verified(verified),
                    None => Mode::Blocked,
                }
            }
            (TrustAnchors::Unusable, _) | (TrustAnchors::Roots(_), None) => Mode::Blocked,
            (TrustAnchors::Unverified, _) => Mode::Unverified,
        };
        Self {
            mode,
            trust: spec.trust.clone(),
        }
    }

    /// Verification was required but is impossible: the upstream is never
    /// connected to.
    #[inline]
    pub fn is_blocked(&self) -> bool {
        matches!(self.mode, Mode::Blocked)
    }

    /// The trust anchors this was built from.
    pub fn trust(&self) -> &TrustAnchors {
        &self.trust
    }

    /// The connector and server name (SNI) for a connection to `addr`:
    /// the configured name when verified, else the address itself.
    pub fn connector(
        &self,
        addr: &EndpointAddr,
        http2: bool,
    ) -> Result<(TlsConnector, ServerName<'static>), ClientTlsError> {
        match &self.mode {
            Mode::Verified(v) => Ok((v.connector.clone(), v.server_name.clone())),
            Mode::Blocked => Err(ClientTlsError::Blocked),
            Mode::Unverified => {
                let name = match addr {
                    EndpointAddr::Socket(a) => ServerName::IpAddress(a.ip().into()),
                    EndpointAddr::Dns { host, .. } => ServerName::try_from(host.to_string())?,
                };
                Ok((unverified(http2), name))
            }
        }
    }
}

impl VerifiedTls {
    /// `None` when `server_name` is not a valid DNS name or IP address.
    pub fn new(
        roots: Arc<rustls::RootCertStore>,
        http2: bool,
        server_name: &str,
    ) -> Option<Arc<Self>> {
        let server_name = ServerName::try_from(server_name.to_string()).ok()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![if http2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        Some(Arc::new(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        }))
    }
}

/// Like ingress-nginx's default (`proxy_ssl_verify off`), the upstream
/// certificate is not verified against a CA: backends inside a cluster
/// commonly use self-signed certificates. Handshake signatures are
/// still checked, so the peer does hold the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn build(alpn: &[u8]) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = match rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    {
        Ok(builder) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        // The ring provider supports both versions; this cannot fail.
        Err(_) => rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// The unverifying connector for HTTP/1.1 (`http2 == false`) or HTTP/2
/// upstreams, built once per process.
fn unverified(http2: bool) -> TlsConnector {
    static H1: OnceLock<TlsConnector> = OnceLock::new();
    static H2: OnceLock<TlsConnector> = OnceLock::new();
    if http2 {
        H2.get_or_init(|| build(b"h2")).clone()
    } else {
        H1.get_or_init(|| build(b"http/1.1")).clone()
    }
}
