//! The Ingress status writer: copies the controller's public addresses into
//! `status.loadBalancer.ingress` of every Ingress we serve, and clears
//! them from Ingresses we stop serving.
//!
//! Invariants:
//! - Writes only while this replica is the leader.
//! - Idempotent and convergent: it compares the status each Ingress has (as
//!   the watch last reported it) with the one it should have and patches
//!   only the difference; a write it already made is not repeated until the
//!   watch reports something else. A failed write is retried after a delay.
//! - Clears only addresses this controller published (from the flags or the
//!   publish Service, past or present), never another controller's.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};

use super::watch::LbStatus;
use crate::config::ObjectKey;
use crate::metrics::{Metrics, ResultLabels};

/// Where the addresses to publish come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// Neither flag: status is left alone.
    Nothing,
    /// `--publish-address`: IPs and hostnames as given.
    Addresses(Vec<String>),
    /// `--publish-service`: that Service's `status.loadBalancer.ingress`.
    Service(ObjectKey),
}

/// What the watch reports about Ingress statuses.
#[derive(Debug)]
pub enum Observed {
    Status(ObjectKey, LbStatus),
    Deleted(ObjectKey),
}

/// Concurrent status writes.
const CONCURRENCY: usize = 8;
/// Delay before retrying failed writes.
const RETRY: Duration = Duration::from_secs(2);
/// Coalesces bursts of inputs into one pass.
const SETTLE: Duration = Duration::from_millis(20);

/// `--publish-address` values as status entries: IPs go to `ip`, anything
/// else to `hostname`.
pub fn addresses(values: &[String]) -> LbStatus {
    values
        .iter()
        .map(|v| {
            if v.parse::<std::net::IpAddr>().is_ok() {
                IngressLoadBalancerIngress {
                    ip: Some(v.clone()),
                    ..Default::default()
                }
            } else {
                IngressLoadBalancerIngress {
                    hostname: Some(v.clone()),
                    ..Default::default()
                }
            }
        })
        .collect()
}

fn service_addresses(service: &Service) -> LbStatus {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .map(|i| IngressLoadBalancerIngress {
            ip: i.ip.clone(),
            hostname: i.hostname.clone(),
            ..Default::default()
        })
        .collect()
}

/// The patches one pass should make: `(ingress, addresses)`; an empty list
/// clears. Pure, so the rules are unit-tested.
pub fn plan(
    served: &BTreeSet<ObjectKey>,
    observed: &BTreeMap<ObjectKey, LbStatus>,
    sent: &BTreeMap<ObjectKey, LbStatus>,
    addresses: &LbStatus,
    published: &HashSet<Addr>,
) -> Vec<(ObjectKey, LbStatus)> {
    let mut out = Vec::new();
    for (key, seen) in observed {
        let desired = if served.contains(key) {
            addresses.clone()
        } else if !seen.is_empty() && seen.iter().all(|a| published.contains(&Addr::of(a))) {
            Vec::new()
        } else {
            continue;
        };
        if *seen != desired && sent.get(key) != Some(&desired) {
            out.push((key.clone(), desired));
        }
    }
    out
}

/// One published address (`ip`, `hostname`): k8s types are not `Hash`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Addr(Option<String>, Option<String>);

impl Addr {
    fn of(a: &IngressLoadBalancerIngress) -> Self {
        Addr(a.ip.clone(), a.hostname.clone())
    }
}

