//! [`Memo`]: per-Ingress results of earlier compiles (parsed annotations),
//! read and filled by the compile steps through the builder, and kept
//! between compiles by [`super::Incremental`].
//!
//! Invariants:
//! - An entry is valid for one environment only: the options without the
//!   clock and the ConfigMaps (by identity). [`Memo::prepare`] drops every
//!   entry when the environment changed.
//! - Entries are keyed by the very version (`Arc` identity) they were
//!   computed from: a changed Ingress never reads a stale entry.
//! - Parsing reads only the namespace and the annotations (and the
//!   environment), so versions with the same namespace and annotations
//!   share one [`Parsed`] (most Ingresses of a cluster carry the same few
//!   annotation sets, or none): memory grows with the distinct sets, not
//!   with the Ingresses. A shared entry is dropped with its last user.

use std::hash::BuildHasher;
use std::sync::Arc;

use crate::config::snapshot::CompactIngress;

use super::annotations::{self, Annotations};
use super::compiled::HashMap;
use super::options::CompileOptions;
use super::snapshot::{ObjectKey, Snapshot};

/// The parsed annotations of one Ingress version.
pub(super) type Parsed = (Annotations, Vec<annotations::Problem>);

/// The versions of one Ingress parsed, with what they parsed to.
type Versions = Vec<(Arc<CompactIngress>, Arc<Parsed>)>;

/// Per-Ingress results of earlier compiles, valid for one environment:
/// the options without the clock and the ConfigMaps (by identity).
#[derive(Default)]
pub(super) struct Memo {
    env: Option<(CompileOptions, Vec<(ObjectKey, usize)>)>,
    /// Parsed annotations by Ingress, with the version they were parsed
    /// from (as written, and the last good one).
    annotations: HashMap<ObjectKey, Versions>,
    /// The same [`Parsed`] values by what they were parsed from: a hash of
    /// the namespace and the annotations, then the version first parsed
    /// to them (compared in full, see [`same_input`]).
    shared: HashMap<u64, Versions>,
}

/// The namespace parsing reads (`default` when unset).
fn namespace(ingress: &CompactIngress) -> &str {
    ingress.metadata.namespace.as_deref().unwrap_or("default")
}

/// Whether two versions parse alike in one environment: the same
/// namespace and the same annotations.
fn same_input(a: &CompactIngress, b: &CompactIngress) -> bool {
    namespace(a) == namespace(b) && a.metadata.annotations == b.metadata.annotations
}

impl Memo {
    /// Drops every entry when the environment changed; `true` then.
    pub(super) fn prepare(&mut self, snapshot: &Snapshot, opts: &CompileOptions) -> bool {
        let env = (
            CompileOptions {
                now: None,
                ..opts.clone()
            },
            snapshot
                .config_maps
                .iter()
                .map(|(k, e)| (k.clone(), Arc::as_ptr(&e.object) as usize))
                .collect(),
        );
        if self.env.as_ref() == Some(&env) {
            return false;
        }
        self.annotations.clear();
        self.shared.clear();
        self.env = Some(env);
        true
    }

    /// Forgets Ingresses that are gone, and versions neither written nor
    /// last good.
    pub(super) fn retain(&mut self, snapshot: &Snapshot) {
        self.annotations.retain(|key, versions| {
            let Some(entry) = snapshot.ingresses.get(key) else {
                return false;
            };
            versions.sort_by_key(|(v, _)| !Arc::ptr_eq(v, &entry.object));
            versions.truncate(2);
            true
        });
        // Shared values nobody uses any more (only this map holds them).
        self.shared.retain(|_, same| {
            same.retain(|(_, parsed)| Arc::strong_count(parsed) > 1);
            !same.is_empty()
        });
    }

    fn input_hash(&self, object: &CompactIngress) -> u64 {
        self.shared
            .hasher()
            .hash_one((namespace(object), object.metadata.annotations.as_ref()))
    }

    /// What another version with the same namespace and annotations
    /// parsed to, in this environment.
    pub(super) fn same_annotations(&self, object: &CompactIngress) -> Option<Parsed> {
        self.shared
            .get(&self.input_hash(object))?
            .iter()
            .find(|(v, _)| same_input(v, object))
            .map(|(_, p)| Parsed::clone(p))
    }

    /// The parsed annotations of this very version, if parsed in the
    /// same environment.
    pub(super) fn annotations(
        &self,
        key: &ObjectKey,
        object: &Arc<CompactIngress>,
    ) -> Option<Parsed> {
        self.annotations
            .get(key)?
            .iter()
            .find(|(v, _)| Arc::ptr_eq(v, object))
            .map(|(_, p)| Parsed::clone(p))
    }

    /// Whether this version has annotations whose effect reaches beyond
    /// its own hosts' routes: `server-alias` hosts, `from-to-www-redirect`
    /// twins, a mirror target (unknown: yes).
    pub(super) fn reaches_out(&self, key: &ObjectKey, object: &Arc<CompactIngress>) -> bool {
        self.annotations(key, object).is_none_or(|(parsed, _)| {
            !parsed.aliases.is_empty() || parsed.www_redirect || parsed.mirror.is_some()
        })
    }

    /// Whether any version of Ingress `key` parsed so far reaches out
    /// (see [`Memo::reaches_out`]; none parsed: yes).
    pub(super) fn any_reaches_out(&self, key: &ObjectKey) -> bool {
        self.annotations.get(key).is_none_or(|v| {
            v.iter()
                .any(|(_, p)| !p.0.aliases.is_empty() || p.0.www_redirect || p.0.mirror.is_some())
        })
    }

    pub(super) fn remember_annotations(
        &mut self,
        key: &ObjectKey,
        object: &Arc<CompactIngress>,
        parsed: &Parsed,
    ) {
        let known = self
            .annotations
            .get(key)
            .is_some_and(|versions| versions.iter().any(|(v, _)| Arc::ptr_eq(v, object)));
        if known {
            return;
        }
        let hash = self.input_hash(object);
        let same = self.shared.entry(hash).or_default();
        let shared = match same.iter().find(|(v, _)| same_input(v, object)) {
            Some((_, p)) => p.clone(),
            None => {
                let p = Arc::new(parsed.clone());
                same.push((object.clone(), p.clone()));
                p
            }
        };
        // Exactly: a first push would make room for four versions, and an
        // Ingress keeps one or two.
        let versions = self.annotations.entry(key.clone()).or_default();
        versions.reserve_exact(1);
        versions.push((object.clone(), shared));
    }
}
