//! The Ingress status writer's rules: copies the controller's public
//! addresses into `status.loadBalancer.ingress` of every Ingress we serve,
//! and clears them from Ingresses we stop serving. The loop around them
//! (view gate, leader, retries, counting) is [`super::writer`].
//!
//! Invariants:
//! - Decides only from a complete view: "not served" means the published
//!   table, compiled from complete lists, does not serve the Ingress. So an
//!   Ingress that is served is never blanked, not even on start, restart,
//!   leader change or re-list.
//! - Writes only a difference: an Ingress whose status already holds the
//!   addresses it should (in any order) is not written.
//! - No addresses, no decision: with neither publish flag, or before the
//!   publish Service's list completes (or while it was never found), status
//!   is left alone.
//! - Clears only addresses this controller published (from the flags or the
//!   publish Service, past or present), never another controller's.

use std::collections::{BTreeMap, HashSet};

use futures_util::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use super::view::View;
use super::watch::LbStatus;
use super::writer::{self, Kind, Write};
use crate::config::ObjectKey;

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
pub type Observed = writer::Observed<LbStatus>;

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

/// Whether two address lists hold the same entries, in any order.
fn same_addresses(a: &LbStatus, b: &LbStatus) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// The patches one pass should make: `(ingress, addresses)`; an empty list
/// clears. Pure, so the rules are unit-tested.
pub fn plan(
    view: &View,
    observed: &BTreeMap<ObjectKey, LbStatus>,
    sent: &BTreeMap<ObjectKey, LbStatus>,
    addresses: &LbStatus,
    published: &HashSet<Addr>,
) -> Vec<(ObjectKey, LbStatus)> {
    let mut out = Vec::new();
    for (key, seen) in observed {
        let desired = if view.serves(key) {
            addresses.clone()
        } else if !seen.is_empty() && seen.iter().all(|a| published.contains(&Addr::of(a))) {
            Vec::new()
        } else {
            continue;
        };
        if !same_addresses(seen, &desired) && sent.get(key) != Some(&desired) {
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

/// The Ingress status [`Kind`]: the addresses to publish and the ones
/// published so far.
pub struct IngressStatus {
    /// `None`: nothing to publish (yet); no decision.
    addresses: Option<LbStatus>,
    /// Every address this process published (what it may clear).
    published: HashSet<Addr>,
    /// The publish Service's watch (`--publish-service`).
    service: Option<BoxStream<'static, Result<watcher::Event<Service>, watcher::Error>>>,
    /// The Service's addresses in a list in progress (`Some(None)`: a
    /// list started and has not seen the Service).
    listing: Option<Option<LbStatus>>,
}

impl IngressStatus {
    pub fn new(client: &Client, publish: &Publish) -> Self {
        let service = match publish {
            Publish::Service(key) => {
                let api = Api::<Service>::namespaced(client.clone(), &key.namespace);
                let config =
                    watcher::Config::default().fields(&format!("metadata.name={}", key.name));
                Some(watcher(api, config).default_backoff().boxed())
            }
            _ => None,
        };
        IngressStatus {
            addresses: match publish {
                Publish::Addresses(a) => Some(addresses(a)),
                Publish::Nothing | Publish::Service(_) => None,
            },
            published: HashSet::new(),
            service,
            listing: None,
        }
    }

    /// The addresses to publish; `None` while unknown (no decision).
    pub fn current(&self) -> Option<&LbStatus> {
        self.addresses.as_ref()
    }

    /// Applies one event of the publish Service's watch; true when the
    /// addresses changed. A list (initial or re-list) counts only once
    /// complete.
    fn apply(&mut self, event: Result<watcher::Event<Service>, watcher::Error>) -> bool {
        let next = match event {
            Ok(watcher::Event::Init) => {
                self.listing = Some(None);
                return false;
            }
            Ok(watcher::Event::InitApply(svc)) => {
                self.listing = Some(Some(service_addresses(&svc)));
                return false;
            }
            Ok(watcher::Event::InitDone) => match self.listing.take().flatten() {
                Some(a) => Some(a),
                // Deleted while not watching.
                None if self.addresses.is_some() => Some(Vec::new()),
                None => {
                    tracing::warn!("the publish Service does not exist; Ingress status is left alone until it does");
                    return false;
                }
            },
            Ok(watcher::Event::Apply(svc)) => Some(service_addresses(&svc)),
            Ok(watcher::Event::Delete(_)) => Some(Vec::new()),
            Err(e) => {
                tracing::warn!(error = %e, "watching the publish Service failed; retrying");
                return false;
            }
        };
        if self.addresses == next {
            return false;
        }
        tracing::info!(addresses = ?next, "publish Service addresses changed");
        self.addresses = next;
        true
    }
}

impl Kind for IngressStatus {
    type Status = LbStatus;
    type Want = LbStatus;
    type Resource = Ingress;
    const KIND: &'static str = "ingress";

    fn api(client: Client, key: &ObjectKey) -> Api<Ingress> {
        Api::namespaced(client, &key.namespace)
    }

    async fn changed(&mut self) {
        loop {
            let event = match self.service.as_mut() {
                Some(s) => s.next().await,
                None => None,
            };
            match event {
                Some(event) => {
                    if self.apply(event) {
                        return;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn plan(
        &mut self,
        view: &View,
        observed: &BTreeMap<ObjectKey, LbStatus>,
        sent: &BTreeMap<ObjectKey, LbStatus>,
    ) -> Vec<Write<LbStatus>> {
        let Some(current) = self.addresses.as_ref() else {
            return Vec::new();
        };
        self.published.extend(current.iter().map(Addr::of));
        plan(view, observed, sent, current, &self.published)
            .into_iter()
            .filter_map(|(key, want)| {
                // `null` clears; a list that does not serialize is not
                // written (it must never turn into a clear).
                let ingress = if want.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::to_value(&want).ok()?
                };
                let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": ingress}}});
                Some(Write { key, want, patch })
            })
            .collect()
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
        let ours = View {
            served: vec![ObjectKey::new("a", "done"), ObjectKey::new("a", "mine")].into(),
            ..View::default()
        };
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

    #[test]
    fn addresses_already_there_in_another_order_are_not_written() {
        let mine = ObjectKey::new("a", "mine");
        let view = View {
            served: vec![mine.clone()].into(),
            ..View::default()
        };
        let addrs = vec![ip("10.0.0.1"), ip("10.0.0.2")];
        let observed: BTreeMap<_, _> = [(mine, vec![ip("10.0.0.2"), ip("10.0.0.1")])].into();
        let published: HashSet<_> = addrs.iter().map(Addr::of).collect();
        assert!(plan(&view, &observed, &BTreeMap::new(), &addrs, &published).is_empty());
    }

    fn kind_without_client() -> IngressStatus {
        IngressStatus {
            addresses: None,
            published: HashSet::new(),
            service: None,
            listing: None,
        }
    }

    fn lb_service(address: &str) -> Service {
        use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
        Service {
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some(address.into()),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn publish_service_addresses_count_once_a_list_completes() {
        let mut kind = kind_without_client();
        let view = View {
            served: vec![ObjectKey::new("a", "mine")].into(),
            ..View::default()
        };
        let observed: BTreeMap<_, _> = [(ObjectKey::new("a", "mine"), vec![])].into();
        assert!(!kind.apply(Ok(watcher::Event::Init)));
        assert!(!kind.apply(Ok(watcher::Event::InitApply(lb_service("203.0.113.10")))));
        // Listed, not complete: no addresses, no decision.
        assert!(kind.plan(&view, &observed, &BTreeMap::new()).is_empty());
        assert!(kind.apply(Ok(watcher::Event::InitDone)));
        let writes = kind.plan(&view, &observed, &BTreeMap::new());
        assert_eq!(writes.len(), 1);
        assert_eq!(
            writes[0].patch,
            serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}})
        );
        // A re-list that finds the same Service changes nothing; one that
        // finds none means it was deleted meanwhile.
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(lb_service("203.0.113.10")),
            watcher::Event::InitDone,
        ] {
            assert!(!kind.apply(Ok(event)));
        }
        assert!(!kind.apply(Ok(watcher::Event::Init)));
        assert!(kind.apply(Ok(watcher::Event::InitDone)));
        assert_eq!(kind.addresses, Some(Vec::new()));
    }

    #[test]
    fn a_publish_service_never_found_decides_nothing() {
        let mut kind = kind_without_client();
        assert!(!kind.apply(Ok(watcher::Event::Init)));
        assert!(!kind.apply(Ok(watcher::Event::InitDone)));
        assert_eq!(kind.addresses, None);
    }
}
