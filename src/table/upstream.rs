//! Plain descriptions of upstreams, as the compiler emits them.
//!
//! Invariant: these are data only; the live objects are built from them
//! elsewhere: endpoint sets and counters in [`crate::lb`], how connections
//! are secured in [`crate::tls::client`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Load-balancing algorithm of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LbAlgorithm {
    #[default]
    RoundRobin,
    /// Power of two choices over peak-EWMA latency and in-flight requests.
    P2cEwma,
    /// A hash ring over the endpoints: requests with the same key (see
    /// [`crate::table::policy::HashKey`]) go to the same endpoint, and an
    /// endpoint change moves only the keys of the endpoints that changed.
    ConsistentHash,
}

impl LbAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            LbAlgorithm::RoundRobin => "round-robin",
            LbAlgorithm::P2cEwma => "p2c-ewma",
            LbAlgorithm::ConsistentHash => "consistent-hash",
        }
    }
}

/// The protocol spoken to an upstream (`backend-protocol` annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum BackendProtocol {
    #[default]
    Http,
    /// HTTP/1.1 over TLS.
    Https,
    /// HTTP/2 with prior knowledge, cleartext.
    H2c,
    /// gRPC: HTTP/2 cleartext.
    Grpc,
    /// gRPC over TLS (ALPN h2).
    Grpcs,
}

impl BackendProtocol {
    pub fn is_tls(self) -> bool {
        matches!(self, BackendProtocol::Https | BackendProtocol::Grpcs)
    }

    pub fn is_http2(self) -> bool {
        matches!(
            self,
            BackendProtocol::H2c | BackendProtocol::Grpc | BackendProtocol::Grpcs
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackendProtocol::Http => "HTTP",
            BackendProtocol::Https => "HTTPS",
            BackendProtocol::H2c => "H2C",
            BackendProtocol::Grpc => "GRPC",
            BackendProtocol::Grpcs => "GRPCS",
        }
    }
}

/// Verification of an HTTPS/GRPCS backend's certificate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendVerify {
    /// `namespace/name` of the TLS Secret whose `ca.crt` holds the CAs.
    pub ca_secret: String,
    /// The name the backend certificate must be valid for (also sent as SNI).
    pub server_name: String,
}

/// The trust anchors an upstream's TLS connections are verified against.
#[derive(Debug, Clone, Default)]
pub enum TrustAnchors {
    /// Not verified (ingress-nginx's `proxy_ssl_verify off` default).
    #[default]
    Unverified,
    Roots(Arc<rustls::RootCertStore>),
    /// Verification was asked for but the CA is unusable: fail closed, the
    /// upstream is never connected to.
    Unusable,
}

impl PartialEq for TrustAnchors {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TrustAnchors::Unverified, TrustAnchors::Unverified) => true,
            (TrustAnchors::Unusable, TrustAnchors::Unusable) => true,
            (TrustAnchors::Roots(a), TrustAnchors::Roots(b)) => {
                Arc::ptr_eq(a, b) || a.roots == b.roots
            }
            _ => false,
        }
    }
}

/// How an Ingress backend names its Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    Number(i32),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

/// Identity of an upstream: the same key in two tables is the same upstream
/// (its pools and health state carry over a recompile). The compiler builds
/// `namespace` and `service` through [`crate::intern`], so every table,
/// publisher map and endpoint set naming one Service shares its strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UpstreamKey {
    pub namespace: Arc<str>,
    pub service: Arc<str>,
    pub port: PortRef,
    pub lb: LbAlgorithm,
    pub protocol: BackendProtocol,
    pub verify: Option<BackendVerify>,
}

impl fmt::Display for UpstreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)
    }
}

/// Where an endpoint lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointAddr {
    Socket(SocketAddr),
    /// An `ExternalName` Service (or FQDN EndpointSlice): resolved by DNS
    /// when a connection is opened.
    Dns {
        host: Arc<str>,
        port: u16,
    },
}

impl fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddr::Socket(a) => write!(f, "{a}"),
            EndpointAddr::Dns { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// An upstream as compiled: identity, label and current endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    pub key: UpstreamKey,
    /// `namespace/service:port`, for metrics and logs.
    pub label: Arc<str>,
    pub endpoints: Vec<EndpointAddr>,
    pub trust: TrustAnchors,
}
