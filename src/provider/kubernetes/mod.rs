//! Kubernetes mode: objects from the API server, watched, fed to the same
//! compiler and publisher as standalone mode; plus the writers a controller
//! owes the cluster (Ingress status, Events) behind a leader Lease.
//!
//! Invariants:
//! - Nothing is published before the initial list of every watched kind
//!   has synced; readiness follows the first publish. A kind whose CRD is
//!   not installed (its list answers 404: TrafficPolicy, the Gateway API
//!   kinds) counts as synced
//!   with no objects, so it never blocks readiness; its watch keeps
//!   retrying, and installing the CRD later brings its objects in.
//! - A failing watch, an unreachable API server or a re-list (410 Gone)
//!   never blanks the table: objects are replaced only by a completed list,
//!   and the last good table keeps serving meanwhile.
//! - The status writers decide only from a complete view
//!   ([`view`]): the gate opens with the first publish and closes from the
//!   start of any re-list until the table is compiled from it again.
//! - Bursts are coalesced: at most one recompile per debounce window, and
//!   the first change after a quiet window compiles at once. Changes that
//!   only touch EndpointSlices are published at once through the endpoint
//!   fast path (no recompile).
//! - Runs on the control-plane thread's own runtime, never on a worker.

pub mod events;
pub mod gateway_status;
pub mod gateway_watch;
pub mod leader;
pub mod policy_status;
pub mod rbac;
pub mod status;
pub mod view;
pub mod watch;
pub mod writer;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::Client;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch as channel};
use tokio::time::Instant;

use crate::config::{Diagnostic, Object, ObjectKey, Snapshot};
use crate::crd;
use crate::metrics::{KindLabels, Metrics};
use crate::publisher::{Applied, Publisher};
use status::{Observed, Publish};
use view::View;

pub use rbac::{rbac_manifests, Permission, Scope, PERMISSIONS};

/// The controller name in Events and the default field manager.
pub const CONTROLLER: &str = "tollgate";

/// Why Kubernetes mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "no Kubernetes API configuration (not in a cluster, and no usable KUBECONFIG or \
         ~/.kube/config); pass --manifests to run standalone"
    )]
    Config(#[source] kube::Error),
}

/// Settings of Kubernetes mode (from flags).
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Watch the Gateway API kinds and Namespaces, write their status.
    pub gateway_api: bool,
    /// At most one recompile per window.
    pub debounce: Duration,
    pub publish: Publish,
    /// Lease name (`--election-id`).
    pub election_id: String,
    /// Lease namespace; `None`: the pod's (in-cluster) or the kubeconfig's.
    pub election_namespace: Option<String>,
    /// This replica's name in the Lease and in Events.
    pub identity: String,
    pub lease_duration: Duration,
    /// The namespace of `--configmap`: its ConfigMaps are watched.
    pub configmap_namespace: Option<String>,
    /// A standing diagnostic's Event is published again after this long
    /// ([`events::REPUBLISH_INTERVAL`] unless a test shortens it).
    pub event_republish_interval: Duration,
}

/// Connects with the in-cluster service account when present, else
/// `KUBECONFIG` / `~/.kube/config`.
pub async fn connect() -> Result<Client, KubeError> {
    Client::try_default().await.map_err(KubeError::Config)
}

/// The Gateway API kinds whose status is written, one writer each.
const GATEWAY_STATUS_KINDS: [&str; 4] = ["GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute"];

/// Per-stream state of the merged watch.
struct StreamState {
    /// The initial list (or a re-list) completed at least once.
    synced: bool,
    /// A list in progress.
    relist: Option<Listing>,
    /// `tollgate_kube_watch_synced` of the kind.
    synced_gauge: Gauge,
    /// The kind's list answered 404 (CRD not installed) last time.
    absent: bool,
}

