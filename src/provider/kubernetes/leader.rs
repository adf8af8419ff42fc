//! Leader election on a `coordination.k8s.io/v1` Lease, the algorithm of
//! client-go's `leaderelection` package: optimistic concurrency on the
//! Lease's resourceVersion, expiry judged by the local clock from when this
//! replica last saw the record change (so clocks need not agree).
//!
//! Invariants:
//! - Every replica serves traffic; only the holder writes Ingress status and
//!   Events. `leader` is true only between a successful acquire or renew and
//!   the renew deadline (2/3 of the lease) passing without one.
//! - A write that loses a race (409 Conflict) never makes two leaders: the
//!   loser re-reads and sees the winner.
//! - On shutdown the holder releases the Lease so another replica takes
//!   over at once instead of waiting for expiry.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

/// Where and as whom to run the election.
#[derive(Debug, Clone)]
pub struct Election {
    pub lease: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
}

impl Election {
    /// How often a non-leader retries and a leader renews.
    fn retry_period(&self) -> Duration {
        (self.duration * 2 / 15).max(Duration::from_millis(100))
    }

    /// A leader that could not renew for this long steps down.
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Leader,
    Follower,
    Failed,
}

struct Elector {
    api: Api<Lease>,
    election: Election,
    /// The holder record last seen and when (local clock) it last changed.
    observed: Option<(LeaseSpec, Instant)>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn same_record(a: &LeaseSpec, b: &LeaseSpec) -> bool {
    a.holder_identity == b.holder_identity
        && a.renew_time == b.renew_time
        && a.acquire_time == b.acquire_time
        && a.lease_transitions == b.lease_transitions
}

impl Elector {
    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.election.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let me = self.election.identity.clone();
        let current = match self.api.get_opt(&self.election.lease).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.election.lease.clone()),
                        namespace: Some(self.election.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(me),
                        lease_duration_seconds: Some(self.lease_seconds()),
                        acquire_time: Some(now()),
                        renew_time: Some(now()),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Attempt::Leader,
                    Err(kube::Error::Api(e)) if e.code == 409 => Attempt::Follower,
                    Err(e) => {
                        tracing::warn!(error = %e, lease = %self.election.lease, "cannot create the leader Lease");
                        Attempt::Failed
                    }
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.election.lease, "cannot read the leader Lease");
                return Attempt::Failed;
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(seen, _)| !same_record(seen, &spec));
        if changed {
            self.observed = Some((spec.clone(), Instant::now()));
        }
        let holder = spec.holder_identity.as_deref().unwrap_or("");
        let held_by_me = holder == me;
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.election.duration);
        let observed_at = self.observed.as_ref().map(|(_, at)| *at);
        let expired = observed_at.is_none_or(|at| at + duration <= Instant::now());
        if !held_by_me && !holder.is_empty() && !expired {
            return Attempt::Follower;
        }
        let renew = LeaseSpec {
            holder_identity: Some(me),
            lease_duration_seconds: Some(self.lease_seconds()),
            acquire_time: if held_by_me {
                spec.acquire_time.clone()
            } else {
                Some(now())
            },
            renew_time: Some(now()),
            lease_transitions: Some(
                spec.lease_transitions.unwrap_or(0) + if held_by_me { 0 } else { 1 },
            ),
            ..spec
        };
        let mut lease = current;
        lease.spec = Some(renew.clone());
        // `replace` carries the resourceVersion just read: a concurrent
        // writer makes this fail with 409 instead of both winning.
        match self
            .api
            .replace(&self.election.lease, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observed = Some((renew, Instant::now()));
                Attempt::Leader
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Attempt::Follower,
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.election.lease, "cannot update the leader Lease");
                Attempt::Failed
            }
        }
    }

    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.election.lease).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.election.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.election.lease, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.election.lease, "released the leader Lease"),
            Err(e) => tracing::warn!(error = %e, "cannot release the leader Lease"),
        }
    }
}

/// Runs the election until `stop` turns true, publishing leadership on
/// `leader`; then releases the Lease if held.
pub async fn run(
    client: Client,
    election: Election,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api = Api::<Lease>::namespaced(client, &election.namespace);
    let retry = election.retry_period();
    let deadline = election.renew_deadline();
    let mut elector = Elector {
        api,
        election,
        observed: None,
    };
    let mut last_renew: Option<Instant> = None;
    loop {
        let attempt = elector.try_acquire_or_renew().await;
        let is_leader = match attempt {
            Attempt::Leader => {
                last_renew = Some(Instant::now());
                true
            }
            Attempt::Follower => {
                last_renew = None;
                false
            }
            // An API failure: a leader stays leader until its renew deadline.
            Attempt::Failed => last_renew.is_some_and(|at| at.elapsed() < deadline),
        };
        if *leader.borrow() != is_leader {
            tracing::info!(
                identity = %elector.election.identity,
                lease = %elector.election.lease,
                leader = is_leader,
                "leadership changed"
            );
            let _ = leader.send(is_leader);
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if *leader.borrow() {
        let _ = leader.send(false);
        elector.release().await;
    }
}
