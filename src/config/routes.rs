//! Hosts and paths: an Ingress's rules (and `server-alias` hosts) become
//! routes in the table, each with its upstream, its policy and whether it
//! redirects to HTTPS; `spec.defaultBackend` becomes the fallback of its
//! hosts and, for the oldest Ingress with one, of unmatched hosts.
//!
//! Invariants:
//! - A host exists in the table as soon as a rule names it, even without
//!   paths, so its default backend (or a 404) answers rather than the
//!   hostless rules.
//! - A host redirects to HTTPS when it has a certificate of its own (as in
//!   ingress-nginx; not when its Secret is missing), unless `ssl-redirect`
//!   is `"false"`; `force-ssl-redirect` redirects regardless.
//! - `use-regex` paths (other than Exact) match as regular expressions;
//!   `rewrite-target` rewrites them.
//! - `from-to-www-redirect` adds the `www.` (or bare) twin of each rule's
//!   host, answering only with a 308 to it, after every Ingress and alias
//!   is in: a twin with an Ingress or alias of its own is never taken over.
//! - A route's label strings (ingress, host, path; its service is the
//!   upstream's label) come from [`crate::intern`]: a recompile hands the
//!   same allocations to the new table, and the metric series resolved
//!   from the previous one keep sharing them.

use std::sync::Arc;

use super::annotations::parser::annotation;
use super::backends::port_ref;
use super::builder::Builder;
use super::conflicts::Claim;
use super::problem::{Field, PathPart, Problem, Reason};
use super::select::Served;
use super::validate;
use crate::intern::intern;
use crate::table::policy::{AffinityMode, Rewrite, RoutePolicy};
use crate::table::upstream::LbAlgorithm;
use crate::table::{PathType, Route, RouteKind};

/// `"false"` turns off the HTTP → HTTPS redirect of an Ingress's TLS hosts.
pub const SSL_REDIRECT_ANNOTATION: &str = "tollgate.dev/ssl-redirect";
pub const NGINX_SSL_REDIRECT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
/// `"true"` redirects to HTTPS even without a `spec.tls` section.
pub const NGINX_FORCE_SSL_REDIRECT_ANNOTATION: &str =
    "nginx.ingress.kubernetes.io/force-ssl-redirect";

/// A validated `pathType` (anything but Exact and Prefix is
/// ImplementationSpecific).
pub(super) fn path_type_of(path_type: &str) -> PathType {
    match path_type {
        "Exact" => PathType::Exact,
        "Prefix" => PathType::Prefix,
        _ => PathType::ImplementationSpecific,
    }
}

