//! Certificates by host name, and the hosts passed through untouched
//! (`ssl-passthrough`): the TLS half of the published state.
//!
//! Invariants:
//! - Immutable once compiled, swapped with the routing table, so a changed
//!   Secret reaches new handshakes as soon as the table is published while
//!   open connections keep the certificate they negotiated.
//! - Lookup takes a normalized (lowercase) name: an exact TLS host first,
//!   then a wildcard TLS host covering exactly one extra label. No match
//!   means the default certificate.
//! - Passthrough hosts are exact names (as ingress-nginx matches the SNI),
//!   each mapped to the upstream whose endpoints get its TCP stream; the
//!   map is empty unless `--enable-ssl-passthrough` and an Ingress ask for
//!   it, and the listener then skips the ClientHello peek altogether.
//! - Client-auth hosts ([`super::client_cert::ClientAuthHosts`]) are TLS
//!   hosts with a certificate of their own; while there are none, every
//!   handshake uses the configuration chosen before the ClientHello.

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use smol_str::SmolStr;

use super::ids::UpstreamId;

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Index of a certificate in [`TlsTable`].
pub type CertId = u32;

#[derive(Debug, Default, Clone)]
pub struct TlsTable {
    exact: Map<SmolStr, CertId>,
    wildcard: Map<SmolStr, CertId>,
    certs: Vec<Arc<CertifiedKey>>,
    /// `--default-certificate`, when given and valid.
    default: Option<CertId>,
    /// `ssl-passthrough` hosts (exact, lowercase) → the upstream their
    /// connections are spliced to.
    passthrough: Map<SmolStr, UpstreamId>,
    /// Hosts whose handshakes request a client certificate (`auth-tls-*`).
    pub client_auth: super::client_cert::ClientAuthHosts,
}

impl TlsTable {
    pub fn push_cert(&mut self, cert: Arc<CertifiedKey>) -> CertId {
        self.certs.push(cert);
        CertId::try_from(self.certs.len() - 1).unwrap_or(CertId::MAX)
    }

    /// Serves `host` (as written in `spec.tls[].hosts`, lowercase; may be
    /// `*.suffix`) with `cert`, unless the host already has one. Returns the
    /// certificate the host ends up with.
    pub fn insert_host(&mut self, host: &str, cert: CertId) -> CertId {
        let (map, key) = match host.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix),
            None => (&mut self.exact, host),
        };
        *map.entry(key.into()).or_insert(cert)
    }

    pub fn set_default(&mut self, cert: CertId) {
        self.default = Some(cert);
    }

    /// The certificate of a (normalized) host, if it has its own.
    #[inline]
    pub fn lookup(&self, host: &str) -> Option<CertId> {
        if let Some(&id) = self.exact.get(host) {
            return Some(id);
        }
        let (_, suffix) = host.split_once('.')?;
        self.wildcard.get(suffix).copied()
    }

    pub fn cert(&self, id: CertId) -> Option<&Arc<CertifiedKey>> {
        self.certs.get(id as usize)
    }

    /// The certificate for a handshake: the host's own, else the
    /// configured default (the caller falls back to the generated one).
    pub fn resolve(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        server_name
            .and_then(|name| self.lookup(name))
            .or(self.default)
            .and_then(|id| self.cert(id))
    }

    /// Every host with its own certificate (wildcards as `*.suffix`), and
    /// the default certificate as host `""`: for metrics, off the request
    /// path.
    pub fn hosts(&self) -> impl Iterator<Item = (String, &Arc<CertifiedKey>)> + '_ {
        let exact = self.exact.iter().map(|(h, &id)| (h.to_string(), id));
        let wildcard = self.wildcard.iter().map(|(h, &id)| (format!("*.{h}"), id));
        let default = self.default.map(|id| (String::new(), id));
        exact
            .chain(wildcard)
            .chain(default)
            .filter_map(|(host, id)| Some((host, self.cert(id)?)))
    }

    pub fn host_count(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Passes `host` (exact, lowercase) through to `upstream`, unless it
    /// already is; returns the upstream the host ends up with.
    pub fn insert_passthrough(&mut self, host: &str, upstream: UpstreamId) -> UpstreamId {
        *self.passthrough.entry(host.into()).or_insert(upstream)
    }

    /// Whether any host is passed through: when none is, the HTTPS
    /// listener handshakes directly, without peeking.
    #[inline]
    pub fn has_passthrough(&self) -> bool {
        !self.passthrough.is_empty()
    }

    /// The upstream a (normalized) SNI name is passed through to, if any.
    #[inline]
    pub fn passthrough(&self, server_name: &str) -> Option<UpstreamId> {
        self.passthrough.get(server_name).copied()
    }

    /// Every passthrough host and its upstream, sorted: for reports, off
    /// the request path.
    pub fn passthrough_hosts(&self) -> Vec<(&str, UpstreamId)> {
        let mut hosts: Vec<_> = self
            .passthrough
            .iter()
            .map(|(h, &id)| (h.as_str(), id))
            .collect();
        hosts.sort_unstable();
        hosts
    }
}
