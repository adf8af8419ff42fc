//! Conflicts: when two Ingresses ask for the same thing, who gets it. A
//! (host, path, pathType), the default backend of unmatched hosts, the
//! canary slot of a route.
//!
//! Invariants:
//! - Ingresses arrive oldest first, so the first claim wins: the oldest
//!   Ingress keeps the path (or an earlier path of the same Ingress, for a
//!   duplicate), and the loser gets a diagnostic naming the holder.
//! - A losing route leaves nothing behind in the table.
//! - A canary attaches only to a route another Ingress serves for the same
//!   host, path and pathType, and only the oldest canary does.

use std::sync::Arc;

use regex::Regex;

use super::builder::Builder;
use super::problem::{shown_host, Field, Problem, Reason};
use super::snapshot::ObjectKey;
use crate::table::{Insert, PathType, RouteId};

/// One path of an Ingress asking for its place in a host's table.
pub(super) struct Claim<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub path_type: PathType,
    /// The path's regex (`use-regex`).
    pub regex: Option<&'a Arc<Regex>>,
    /// The route just pushed for it; popped again if the claim loses.
    pub route: RouteId,
    /// The path's field, for the diagnostic.
    pub field: Field,
}

impl Builder<'_> {
    /// Inserts a claimed path into its host's table. On a conflict the
    /// route is dropped and the Ingress gets a rejection for that path.
    pub(super) fn claim_path(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        ingress_label: &str,
        claim: Claim<'_>,
    ) {
        let table = self.out.table.host_mut(claim.host);
        let inserted = match claim.regex {
            Some(pattern) => table.insert_regex(claim.path, pattern.clone(), claim.route),
            None => table.insert(claim.path, claim.path_type, claim.route),
        };
        let Insert::Taken(holder) = inserted else {
            self.paths.insert(
                (
                    claim.host.to_string(),
                    claim.path.to_string(),
                    claim.path_type,
                ),
                claim.route,
            );
            return;
        };
        self.out.table.pop_route();
        let holder = self
            .out
            .table
            .route(holder)
            .map(|r| r.ingress.clone())
            .unwrap_or_else(|| "".into());
        let host = shown_host(claim.host);
        let path = claim.path.to_string();
        let path_type = claim.path_type;
        let reason = if *holder == *ingress_label {
            Reason::DuplicatePath {
                host,
                path,
                path_type,
            }
        } else {
            Reason::PathTaken {
                host,
                path,
                path_type,
                holder,
            }
        };
        self.reject(key, origin, Problem::new(claim.field, reason));
    }

    /// Makes `route` the answer for requests matching no host at all,
    /// unless an older Ingress's default backend already is.
    pub(super) fn claim_unmatched_hosts(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        route: RouteId,
    ) {
        if !self.out.table.host_mut("").set_fallback(route) {
            self.warn(
                key,
                origin,
                Problem::new(Field::DefaultBackend, Reason::DefaultBackendTaken),
            );
        }
    }

    /// The route a canary path attaches to: the one another Ingress serves
    /// for the same host, path and pathType, if no older canary has it.
    pub(super) fn canary_target(
        &self,
        host: &str,
        path: &str,
        path_type: PathType,
    ) -> Result<RouteId, Reason> {
        let Some(&main) = self
            .paths
            .get(&(host.to_string(), path.to_string(), path_type))
        else {
            return Err(Reason::CanaryWithoutRoute {
                host: shown_host(host),
                path: path.to_string(),
                path_type,
            });
        };
        if self
            .out
            .table
            .route(main)
            .is_some_and(|r| r.canary.is_some())
        {
            return Err(Reason::CanaryTaken);
        }
        Ok(main)
    }
}