/// A list in progress on one stream.
enum Listing {
    /// A re-list: its (trimmed) objects and the statuses taken off them,
    /// applied together at `InitDone`; the table keeps serving the last
    /// complete list meanwhile.
    Buffered(Vec<(Object, Option<watch::Taken>)>),
    /// The first list: nothing is published before every stream has
    /// synced, so objects go into the snapshot as they arrive (no second
    /// copy of a whole list is held); the keys listed so far, for the
    /// deletions at `InitDone` (a first list restarted after a failure).
    Applied(HashSet<ObjectKey>),
}

/// Where the watch sends the statuses it takes off objects (the status
/// writers compare them with what they should be; the snapshot never
/// holds a status).
struct StatusSinks {
    /// To the Ingress status writer ([`status::IngressStatus`]).
    ingresses: mpsc::UnboundedSender<Observed>,
    /// To the TrafficPolicy status writer
    /// ([`policy_status::PolicyConditions`]).
    policies: mpsc::UnboundedSender<policy_status::Observed>,
    /// To the Gateway API status writers ([`gateway_status`]), by kind.
    gateway: BTreeMap<&'static str, mpsc::UnboundedSender<gateway_status::Observed>>,
}

/// The object references of diagnostics about namespaced or cluster
/// objects the API knows (not files), for Events.
fn regarding(snapshot: &Snapshot, diagnostics: &[Diagnostic]) -> Vec<events::Regarding> {
    diagnostics
        .iter()
        .filter_map(|d| {
            let key = ObjectKey::new(d.namespace.clone(), d.name.clone());
            let (api_version, uid) = match d.kind {
                "Ingress" => (
                    "networking.k8s.io/v1",
                    snapshot
                        .ingresses
                        .get(&key)?
                        .object
                        .metadata
                        .uid
                        .as_deref()
                        .map(str::to_string),
                ),
                "IngressClass" => (
                    "networking.k8s.io/v1",
                    snapshot
                        .ingress_classes
                        .get(&*key.name)?
                        .object
                        .metadata
                        .uid
                        .clone(),
                ),
                "Service" => (
                    "v1",
                    snapshot
                        .services
                        .get(&key)?
                        .object
                        .uid
                        .as_deref()
                        .map(str::to_string),
                ),
                "Secret" => (
                    "v1",
                    snapshot.secrets.get(&key)?.object.metadata.uid.clone(),
                ),
                "TrafficPolicy" => (
                    crd::API_VERSION,
                    snapshot
                        .traffic_policies
                        .get(&key)?
                        .object
                        .metadata
                        .uid
                        .clone(),
                ),
                _ => return None,
            };
            let reference = ObjectReference {
                api_version: Some(api_version.into()),
                kind: Some(d.kind.into()),
                name: Some(d.name.clone()),
                namespace: (!d.namespace.is_empty()).then(|| d.namespace.clone()),
                uid,
                ..Default::default()
            };
            Some((reference, d.clone()))
        })
        .collect()
}

