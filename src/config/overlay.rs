//! A TrafficPolicy over an Ingress's annotations: every section the policy
//! sets replaces what the annotations asked for that section, in the one
//! [`RoutePolicy`] both compile into.
//!
//! Invariants:
//! - Pure: the route policy parsed from the annotations and a *validated*
//!   policy spec in, the merged policy out, plus the names of the
//!   annotations overridden (so a diagnostic can say the policy won).
//! - Only sections the policy sets are touched: an annotation whose
//!   section the policy leaves out keeps working. Timeouts go field by
//!   field (a policy setting only `idle` keeps `proxy-read-timeout`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use super::annotations::parser::LimitStatuses;
use crate::crd::{self, TrafficPolicySpec};
use crate::table::global_limit::LimitKey;
use crate::table::policy::GlobalRateLimit;
use crate::table::policy::{
    AccessList, Affinity, AffinityMode, ConnLimit, Cors, CorsOrigins, HashKey, HashPart,
    HeaderEdits, RateLimit, Retry, RoutePolicy,
};
use crate::table::upstream::LbAlgorithm;

/// What the overlay decided beyond the route policy.
#[derive(Debug, Default)]
pub struct Overlay {
    /// The policy's load-balancing algorithm, if it sets one.
    pub lb: Option<LbAlgorithm>,
    /// Annotation settings the policy replaced (for the diagnostic).
    pub overridden: Vec<&'static str>,
}

/// Applies `spec` over `a`, the policy the annotations asked for.
pub fn apply(
    a: &mut RoutePolicy,
    spec: &TrafficPolicySpec,
    statuses: LimitStatuses,
    annotation_lb: bool,
) -> Overlay {
    let mut out = Overlay::default();
    let mut note = |set: bool, what: &'static str| {
        if set {
            out.overridden.push(what);
        }
    };
    if let Some(rl) = &spec.rate_limit {
        note(
            a.rate.is_some() || a.connections.is_some() || a.global_rate.is_some(),
            "limit-*",
        );
        a.rate = rl.rate().map(|rate| {
            let (requests, per) = match rate {
                crd::Rate::PerSecond(n) => (n, Duration::from_secs(1)),
                crd::Rate::PerMinute(n) => (n, Duration::from_secs(60)),
            };
            let requests = NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN);
            RateLimit {
                requests,
                per,
                burst: rl.burst().and_then(NonZeroU32::new).unwrap_or(requests),
                status: statuses.tollgate,
            }
        });
        // `scope: Global`: the rate is counted in the shared store.
        a.global_rate = match a.rate.take() {
            Some(rate) if rl.is_global() => Some(Arc::new(GlobalRateLimit {
                rate,
                key: LimitKey::ClientIp,
                exempt: Arc::from([]),
            })),
            rate => {
                a.rate = rate;
                None
            }
        };
        a.connections = rl
            .connections()
            .and_then(NonZeroU32::new)
            .map(|max| ConnLimit {
                max,
                status: statuses.tollgate,
            });
    }
    if let Some(lb) = &spec.load_balancer {
        note(
            annotation_lb || a.hash_by.is_some(),
            "load-balance / upstream-hash-by",
        );
        out.lb = lb.algorithm().map(|alg| match alg {
            crd::Algorithm::RoundRobin => LbAlgorithm::RoundRobin,
            crd::Algorithm::P2cEwma => LbAlgorithm::P2cEwma,
            crd::Algorithm::ConsistentHash => LbAlgorithm::ConsistentHash,
        });
        a.hash_by = lb.hash_key().and_then(|key| {
            let part = match key {
                crd::HashKey::Header(name) => {
                    HashPart::Header(http::HeaderName::from_bytes(name.as_bytes()).ok()?)
                }
                crd::HashKey::Cookie(name) => HashPart::Cookie(name.into()),
                crd::HashKey::ClientIp => HashPart::RemoteAddr,
            };
            Some(HashKey { parts: vec![part] })
        });
    }
    if let Some(sa) = &spec.session_affinity {
        note(a.affinity.is_some(), "affinity / session-cookie-*");
        a.affinity = Some(Affinity {
            cookie: sa.cookie_name.as_str().into(),
            mode: match sa.mode() {
                Some(crd::AffinityMode::Persistent) => AffinityMode::Persistent,
                _ => AffinityMode::Balanced,
            },
            max_age: sa.max_age().map(|d| d.as_secs()),
            path: sa.path.as_deref().map(Arc::from),
            attrs: Default::default(),
        });
    }
    if let Some(t) = &spec.timeouts {
        // Field by field: a timeout the policy leaves out keeps the
        // annotation's value.
        if let Some(d) = t.connect() {
            note(a.timeouts.connect.is_some(), "proxy-connect-timeout");
            a.timeouts.connect = Some(d);
        }
        if let Some(d) = t.response_headers() {
            note(a.timeouts.read.is_some(), "proxy-read-timeout");
            a.timeouts.read = Some(d);
        }
        if let Some(d) = t.idle() {
            a.timeouts.idle = Some(d);
        }
    }
    if let Some(r) = &spec.retries {
        note(a.retry.is_some(), "proxy-next-upstream*");
        let on = r.conditions();
        a.retry = Some(Retry {
            tries: u8::try_from(r.attempts().unwrap_or(2).saturating_add(1)).unwrap_or(u8::MAX),
            on_error: on.is_empty() || on.contains(&crd::RetryOn::ConnectFailure),
            on_timeout: on.contains(&crd::RetryOn::Timeout),
            on_status: if on.contains(&crd::RetryOn::Status5xx) {
                vec![500, 502, 503, 504]
            } else {
                Vec::new()
            },
            non_idempotent: false,
            budget: r.budget(),
            within: None,
            pacing: None,
        });
    }
    if let Some(c) = &spec.cors {
        note(a.cors.is_some(), "enable-cors / cors-*");
        let list = |items: &[String], default: &'static str| {
            if items.is_empty() {
                HeaderValue::from_static(default)
            } else {
                HeaderValue::from_str(&items.join(", "))
                    .unwrap_or_else(|_| HeaderValue::from_static(default))
            }
        };
        let origins = CorsOrigins::from_list(&c.allow_origins);
        a.cors = Some(Cors {
            origins,
            allow_methods: list(&c.allow_methods, "GET, PUT, POST, DELETE, PATCH, OPTIONS"),
            allow_headers: list(
                &c.allow_headers,
                "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization",
            ),
            expose_headers: (!c.expose_headers.is_empty())
                .then(|| HeaderValue::from_str(&c.expose_headers.join(", ")).ok())
                .flatten(),
            allow_credentials: c.allow_credentials.unwrap_or(true),
            max_age: HeaderValue::from(c.max_age.unwrap_or(1_728_000).max(0)),
            nginx: false,
        });
    }
    if let Some(h) = &spec.headers {
        // No annotation edits headers: nothing is overridden.
        a.request_headers = h.request.as_ref().map(header_edits).map(Arc::new);
        a.response_headers = h.response.as_ref().map(header_edits).map(Arc::new);
    }
    if !spec.ip_allow.is_empty() || !spec.ip_deny.is_empty() {
        note(
            a.access.is_some(),
            "whitelist-source-range / denylist-source-range",
        );
        a.access = Some(AccessList {
            allow: spec.ip_allow(),
            deny: spec.ip_deny(),
        });
    }
    if let Some(max) = spec.max_request_body_bytes {
        note(a.max_body.is_some(), "proxy-body-size");
        a.max_body = u64::try_from(max).ok().filter(|n| *n > 0);
    }
    out
}

