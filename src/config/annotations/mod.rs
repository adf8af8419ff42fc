//! Annotations of an Ingress: ingress-nginx's `nginx.ingress.kubernetes.io/*`
//! (with ingress-nginx's value formats and defaults) and tollgate's own
//! `tollgate.dev/*`, parsed once into the table's own policy types: the
//! [`RoutePolicy`] the annotations ask for, plus the few Ingress-level
//! settings that are not route policy ([`Annotations`]).
//!
//! One file per concern: [`known`] (which annotations exist), `limits`
//! (access lists, rate and connection limits), `redirect`, `upstream`
//! (body size, timeouts, retries, affinity, hashing), `cors`, `auth`,
//! `ingress` (aliases, error codes, canary), `response_rewrite` (the
//! upstream's `Location` and cookies), `bandwidth` (`limit-rate`),
//! `mirror` (`mirror-target`), `client_cert` (`auth-tls-*`) and
//! [`values`] (the value
//! parsers); `parser` holds what they share (the prefixes, the `Parser`
//! they extend, its [`Problem`]). This file only declares them, re-exports,
//! and runs them in order ([`parse`]).
//!
//! Invariants:
//! - Pure: strings in, typed values and problems out. Never panics.
//! - Nothing is interpolated or executed: snippet and Lua annotations (the
//!   way configuration was injected into ingress-nginx, CVE-2025-1974) are
//!   refused, which rejects the Ingress; the one exception is a
//!   `configuration-snippet` / `server-snippet` made only of literal header
//!   directives, read (never executed) as header rules (`snippet`,
//!   `headers`).
//! - Fail closed: an access list, an authentication setting, or a
//!   security annotation we cannot honour that does not parse rejects the
//!   Ingress (its last good version keeps serving); any other bad value is a
//!   warning and its default applies.
//! - Every `nginx.ingress.kubernetes.io/` annotation is accounted for: one
//!   we honour, one we know and refuse, or one we list as unknown in a
//!   warning. [`KNOWN`] is the table `docs/annotations.md` documents.
//! - The parts of the policy that need more than the annotations (a path's
//!   rewrite, the users of a basic-auth Secret, the default backend's
//!   upstream) are left empty here; the compiler fills them.

mod auth;
mod bandwidth;
mod client_cert;
mod cors;
mod global_limits;
pub mod headers;
mod ingress;
pub mod known;
mod limits;
mod logging;
mod mirror;
pub(super) mod parser;
mod redirect;
mod response_rewrite;
mod session_cookie;
mod snippet;
mod upstream;
pub mod values;

use http::HeaderValue;

use crate::config::snapshot::AnnotationMap;
use crate::table::policy::{BasicAuth, RoutePolicy, Timeouts};

pub use auth::BasicAuthSpec;
pub use client_cert::ClientCertSpec;
pub use ingress::CanarySpec;
pub use known::{support, Support, KNOWN};
pub use mirror::MirrorSpec;
use parser::Parser;
pub use parser::{LimitStatuses, Problem, NGINX, TOLLGATE};
pub use values::{parse_cidrs, parse_hash_key, parse_size, valid_cookie_name};

#[cfg(test)]
use {crate::table::policy::HashPart, std::time::Duration};

/// Everything the annotations of one Ingress ask for.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    /// The route policy, in the table's type. Left for the compiler:
    /// `rewrite` (needs each path's regex), `basic_auth` (needs the
    /// Secret; see [`Self::basic_auth`]), `fallback` and `custom_errors`
    /// (need upstreams).
    pub policy: RoutePolicy,
    /// Paths other than Exact are regular expressions (`use-regex`, or
    /// implied by `rewrite-target`).
    pub use_regex: bool,
    /// `rewrite-target`: becomes each regex path's rewrite.
    pub rewrite_target: Option<String>,
    /// Basic authentication, to resolve against its Secret.
    pub basic_auth: Option<BasicAuthSpec>,
    /// `server-alias`: more hosts serving the paths of every named rule.
    pub aliases: Vec<String>,
    /// `default-backend`: a Service in the Ingress's namespace.
    pub default_backend: Option<String>,
    /// `custom-http-errors`: statuses the default backend answers instead.
    pub custom_errors: Vec<u16>,
    /// Set on a canary Ingress (`canary: "true"`).
    pub canary: Option<CanarySpec>,
    /// `custom-headers` and the header snippets (`headers`), for the
    /// compiler to merge with the ConfigMap's header lists.
    pub headers: headers::HeaderAnnotations,
    /// `from-to-www-redirect`: the `www.` (or bare) twin of each rule's
    /// host redirects to it.
    pub www_redirect: bool,
    /// `mirror-target` (with `mirror-host`, `mirror-request-body`): the
    /// compiler gives it an upstream and makes it the route's mirror.
    pub mirror: Option<MirrorSpec>,
    /// `auth-tls-*`: client certificates, to resolve against the Secret.
    pub client_cert: Option<ClientCertSpec>,
}

/// Parses the annotations of one Ingress.
pub fn parse(
    annotations: Option<&AnnotationMap>,
    statuses: LimitStatuses,
) -> (Annotations, Vec<Problem>) {
    let mut p = Parser {
        map: annotations,
        problems: Vec::new(),
    };
    p.account_for_every_nginx_annotation();
    let mut policy = RoutePolicy {
        access: p.access(),
        ..RoutePolicy::default()
    };
    p.limits(&mut policy, statuses);
    p.global_limits(&mut policy);
    policy.redirect = p.redirect();
    policy.app_root = p.app_root();
    let rewrite_target = p.nginx("rewrite-target").map(str::to_string);
    let use_regex = p.flag("use-regex").unwrap_or(false) || rewrite_target.is_some();
    policy.max_body = p.body_size();
    policy.timeouts = Timeouts {
        connect: p.seconds("proxy-connect-timeout"),
        read: p.seconds("proxy-read-timeout"),
        send: p.seconds("proxy-send-timeout"),
        ..Timeouts::default()
    };
    policy.retry = p.retry();
    policy.affinity = p.affinity(use_regex);
    policy.hash_by = p.hash_by();
    policy.cors = p.cors();
    let basic_auth = p.basic_auth();
    match p.external_auth() {
        Ok(auth) => policy.external_auth = auth,
        // Rejected (reported); should it be served anyway, nobody gets in.
        Err(()) => {
            policy.basic_auth = Some(BasicAuth {
                users: Default::default(),
                challenge: HeaderValue::from_static("Basic"),
                unavailable: false,
            })
        }
    }
    policy.forwarded_prefix = p.header_value("x-forwarded-prefix");
    policy.upstream_vhost = p.header_value("upstream-vhost");
    policy.no_access_log = p.access_log_off();
    policy.response_rewrite = p.response_rewrite();
    policy.limit_rate = p.limit_rate();
    // Field order is evaluation order: problems keep their order.
    let out = Annotations {
        policy,
        use_regex,
        rewrite_target,
        basic_auth,
        aliases: p.aliases(),
        default_backend: p.nginx("default-backend").map(str::to_string),
        custom_errors: p.custom_errors(),
        canary: p.canary(),
        headers: p.headers(),
        www_redirect: p.flag("from-to-www-redirect").unwrap_or(false),
        mirror: p.mirror(),
        client_cert: p.client_cert(),
    };
    (out, p.problems)
}

#[cfg(test)]
pub(super) mod fuzz;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_nginx;
