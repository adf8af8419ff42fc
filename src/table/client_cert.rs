//! Client-certificate authentication (ingress-nginx's `auth-tls-*`
//! annotations) as table data: the policy a route checks per request
//! ([`ClientCert`]) and the TLS hosts whose handshakes ask the client for a
//! certificate ([`ClientAuthHosts`]).
//!
//! Invariants:
//! - Built by the compiler, immutable afterwards; the request path only
//!   reads it.
//! - Fail closed: a policy whose CA could not be read has no verifier and
//!   refuses every request (403, as ingress-nginx's `AuthTLSError`); an
//!   unknown `auth-tls-verify-client` value is `on`.
//! - A host is in [`ClientAuthHosts`] only when a route on it asks for a
//!   client certificate (any mode but `off`) and it has a certificate of
//!   its own; every other handshake stays exactly as without client auth
//!   (no CertificateRequest).

use std::sync::Arc;

use http::HeaderValue;
use regex::Regex;
use rustls::server::danger::ClientCertVerifier;
use smol_str::SmolStr;

type Set = std::collections::HashSet<SmolStr, foldhash::fast::RandomState>;

/// A verifier of client chains against one Secret's CAs.
#[derive(Clone)]
pub struct CaVerifier(pub Arc<dyn ClientCertVerifier>);

impl std::fmt::Debug for CaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaVerifier")
    }
}

/// `auth-tls-verify-client`, nginx's `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    /// A certificate verified against the CA is required (400 without).
    On,
    /// Asked for; verified when presented (a bad one gets 400).
    Optional,
    /// Asked for, not required to verify (its result is only reported).
    OptionalNoCa,
    /// Not asked for.
    Off,
}

impl VerifyClient {
    /// ingress-nginx's values; `None` for anything else.
    pub fn parse(value: &str) -> Option<VerifyClient> {
        match value {
            "on" => Some(VerifyClient::On),
            "optional" => Some(VerifyClient::Optional),
            "optional_no_ca" => Some(VerifyClient::OptionalNoCa),
            "off" => Some(VerifyClient::Off),
            _ => None,
        }
    }
}

/// A route's client-certificate policy.
#[derive(Clone)]
pub struct ClientCert {
    /// `namespace/name` of the Secret whose `ca.crt` holds the CAs.
    pub secret: Arc<str>,
    /// Verifies a chain against the CAs; `None` when the Secret gave no
    /// usable CA (and none was ever good): every request is refused.
    pub verifier: Option<Arc<dyn ClientCertVerifier>>,
    pub verify: VerifyClient,
    /// `auth-tls-verify-depth`: the longest chain accepted, CA included
    /// (1: the client certificate is signed by a CA of the Secret).
    pub depth: u8,
    /// `auth-tls-error-page`: failures redirect (302) here instead of 400.
    pub error_page: Option<HeaderValue>,
    /// `auth-tls-pass-certificate-to-upstream`: `ssl-client-cert` upstream.
    pub pass_certificate: bool,
    /// `auth-tls-match-cn`: the subject DN must match (else 403).
    pub match_cn: Option<Arc<Regex>>,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("secret", &self.secret)
            .field("ca", &self.verifier.is_some())
            .field("verify", &self.verify)
            .field("depth", &self.depth)
            .field("error_page", &self.error_page)
            .field("pass_certificate", &self.pass_certificate)
            .field("match_cn", &self.match_cn.as_ref().map(|r| r.as_str()))
            .finish()
    }
}

/// One line for `tollgate check` and `/debug/routes`:
/// `client-cert ns/name verify on depth 1`, and what else is set.
pub fn summary(c: &ClientCert) -> String {
    let verify = match c.verify {
        VerifyClient::On => "on",
        VerifyClient::Optional => "optional",
        VerifyClient::OptionalNoCa => "optional_no_ca",
        VerifyClient::Off => "off",
    };
    let mut line = format!("client-cert {} verify {verify} depth {}", c.secret, c.depth);
    if c.verifier.is_none() {
        line.push_str(" (no usable CA: 403)");
    }
    if let Some(re) = &c.match_cn {
        line.push_str(&format!(" match-cn {}", re.as_str()));
    }
    if let Some(page) = &c.error_page {
        line.push_str(&format!(
            " error-page {}",
            String::from_utf8_lossy(page.as_bytes())
        ));
    }
    if c.pass_certificate {
        line.push_str(" pass-certificate");
    }
    line
}

/// TLS hosts (as in `spec.tls`, lowercase; `*.suffix` for wildcards) whose
/// handshakes request a client certificate.
#[derive(Debug, Default, Clone)]
pub struct ClientAuthHosts {
    exact: Set,
    wildcard: Set,
}

impl ClientAuthHosts {
    pub fn insert(&mut self, host: &str) {
        match host.strip_prefix("*.") {
            Some(suffix) => self.wildcard.insert(suffix.into()),
            None => self.exact.insert(host.into()),
        };
    }

    /// Whether no handshake requests a certificate (the listener then
    /// picks its configuration before reading the ClientHello, as always).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    /// Whether a handshake with this (normalized) SNI requests a client
    /// certificate: an exact host, or a wildcard covering one more label.
    pub fn requests(&self, server_name: Option<&str>) -> bool {
        let Some(name) = server_name else {
            return false;
        };
        self.exact.contains(name)
            || name
                .split_once('.')
                .is_some_and(|(_, suffix)| self.wildcard.contains(suffix))
    }

    /// Every host, sorted: for reports, off the request path.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .exact
            .iter()
            .map(|h| h.to_string())
            .chain(self.wildcard.iter().map(|h| format!("*.{h}")))
            .collect();
        hosts.sort_unstable();
        hosts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_one_wildcard_label() {
        let mut hosts = ClientAuthHosts::default();
        assert!(hosts.is_empty());
        hosts.insert("a.example.com");
        hosts.insert("*.wild.example.com");
        assert!(hosts.requests(Some("a.example.com")));
        assert!(!hosts.requests(Some("b.example.com")));
        assert!(hosts.requests(Some("x.wild.example.com")));
        assert!(!hosts.requests(Some("y.x.wild.example.com")));
        assert!(!hosts.requests(None));
        assert_eq!(hosts.hosts(), ["*.wild.example.com", "a.example.com"]);
    }

    #[test]
    fn verify_client_values_are_nginx_s() {
        assert_eq!(VerifyClient::parse("on"), Some(VerifyClient::On));
        assert_eq!(
            VerifyClient::parse("optional_no_ca"),
            Some(VerifyClient::OptionalNoCa)
        );
        assert_eq!(VerifyClient::parse("ON"), None);
    }
}
