//! TLS passthrough (`nginx.ingress.kubernetes.io/ssl-passthrough`): which
//! hosts the HTTPS listener splices to a backend untouched, and to which
//! upstream ([`crate::table::tls::TlsTable::passthrough`]).
//!
//! As ingress-nginx:
//! - A passthrough host's TLS connections go to the Service of the route
//!   that serves its `/` path (ingress-nginx's root location; its other
//!   paths never see those connections), with the same upstream, so its
//!   endpoints follow EndpointSlice changes without a recompile.
//! - The SNI is matched exactly: a wildcard or missing host cannot be
//!   passed through. `server-alias` hosts are not passed through.
//! - Plain HTTP keeps the host's routes (and their HTTPS redirect): only
//!   the HTTPS listener passes connections through.
//!
//! Unlike ingress-nginx, which ignores the annotation without
//! `--enable-ssl-passthrough` and terminates TLS with its own certificate
//! (clients see the wrong certificate, the backend gets plain HTTP), an
//! Ingress asking for passthrough without the flag is rejected: its last
//! good version serves, else nothing. The same goes for a rule that cannot
//! be passed through (no host, a wildcard, no `/` path) and a value other
//! than `true`/`false`.
//!
//! Invariants:
//! - Pure, like every compile step. [`problems`] runs where Ingresses are
//!   selected, so a rejected version never reaches the table;
//!   [`Builder::add_passthrough`] runs once every Ingress has its paths.
//! - The oldest Ingress passing a host through decides its upstream.
//! - Annotations that need HTTP (all others of the Ingress) are named in
//!   a warning: they apply to the host's plain HTTP requests only.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::snapshot::{CompactIngress, IngressRule};

use super::annotations::parser::annotation;
use super::annotations::{NGINX, TOLLGATE};
use super::builder::Builder;
use super::options::CompileOptions;
use super::problem::{Field, Problem, Reason};
use super::snapshot::ObjectKey;
use crate::table::{PathType, RouteKind};

/// The annotation, with ingress-nginx's name.
pub const ANNOTATION: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";

/// An Ingress served with passthrough asked for (and allowed).
pub(super) struct Request {
    key: ObjectKey,
    origin: Option<Arc<str>>,
    ingress: Arc<CompactIngress>,
}

/// Whether an Ingress asks for passthrough.
fn asks(ingress: &CompactIngress) -> bool {
    annotation(ingress, ANNOTATION) == Some("true")
}

/// Whether an Ingress is a canary (they are never passed through).
fn is_canary(ingress: &CompactIngress) -> bool {
    annotation(ingress, "nginx.ingress.kubernetes.io/canary") == Some("true")
}

/// The rule's `/` path has a Service backend (ingress-nginx's root
/// location, whatever its pathType).
fn has_root(rule: &IngressRule) -> bool {
    rule.http.iter().flat_map(|h| h.paths.iter()).any(|p| {
        p.path.as_deref().unwrap_or("/") == "/"
            && p.backend.service.as_ref().is_some_and(|s| s.port.is_some())
    })
}

/// What rejects an Ingress asking for passthrough: the flag is off, the
/// value is not a boolean, or a rule cannot be passed through.
pub(super) fn problems(ingress: &CompactIngress, opts: &CompileOptions) -> Vec<Problem> {
    let field = Field::annotation(ANNOTATION);
    match annotation(ingress, ANNOTATION) {
        None | Some("false") => return Vec::new(),
        Some("true") => {}
        Some(other) => return vec![Problem::new(field, Reason::PassthroughValue(other.into()))],
    }
    if !opts.ssl_passthrough {
        return vec![Problem::new(field, Reason::PassthroughDisabled)];
    }
    if is_canary(ingress) {
        // Served without passthrough, with a warning (`add_passthrough`).
        return Vec::new();
    }
    let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
    let Some(rules) = rules.filter(|r| !r.is_empty()) else {
        return vec![Problem::new(Field::Spec, Reason::PassthroughWithoutHost)];
    };
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let field = Field::RuleHost { rule: i };
        let host = rule.host.as_deref().unwrap_or_default();
        let reason = if host.is_empty() {
            Reason::PassthroughWithoutHost
        } else if host.starts_with("*.") {
            Reason::PassthroughWildcard(host.into())
        } else if !has_root(rule) {
            Reason::PassthroughWithoutRoot(host.into())
        } else {
            continue;
        };
        out.push(Problem::new(field, reason));
    }
    out
}

