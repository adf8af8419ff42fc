//! The status writer loop every written kind shares (Ingress status,
//! TrafficPolicy conditions, Gateway API statuses): inputs, leader
//! gating, batching, concurrent patches, retries and counting. What a kind
//! writes is its [`Kind`]: a pure plan and the resource it patches.
//!
//! Invariants:
//! - No decision without a complete view ([`super::view`]): before the first
//!   table is published from a complete initial sync, and during a re-list,
//!   nothing is planned and nothing is written.
//! - Writes only while this replica is the leader, only to the `/status`
//!   subresource (a JSON merge patch).
//! - Idempotent and convergent: a kind plans a write only where the status
//!   an object has (as the watch last reported it) differs from the one it
//!   should have. A write made is not repeated until the watch reports
//!   something else for that object, or leadership changes (a new term
//!   starts from what the watch says, not from what an earlier term wrote).
//!   A failed write is retried after a delay.
//! - Every write is counted in `tollgate_status_writes_total{kind,result}`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::view::{View, ViewRx};
use crate::config::ObjectKey;
use crate::metrics::{Metrics, ResultLabels, StatusWriteLabels};

/// Concurrent status writes.
const CONCURRENCY: usize = 8;
/// Delay before retrying failed writes.
const RETRY: Duration = Duration::from_secs(2);
/// Coalesces bursts of inputs into one pass.
const SETTLE: Duration = Duration::from_millis(20);

/// What the watch reports about the statuses of one kind: the status taken
/// off each listed or changed object, and deletions.
#[derive(Debug)]
pub enum Observed<S> {
    Status(ObjectKey, S),
    Deleted(ObjectKey),
}

/// One planned write.
#[derive(Debug, Clone, PartialEq)]
pub struct Write<W> {
    pub key: ObjectKey,
    /// What the write makes the status say; remembered until the watch
    /// reports the object again.
    pub want: W,
    /// The JSON merge patch for the `/status` subresource.
    pub patch: serde_json::Value,
}

/// A kind whose status the controller writes.
pub trait Kind: Send + 'static {
    /// The status as the watch reports it.
    type Status: Send + 'static;
    /// What a write is meant to achieve.
    type Want: Clone + PartialEq + Send + 'static;
    /// The API resource patched.
    type Resource: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static;
    /// The `kind` label of `tollgate_status_writes_total`.
    const KIND: &'static str;

    /// Where the object `key` is patched (namespaced or cluster-wide).
    fn api(client: Client, key: &ObjectKey) -> Api<Self::Resource>;

    /// Resolves when an input of the kind's own changed (the Ingress
    /// writer's publish Service); never, for kinds without one (the
    /// default). Must be cancel-safe.
    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// The writes one pass should make: only differences between the
    /// observed statuses and the view, minus what `sent` already covers.
    fn plan(
        &mut self,
        view: &View,
        observed: &BTreeMap<ObjectKey, Self::Status>,
        sent: &BTreeMap<ObjectKey, Self::Want>,
    ) -> Vec<Write<Self::Want>>;
}

/// The inputs every writer reads.
pub struct Inputs<S> {
    /// Statuses from the watch, in order with the view's updates.
    pub observed: mpsc::UnboundedReceiver<Observed<S>>,
    pub view: ViewRx,
    pub leader: watch::Receiver<bool>,
    pub stop: watch::Receiver<bool>,
}

/// Runs until `stop`: keeps the statuses of one kind in line with the view.
pub async fn run<K: Kind>(
    client: Client,
    mut kind: K,
    inputs: Inputs<K::Status>,
    metrics: Arc<Metrics>,
) {
    let Inputs {
        observed: mut observed_rx,
        view: mut view_rx,
        leader: mut leader_rx,
        mut stop,
    } = inputs;
    let counter = |result| {
        metrics
            .status_writes
            .get_or_create(&StatusWriteLabels {
                kind: K::KIND,
                result,
            })
            .clone()
    };
    // Both results show (at 0) from the start.
    let (ok, failed) = (counter("ok"), counter("error"));
    let mut observed: BTreeMap<ObjectKey, K::Status> = BTreeMap::new();
    let mut sent: BTreeMap<ObjectKey, K::Want> = BTreeMap::new();
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut dirty = true;
    loop {
        let settle = tokio::time::sleep(SETTLE);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            // Drained before anything else: a view never runs ahead of the
            // statuses sent before it.
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
            Ok(()) = view_rx.changed() => { dirty = true; continue; }
            Ok(()) = leader_rx.changed() => {
                // A new term starts from what the watch says.
                sent.clear();
                dirty = true;
                continue;
            }
            () = kind.changed() => { dirty = true; continue; }
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
        let Some(view) = view_rx.borrow().clone() else {
            continue;
        };
        let writes = kind.plan(&view, &observed, &sent);
        if writes.is_empty() {
            continue;
        }
        let results: Vec<(ObjectKey, K::Want, bool)> = stream::iter(writes)
            .map(|w| {
                let client = client.clone();
                async move {
                    let api = K::api(client, &w.key);
                    let done = write(api, K::KIND, &w.key, &w.patch).await;
                    (w.key, w.want, done)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (key, want, done) in results {
            let result = if done { "ok" } else { "error" };
            if done { &ok } else { &failed }.inc();
            metrics
                .status_updates
                .get_or_create(&ResultLabels { result })
                .inc();
            if done {
                sent.insert(key, want);
            } else {
                retry_at = Some(tokio::time::Instant::now() + RETRY);
            }
        }
    }
}

/// One merge patch of `/status`; true when done (or the object is gone).
async fn write<R>(api: Api<R>, kind: &str, key: &ObjectKey, patch: &serde_json::Value) -> bool
where
    R: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match api
        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {
            tracing::debug!(kind, object = %key, "status updated");
            true
        }
        Err(kube::Error::Api(e)) if e.code == 404 => true, // deleted meanwhile
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // A conditional write (its resourceVersion) lost a race with
            // another writer: planned again from the newer version.
            tracing::debug!(kind, object = %key, "status changed meanwhile; retrying");
            false
        }
        Err(e) => {
            tracing::warn!(kind, object = %key, error = %e, "cannot update status; retrying");
            false
        }
    }
}