/// Runs Kubernetes mode until `stop` turns true.
pub async fn run(
    client: Client,
    settings: KubeSettings,
    publisher: &mut Publisher,
    metrics: Arc<Metrics>,
    mut stop: channel::Receiver<bool>,
) {
    let origin: Arc<str> = "kubernetes".into();
    let (infos, mut streams) = watch::start(
        &client,
        &settings.namespaces,
        settings.gateway_api,
        settings.configmap_namespace.as_deref(),
    );
    let mut states: Vec<StreamState> = infos
        .iter()
        .map(|info| {
            let synced_gauge = metrics
                .kube_watch_synced
                .get_or_create(&KindLabels { kind: info.kind })
                .clone();
            StreamState {
                synced: false,
                relist: None,
                synced_gauge,
                absent: false,
            }
        })
        .collect();

    let (observed_tx, observed_rx) = mpsc::unbounded_channel::<Observed>();
    let (policy_observed_tx, policy_observed_rx) =
        mpsc::unbounded_channel::<policy_status::Observed>();
    let mut gateway_sinks = BTreeMap::new();
    let mut gateway_rx = BTreeMap::new();
    for kind in GATEWAY_STATUS_KINDS
        .into_iter()
        .filter(|_| settings.gateway_api)
    {
        let (tx, rx) = mpsc::unbounded_channel::<gateway_status::Observed>();
        gateway_sinks.insert(kind, tx);
        gateway_rx.insert(kind, rx);
    }
    let sinks = StatusSinks {
        ingresses: observed_tx,
        policies: policy_observed_tx,
        gateway: gateway_sinks,
    };
    let (mut gate, view_rx) = view::Gate::new();
    let (diag_tx, diag_rx) = channel::channel(Arc::new(Vec::<events::Regarding>::new()));
    let (leader_tx, leader_rx) = channel::channel(false);

    let election = leader::Election {
        lease: settings.election_id.clone(),
        namespace: settings
            .election_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string()),
        identity: settings.identity.clone(),
        duration: settings.lease_duration,
    };
    tracing::info!(lease = %format!("{}/{}", election.namespace, election.lease), identity = %election.identity, "joining leader election");
    let mut tasks = vec![
        tokio::spawn(leader::run(
            client.clone(),
            election,
            leader_tx,
            stop.clone(),
        )),
        tokio::spawn(writer::run(
            client.clone(),
            status::IngressStatus::new(&client, &settings.publish),
            writer::Inputs {
                observed: observed_rx,
                view: view_rx.clone(),
                leader: leader_rx.clone(),
                stop: stop.clone(),
            },
            metrics.clone(),
        )),
        tokio::spawn(writer::run(
            client.clone(),
            policy_status::PolicyConditions,
            writer::Inputs {
                observed: policy_observed_rx,
                view: view_rx.clone(),
                leader: leader_rx.clone(),
                stop: stop.clone(),
            },
            metrics.clone(),
        )),
        tokio::spawn(events::run(
            client.clone(),
            Reporter {
                controller: CONTROLLER.into(),
                instance: Some(settings.identity.clone()),
            },
            diag_rx,
            leader_rx.clone(),
            settings.event_republish_interval,
            metrics.clone(),
            stop.clone(),
        )),
    ];
    let controller = publisher.options().gateway_controller_name.clone();
    for (kind, observed) in gateway_rx {
        let inputs = writer::Inputs {
            observed,
            view: view_rx.clone(),
            leader: leader_rx.clone(),
            stop: stop.clone(),
        };
        let (client, metrics) = (client.clone(), metrics.clone());
        tasks.push(match kind {
            "GatewayClass" => tokio::spawn(writer::run(
                client,
                gateway_status::ClassStatus,
                inputs,
                metrics,
            )),
            "Gateway" => tokio::spawn(writer::run(
                client.clone(),
                gateway_status::GatewayStatusKind::new(status::IngressStatus::new(
                    &client,
                    &settings.publish,
                )),
                inputs,
                metrics,
            )),
            "GRPCRoute" => tokio::spawn(writer::run(
                client,
                gateway_status::RouteParents::<true> {
                    controller: controller.clone(),
                },
                inputs,
                metrics,
            )),
            _ => tokio::spawn(writer::run(
                client,
                gateway_status::RouteParents::<false> {
                    controller: controller.clone(),
                },
                inputs,
                metrics,
            )),
        });
    }
    {
        let mut leader_rx = leader_rx;
        let gauge = metrics.leader.clone();
        tasks.push(tokio::spawn(async move {
            while leader_rx.changed().await.is_ok() {
                gauge.set(i64::from(*leader_rx.borrow_and_update()));
            }
        }));
    }

    let mut committed = false;
    let mut dirty_since: Option<Instant> = None;
    let mut last_recompile: Option<Instant> = None;
    let mut last_diagnostics: Vec<Diagnostic> = Vec::new();
    loop {
        let synced = states.iter().all(|s| s.synced);
        let pending = publisher.pending();
        let deadline = if !synced || (committed && pending.is_empty()) {
            None
        } else if !committed || !pending.routes {
            Some(Instant::now())
        } else {
            let dirty = dirty_since.unwrap_or_else(Instant::now);
            let window = last_recompile.map_or(dirty, |t| t + settings.debounce);
            Some(dirty.max(window))
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            update = streams.next() => {
                let Some(update) = update else { break };
                let (Some(info), Some(state)) =
                    (infos.get(update.stream), states.get_mut(update.stream))
                else {
                    continue;
                };
                if matches!(update.event, Ok(watcher::Event::Init)) {
                    // A list (re)starts: no status decision until it is
                    // complete and compiled.
                    gate.close();
                }
                handle(info, state, update.event, publisher, &origin, &sinks, &metrics);
                if dirty_since.is_none() && !publisher.pending().is_empty() {
                    dirty_since = Some(Instant::now());
                }
            }
            _ = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let applied = publisher.commit(&[]);
                if !committed {
                    tracing::info!("initial sync complete; routing table published");
                }
                committed = true;
                dirty_since = None;
                if let Applied::Recompiled { .. } = applied {
                    last_recompile = Some(Instant::now());
                    gate.table_changed();
                    if publisher.diagnostics() != last_diagnostics.as_slice() {
                        last_diagnostics = publisher.diagnostics().to_vec();
                        let _ = diag_tx.send(Arc::new(regarding(publisher.snapshot(), &last_diagnostics)));
                    }
                }
            }
        }
        // Complete: the table was compiled from every kind's completed
        // list and no list is in progress.
        if committed && !publisher.pending().routes && states.iter().all(|s| s.relist.is_none()) {
            gate.open(|| View {
                served: publisher.served_shared(),
                policies: view::desired(publisher.snapshot(), publisher.policy_status()),
                gateway: publisher.gateway_status().clone(),
            });
        }
    }
    for task in tasks {
        // The leader task releases the Lease on stop; give it a moment.
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
}