impl Builder<'_> {
    /// An Ingress that is not a canary: its routes, with its policy.
    pub(super) fn add_ingress(&mut self, ingress: Served<'_>) {
        let Served {
            key,
            origin,
            object,
            annotations: mut parsed,
            problems,
        } = ingress;
        let Some(spec) = &object.spec else { return };
        for problem in problems.into_iter().filter(|p| !p.reject) {
            self.warn(key, &origin, problem.into());
        }
        // A TrafficPolicy wins over the annotations, section by section.
        let mut policy = std::mem::take(&mut parsed.policy);
        let policy_lb = self.apply_traffic_policy(key, &origin, &object, &mut policy);
        // The Ingress's own annotation, else the ConfigMap's default.
        let setting = |a: &str| {
            annotation(&object, a).or_else(|| self.nginx.defaults.get(a).map(String::as_str))
        };
        let ssl_redirect = ![SSL_REDIRECT_ANNOTATION, NGINX_SSL_REDIRECT_ANNOTATION]
            .iter()
            .any(|a| setting(a) == Some("false"));
        let force_redirect = setting(NGINX_FORCE_SSL_REDIRECT_ANNOTATION) == Some("true");
        // Like ingress-nginx: hosts redirect to HTTPS when they have a
        // certificate of their own (not when their Secret is missing, where
        // HTTPS could only offer the default certificate).
        let tls = &self.out.tls;
        let redirects: Vec<(String, bool)> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.as_deref().map(str::to_string))
            .chain(parsed.aliases.iter().cloned())
            .map(|h| {
                let r = force_redirect || (ssl_redirect && tls.lookup(&h).is_some());
                (h, r)
            })
            .collect();
        let redirects =
            |host: &str| force_redirect || redirects.iter().any(|(h, r)| *r && h == host);
        let ingress_label = intern(&key.to_string());
        let mut lb = self.backend_policy(key, &origin, &object, policy_lb, true);
        // Hash-based picking needs the ring on the upstream.
        let balanced_affinity = policy
            .affinity
            .as_ref()
            .is_some_and(|a| a.mode == AffinityMode::Balanced);
        if policy.hash_by.is_some() || balanced_affinity {
            lb.lb = LbAlgorithm::ConsistentHash;
        }
        let mut policy = self.route_policy(key, &origin, policy, &parsed, &lb);
        if let Some(spec) = &parsed.client_cert {
            let client_cert = self.client_cert(key, &origin, spec);
            self.request_client_certs(&object, &parsed.aliases, &client_cert);
            policy.client_cert = Some(client_cert);
        }
        let policy = Arc::new(policy);

        let default_route = spec
            .default_backend
            .as_ref()
            .and_then(port_ref)
            .map(|(svc, port)| {
                let field = Field::DefaultBackend;
                let upstream = self.upstream(key, &origin, &field, svc, port.clone(), &lb);
                let policy = self.with_tls_twin(key, &origin, &field, (svc, port), &lb, &policy);
                let service = self.upstream_label(upstream);
                self.out.table.push_route(Route {
                    ingress: ingress_label.clone(),
                    kind: RouteKind::Ingress,
                    guard: None,
                    host: intern(""),
                    path: intern(""),
                    path_type: None,
                    service,
                    upstream,
                    redirect_https: force_redirect,
                    plain: policy.is_plain(),
                    policy: policy.clone(),
                    canary: None,
                })
            });

        // `server-alias` hosts serve every path of the rules' hosts: added
        // once all Ingresses have their paths (see `add_aliases`).
        let mut hosts: Vec<(usize, String)> = Vec::new();
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let host = rule.host.as_deref().unwrap_or_default().to_string();
            if !host.is_empty() {
                for alias in &parsed.aliases {
                    self.aliases
                        .push((alias.clone(), host.clone(), key.clone()));
                }
            }
            hosts.push((i, host));
        }
        for (i, host) in hosts {
            let Some(rule) = spec.rules.as_ref().and_then(|r| r.get(i)) else {
                continue;
            };
            let host = host.as_str();
            let host_label = intern(host);
            let mut www_route = None;
            // Make sure the host exists even without paths, so that its
            // default backend (or a 404) answers rather than hostless rules.
            self.out.table.host_mut(host);
            for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let Some((svc, port)) = port_ref(&path.backend) else {
                    continue;
                };
                let path_type = path_type_of(&path.path_type);
                let path_str = path.path.as_deref().unwrap_or("/");
                let regex = (parsed.use_regex && path_type != PathType::Exact)
                    .then(|| validate::path_regex(path_str).ok().map(Arc::new))
                    .flatten();
                let route_policy = match (&parsed.rewrite_target, &regex) {
                    (Some(target), Some(pattern)) => Arc::new(RoutePolicy {
                        rewrite: Some(Rewrite {
                            pattern: pattern.clone(),
                            target: target.as_str().into(),
                        }),
                        ..(*policy).clone()
                    }),
                    _ => policy.clone(),
                };
                let field = Field::path(i, j, PathPart::Backend);
                let upstream = self.upstream(key, &origin, &field, svc, port.clone(), &lb);
                let route_policy =
                    self.with_tls_twin(key, &origin, &field, (svc, port), &lb, &route_policy);
                let service = self.upstream_label(upstream);
                let route = self.out.table.push_route(Route {
                    ingress: ingress_label.clone(),
                    kind: RouteKind::Ingress,
                    guard: None,
                    host: host_label.clone(),
                    path: intern(path_str),
                    path_type: Some(path_type),
                    service,
                    upstream,
                    redirect_https: redirects(host),
                    plain: route_policy.is_plain(),
                    policy: route_policy,
                    canary: None,
                });
                let claim = Claim {
                    host,
                    path: path_str,
                    path_type,
                    regex: regex.as_ref(),
                    route,
                    field: Field::path(i, j, PathPart::Whole),
                };
                self.claim_path(key, &origin, &ingress_label, claim);
                www_route = www_route.or(Some(route));
            }
            if let Some(route) = www_route.filter(|_| parsed.www_redirect) {
                if let Some(twin) = www_twin(host) {
                    self.www_twins.push((twin, host.to_string(), route));
                }
            }
            // Hostless rules share the catch-all table; it gets the default
            // backend below, with the oldest-wins check.
            if let Some(route) = default_route.filter(|_| !host.is_empty()) {
                self.out.table.host_mut(host).set_fallback(route);
            }
        }
        if let Some(route) = default_route {
            // Requests matching no host at all: the oldest default backend.
            self.claim_unmatched_hosts(key, &origin, route);
        }
    }
}

