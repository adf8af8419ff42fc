//! What every connection of every listener shares: the request path's
//! settings (from flags), the published state's handle, metrics, the
//! external-auth client.
//!
//! Invariant: read-only after start-up; a request reaches the published
//! state through it with one `ArcSwap` load.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use ipnet::IpNet;

use super::client_ip;
use super::headers::ClientInfo;
use crate::metrics::Metrics;
use crate::state::Published;

/// hyper's HTTP/1.1 read buffer cannot be smaller than this; the buffer
/// bounds what hyper reads, the exact `--max-header-bytes` check is the
/// service's ([`ProxySettings::max_header_bytes`]).
pub const H1_BUFFER_FLOOR: usize = 8192;

/// Settings of the request path (from flags).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub access_log: bool,
    /// Port in HTTP → HTTPS redirects (omitted when 443).
    pub https_redirect_port: u16,
    /// `Strict-Transport-Security` value for HTTPS responses.
    pub hsts: Option<HeaderValue>,
    /// `--max-header-bytes`: the service measures each HTTP/1 request head
    /// against it (431 above). hyper's read buffer alone is not exact: it
    /// has a floor of [`H1_BUFFER_FLOOR`] and a read may overshoot it.
    pub max_header_bytes: usize,
}

/// Shared by every connection of every listener.
#[derive(Debug)]
pub struct ProxyState {
    pub published: Arc<ArcSwap<Published>>,
    pub settings: ProxySettings,
    pub metrics: Arc<Metrics>,
    /// The client of external authentication (`auth-url`) sub-requests;
    /// `None` when it could not be built (such routes then refuse: 500).
    pub auth_client: Option<crate::auth::external::client::AuthClient>,
}

impl ProxyState {
    /// Per-connection forwarding info: built once per accepted connection.
    /// `peer` is the client address after the PROXY protocol header.
    pub fn client_info(
        &self,
        peer: std::net::SocketAddr,
        local_port: u16,
        proto: &'static str,
        sni: Option<&str>,
    ) -> ClientInfo {
        let ip = peer.ip().to_canonical();
        ClientInfo {
            tls: proto == "https",
            sni: sni.map(|s| s.to_ascii_lowercase().into()),
            peer: ip,
            peer_ip: HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            trusted: client_ip::is_trusted(ip, &self.settings.trusted_proxies),
            proto: HeaderValue::from_static(proto),
            port: HeaderValue::from(local_port),
        }
    }
}