/// The served Ingresses (key, origin, version served, in serving order)
/// that ask for passthrough and may (the flag is on).
pub(super) fn requests<'a>(
    served: impl Iterator<Item = (&'a ObjectKey, &'a Option<Arc<str>>, &'a Arc<CompactIngress>)>,
    opts: &CompileOptions,
) -> Vec<Request> {
    if !opts.ssl_passthrough {
        return Vec::new();
    }
    served
        .filter(|(_, _, ingress)| asks(ingress))
        .map(|(key, origin, ingress)| Request {
            key: key.clone(),
            origin: origin.clone(),
            ingress: ingress.clone(),
        })
        .collect()
}

/// The annotations of an Ingress that act on HTTP requests: every
/// ingress-nginx and tollgate one but `ssl-passthrough` itself.
fn http_annotations(ingress: &CompactIngress) -> Vec<String> {
    ingress
        .metadata
        .annotations
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(|k| (k.starts_with(NGINX) || k.starts_with(TOLLGATE)) && *k != ANNOTATION)
        .map(str::to_string)
        .collect()
}

impl Builder<'_> {
    /// Passes the hosts of `requests` through, each to the upstream of the
    /// route serving its `/` path; warns about what does not apply.
    pub(super) fn add_passthrough(&mut self, requests: Vec<Request>) {
        // Host → the Ingress passing it through.
        let mut holders: BTreeMap<String, String> = BTreeMap::new();
        for Request {
            key,
            origin,
            ingress,
        } in requests
        {
            if is_canary(&ingress) {
                let field = Field::annotation(ANNOTATION);
                self.warn(
                    &key,
                    &origin,
                    Problem::new(field, Reason::PassthroughCanary),
                );
                continue;
            }
            let http_only = http_annotations(&ingress);
            let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
            for rule in rules.into_iter().flatten() {
                let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) else {
                    continue;
                };
                if holders.contains_key(host) {
                    // An older Ingress passes it through already; this one
                    // is shadowed (warned below).
                    continue;
                }
                let root = [
                    PathType::Prefix,
                    PathType::ImplementationSpecific,
                    PathType::Exact,
                ]
                .into_iter()
                .find_map(|t| self.paths.get(&(host.to_string(), "/".to_string(), t)));
                let Some(upstream) = root
                    .and_then(|&id| self.out.table.route(id))
                    .map(|r| r.upstream)
                else {
                    continue;
                };
                self.out.tls.insert_passthrough(host, upstream);
                holders.insert(host.to_string(), key.to_string());
                if !http_only.is_empty() {
                    let reason = Reason::PassthroughHttpOnly {
                        host: host.to_string(),
                        annotations: http_only.clone(),
                    };
                    self.warn(&key, &origin, Problem::new(Field::Annotations, reason));
                }
            }
        }
        self.warn_shadowed(&holders);
    }

    /// Other Ingresses with paths on a passed-through host: their HTTPS
    /// requests never arrive.
    fn warn_shadowed(&mut self, holders: &BTreeMap<String, String>) {
        if holders.is_empty() {
            return;
        }
        let mut shadowed: Vec<(String, String)> = self
            .out
            .table
            .routes()
            .iter()
            .filter(|r| r.kind == RouteKind::Ingress)
            .filter(|r| holders.get(&*r.host).is_some_and(|h| **h != *r.ingress))
            .map(|r| (r.ingress.to_string(), r.host.to_string()))
            .collect();
        shadowed.sort();
        shadowed.dedup();
        for (ingress, host) in shadowed {
            let Some((namespace, name)) = ingress.split_once('/') else {
                continue;
            };
            let holder = holders.get(&host).cloned().unwrap_or_default();
            let reason = Reason::PassthroughShadows { host, holder };
            self.warn(
                &ObjectKey::new(namespace, name),
                &None,
                Problem::new(Field::Spec, reason),
            );
        }
    }
}

#[cfg(test)]
mod tests;