impl Builder<'_> {
    /// `server-alias`, as ingress-nginx: each alias serves every path of
    /// its host (whichever Ingress gave them), and never takes over a host
    /// that has its own Ingress (a warning says so).
    pub(super) fn add_aliases(&mut self) {
        self.add_aliases_only();
        self.add_www_twins();
        // Once every Ingress has its paths: client certificates are the
        // host's, as ingress-nginx's server block.
        self.share_client_certs();
    }

    /// `from-to-www-redirect`, as ingress-nginx's redirect servers: the
    /// twin host answers every request with a 308 to the rule's host,
    /// unless the twin has an Ingress (or alias) of its own.
    fn add_www_twins(&mut self) {
        let twins = std::mem::take(&mut self.www_twins);
        for (twin, host, route) in twins {
            if self.out.table.has_host(&twin) {
                continue;
            }
            // A route that lost a conflict was popped: its id may now be
            // another host's.
            let Some(main) = self.out.table.route(route).filter(|r| *r.host == *host) else {
                continue;
            };
            let policy = Arc::new(RoutePolicy {
                www_redirect: Some(host.as_str().into()),
                ..RoutePolicy::default()
            });
            let redirect = Route {
                ingress: main.ingress.clone(),
                kind: RouteKind::Ingress,
                guard: None,
                host: intern(&twin),
                path: intern(""),
                path_type: None,
                service: main.service.clone(),
                upstream: main.upstream,
                redirect_https: false,
                plain: false,
                policy,
                canary: None,
            };
            let id = self.out.table.push_route(redirect);
            self.out.table.host_mut(&twin).set_fallback(id);
        }
    }

    fn add_aliases_only(&mut self) {
        let aliases = std::mem::take(&mut self.aliases);
        let mut added: Vec<(&str, &str)> = Vec::new();
        for (alias, host, key) in &aliases {
            if added.contains(&(alias.as_str(), host.as_str())) {
                continue;
            }
            if self.out.table.add_alias(alias, host) {
                added.push((alias, host));
                continue;
            }
            self.warn(
                key,
                &None,
                Problem::new(
                    Field::annotation("nginx.ingress.kubernetes.io/server-alias"),
                    Reason::Annotation(format!(
                        "`{alias}` is not an alias of {host}: it has an Ingress of its own, or is a wildcard"
                    )),
                ),
            );
        }
    }
}

/// The `www.` twin of a host (`www.example.com` ↔ `example.com`); none for
/// wildcards, hostless rules, and a bare top-level name.
fn www_twin(host: &str) -> Option<String> {
    if host.is_empty() || host.starts_with("*.") {
        return None;
    }
    match host.strip_prefix("www.") {
        Some(bare) if bare.contains('.') => Some(bare.to_string()),
        Some(_) => None,
        None => Some(format!("www.{host}")),
    }
}