/// Tells the status writers that an object is gone.
fn forget(kind: &str, key: ObjectKey, sinks: &StatusSinks) {
    match kind {
        "Ingress" => {
            let _ = sinks.ingresses.send(Observed::Deleted(key));
        }
        "TrafficPolicy" => {
            let _ = sinks.policies.send(policy_status::Observed::Deleted(key));
        }
        _ => {
            if let Some(sink) = sinks.gateway.get(kind) {
                let _ = sink.send(gateway_status::Observed::Deleted(key));
            }
        }
    }
}

/// Replaces what one stream covers with a completed list: `listed`, the
/// objects still to apply, and `applied`, the keys of those already in the
/// snapshot.
fn replace_all(
    info: &watch::StreamInfo,
    listed: Vec<(Object, Option<watch::Taken>)>,
    applied: &HashSet<ObjectKey>,
    publisher: &mut Publisher,
    apply: impl Fn(Object, Option<watch::Taken>, &mut Publisher),
    sinks: &StatusSinks,
) {
    let keys: HashSet<ObjectKey> = listed.iter().map(|(o, _)| o.key()).collect();
    // What the list no longer has was deleted while we were not
    // watching; everything else is replaced by its listed version.
    for key in publisher.snapshot().keys_of(info.kind) {
        if info.covers(publisher.snapshot(), &key)
            && !keys.contains(&key)
            && !applied.contains(&key)
        {
            publisher.delete(info.kind, &key);
            forget(info.kind, key, sinks);
        }
    }
    for (object, taken) in listed {
        apply(object, taken, publisher);
    }
}

