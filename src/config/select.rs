//! Selection: which Ingresses this controller serves, in which order, and
//! which version of each (as written, or its last good one).
//!
//! Invariants:
//! - Only Ingresses of our class ([`super::class::is_ours`]), oldest first
//!   (creationTimestamp, then `namespace/name`; a missing timestamp counts
//!   as oldest): the order every conflict is decided in. The timestamp is
//!   that of the version served, so a rejected edit (whose timestamp is
//!   only its claim) never moves its last good version ahead of another
//!   Ingress.
//! - An Ingress with any rejecting problem (structure, annotations that
//!   fail closed, authentication that does not resolve, a regex path that
//!   does not compile) is never served as written; its last good version
//!   is, if there is one.
//! - The very object that was last good passed validation then and is not
//!   validated again (`Arc` identity).
//! - Annotations are parsed once per served Ingress, here.

use std::sync::Arc;

use crate::config::snapshot::CompactIngress;

use super::annotations::parser::annotation;
use super::annotations::{self, Annotations};
use super::builder::Builder;
use super::options::CompileOptions;
use super::problem::{Field, PathPart, Problem, Reason};
use super::snapshot::{Entry, ObjectKey, Snapshot};
use super::validate;

/// An Ingress chosen to be served, with its parsed annotations.
pub(super) struct Served<'a> {
    pub key: &'a ObjectKey,
    pub origin: Option<Arc<str>>,
    /// The version served: as written, or the last good one.
    pub object: Arc<CompactIngress>,
    pub annotations: Annotations,
    /// The annotation parser's problems (only warnings: a version with a
    /// rejecting one is not served).
    pub problems: Vec<annotations::Problem>,
}

/// Our Ingresses, oldest first.
pub(super) fn ours<'a>(
    snapshot: &'a Snapshot,
    opts: &CompileOptions,
) -> Vec<(&'a ObjectKey, &'a Entry<CompactIngress>)> {
    let mut ours: Vec<(&ObjectKey, &Entry<CompactIngress>)> = snapshot
        .ingresses
        .iter()
        .filter(|(_, e)| super::class::is_ours(&e.object, &snapshot.ingress_classes, opts))
        .collect();
    ours.sort_by(|(ka, a), (kb, b)| {
        let ta = a.object.metadata.creation_timestamp.as_ref().map(|t| &t.0);
        let tb = b.object.metadata.creation_timestamp.as_ref().map(|t| &t.0);
        ta.cmp(&tb).then_with(|| ka.cmp(kb))
    });
    ours
}

/// Whether an Ingress is a canary (`nginx.ingress.kubernetes.io/canary`).
pub(super) fn is_canary(ingress: &CompactIngress) -> bool {
    annotation(ingress, "nginx.ingress.kubernetes.io/canary") == Some("true")
}

impl<'a> Builder<'a> {
    /// The version of each Ingress to serve, in order; rejections are
    /// reported and last good versions remembered.
    pub(super) fn select<'k>(
        &mut self,
        ours: Vec<(&'k ObjectKey, &'k Entry<CompactIngress>)>,
    ) -> Vec<Served<'k>> {
        let mut served = Vec::with_capacity(ours.len());
        for (key, entry) in ours {
            let origin = Some(entry.origin.clone());
            // The very object that was last good passed validation then.
            let validated = self
                .last_good
                .ingresses
                .get(key)
                .is_some_and(|good| Arc::ptr_eq(good, &entry.object));
            let (parsed, annotation_problems) = self.parse_memoized(key, &entry.object);
            let problems = if validated {
                Vec::new()
            } else {
                let mut problems = validate::ingress(&entry.object);
                problems.extend(self.validate_annotations(
                    &entry.object,
                    &parsed,
                    &annotation_problems,
                ));
                problems
            };
            let chosen = if problems.is_empty() {
                Some((entry.object.clone(), parsed, annotation_problems))
            } else {
                for problem in problems {
                    self.reject(key, &origin, problem);
                }
                let previous = self.last_good.ingresses.get(key).cloned();
                let reason = match &previous {
                    Some(_) => Reason::RejectedLastGoodServes,
                    None => Reason::RejectedNotServed,
                };
                self.reject(key, &origin, Problem::new(Field::Metadata, reason));
                previous.map(|ingress| {
                    let (parsed, problems) = self.parse_memoized(key, &ingress);
                    (ingress, parsed, problems)
                })
            };
            if let Some((object, annotations, problems)) = chosen {
                self.out
                    .last_good
                    .ingresses
                    .insert(key.clone(), object.clone());
                served.push(Served {
                    key,
                    origin,
                    object,
                    annotations,
                    problems,
                });
            }
        }
        // Order by the versions served: a rejected edit claiming another
        // creationTimestamp (a file can say anything) must not let its last
        // good version take another Ingress's paths.
        served.sort_by(|a, b| {
            let created =
                |s: &Served<'_>| s.object.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a).cmp(&created(b)).then_with(|| a.key.cmp(b.key))
        });
        served
    }

    /// [`Self::parse_annotations`], reused from an earlier compile when
    /// this very version was parsed in the same environment, or from
    /// another version with the same namespace and annotations.
    fn parse_memoized(
        &mut self,
        key: &ObjectKey,
        object: &Arc<CompactIngress>,
    ) -> super::memo::Parsed {
        if let Some(parsed) = self.memo.annotations(key, object) {
            return parsed;
        }
        let parsed = match self.memo.same_annotations(object) {
            Some(parsed) => parsed,
            None => self.parse_annotations(object),
        };
        self.memo.remember_annotations(key, object, &parsed);
        parsed
    }

    /// Annotation problems that reject an Ingress (fail closed), and regular
    /// expression paths that do not compile.
    fn validate_annotations(
        &self,
        ingress: &CompactIngress,
        parsed: &Annotations,
        problems: &[annotations::Problem],
    ) -> Vec<Problem> {
        let mut out: Vec<Problem> = problems
            .iter()
            .filter(|p| p.reject)
            .cloned()
            .map(Problem::from)
            .collect();
        // TLS passthrough without the flag, or on a rule it cannot serve.
        out.extend(super::passthrough::problems(ingress, self.opts));
        // A backend protocol tollgate cannot speak (FCGI).
        out.extend(super::backends::backend_protocol_refusal(ingress));
        // Authentication whose Secret cannot be used is served failing
        // closed, as ingress-nginx (503 or 401: see `route_policy`).
        if parsed.use_regex {
            let spec = ingress.spec.as_ref();
            for (i, rule) in spec
                .and_then(|s| s.rules.as_ref())
                .into_iter()
                .flatten()
                .enumerate()
            {
                for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                    if &*path.path_type == "Exact" {
                        continue;
                    }
                    if let Err(reason) = validate::path_regex(path.path.as_deref().unwrap_or("/")) {
                        out.push(Problem::new(Field::path(i, j, PathPart::Path), reason));
                    }
                }
            }
        }
        out
    }
}
