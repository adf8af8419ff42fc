//! TrafficPolicies: which policy applies to which Ingress, HTTPRoute or
//! Gateway, and what each policy's `Accepted` condition says.
//!
//! Invariants:
//! - Pure (no IO, no clock), like the rest of the compiler.
//! - A policy applies only to objects in its own namespace that it names
//!   in `targetRefs` ([`Target`]: kind and key), and only in a version
//!   [`crate::crd::validate`] finds nothing wrong with: the current one,
//!   or, while the current one is invalid, the last valid one
//!   ([`Fallback`], so a broken edit never opens an allow list). A policy
//!   never valid claims no target. Invalid
//!   versions are reported, never half-applied.
//! - One policy per target: when several valid policies target the same
//!   object, the oldest (creationTimestamp, then name; a missing timestamp
//!   counts as oldest, as for Ingresses) applies and the others are
//!   Conflicted there. [`owners`] and [`statuses`] use the same rule.
//! - A policy is Accepted when it applies to at least one object this
//!   controller serves (an Ingress served, an HTTPRoute in the table, a
//!   Gateway of ours); its message names the targets it does not apply to.
//! - How a route combines the policies reaching it (a Gateway's, then its
//!   HTTPRoute's, then the route's own filters) is the lowering's business
//!   (`gateway::lower`); this file only says who owns which target.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::compiled::Compiled;
use super::diagnostic::{Diagnostic, Severity};
use super::problem::{Field, Problem, Reason, Subject};
use super::snapshot::{Entry, ObjectKey, Snapshot};

pub use super::compiled::{PolicyStatus, Target};
use crate::crd::{self, TargetKind, TrafficPolicy};

/// Reasons of the `Accepted` condition.
pub const ACCEPTED: &str = "Accepted";
pub const INVALID: &str = "Invalid";
pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
pub const CONFLICTED: &str = "Conflicted";

/// Problems listed in one status message; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 10;

/// The last valid version of each policy (from the previous compile).
pub type Fallback = BTreeMap<ObjectKey, Arc<TrafficPolicy>>;

type Policy<'a> = (&'a ObjectKey, Entry<TrafficPolicy>);

/// Oldest first: creationTimestamp (missing = oldest), then key.
fn older(a: &Policy<'_>, b: &Policy<'_>) -> Ordering {
    let ta =
        a.1.object
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| &t.0);
    let tb =
        b.1.object
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| &t.0);
    ta.cmp(&tb).then_with(|| a.0.cmp(b.0))
}

/// The version of each policy in force: the current one when valid, else
/// its last valid one; each with the problems of the current version
/// (empty when it is the one in force). Policies never valid are left out.
fn in_force<'a>(
    snapshot: &'a Snapshot,
    fallback: &Fallback,
) -> Vec<(Policy<'a>, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for (key, entry) in &snapshot.traffic_policies {
        let problems = crd::validate(&entry.object.spec);
        if problems.is_empty() {
            out.push(((key, entry.clone()), problems));
        } else if let Some(good) = fallback.get(key) {
            let version = Entry {
                origin: entry.origin.clone(),
                object: good.clone(),
            };
            out.push(((key, version), problems));
        }
    }
    out
}

/// The versions in force by policy, to remember as the next compile's
/// [`Fallback`].
pub fn versions_in_force(snapshot: &Snapshot, fallback: &Fallback) -> Fallback {
    in_force(snapshot, fallback)
        .into_iter()
        .map(|((key, entry), _)| (key.clone(), entry.object))
        .collect()
}

/// The policy applying to each object it targets (kind and
/// `namespace/name` of the target → the policy's key and the version in
/// force): of the policies targeting an object, the oldest.
pub fn owners(
    snapshot: &Snapshot,
    fallback: &Fallback,
) -> BTreeMap<Target, (ObjectKey, Arc<TrafficPolicy>)> {
    let mut policies: Vec<Policy<'_>> = in_force(snapshot, fallback)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    policies.sort_by(older);
    let mut out = BTreeMap::new();
    for (key, entry) in policies {
        for target in &entry.object.spec.target_refs {
            let Some(kind) = target.target_kind() else {
                continue;
            };
            out.entry((
                kind,
                ObjectKey::new(key.namespace.clone(), target.name.clone()),
            ))
            .or_insert_with(|| (key.clone(), entry.object.clone()));
        }
    }
    out
}