fn handle(
    info: &watch::StreamInfo,
    state: &mut StreamState,
    event: Result<watcher::Event<Object>, watcher::Error>,
    publisher: &mut Publisher,
    origin: &Arc<str>,
    sinks: &StatusSinks,
    metrics: &Metrics,
) {
    // `trim` runs as an object arrives (a buffered re-list holds trimmed
    // objects); `apply` sends what it took to the status writers and
    // upserts.
    let apply = |object: Object, taken: Option<watch::Taken>, publisher: &mut Publisher| {
        match taken {
            Some(watch::Taken::Ingress(status)) => {
                let _ = sinks.ingresses.send(Observed::Status(object.key(), status));
            }
            Some(watch::Taken::TrafficPolicy(status)) => {
                let _ = sinks
                    .policies
                    .send(policy_status::Observed::Status(object.key(), status));
            }
            Some(watch::Taken::GatewayApi(kind, status)) => {
                if let Some(sink) = sinks.gateway.get(kind) {
                    let _ = sink.send(gateway_status::Observed::Status(object.key(), status));
                }
            }
            None => {}
        }
        publisher.upsert(origin.clone(), object);
    };
    let event = match event {
        Ok(event) => event,
        Err(e) if info.optional && gateway_watch::is_not_found(&e) => {
            // The CRD is not installed: no objects of this kind exist. The
            // watcher keeps retrying (with backoff), so installing the CRD
            // later starts the watch.
            if !state.absent {
                tracing::warn!(kind = info.kind, namespace = info.namespace.as_deref().unwrap_or("*"), "the API server does not know this kind (CRD not installed?); treating it as empty and retrying in the background");
            }
            state.absent = true;
            state.relist = None;
            replace_all(info, Vec::new(), &HashSet::new(), publisher, apply, sinks);
            state.synced = true;
            state.synced_gauge.set(1);
            return;
        }
        Err(e) => {
            // No gauge flips back to "up" here: the watcher reconnects
            // silently (no event marks it), so failures are a counter.
            metrics
                .kube_watch_errors
                .get_or_create(&KindLabels { kind: info.kind })
                .inc();
            tracing::warn!(kind = info.kind, namespace = info.namespace.as_deref().unwrap_or("*"), error = %e, "watch failed; retrying with backoff, the last good table keeps serving");
            return;
        }
    };
    let trimmed = |mut object: Object| {
        let taken = watch::trim(&mut object);
        (object, taken)
    };
    match event {
        watcher::Event::Init => {
            state.relist = Some(if state.synced {
                Listing::Buffered(Vec::new())
            } else {
                Listing::Applied(HashSet::new())
            });
        }
        watcher::Event::InitApply(object) => {
            let (object, taken) = trimmed(object);
            match state
                .relist
                .get_or_insert_with(|| Listing::Buffered(Vec::new()))
            {
                Listing::Buffered(listed) => listed.push((object, taken)),
                Listing::Applied(keys) => {
                    keys.insert(object.key());
                    apply(object, taken, publisher);
                }
            }
        }
        watcher::Event::InitDone => {
            let (listed, applied) = match state.relist.take() {
                Some(Listing::Buffered(listed)) => (listed, HashSet::new()),
                Some(Listing::Applied(keys)) => (Vec::new(), keys),
                None => (Vec::new(), HashSet::new()),
            };
            let count = listed.len() + applied.len();
            replace_all(info, listed, &applied, publisher, apply, sinks);
            if !state.synced || state.absent {
                tracing::info!(
                    kind = info.kind,
                    namespace = info.namespace.as_deref().unwrap_or("*"),
                    secret_type = info.secret_type.unwrap_or(""),
                    objects = count,
                    "watch synced"
                );
            }
            state.absent = false;
            state.synced = true;
            state.synced_gauge.set(1);
        }
        watcher::Event::Apply(object) => {
            let (object, taken) = trimmed(object);
            apply(object, taken, publisher);
        }
        watcher::Event::Delete(object) => {
            let key = object.key();
            // Two Secret streams (one per type) can see one name: a delete
            // from one must not remove the other's newer object (an Opaque
            // Secret replaced by a TLS Secret of the same name).
            if info.covers(publisher.snapshot(), &key) {
                publisher.delete(info.kind, &key);
                forget(info.kind, key, sinks);
            }
        }
    }
}
