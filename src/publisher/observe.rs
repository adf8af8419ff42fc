//! What the publisher reports about each install besides the table: the
//! configuration apply gauges (`tollgate_config_last_apply_*`,
//! `tollgate_config_diagnostics`) and certificate expiry by Secret and host.
//!
//! Invariant: runs at publish time on the control plane; nothing here is
//! read or computed per request or per scrape. Series labels are the
//! route's own (interned) strings, cloned, never formatted anew.

use std::sync::Arc;

use crate::config::{Diagnostic, LastGood, Severity};
use crate::intern::intern;
use crate::metrics::{DiagnosticLabels, Metrics, SecretLabels, SeriesLabels};
use crate::table::policy::Canary;
use crate::table::tls::TlsTable;
use crate::table::{Route, RouteKind};

/// Sets the apply gauges after an install: success (nothing rejected),
/// when, and the current diagnostics by kind and severity (`previous`: the
/// diagnostics of the install before).
pub(super) fn apply<'a>(
    metrics: &Metrics,
    previous: &[Diagnostic],
    rejected: bool,
    diagnostics: impl Iterator<Item = &'a Diagnostic>,
) {
    let observe = &metrics.observe;
    observe.last_apply_success.set(i64::from(!rejected));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    observe.last_apply_timestamp.set(now);
    // Counted afresh; a (kind, severity) of the previous install that
    // has none now reads 0 rather than vanishing.
    let mut counts: std::collections::BTreeMap<(&'static str, &'static str), i64> = previous
        .iter()
        .map(|d| ((d.kind, severity(d.severity)), 0))
        .collect();
    for d in diagnostics {
        *counts.entry((d.kind, severity(d.severity))).or_default() += 1;
    }
    for ((kind, severity), count) in counts {
        observe
            .diagnostics
            .get_or_create(&DiagnosticLabels { kind, severity })
            .set(count);
    }
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Rejected => "rejected",
        Severity::Warning => "warning",
    }
}

/// `(secret, host) → notAfter` of every certificate the table serves:
/// each host with its own certificate, the default certificate as host
/// `""`, and a Secret that serves no host also as host `""`.
pub(super) fn certificate_expiries(
    tls: &TlsTable,
    last_good: &LastGood,
) -> Vec<(SecretLabels, i64)> {
    let mut out = Vec::new();
    for (secret, cert) in &last_good.certificates {
        let mut served = false;
        for (host, key) in tls.hosts() {
            if Arc::ptr_eq(key, &cert.key) {
                served = true;
                out.push((
                    SecretLabels {
                        secret: secret.to_string(),
                        host,
                    },
                    cert.not_after,
                ));
            }
        }
        if !served {
            out.push((
                SecretLabels {
                    secret: secret.to_string(),
                    host: String::new(),
                },
                cert.not_after,
            ));
        }
    }
    out
}

/// The labels of a route's own series: an Ingress's as `ingress`, a
/// Gateway API route's as `route`.
pub fn labels_of(route: &Route, per_host: bool) -> SeriesLabels {
    let (ingress, gateway_route) = match route.kind {
        RouteKind::Ingress => (route.ingress.clone(), intern("")),
        RouteKind::HttpRoute | RouteKind::GrpcRoute => (intern(""), route.ingress.clone()),
    };
    SeriesLabels {
        ingress,
        service: route.service.clone(),
        route: gateway_route,
        canary: false,
        host: per_host.then(|| route.host.clone()),
    }
}

/// The labels of the canary series of a route: the canary Ingress and its
/// Service, never the stable one's.
pub fn canary_labels(route: &Route, canary: &Canary, per_host: bool) -> SeriesLabels {
    SeriesLabels {
        ingress: canary.ingress.clone(),
        service: canary.service.clone(),
        route: intern(""),
        canary: true,
        host: per_host.then(|| route.host.clone()),
    }
}
