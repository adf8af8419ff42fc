//! The TrafficPolicy status writer's rules: keeps each policy's `Accepted`
//! condition equal to what the last compile decided
//! ([`crate::config::traffic_policy::PolicyStatus`]). The loop around them
//! (view gate, leader, retries, counting) is [`super::writer`].
//!
//! Invariants:
//! - Decides only from a complete view, like the Ingress writer: before the
//!   first table, and during a re-list, nothing is written.
//! - Writes only a difference: a policy whose condition already says what
//!   the compile decided (status, reason, message, observed generation) is
//!   not written, on start, restart, leader change or re-list.
//! - `observedGeneration` is the policy's `metadata.generation`;
//!   `lastTransitionTime` changes only when the condition's status flips.
//!   Conditions of other types are kept as they are.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::view::{Desired, View};
use super::writer::{self, Kind, Write};
use crate::config::ObjectKey;
use crate::crd::{Condition, TrafficPolicy, TrafficPolicyStatus, CONDITION_ACCEPTED};
use kube::{Api, Client};

/// What the watch reports about TrafficPolicy statuses.
pub type Observed = writer::Observed<TrafficPolicyStatus>;

fn condition_status(accepted: bool) -> &'static str {
    if accepted {
        "True"
    } else {
        "False"
    }
}

/// Whether a condition already says what `desired` says.
fn up_to_date(current: &Condition, desired: &Desired) -> bool {
    current.status == condition_status(desired.status.accepted)
        && current.reason == desired.status.reason
        && current.message == desired.status.message
        && current.observed_generation == desired.generation
}

/// The writes one pass should make: `(policy, what it is for, the whole
/// new condition list)`. Pure, so the rules are unit-tested.
pub fn plan(
    desired: &BTreeMap<ObjectKey, Desired>,
    observed: &BTreeMap<ObjectKey, TrafficPolicyStatus>,
    sent: &BTreeMap<ObjectKey, Desired>,
    now: &Time,
) -> Vec<(ObjectKey, Desired, Vec<Condition>)> {
    let mut out = Vec::new();
    for (key, want) in desired {
        // Only policies the watch has reported (it reports every one, with
        // its status); anything else was deleted meanwhile.
        let Some(seen) = observed.get(key) else {
            continue;
        };
        let current = seen.accepted();
        if current.is_some_and(|c| up_to_date(c, want)) || sent.get(key) == Some(want) {
            continue;
        }
        let status = condition_status(want.status.accepted);
        let last_transition_time = match current {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => now.clone(),
        };
        let condition = Condition {
            type_: CONDITION_ACCEPTED.into(),
            status: status.into(),
            reason: want.status.reason.into(),
            message: want.status.message.clone(),
            observed_generation: want.generation,
            last_transition_time,
        };
        let mut conditions: Vec<Condition> = seen
            .conditions
            .iter()
            .filter(|c| c.type_ != CONDITION_ACCEPTED)
            .cloned()
            .collect();
        conditions.push(condition);
        out.push((key.clone(), want.clone(), conditions));
    }
    out
}

/// The TrafficPolicy condition [`Kind`].
pub struct PolicyConditions;

impl Kind for PolicyConditions {
    type Status = TrafficPolicyStatus;
    type Want = Desired;
    type Resource = TrafficPolicy;
    const KIND: &'static str = "trafficpolicy";

    fn api(client: Client, key: &ObjectKey) -> Api<TrafficPolicy> {
        Api::namespaced(client, &key.namespace)
    }

    fn plan(
        &mut self,
        view: &View,
        observed: &BTreeMap<ObjectKey, TrafficPolicyStatus>,
        sent: &BTreeMap<ObjectKey, Desired>,
    ) -> Vec<Write<Desired>> {
        let now = Time(Timestamp::now());
        plan(&view.policies, observed, sent, &now)
            .into_iter()
            .map(|(key, want, conditions)| Write {
                key,
                want,
                patch: serde_json::json!({"status": {"conditions": conditions}}),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::traffic_policy::{PolicyStatus, ACCEPTED, INVALID};

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + secs).unwrap_or_default())
    }

    fn want(accepted: bool, message: &str, generation: i64) -> Desired {
        Desired {
            status: PolicyStatus {
                accepted,
                reason: if accepted { ACCEPTED } else { INVALID },
                message: message.into(),
            },
            generation: Some(generation),
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("ns", name)
    }

    #[test]
    fn writes_only_differences_and_keeps_transition_times_and_other_conditions() {
        let desired: BTreeMap<_, _> = [
            (key("new"), want(true, "ok", 1)),
            (key("same"), want(true, "ok", 3)),
            (key("edited"), want(true, "ok", 4)),
            (key("broke"), want(false, "bad", 5)),
            (key("unseen"), want(true, "ok", 1)),
        ]
        .into_iter()
        .collect();
        let accepted = |generation: i64| Condition {
            type_: CONDITION_ACCEPTED.into(),
            status: "True".into(),
            reason: ACCEPTED.into(),
            message: "ok".into(),
            observed_generation: Some(generation),
            last_transition_time: at(0),
        };
        let other = Condition {
            type_: "Ready".into(),
            ..accepted(1)
        };
        let observed: BTreeMap<_, _> = [
            (key("new"), TrafficPolicyStatus::default()),
            (
                key("same"),
                TrafficPolicyStatus {
                    conditions: vec![accepted(3)],
                },
            ),
            (
                key("edited"),
                TrafficPolicyStatus {
                    conditions: vec![other.clone(), accepted(3)],
                },
            ),
            (
                key("broke"),
                TrafficPolicyStatus {
                    conditions: vec![accepted(4)],
                },
            ),
        ]
        .into_iter()
        .collect();
        let now = at(100);
        let writes = plan(&desired, &observed, &BTreeMap::new(), &now);
        let names: Vec<&str> = writes.iter().map(|(k, _, _)| &*k.name).collect();
        assert_eq!(names, ["broke", "edited", "new"]);
        let by_name = |n: &str| &writes.iter().find(|(k, _, _)| &*k.name == n).unwrap().2;
        // A new generation, same status: the transition time stays.
        let edited = by_name("edited");
        assert_eq!(edited.len(), 2, "the Ready condition is kept");
        assert_eq!(edited[0], other);
        assert_eq!(edited[1].observed_generation, Some(4));
        assert_eq!(edited[1].last_transition_time, at(0));
        // A flip: now.
        let broke = &by_name("broke")[0];
        assert_eq!(
            (broke.status.as_str(), broke.reason.as_str()),
            ("False", INVALID)
        );
        assert_eq!(broke.last_transition_time, now);
        assert_eq!(by_name("new")[0].last_transition_time, now);

        // Written, not yet reported back: not written again.
        let sent: BTreeMap<_, _> = writes.into_iter().map(|(k, d, _)| (k, d)).collect();
        assert!(plan(&desired, &observed, &sent, &now).is_empty());
    }
}
