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

use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::{self, Annotations};
use super::compiled::HashMap;
use super::options::CompileOptions;
use super::snapshot::{ObjectKey, Snapshot};

/// The parsed annotations of one Ingress version.
pub(super) type Parsed = (Annotations, Vec<annotations::Problem>);

/// The versions of one Ingress parsed, with what they parsed to.
type Versions = Vec<(Arc<Ingress>, Arc<Parsed>)>;

/// Per-Ingress results of earlier compiles, valid for one environment:
/// the options without the clock and the ConfigMaps (by identity).
#[derive(Default)]
pub(super) struct Memo {
    env: Option<(CompileOptions, Vec<(ObjectKey, usize)>)>,
    /// Parsed annotations by Ingress, with the version they were parsed
    /// from (as written, and the last good one).
    annotations: HashMap<ObjectKey, Versions>,
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
    }

    /// The parsed annotations of this very version, if parsed in the
    /// same environment.
    pub(super) fn annotations(&self, key: &ObjectKey, object: &Arc<Ingress>) -> Option<Parsed> {
        self.annotations
            .get(key)?
            .iter()
            .find(|(v, _)| Arc::ptr_eq(v, object))
            .map(|(_, p)| Parsed::clone(p))
    }

    /// Whether this version has annotations whose effect reaches beyond
    /// its own hosts' routes: `server-alias` hosts, `from-to-www-redirect`
    /// twins, a mirror target (unknown: yes).
    pub(super) fn reaches_out(&self, key: &ObjectKey, object: &Arc<Ingress>) -> bool {
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
        object: &Arc<Ingress>,
        parsed: &Parsed,
    ) {
        let versions = self.annotations.entry(key.clone()).or_default();
        if !versions.iter().any(|(v, _)| Arc::ptr_eq(v, object)) {
            versions.push((object.clone(), Arc::new(parsed.clone())));
        }
    }
}
