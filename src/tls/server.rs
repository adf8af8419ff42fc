//! TLS termination: the rustls server configuration of the HTTPS listener
//! and the certificate resolver over the published table.
//!
//! Invariants:
//! - TLS 1.2 and 1.3 only (rustls's safe defaults, ring provider), ALPN
//!   `h2` and `http/1.1`, session resumption by tickets and session ids.
//!   The ConfigMap's `ssl-protocols` and `use-http2` narrow that: the
//!   [`Acceptor`] holds one configuration per choice, built at start, and
//!   picks one per handshake from the published table (one `ArcSwap`
//!   load), so a changed ConfigMap reaches new connections.
//! - The resolver reads the published table at each handshake (one
//!   `ArcSwap` load, no lock), so a rotated Secret reaches new handshakes as
//!   soon as its table is published; open connections are not touched.
//! - Unknown or missing SNI: `--default-certificate`, else the certificate
//!   generated at start-up (like ingress-nginx's fake certificate). A
//!   handshake always gets a certificate; the resolver never fails it.
//! - Hosts with client-certificate authentication get a configuration
//!   that requests one ([`super::client_auth`]); only while such hosts
//!   exist is the ClientHello read before the configuration is chosen.
//! - Failure reasons are a fixed set of static labels (bounded metric
//!   cardinality, no allocation per failed handshake).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::state::Published;
use crate::table::globals::TlsPrefs;

/// Subject of the generated default certificate.
pub const DEFAULT_CERTIFICATE_CN: &str = "tollgate default certificate";

/// The protocol versions of the acceptor's configurations, in
/// [`Acceptor::index`] order (each with and without `h2`).
pub(super) const VERSIONS: [&[&rustls::SupportedProtocolVersion]; 3] = [
    &[&rustls::version::TLS13, &rustls::version::TLS12],
    &[&rustls::version::TLS13],
    &[&rustls::version::TLS12],
];

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

/// The HTTPS listener's acceptor: the server configuration the published
/// table's [`TlsPrefs`] ask for, chosen per handshake. Cheap to clone.
#[derive(Clone)]
pub struct Acceptor {
    published: Arc<ArcSwap<Published>>,
    /// Indexed by [`Acceptor::index`]: TLS 1.2+1.3, 1.3, 1.2; each with
    /// and without `h2`.
    configs: Arc<[Arc<ServerConfig>; 6]>,
    /// The same six, requesting a client certificate (`auth-tls-*` hosts,
    /// see [`super::client_auth`]).
    client_auth: Arc<[Arc<ServerConfig>; 6]>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Builds every configuration (one shared resolver and ticketer).
    pub fn new(
        published: Arc<ArcSwap<Published>>,
        fallback: Arc<CertifiedKey>,
    ) -> Result<Acceptor, TlsError> {
        let resolver = Arc::new(Resolver {
            published: published.clone(),
            fallback,
        });
        let ticketer = rustls::crypto::ring::Ticketer::new()?;
        let versions = VERSIONS;
        let mut configs = Vec::with_capacity(6);
        for versions in versions {
            for http2 in [true, false] {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let mut config = ServerConfig::builder_with_provider(provider)
                    .with_protocol_versions(versions)?
                    .with_no_client_auth()
                    .with_cert_resolver(resolver.clone());
                config.alpn_protocols = if http2 {
                    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
                } else {
                    vec![b"http/1.1".to_vec()]
                };
                config.ticketer = ticketer.clone();
                configs.push(Arc::new(config));
            }
        }
        let configs: [Arc<ServerConfig>; 6] = configs
            .try_into()
            .map_err(|_| TlsError::Rustls(rustls::Error::General("configurations".into())))?;
        let client_auth = client_auth_configs(&configs)?;
        Ok(Acceptor {
            published,
            configs: Arc::new(configs),
            client_auth: Arc::new(client_auth),
        })
    }

    fn index(prefs: TlsPrefs) -> usize {
        let versions = match (prefs.tls12, prefs.tls13) {
            (true, false) => 2,
            (false, true) => 1,
            _ => 0,
        };
        versions * 2 + usize::from(!prefs.http2)
    }

    /// The configuration for `prefs`.
    pub fn config(&self, prefs: TlsPrefs) -> &Arc<ServerConfig> {
        &self.configs[Self::index(prefs) % 6]
    }

    /// The configuration for `prefs` that requests a client certificate.
    pub fn client_auth_config(&self, prefs: TlsPrefs) -> &Arc<ServerConfig> {
        &self.client_auth[Self::index(prefs) % 6]
    }

    /// Handshakes `stream` with the configuration in force. While some
    /// host requests client certificates, the ClientHello is read first
    /// to choose ([`accept_choosing`]).
    pub async fn accept<IO>(
        &self,
        stream: IO,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (prefs, client_auth) = {
            let published = self.published.load();
            let client_auth = !published.tls.client_auth.is_empty();
            (published.table.globals().tls, client_auth)
        };
        if client_auth {
            return accept_choosing(self, prefs, stream).await;
        }
        tokio_rustls::TlsAcceptor::from(self.config(prefs).clone())
            .accept(stream)
            .await
    }

    pub(super) fn published(&self) -> &Arc<ArcSwap<Published>> {
        &self.published
    }
}

/// The acceptor's six configurations (TLS versions × ALPN, in
/// [`VERSIONS`] order), each as it is
/// but requesting a client certificate ([`super::client_auth::RequestAny`]): same resolver,
/// ticketer, versions and ALPN.
fn client_auth_configs(plain: &[Arc<ServerConfig>; 6]) -> Result<[Arc<ServerConfig>; 6], TlsError> {
    let mut out = Vec::with_capacity(6);
    for (i, config) in plain.iter().enumerate() {
        let provider = config.crypto_provider().clone();
        let verifier = Arc::new(super::client_auth::RequestAny::new(&provider));
        let versions = VERSIONS.get(i / 2).copied().unwrap_or_default();
        let mut with_auth = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(config.cert_resolver.clone());
        with_auth.alpn_protocols = config.alpn_protocols.clone();
        with_auth.ticketer = config.ticketer.clone();
        out.push(Arc::new(with_auth));
    }
    out.try_into()
        .map_err(|_| TlsError::Rustls(rustls::Error::General("configurations".into())))
}

/// Reads the ClientHello, then handshakes with the configuration that
/// requests a client certificate when the SNI is a client-auth host, else
/// with the usual one.
async fn accept_choosing<IO>(
    acceptor: &Acceptor,
    prefs: crate::table::globals::TlsPrefs,
    stream: IO,
) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let start =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let requests = {
        let hello = start.client_hello();
        let mut buf = [0u8; crate::table::host::MAX_HOST_LEN + 2];
        let name = hello
            .server_name()
            .and_then(|n| crate::table::host::normalize(n, &mut buf));
        acceptor.published().load().tls.client_auth.requests(name)
    };
    let config = if requests {
        acceptor.client_auth_config(prefs)
    } else {
        acceptor.config(prefs)
    };
    start.into_stream(config.clone()).await
}