/// Runs until `stop`: keeps Ingress statuses in line with what we serve.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: Client,
    publish: Publish,
    mut observed_rx: mpsc::UnboundedReceiver<Observed>,
    mut served_rx: watch::Receiver<Arc<Vec<ObjectKey>>>,
    mut leader_rx: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut observed: BTreeMap<ObjectKey, LbStatus> = BTreeMap::new();
    let mut sent: BTreeMap<ObjectKey, LbStatus> = BTreeMap::new();
    let mut published_set: HashSet<Addr> = HashSet::new();
    let mut addresses: Option<LbStatus> = match &publish {
        Publish::Nothing => None,
        Publish::Addresses(a) => Some(addresses(a)),
        Publish::Service(_) => None,
    };
    let mut service_events = match &publish {
        Publish::Service(key) => {
            let api = Api::<Service>::namespaced(client.clone(), &key.namespace);
            let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
            Some(watcher(api, config).default_backoff().boxed())
        }
        _ => None,
    };
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
            Ok(()) = served_rx.changed() => { dirty = true; continue; }
            Ok(()) = leader_rx.changed() => {
                // A new leader starts from what the watch says, not from
                // what an earlier term wrote.
                sent.clear();
                dirty = true;
                continue;
            }
            Some(event) = async {
                match service_events.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => {
                match event {
                    Ok(watcher::Event::Apply(svc) | watcher::Event::InitApply(svc)) => {
                        let a = service_addresses(&svc);
                        if addresses.as_ref() != Some(&a) {
                            tracing::info!(addresses = ?a, "publish Service addresses changed");
                            addresses = Some(a);
                            dirty = true;
                        }
                    }
                    Ok(watcher::Event::Delete(_)) => {
                        addresses = Some(Vec::new());
                        dirty = true;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "watching the publish Service failed; retrying"),
                }
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
        let Some(current) = addresses.clone() else {
            continue;
        };
        if !*leader_rx.borrow() {
            continue;
        }
        published_set.extend(current.iter().map(Addr::of));
        let served: BTreeSet<ObjectKey> = served_rx.borrow().iter().cloned().collect();
        let patches = plan(&served, &observed, &sent, &current, &published_set);
        if patches.is_empty() {
            continue;
        }
        let results: Vec<(ObjectKey, LbStatus, bool)> = stream::iter(patches)
            .map(|(key, desired)| {
                let client = client.clone();
                async move {
                    let ok = write(client, &key, &desired).await;
                    (key, desired, ok)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (key, desired, ok) in results {
            let result = if ok { "ok" } else { "error" };
            metrics
                .status_updates
                .get_or_create(&ResultLabels { result })
                .inc();
            if ok {
                sent.insert(key, desired);
            } else {
                retry_at = Some(tokio::time::Instant::now() + RETRY);
            }
        }
    }
}

async fn write(client: Client, key: &ObjectKey, desired: &LbStatus) -> bool {
    let api = Api::<Ingress>::namespaced(client, &key.namespace);
    let ingress = if desired.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(desired).unwrap_or(serde_json::Value::Null)
    };
    let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": ingress}}});
    match api
        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::debug!(ingress = %key, addresses = ?desired, "status updated");
            true
        }
        Err(kube::Error::Api(e)) if e.code == 404 => true, // deleted meanwhile
        Err(e) => {
            tracing::warn!(ingress = %key, error = %e, "cannot update Ingress status; retrying");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(a: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress {
            ip: Some(a.into()),
            ..Default::default()
        }
    }

    #[test]
    fn plan_publishes_clears_and_leaves_others_alone() {
        let ours: BTreeSet<ObjectKey> = [ObjectKey::new("a", "mine"), ObjectKey::new("a", "done")]
            .into_iter()
            .collect();
        let addrs = vec![ip("10.0.0.1")];
        let published: HashSet<_> = [ip("10.0.0.1"), ip("10.0.0.9")]
            .iter()
            .map(Addr::of)
            .collect();
        let observed: BTreeMap<ObjectKey, LbStatus> = [
            (ObjectKey::new("a", "mine"), vec![]),
            (ObjectKey::new("a", "done"), addrs.clone()),
            (ObjectKey::new("a", "left"), vec![ip("10.0.0.9")]),
            (ObjectKey::new("a", "foreign"), vec![ip("192.168.1.1")]),
            (ObjectKey::new("a", "never"), vec![]),
        ]
        .into_iter()
        .collect();
        let plan1 = plan(&ours, &observed, &BTreeMap::new(), &addrs, &published);
        assert_eq!(
            plan1,
            vec![
                (ObjectKey::new("a", "left"), vec![]),
                (ObjectKey::new("a", "mine"), addrs.clone()),
            ]
        );
        // Written and not yet reported back: not written again.
        let sent: BTreeMap<_, _> = plan1.into_iter().collect();
        assert!(plan(&ours, &observed, &sent, &addrs, &published).is_empty());
    }

    #[test]
    fn publish_addresses_split_ips_and_hostnames() {
        let a = addresses(&["10.1.2.3".into(), "lb.example.com".into(), "::1".into()]);
        assert_eq!(a[0].ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(a[1].hostname.as_deref(), Some("lb.example.com"));
        assert_eq!(a[2].ip.as_deref(), Some("::1"));
    }
}