/// The status of every policy in the snapshot. `served`: the Ingresses
/// this controller serves ([`Compiled::served`]); `gateway_targets`: the
/// HTTPRoutes and Gateways it serves ([`Compiled::gateway_targets`]).
pub fn statuses(
    snapshot: &Snapshot,
    served: &[ObjectKey],
    gateway_targets: &[Target],
    fallback: &Fallback,
) -> BTreeMap<ObjectKey, PolicyStatus> {
    evaluate(snapshot, &served_targets(served, gateway_targets), fallback).0
}

fn served_targets<'a>(served: &'a [ObjectKey], gateway_targets: &'a [Target]) -> BTreeSet<Target> {
    served
        .iter()
        .map(|k| (TargetKind::Ingress, k.clone()))
        .chain(gateway_targets.iter().cloned())
        .collect()
}

/// "Ingress a, b and HTTPRoute c": names grouped by kind, in kind order.
fn names(targets: &[(TargetKind, String)]) -> String {
    let mut by_kind: BTreeMap<TargetKind, Vec<&str>> = BTreeMap::new();
    for (kind, name) in targets {
        by_kind.entry(*kind).or_default().push(name);
    }
    by_kind
        .into_iter()
        .map(|(kind, names)| format!("{} {}", kind.as_str(), names.join(", ")))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Fills [`Compiled::policy_status`] and adds a diagnostic per problem of
/// an invalid policy (rejected) and per policy that applies nowhere
/// (warning), so `tollgate check` and Events show them. `fallback`: the
/// previous compile's versions in force.
pub fn apply(snapshot: &Snapshot, out: &mut Compiled, fallback: &Fallback) {
    let served = served_targets(&out.served, &out.gateway_targets);
    let (statuses, diagnostics) = evaluate(snapshot, &served, fallback);
    out.policy_status = statuses;
    out.diagnostics.extend(diagnostics);
}

fn evaluate(
    snapshot: &Snapshot,
    served: &BTreeSet<Target>,
    fallback: &Fallback,
) -> (BTreeMap<ObjectKey, PolicyStatus>, Vec<Diagnostic>) {
    let mut out = BTreeMap::new();
    let mut diagnostics = Vec::new();
    let mut valid: Vec<Policy<'_>> = Vec::new();
    // Policies whose current version is invalid but whose last valid one
    // applies: they claim Ingresses, and their status stays Invalid.
    let mut stale: BTreeSet<&ObjectKey> = BTreeSet::new();
    let in_force: BTreeMap<&ObjectKey, Entry<TrafficPolicy>> = in_force(snapshot, fallback)
        .into_iter()
        .map(|((key, entry), _)| (key, entry))
        .collect();
    for (key, entry) in &snapshot.traffic_policies {
        let problems = crd::validate(&entry.object.spec);
        if problems.is_empty() {
            valid.push((key, entry.clone()));
            continue;
        }
        let kept = in_force.get(key).cloned();
        let consequence = match &kept {
            Some(_) => "its last valid version keeps applying",
            None => "the policy is not applied",
        };
        let mut listed: Vec<String> = problems
            .iter()
            .take(MAX_LISTED_PROBLEMS)
            .map(|(field, reason)| format!("{field}: {reason}"))
            .collect();
        if problems.len() > MAX_LISTED_PROBLEMS {
            listed.push(format!("and {} more", problems.len() - MAX_LISTED_PROBLEMS));
        }
        out.insert(
            key.clone(),
            PolicyStatus {
                accepted: false,
                reason: INVALID,
                message: format!(
                    "this version is invalid ({consequence}): {}",
                    listed.join("; ")
                ),
            },
        );
        let origin = Some(entry.origin.clone());
        let subject = Subject {
            kind: "TrafficPolicy",
            key,
            origin: &origin,
        };
        for (field, reason) in problems {
            let reason = Reason::InvalidPolicy {
                reason,
                last_valid_applies: kept.is_some(),
            };
            diagnostics.push(subject.diagnostic(
                Severity::Rejected,
                Problem::new(Field::Reported(field), reason),
            ));
        }
        if let Some(version) = kept {
            stale.insert(key);
            valid.push((key, version));
        }
    }
    // Oldest first, so the first policy to claim an Ingress keeps it.
    valid.sort_by(older);
    let mut owner: BTreeMap<Target, &ObjectKey> = BTreeMap::new();
    let target_of = |key: &ObjectKey, t: &crd::TargetRef| {
        let kind = t.target_kind()?;
        Some((kind, ObjectKey::new(key.namespace.clone(), t.name.clone())))
    };
    for (key, entry) in &valid {
        for target in &entry.object.spec.target_refs {
            if let Some(target) = target_of(key, target).filter(|t| served.contains(t)) {
                owner.entry(target).or_insert(key);
            }
        }
    }
    for (key, entry) in valid {
        if stale.contains(key) {
            // Its status says Invalid (set above); it claimed its targets.
            continue;
        }
        let mut applies = Vec::new();
        let mut conflicts = Vec::new();
        let mut missing = Vec::new();
        for target in &entry.object.spec.target_refs {
            // A valid version names only kinds it may.
            let Some(t) = target_of(key, target) else {
                continue;
            };
            let named = (t.0, target.name.clone());
            match owner.get(&t) {
                Some(holder) if *holder == key => applies.push(named),
                Some(holder) => conflicts.push(format!(
                    "{} {} already has the older TrafficPolicy {}",
                    t.0.as_str(),
                    target.name,
                    holder.name
                )),
                None => missing.push(named),
            }
        }
        let missing_text = (!missing.is_empty()).then(|| {
            format!(
                "{} does not exist or is not served by this controller",
                names(&missing)
            )
        });
        let (accepted, reason, message) = if !applies.is_empty() {
            let mut parts = vec![format!("applies to {}", names(&applies))];
            parts.extend(conflicts);
            parts.extend(missing_text);
            (true, ACCEPTED, parts.join("; "))
        } else if !conflicts.is_empty() {
            let mut parts = conflicts;
            parts.extend(missing_text);
            (false, CONFLICTED, parts.join("; "))
        } else {
            (
                false,
                TARGET_NOT_FOUND,
                missing_text.unwrap_or_else(|| "no target".into()),
            )
        };
        if !accepted {
            let origin = Some(entry.origin.clone());
            let subject = Subject {
                kind: "TrafficPolicy",
                key,
                origin: &origin,
            };
            let reason = Reason::PolicyAppliesNowhere {
                status: reason,
                message: message.clone(),
            };
            diagnostics.push(
                subject.diagnostic(Severity::Warning, Problem::new(Field::TargetRefs, reason)),
            );
        }
        out.insert(
            key.clone(),
            PolicyStatus {
                accepted,
                reason,
                message,
            },
        );
    }
    (out, diagnostics)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::config::Object;

    fn policy(ns: &str, name: &str, age_secs: Option<i64>, spec: &str) -> Object {
        let spec: crd::TrafficPolicySpec =
            serde_yaml::from_str(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let mut p = TrafficPolicy::new(name, spec);
        p.metadata.namespace = Some(ns.into());
        p.metadata.creation_timestamp =
            age_secs.map(|s| Time(Timestamp::from_second(1_700_000_000 + s).unwrap_or_default()));
        Object::TrafficPolicy(p)
    }

    fn targets(names: &[&str]) -> String {
        let refs: Vec<String> = names
            .iter()
            .map(|n| format!("{{group: networking.k8s.io, kind: Ingress, name: {n}}}"))
            .collect();
        format!("targetRefs: [{}]", refs.join(", "))
    }

    fn snapshot(objects: Vec<Object>) -> Snapshot {
        let mut s = Snapshot::default();
        for o in objects {
            s.insert(Arc::from("test"), o);
        }
        s
    }

    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey::new(ns, name)
    }

    #[test]
    fn oldest_valid_policy_wins_and_the_others_are_conflicted() {
        let s = snapshot(vec![
            policy("ns", "new", Some(20), &targets(&["web"])),
            policy("ns", "old", Some(10), &targets(&["web", "api"])),
            // Older still, but invalid: claims nothing.
            policy(
                "ns",
                "broken",
                Some(0),
                &format!("{}\nrateLimit: {{requestsPerSecond: 0}}", targets(&["web"])),
            ),
            // Same name in another namespace: a different Ingress.
            policy("other", "x", Some(0), &targets(&["web"])),
        ]);
        let served = [key("ns", "api"), key("ns", "web"), key("other", "web")];
        assert_eq!(
            owners(&s, &Fallback::new())
                .get(&(TargetKind::Ingress, key("ns", "web")))
                .map(|(k, _)| &*k.name),
            Some("old")
        );
        assert_eq!(
            owners(&s, &Fallback::new())
                .get(&(TargetKind::Ingress, key("other", "web")))
                .map(|(k, _)| k.to_string()),
            Some("other/x".into())
        );
        assert!(!owners(&s, &Fallback::new())
            .contains_key(&(TargetKind::Ingress, key("ns", "nothing"))));

        let st = statuses(&s, &served, &[], &Fallback::new());
        let old = &st[&key("ns", "old")];
        assert_eq!((old.accepted, old.reason), (true, ACCEPTED));
        assert!(old.message.contains("web, api"), "{}", old.message);
        let new = &st[&key("ns", "new")];
        assert_eq!((new.accepted, new.reason), (false, CONFLICTED));
        assert!(
            new.message.contains("older TrafficPolicy old"),
            "{}",
            new.message
        );
        let broken = &st[&key("ns", "broken")];
        assert_eq!((broken.accepted, broken.reason), (false, INVALID));
        assert!(
            broken.message.contains("spec.rateLimit.requestsPerSecond"),
            "{}",
            broken.message
        );
        assert!(st[&key("other", "x")].accepted);
    }

    #[test]
    fn unserved_targets_are_not_found_and_partial_ones_are_named() {
        let s = snapshot(vec![
            policy("ns", "lost", Some(0), &targets(&["gone"])),
            policy("ns", "part", Some(0), &targets(&["web", "gone"])),
        ]);
        let st = statuses(&s, &[key("ns", "web")], &[], &Fallback::new());
        let lost = &st[&key("ns", "lost")];
        assert_eq!((lost.accepted, lost.reason), (false, TARGET_NOT_FOUND));
        assert!(lost.message.contains("gone"), "{}", lost.message);
        let part = &st[&key("ns", "part")];
        assert_eq!(part.reason, ACCEPTED);
        assert!(
            part.message.contains("applies to Ingress web") && part.message.contains("gone"),
            "{}",
            part.message
        );
    }

    #[test]
    fn gateway_api_targets_are_owned_and_reported_by_kind() {
        let gw = |kind: &str, name: &str| {
            format!("{{group: gateway.networking.k8s.io, kind: {kind}, name: {name}}}")
        };
        let s = snapshot(vec![
            policy(
                "ns",
                "route",
                Some(0),
                &format!(
                    "targetRefs: [{}, {}, {}]",
                    gw("HTTPRoute", "web"),
                    gw("HTTPRoute", "gone"),
                    targets(&["web"])
                        .trim_start_matches("targetRefs: [")
                        .trim_end_matches(']')
                ),
            ),
            policy(
                "ns",
                "gateway",
                Some(5),
                &format!("targetRefs: [{}]", gw("Gateway", "edge")),
            ),
            policy(
                "ns",
                "late",
                Some(9),
                &format!("targetRefs: [{}]", gw("HTTPRoute", "web")),
            ),
        ]);
        let owners = owners(&s, &Fallback::new());
        let owner = |kind, name| {
            owners
                .get(&(kind, key("ns", name)))
                .map(|(k, _)| k.name.clone())
        };
        assert_eq!(
            owner(TargetKind::HttpRoute, "web").as_deref(),
            Some("route")
        );
        assert_eq!(owner(TargetKind::Ingress, "web").as_deref(), Some("route"));
        assert_eq!(
            owner(TargetKind::Gateway, "edge").as_deref(),
            Some("gateway")
        );
        // An Ingress and an HTTPRoute of the same name are different targets.
        let served_gw = [
            (TargetKind::HttpRoute, key("ns", "web")),
            (TargetKind::Gateway, key("ns", "edge")),
        ];
        let st = statuses(&s, &[key("ns", "web")], &served_gw, &Fallback::new());
        let route = &st[&key("ns", "route")];
        assert_eq!(route.reason, ACCEPTED);
        assert!(
            route
                .message
                .contains("applies to Ingress web and HTTPRoute web")
                && route.message.contains("HTTPRoute gone does not exist"),
            "{}",
            route.message
        );
        assert_eq!(st[&key("ns", "gateway")].reason, ACCEPTED);
        let late = &st[&key("ns", "late")];
        assert_eq!(late.reason, CONFLICTED);
        assert!(
            late.message
                .contains("HTTPRoute web already has the older TrafficPolicy route"),
            "{}",
            late.message
        );
        // Not served (not in the table): not found.
        let st = statuses(&s, &[], &[], &Fallback::new());
        assert_eq!(st[&key("ns", "gateway")].reason, TARGET_NOT_FOUND);
    }

    #[test]
    fn a_policy_change_recompiles_routes() {
        let mut s = snapshot(vec![]);
        let p = policy("ns", "p", Some(0), &targets(&["web"]));
        assert!(s.upsert("k".into(), p.clone()).routes);
        assert!(s.upsert("k".into(), p).is_empty(), "same object: no change");
        let edited = policy("ns", "p", Some(0), &targets(&["api"]));
        assert!(s.upsert("k".into(), edited).routes);
        let before = s.clone();
        assert!(s.delete("TrafficPolicy", &key("ns", "p")).routes);
        assert!(s.changes_from(&before).routes);
    }

    #[test]
    fn a_missing_timestamp_counts_as_oldest_then_names_break_ties() {
        let s = snapshot(vec![
            policy("ns", "b", None, &targets(&["web"])),
            policy("ns", "a", Some(0), &targets(&["web"])),
            policy("ns", "c", None, &targets(&["web"])),
        ]);
        assert_eq!(
            owners(&s, &Fallback::new())
                .get(&(TargetKind::Ingress, key("ns", "web")))
                .map(|(k, _)| &*k.name),
            Some("b")
        );
    }

    #[test]
    fn apply_reports_invalid_fields_and_idle_policies_as_diagnostics() {
        let s = snapshot(vec![
            policy(
                "ns",
                "bad",
                Some(0),
                &format!("{}\nipAllow: [10.0.0.0/8, nope]", targets(&["web"])),
            ),
            policy("ns", "idle", Some(0), &targets(&["gone"])),
        ]);
        let mut out = Compiled {
            served: vec![key("ns", "web")],
            ..Default::default()
        };
        apply(&s, &mut out, &Fallback::new());
        assert_eq!(out.policy_status.len(), 2);
        let d: Vec<(Severity, &str, &str)> = out
            .diagnostics
            .iter()
            .map(|d| (d.severity, d.name.as_str(), d.field.as_str()))
            .collect();
        assert_eq!(
            d,
            [
                (Severity::Rejected, "bad", "spec.ipAllow[1]"),
                (Severity::Warning, "idle", "spec.targetRefs")
            ]
        );
        assert_eq!(out.diagnostics[0].kind, "TrafficPolicy");
    }

    #[test]
    fn an_invalid_version_keeps_its_last_valid_one_in_force_and_says_so() {
        let valid = snapshot(vec![policy("ns", "guard", Some(0), &targets(&["web"]))]);
        let fallback = versions_in_force(&valid, &Fallback::new());
        let broken = snapshot(vec![
            policy(
                "ns",
                "guard",
                Some(0),
                &format!("{}\nipAllow: [10.0.0.0/99]", targets(&["web", "api"])),
            ),
            // Younger, valid, same target: the stale version still owns it.
            policy("ns", "younger", Some(5), &targets(&["web"])),
        ]);
        let owners = owners(&broken, &fallback);
        assert_eq!(
            owners
                .get(&(TargetKind::Ingress, key("ns", "web")))
                .map(|(k, _)| &*k.name),
            Some("guard")
        );
        assert!(
            !owners.contains_key(&(TargetKind::Ingress, key("ns", "api"))),
            "the invalid version's new target is not claimed"
        );
        let st = statuses(&broken, &[key("ns", "web")], &[], &fallback);
        let guard = &st[&key("ns", "guard")];
        assert_eq!((guard.accepted, guard.reason), (false, INVALID));
        assert!(
            guard.message.contains("last valid version keeps applying"),
            "{}",
            guard.message
        );
        assert_eq!(st[&key("ns", "younger")].reason, CONFLICTED);
        // Never valid: nothing in force.
        assert!(versions_in_force(&broken, &Fallback::new()).contains_key(&key("ns", "younger")));
        assert!(!versions_in_force(&broken, &Fallback::new()).contains_key(&key("ns", "guard")));
    }
}
