//! ReferenceGrants: whether an object in one namespace may refer to an
//! object in another.
//!
//! Invariants:
//! - A reference within one namespace is always permitted; across
//!   namespaces only when a ReferenceGrant in the *target's* namespace lists
//!   the referrer's (group, kind, namespace) in `from` and the target's
//!   (group, kind[, name]) in `to`.
//! - Pure: reads the snapshot only.

use crate::config::snapshot::Snapshot;

/// The referring side of a reference.
pub(super) struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// The referred side of a reference (`group` `""` is core).
pub(super) struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Whether `from` may refer to `to`.
pub(super) fn permitted(snapshot: &Snapshot, from: &From<'_>, to: &To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    snapshot
        .reference_grants
        .range(crate::config::snapshot::ObjectKey::new(to.namespace, "")..)
        .take_while(|(key, _)| *key.namespace == *to.namespace)
        .any(|(_, grant)| {
            let spec = &grant.object.spec;
            spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            }) && spec.to.iter().any(|t| {
                t.group == to.group
                    && t.kind == to.kind
                    && t.name.as_deref().is_none_or(|n| n == to.name)
            })
        })
}
