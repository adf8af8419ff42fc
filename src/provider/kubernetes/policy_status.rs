//! The TrafficPolicy status writer: keeps each policy's `Accepted`
//! condition equal to what the last compile decided
//! ([`crate::config::traffic_policy::PolicyStatus`]).
//!
//! Invariants:
//! - Writes only while this replica is the leader, only to the `/status`
//!   subresource (a JSON merge patch of `status.conditions`).
//! - Idempotent and convergent, like the Ingress status writer: it compares
//!   the condition each policy has (as the watch last reported it) with the
//!   one it should have, and patches only a difference; a write is not
//!   repeated until the watch reports something else. A failed write is
//!   retried after a delay.
//! - `observedGeneration` is the policy's `metadata.generation`;
//!   `lastTransitionTime` changes only when the condition's status flips.
//!   Conditions of other types are kept as they are.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};

use crate::config::traffic_policy::PolicyStatus;
use crate::config::{ObjectKey, Snapshot};
use crate::crd::{Condition, TrafficPolicy, TrafficPolicyStatus, CONDITION_ACCEPTED};
use crate::metrics::{Metrics, ResultLabels};

/// Concurrent status writes.
const CONCURRENCY: usize = 8;
/// Delay before retrying failed writes.
const RETRY: Duration = Duration::from_secs(2);
/// Coalesces bursts of inputs into one pass.
const SETTLE: Duration = Duration::from_millis(20);

/// What the watch reports about TrafficPolicy statuses.
#[derive(Debug)]
pub enum Observed {
    Status(ObjectKey, TrafficPolicyStatus),
    Deleted(ObjectKey),
}

/// The condition one policy should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub status: PolicyStatus,
    /// The policy's `metadata.generation` the status was computed from.
    pub generation: Option<i64>,
}

/// The desired condition of every policy of a compile, with the
/// generation of the policy it was computed from.
pub fn desired(
    snapshot: &Snapshot,
    statuses: &BTreeMap<ObjectKey, PolicyStatus>,
) -> BTreeMap<ObjectKey, Desired> {
    statuses
        .iter()
        .filter_map(|(key, status)| {
            let policy = snapshot.traffic_policies.get(key)?;
            Some((
                key.clone(),
                Desired {
                    status: status.clone(),
                    generation: policy.object.metadata.generation,
                },
            ))
        })
        .collect()
}

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

/// Runs until `stop`: keeps TrafficPolicy conditions in line with the
/// compiles.
pub async fn run(
    client: Client,
    mut observed_rx: mpsc::UnboundedReceiver<Observed>,
    mut desired_rx: watch::Receiver<Arc<BTreeMap<ObjectKey, Desired>>>,
    mut leader_rx: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut observed: BTreeMap<ObjectKey, TrafficPolicyStatus> = BTreeMap::new();
    let mut sent: BTreeMap<ObjectKey, Desired> = BTreeMap::new();
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut dirty = true;
    loop {
        let settle = tokio::time::sleep(SETTLE);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            Some(o) = observed_rx.recv() => {
                match o {
                    Observed::Status(key, status) => {
                        sent.remove(&key);
                        observed.insert(key, status);
                    }
                    Observed::Deleted(key) => {
                        sent.remove(&key);
                        observed.remove(&key);
                    }
                }
                dirty = true;
                continue;
            }
            Ok(()) = desired_rx.changed() => { dirty = true; continue; }
            Ok(()) = leader_rx.changed() => {
                // A new term starts from what the watch says.
                sent.clear();
                dirty = true;
                continue;
            }
            _ = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => { retry_at = None; dirty = true; continue; }
            _ = settle, if dirty => {}
        }
        dirty = false;
        if !*leader_rx.borrow() {
            continue;
        }
        let desired = desired_rx.borrow().clone();
        let now = Time(Timestamp::now());
        let writes = plan(&desired, &observed, &sent, &now);
        if writes.is_empty() {
            continue;
        }
        let results: Vec<(ObjectKey, Desired, bool)> = stream::iter(writes)
            .map(|(key, want, conditions)| {
                let client = client.clone();
                async move {
                    let ok = write(client, &key, &conditions).await;
                    (key, want, ok)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (key, want, ok) in results {
            let result = if ok { "ok" } else { "error" };
            metrics
                .status_updates
                .get_or_create(&ResultLabels { result })
                .inc();
            if ok {
                sent.insert(key, want);
            } else {
                retry_at = Some(tokio::time::Instant::now() + RETRY);
            }
        }
    }
}

async fn write(client: Client, key: &ObjectKey, conditions: &[Condition]) -> bool {
    let api = Api::<TrafficPolicy>::namespaced(client, &key.namespace);
    let patch = serde_json::json!({"status": {"conditions": conditions}});
    match api
        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::debug!(policy = %key, "TrafficPolicy status updated");
            true
        }
        Err(kube::Error::Api(e)) if e.code == 404 => true, // deleted meanwhile
        Err(e) => {
            tracing::warn!(policy = %key, error = %e, "cannot update TrafficPolicy status; retrying");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::traffic_policy::{ACCEPTED, INVALID};

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
        let names: Vec<&str> = writes.iter().map(|(k, _, _)| k.name.as_str()).collect();
        assert_eq!(names, ["broke", "edited", "new"]);
        let by_name = |n: &str| &writes.iter().find(|(k, _, _)| k.name == n).unwrap().2;
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
