//! TrafficPolicies: which policy applies to which Ingress, and what each
//! policy's `Accepted` condition says.
//!
//! Invariants:
//! - Pure (no IO, no clock), like the rest of the compiler.
//! - A policy applies only to Ingresses in its own namespace that it names
//!   in `targetRefs`, and only if [`crate::crd::validate`] finds nothing
//!   wrong: an invalid policy claims no Ingress (it is reported, not
//!   half-applied).
//! - One policy per Ingress: when several valid policies target the same
//!   Ingress, the oldest (creationTimestamp, then name; a missing timestamp
//!   counts as oldest, as for Ingresses) applies and the others are
//!   Conflicted there. [`for_ingress`] and [`statuses`] use the same rule.
//! - A policy is Accepted when it applies to at least one Ingress this
//!   controller serves; its message names the targets it does not apply to.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::{Compiled, Diagnostic, Entry, ObjectKey, Severity, Snapshot};
use crate::crd::{self, TrafficPolicy};

/// Reasons of the `Accepted` condition.
pub const ACCEPTED: &str = "Accepted";
pub const INVALID: &str = "Invalid";
pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
pub const CONFLICTED: &str = "Conflicted";

/// Problems listed in one status message; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 10;

/// What a policy's `Accepted` condition should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatus {
    pub accepted: bool,
    /// [`ACCEPTED`], [`INVALID`], [`TARGET_NOT_FOUND`] or [`CONFLICTED`].
    pub reason: &'static str,
    pub message: String,
}

type Policy<'a> = (&'a ObjectKey, &'a Entry<TrafficPolicy>);

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

/// The policies of one namespace (a range of the key-ordered map).
fn in_namespace<'a>(snapshot: &'a Snapshot, namespace: &str) -> impl Iterator<Item = Policy<'a>> {
    let namespace = namespace.to_string();
    snapshot
        .traffic_policies
        .range(ObjectKey::new(namespace.clone(), "")..)
        .take_while(move |(k, _)| k.namespace == namespace)
}

/// The policy that applies to an Ingress: the oldest valid policy of its
/// namespace that targets it. O(policies in the namespace).
pub fn for_ingress<'a>(
    snapshot: &'a Snapshot,
    ingress: &ObjectKey,
) -> Option<(&'a ObjectKey, &'a Entry<TrafficPolicy>)> {
    let name = ingress.name.as_str();
    in_namespace(snapshot, &ingress.namespace)
        .filter(|(_, e)| e.object.spec.targets(name))
        .filter(|(_, e)| crd::validate(&e.object.spec).is_empty())
        .min_by(older)
}

/// The status of every policy in the snapshot. `served`: the Ingresses
/// this controller serves ([`Compiled::served`]).
pub fn statuses(snapshot: &Snapshot, served: &[ObjectKey]) -> BTreeMap<ObjectKey, PolicyStatus> {
    evaluate(snapshot, served).0
}

/// Fills [`Compiled::policy_status`] and adds a diagnostic per problem of
/// an invalid policy (rejected) and per policy that applies nowhere
/// (warning), so `tollgate check` and Events show them.
pub fn apply(snapshot: &Snapshot, out: &mut Compiled) {
    let (statuses, diagnostics) = evaluate(snapshot, &out.served);
    out.policy_status = statuses;
    out.diagnostics.extend(diagnostics);
}

fn evaluate(
    snapshot: &Snapshot,
    served: &[ObjectKey],
) -> (BTreeMap<ObjectKey, PolicyStatus>, Vec<Diagnostic>) {
    let served: BTreeSet<&ObjectKey> = served.iter().collect();
    let mut out = BTreeMap::new();
    let mut diagnostics = Vec::new();
    let mut valid: Vec<Policy<'_>> = Vec::new();
    for (key, entry) in &snapshot.traffic_policies {
        let problems = crd::validate(&entry.object.spec);
        if problems.is_empty() {
            valid.push((key, entry));
            continue;
        }
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
                message: format!("the policy is not applied: {}", listed.join("; ")),
            },
        );
        for (field, reason) in problems {
            diagnostics.push(Diagnostic::new(
                Severity::Rejected,
                "TrafficPolicy",
                key,
                Some(entry.origin.clone()),
                field,
                format!("{reason}; the policy is not applied"),
            ));
        }
    }
    // Oldest first, so the first policy to claim an Ingress keeps it.
    valid.sort_by(older);
    let mut owner: BTreeMap<ObjectKey, &ObjectKey> = BTreeMap::new();
    for (key, entry) in &valid {
        for target in &entry.object.spec.target_refs {
            let ingress = ObjectKey::new(key.namespace.clone(), target.name.clone());
            if served.contains(&ingress) {
                owner.entry(ingress).or_insert(key);
            }
        }
    }
    for (key, entry) in valid {
        let mut applies = Vec::new();
        let mut conflicts = Vec::new();
        let mut missing = Vec::new();
        for target in &entry.object.spec.target_refs {
            let ingress = ObjectKey::new(key.namespace.clone(), target.name.clone());
            match owner.get(&ingress) {
                Some(holder) if *holder == key => applies.push(target.name.clone()),
                Some(holder) => conflicts.push(format!(
                    "Ingress {} already has the older TrafficPolicy {}",
                    target.name, holder.name
                )),
                None => missing.push(target.name.clone()),
            }
        }
        let missing_text = (!missing.is_empty()).then(|| {
            format!(
                "Ingress {} does not exist or is not served by this controller",
                missing.join(", ")
            )
        });
        let (accepted, reason, message) = if !applies.is_empty() {
            let mut parts = vec![format!("applies to Ingress {}", applies.join(", "))];
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
            diagnostics.push(Diagnostic::new(
                Severity::Warning,
                "TrafficPolicy",
                key,
                Some(entry.origin.clone()),
                "spec.targetRefs",
                format!("{reason}: {message}; the policy applies to nothing"),
            ));
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
            for_ingress(&s, &key("ns", "web")).map(|(k, _)| k.name.as_str()),
            Some("old")
        );
        assert_eq!(
            for_ingress(&s, &key("other", "web")).map(|(k, _)| k.to_string()),
            Some("other/x".into())
        );
        assert!(for_ingress(&s, &key("ns", "nothing")).is_none());

        let st = statuses(&s, &served);
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
        let st = statuses(&s, &[key("ns", "web")]);
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
            for_ingress(&s, &key("ns", "web")).map(|(k, _)| k.name.as_str()),
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
        apply(&s, &mut out);
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
}
