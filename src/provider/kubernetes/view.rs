//! The complete view the status writers decide from, and the gate that
//! withholds it while it is not complete.
//!
//! A status writer compares the status an object has (as the watch reported
//! it) with the one it should have (from the published routing table). Both
//! sides must come from complete lists. Before the first table is published
//! (a large cluster's initial sync takes seconds, EndpointSlices last) "not
//! in the table" does not mean "not served"; during a re-list the table lags
//! behind what is being listed. So the control loop hands out a [`View`] only
//! when every watch has completed its list (initial or re-list), none is
//! listing again, and the routing table has been compiled from those lists
//! (no route change pending). From the start of any re-list until then the
//! gate is closed: receivers see `None`.
//!
//! Invariants:
//! - Closed until the first table is published from a complete initial sync
//!   (the readiness the data plane uses); closed again at the start of every
//!   re-list.
//! - Status writers make no decision without a view. Every writer (Ingress,
//!   TrafficPolicy, Gateway API statuses) reads this one gate: what it should
//!   write is a field of [`View`], computed from the same compile.
//! - The statuses a writer observes come from the same lists: the watch
//!   hands them over only when a list completes (never a partial one), and
//!   before the view that includes them can open (one ordered channel).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::gateway::status::GatewayApiStatus;
use crate::config::traffic_policy::PolicyStatus;
use crate::config::{ObjectKey, Snapshot};

/// What the status writers decide from: one compile's verdicts.
#[derive(Debug, Default, PartialEq)]
pub struct View {
    /// Ingresses the published table serves, sorted (shared with the
    /// publisher: building a view copies no key).
    pub served: Arc<[ObjectKey]>,
    /// The `Accepted` condition each TrafficPolicy should have.
    pub policies: BTreeMap<ObjectKey, Desired>,
    /// The Gateway API statuses (ours only) the compile decided.
    pub gateway: GatewayApiStatus,
}

impl View {
    /// Whether the published table serves this Ingress.
    pub fn serves(&self, key: &ObjectKey) -> bool {
        self.served.binary_search(key).is_ok()
    }
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

/// The receiving side: `None` while the view is not complete.
pub type ViewRx = watch::Receiver<Option<Arc<View>>>;

/// The sending side, owned by the control loop.
#[derive(Debug)]
pub struct Gate {
    tx: watch::Sender<Option<Arc<View>>>,
    /// The last view built; kept while closed, so reopening after a re-list
    /// that changed nothing builds nothing, and a new table that changes no
    /// verdict wakes no writer.
    last: Option<Arc<View>>,
    /// A table was published since `last` was built.
    stale: bool,
    /// `last` is handed out now (saves the channel's lock on the control
    /// loop's every turn).
    open: bool,
}

impl Gate {
    /// A closed gate and its receiver.
    pub fn new() -> (Gate, ViewRx) {
        let (tx, rx) = watch::channel(None);
        let gate = Gate {
            tx,
            last: None,
            stale: true,
            open: false,
        };
        (gate, rx)
    }

    /// Withholds the view (a list started).
    pub fn close(&mut self) {
        self.open = false;
        self.tx.send_if_modified(|current| current.take().is_some());
    }

    /// A new table was published: the next [`Gate::open`] builds the view
    /// again.
    pub fn table_changed(&mut self) {
        self.stale = true;
    }

    /// Hands out the view of the published table (built by `build` only
    /// when a table was published since the last one). The caller checks
    /// that the view is complete.
    pub fn open(&mut self, build: impl FnOnce() -> View) {
        if self.open && !self.stale {
            return;
        }
        self.open = true;
        if self.stale || self.last.is_none() {
            let view = build();
            self.stale = false;
            if self.last.as_deref() != Some(&view) {
                self.last = Some(Arc::new(view));
            }
        }
        let last = self.last.clone();
        self.tx.send_if_modified(|current| {
            let same = match (current.as_ref(), last.as_ref()) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                *current = last;
            }
            !same
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(names: &[&str]) -> View {
        View {
            served: names.iter().map(|n| ObjectKey::new("ns", *n)).collect(),
            policies: BTreeMap::new(),
            gateway: GatewayApiStatus::default(),
        }
    }

    #[test]
    fn closed_until_opened_and_again_while_listing() {
        let (mut gate, mut rx) = Gate::new();
        assert!(rx.borrow_and_update().is_none());
        gate.open(|| view(&["a"]));
        assert!(rx.has_changed().unwrap_or(false));
        let first = rx.borrow_and_update().clone();
        assert!(first
            .as_ref()
            .is_some_and(|v| v.serves(&ObjectKey::new("ns", "a"))));

        gate.close();
        assert!(rx.borrow_and_update().is_none());
        // A re-list that changed nothing: the same view again, not rebuilt.
        gate.open(|| panic!("rebuilt without a new table"));
        let again = rx.borrow_and_update().clone();
        assert!(matches!((&first, &again), (Some(a), Some(b)) if Arc::ptr_eq(a, b)));
    }

    #[test]
    fn a_new_table_wakes_writers_only_when_the_view_changed() {
        let (mut gate, mut rx) = Gate::new();
        gate.open(|| view(&["a"]));
        rx.borrow_and_update();
        gate.table_changed();
        gate.open(|| view(&["a"]));
        assert!(!rx.has_changed().unwrap_or(true), "same view, no wake-up");
        gate.table_changed();
        gate.open(|| view(&["a", "b"]));
        assert!(rx.has_changed().unwrap_or(false));
        assert!(rx
            .borrow_and_update()
            .as_ref()
            .is_some_and(|v| v.serves(&ObjectKey::new("ns", "b"))));
    }
}
