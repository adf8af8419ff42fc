//! Process-wide settings of the request path that come from the
//! ingress-nginx ConfigMap (`--configmap`): HSTS, the `Server` header,
//! trust in forwarding headers (real client IP), blocked User-Agents, and
//! the TLS versions and ALPN of the HTTPS listener. Compiled with the
//! table and published with it, so a changed ConfigMap reaches the next
//! request without a restart and a request reads them without a lock.
//!
//! Invariants:
//! - Plain immutable data; every matcher is pre-built (no allocation and
//!   no parsing per request).
//! - `None` in an override field means "the ConfigMap does not set it":
//!   the flag's value applies (`--hsts`, `--trusted-proxies`). A key the
//!   ConfigMap sets overrides the flag, as ingress-nginx's ConfigMap is its
//!   source of truth.
//! - Trust fails closed: a [`Trust`] is only built from valid CIDRs (the
//!   compiler builds one that trusts nobody when a CIDR is bad).

use http::header::{HeaderName, HeaderValue};
use ipnet::IpNet;

/// What the ConfigMap sets for the whole request path.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `hsts*` keys: `Some(None)` turns HSTS off, `Some(Some(v))` sends
    /// `v` on HTTPS responses; `None`: `--hsts` applies.
    pub hsts: Option<Option<HeaderValue>>,
    /// `server-tokens: "true"`: `Server: tollgate/<version>`; `None`: the
    /// plain `tollgate`.
    pub server: Option<HeaderValue>,
    /// `use-forwarded-headers` / `enable-real-ip` and their companions;
    /// `None`: `--trusted-proxies` applies.
    pub trust: Option<Trust>,
    /// `block-user-agents`: requests whose User-Agent matches get a 403.
    pub block_agents: Option<AgentBlock>,
    /// `use-http2` and `ssl-protocols`.
    pub tls: TlsPrefs,
}

/// Which forwarding headers are believed, and from whom (ingress-nginx's
/// `use-forwarded-headers`, `enable-real-ip`, `proxy-real-ip-cidr`,
/// `forwarded-for-header`, `compute-full-forwarded-for`).
#[derive(Debug, Clone)]
pub struct Trust {
    /// Peers whose forwarding headers are believed (`proxy-real-ip-cidr`);
    /// empty: nobody.
    pub nets: Vec<IpNet>,
    /// `proxy-real-ip-cidr` was not set: `--trusted-proxies`, when given,
    /// replaces [`Trust::nets`] (ingress-nginx's `0.0.0.0/0`).
    pub nets_from_flag: bool,
    /// The header the real client IP is read from (`forwarded-for-header`).
    pub header: HeaderName,
    /// `use-forwarded-headers`: a trusted peer's X-Forwarded-Proto, -Host
    /// and -Port are passed on (else they are set from the connection).
    pub forwarded_headers: bool,
    /// `compute-full-forwarded-for`: X-Forwarded-For is the trusted
    /// peer's chain plus the peer; else it is the client IP alone.
    pub full_chain: bool,
}

/// The User-Agents refused with 403 (nginx `map` semantics: exact strings
/// compared without case, `~` regexes with case, `~*` without).
#[derive(Debug, Clone)]
pub struct AgentBlock {
    exact: Vec<Box<[u8]>>,
    regex: Option<regex::bytes::RegexSet>,
}

/// The HTTPS listener's protocol choices (ingress-nginx's defaults: both
/// TLS versions, HTTP/2 offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsPrefs {
    /// `use-http2`: ALPN offers `h2`.
    pub http2: bool,
    pub tls12: bool,
    pub tls13: bool,
}

impl Default for TlsPrefs {
    fn default() -> Self {
        Self {
            http2: true,
            tls12: true,
            tls13: true,
        }
    }
}

impl AgentBlock {
    /// `exact` are the literal entries, `regex` the set of patterns
    /// (case-insensitive ones carry their own `(?i)`).
    pub fn new(exact: Vec<Box<[u8]>>, regex: Option<regex::bytes::RegexSet>) -> Self {
        Self { exact, regex }
    }

    /// Whether a request with this User-Agent (`None`: no header, matched
    /// as the empty string, as nginx's `$http_user_agent`) is refused.
    pub fn blocks(&self, agent: Option<&HeaderValue>) -> bool {
        let agent = agent.map_or(&[][..], HeaderValue::as_bytes);
        self.exact.iter().any(|e| e.eq_ignore_ascii_case(agent))
            || self.regex.as_ref().is_some_and(|r| r.is_match(agent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_match_exactly_without_case_or_by_regex() {
        let set = regex::bytes::RegexSet::new(["bot/[0-9]+", "(?i)curl"]).unwrap();
        let block = AgentBlock::new(vec![b"BadAgent".to_vec().into()], Some(set));
        let ua = |s: &'static str| HeaderValue::from_static(s);
        assert!(block.blocks(Some(&ua("badagent"))));
        assert!(!block.blocks(Some(&ua("badagent/2"))));
        assert!(block.blocks(Some(&ua("x bot/12"))));
        assert!(!block.blocks(Some(&ua("BOT/12"))));
        assert!(block.blocks(Some(&ua("CURL/8"))));
        assert!(!block.blocks(None));
    }
}
