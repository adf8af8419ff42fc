//! Kubernetes Events for compiler diagnostics, so `kubectl describe ingress`
//! shows why a path was rejected or a backend answers 503.
//!
//! Invariants:
//! - One Event per diagnostic when it first appears (deduplicated by its
//!   text), and again every [`REPUBLISH_INTERVAL`] while it still stands,
//!   so the API server's Event TTL (one hour by default) never leaves a
//!   standing problem without an Event; at most once per interval per
//!   object and reason. A diagnostic that goes away and comes back is
//!   published again at once.
//! - Only the leader publishes (replicas compile the same input, so they
//!   would all say the same thing); a new leader publishes the diagnostics
//!   that stand when it takes over.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Diagnostic, Severity};
use crate::metrics::{Metrics, ResultLabels};

/// A diagnostic and the object it is about.
pub type Regarding = (ObjectReference, Diagnostic);

/// How long after publishing a standing diagnostic's Event it is
/// published again: half the API server's default Event TTL (`--event-ttl`,
/// one hour), so the Event never expires while the problem stands.
pub const REPUBLISH_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// Longest note the Events API accepts.
const MAX_NOTE: usize = 1024;

/// The Event for one diagnostic.
pub fn event_for(d: &Diagnostic) -> Event {
    let (type_, reason) = match d.severity {
        Severity::Rejected => (EventType::Warning, "Rejected"),
        Severity::Warning => (EventType::Warning, "Degraded"),
    };
    let mut note = format!("{}: {}", d.field, d.reason);
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Compile".into(),
        secondary: None,
    }
}

/// Runs until `stop`: publishes new diagnostics as Events while leader,
/// and standing ones again every `republish` (normally
/// [`REPUBLISH_INTERVAL`]).
pub async fn run(
    client: Client,
    reporter: Reporter,
    mut diagnostics: watch::Receiver<Arc<Vec<Regarding>>>,
    mut leader: watch::Receiver<bool>,
    republish: Duration,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    // When each standing diagnostic's Event was last published.
    let mut published: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let due = published.values().min().map(|at| *at + republish);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            Ok(()) = diagnostics.changed() => {}
            Ok(()) = leader.changed() => published.clear(),
            _ = sleep_until(due) => {}
        }
        let current = diagnostics.borrow_and_update().clone();
        // Forget what no longer stands, so it is published if it returns.
        let standing: BTreeSet<String> = current.iter().map(|(_, d)| d.to_string()).collect();
        published.retain(|line, _| standing.contains(line));
        if !*leader.borrow_and_update() {
            continue;
        }
        // Sequential: Events are rare (new diagnostics, and standing ones
        // once per interval), and this keeps a flood of broken objects from
        // bursting at the API server.
        let now = Instant::now();
        for (reference, d) in current.iter() {
            let line = d.to_string();
            if published
                .get(&line)
                .is_some_and(|at| now.saturating_duration_since(*at) < republish)
            {
                continue;
            }
            // A fresh recorder per Event: a recorder turns a repeat of the
            // same (object, reason) into a series of its *first* note, which
            // would hide every later diagnostic; deduplication is ours.
            let recorder = Recorder::new(client.clone(), reporter.clone());
            let result = recorder.publish(&event_for(d), reference).await;
            if let Err(e) = &result {
                tracing::warn!(object = %format!("{}/{}", d.namespace, d.name), error = %e, "cannot publish Event");
            }
            let result = if result.is_ok() { "ok" } else { "error" };
            metrics
                .events_published
                .get_or_create(&ResultLabels { result })
                .inc();
            // A failed publish is not retried before the next interval: the
            // diagnostic is also in the log, `/debug/diagnostics` and
            // `tollgate check`; retrying could flood the API.
            published.insert(line, Instant::now());
        }
    }
}

/// Sleeps until `due`, or forever without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ObjectKey;

    #[test]
    fn event_names_field_and_reason_and_stays_within_limits() {
        let d = Diagnostic::new(
            Severity::Rejected,
            "Ingress",
            &ObjectKey::new("ns", "web"),
            None,
            "spec.rules[0].http.paths[0].path",
            "é".repeat(2000),
        );
        let e = event_for(&d);
        assert_eq!(e.reason, "Rejected");
        let note = e.note.unwrap_or_default();
        assert!(note.starts_with("spec.rules[0].http.paths[0].path: é"));
        assert!(note.len() <= MAX_NOTE);
        assert!(note.ends_with("..."));
    }
}