/// A validated header modifier as pre-built names and values (an entry
/// that does not parse, which validation rules out, is left out).
fn header_edits(m: &crd::HeaderModifier) -> HeaderEdits {
    let pairs = |edits: &[crd::HeaderEdit]| {
        edits
            .iter()
            .filter_map(|e| {
                Some((
                    http::HeaderName::from_bytes(e.name.as_bytes()).ok()?,
                    HeaderValue::from_str(&e.value).ok()?,
                ))
            })
            .collect()
    };
    HeaderEdits {
        set: pairs(&m.set),
        add: pairs(&m.add),
        remove: m
            .remove
            .iter()
            .filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TrafficPolicySpec {
        serde_yaml::from_str(&format!(
            "targetRefs: [{{group: networking.k8s.io, kind: Ingress, name: web}}]\n{yaml}"
        ))
        .unwrap()
    }

    #[test]
    fn rate_limit_scope_global_counts_the_rate_in_the_store() {
        let mut a = RoutePolicy::default();
        apply(
            &mut a,
            &spec("rateLimit: {requestsPerSecond: 5, burst: 10, connections: 3, scope: Global}"),
            LimitStatuses::default(),
            false,
        );
        assert!(a.rate.is_none());
        assert!(a.connections.is_some(), "connections stay per replica");
        let g = a.global_rate.expect("global");
        assert_eq!((g.rate.requests.get(), g.rate.burst.get()), (5, 10));
        // Local (the default) replaces an annotation's global limit.
        let mut a = RoutePolicy {
            global_rate: Some(Arc::new(GlobalRateLimit {
                rate: g.rate,
                key: LimitKey::ClientIp,
                exempt: Arc::from([]),
            })),
            ..RoutePolicy::default()
        };
        let out = apply(
            &mut a,
            &spec("rateLimit: {requestsPerSecond: 1}"),
            LimitStatuses::default(),
            false,
        );
        assert!(a.global_rate.is_none() && a.rate.is_some());
        assert_eq!(out.overridden, ["limit-*"]);
    }
}
