//! Global rate limits from annotations: `tollgate.dev/limit-scope` (moves
//! the `tollgate.dev/limit-*` rate into the shared store) and
//! ingress-nginx's `global-rate-limit`, `global-rate-limit-window`,
//! `global-rate-limit-key` and `global-rate-limit-ignored-cidrs`.
//!
//! Invariants:
//! - ingress-nginx's semantics: `global-rate-limit` requests per
//!   `global-rate-limit-window` (whole seconds), counted per Ingress and
//!   key (default `$remote_addr`; a key that renders empty counts by the
//!   client address), clients in the ignored CIDRs never counted, 429.
//!   As GCRA: that many requests per window on average, all of them at
//!   once from a fresh key (burst = limit).
//! - Nothing is silently dropped: a limit or window that does not parse
//!   rejects the Ingress (ingress-nginx denied the location); half a pair,
//!   a zero, an unusable key or unusable CIDRs are warnings that say what
//!   applies instead.
//! - `tollgate.dev/limit-scope: global` wins over `global-rate-limit`
//!   (one global limit per Ingress); a warning names the one not used.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use super::parser::{Parser, NGINX, TOLLGATE};
use super::values::parse_cidrs;
use crate::table::global_limit::LimitKey;
use crate::table::policy::GlobalRateLimit;
use crate::table::policy::{RateLimit, RoutePolicy};

impl Parser<'_> {
    /// Sets `out.global_rate` (after [`Parser::limits`] set `out.rate`).
    pub(super) fn global_limits(&mut self, out: &mut RoutePolicy) {
        let scope_name = format!("{TOLLGATE}limit-scope");
        let tollgate_rate = self.get(&format!("{TOLLGATE}limit-rps")).is_some()
            || self.get(&format!("{TOLLGATE}limit-rpm")).is_some();
        let global_scope = match self.get(&scope_name) {
            None | Some("local") => false,
            Some("global") => true,
            Some(other) => {
                self.warn(
                    &scope_name,
                    format!("`{other}` is not `local` or `global`; the limit stays local"),
                );
                false
            }
        };
        let nginx = self.nginx_global();
        if global_scope {
            match out.rate.filter(|_| tollgate_rate) {
                Some(rate) => {
                    out.rate = None;
                    out.global_rate = Some(Arc::new(GlobalRateLimit {
                        rate,
                        key: LimitKey::ClientIp,
                        exempt: Arc::from([]),
                    }));
                    if nginx.is_some() {
                        self.warn(
                            &format!("{NGINX}global-rate-limit"),
                            "tollgate.dev/limit-scope: global is also set and wins",
                        );
                    }
                    return;
                }
                None => self.warn(
                    &scope_name,
                    "needs tollgate.dev/limit-rps or tollgate.dev/limit-rpm; nothing to count globally",
                ),
            }
        }
        out.global_rate = nginx.map(Arc::new);
    }

    /// ingress-nginx's global rate limit, if both of its required
    /// annotations are set and valid.
    fn nginx_global(&mut self) -> Option<GlobalRateLimit> {
        let limit_name = format!("{NGINX}global-rate-limit");
        let window_name = format!("{NGINX}global-rate-limit-window");
        let (limit, window) = (self.get(&limit_name), self.get(&window_name));
        let limit = match limit.map(str::parse::<u32>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                self.reject(&limit_name, "not a whole number of requests");
                return None;
            }
        };
        let window = match window.map(humantime::parse_duration) {
            None => None,
            Some(Ok(d)) => Some(Duration::from_secs(d.as_secs())),
            Some(Err(e)) => {
                self.reject(&window_name, format!("not a duration like 1m or 30s: {e}"));
                return None;
            }
        };
        let (limit, window) = match (limit, window) {
            (None, None) => return None,
            (Some(_), None) | (None, Some(_)) => {
                let name = if limit.is_some() {
                    &limit_name
                } else {
                    &window_name
                };
                self.warn(
                    name,
                    "global-rate-limit and global-rate-limit-window are both required; no global limit applied",
                );
                return None;
            }
            (Some(limit), Some(window)) => (limit, window),
        };
        let Some(requests) = std::num::NonZeroU32::new(limit) else {
            return None; // 0: disabled, as in ingress-nginx.
        };
        if window.is_zero() {
            self.warn(
                &window_name,
                "shorter than one second (ingress-nginx counts whole seconds); no global limit applied",
            );
            return None;
        }
        let key_name = format!("{NGINX}global-rate-limit-key");
        let key = match self.get(&key_name).map(LimitKey::parse) {
            None => LimitKey::ClientIp,
            Some(Ok(key)) => key,
            Some(Err(reason)) => {
                self.warn(&key_name, format!("{reason}; counting by $remote_addr"));
                LimitKey::ClientIp
            }
        };
        let cidrs_name = format!("{NGINX}global-rate-limit-ignored-cidrs");
        let exempt = match self.get(&cidrs_name).map(parse_cidrs) {
            None => Vec::new(),
            Some(Ok(nets)) => nets,
            // Ignoring a broken list counts everyone: closed.
            Some(Err(reason)) => {
                self.warn(&cidrs_name, format!("{reason}; no client is exempt"));
                Vec::new()
            }
        };
        Some(GlobalRateLimit {
            rate: RateLimit {
                requests,
                per: window,
                burst: requests,
                status: StatusCode::TOO_MANY_REQUESTS,
            },
            key,
            exempt: exempt.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::snapshot::AnnotationMap;

    use super::super::{parse, LimitStatuses, Problem};
    use super::*;

    fn parse_map(pairs: &[(&str, &str)]) -> (RoutePolicy, Vec<Problem>) {
        let map: AnnotationMap = pairs.iter().copied().collect();
        let (a, problems) = parse(Some(&map), LimitStatuses::default());
        (a.policy, problems)
    }

    #[test]
    fn limit_scope_global_moves_the_tollgate_rate_to_the_store() {
        let (p, problems) = parse_map(&[
            ("tollgate.dev/limit-rps", "5"),
            ("tollgate.dev/limit-burst", "10"),
            ("tollgate.dev/limit-scope", "global"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(p.rate.is_none());
        let g = p.global_rate.expect("global");
        assert_eq!((g.rate.requests.get(), g.rate.burst.get()), (5, 10));
        assert_eq!(g.rate.per, Duration::from_secs(1));
        assert_eq!(g.key, LimitKey::ClientIp);
        // Local by default; a scope without a tollgate.dev rate is reported.
        let (p, _) = parse_map(&[("tollgate.dev/limit-rps", "5")]);
        assert!(p.rate.is_some() && p.global_rate.is_none());
        let (p, problems) = parse_map(&[("tollgate.dev/limit-scope", "global")]);
        assert!(
            p.global_rate.is_none() && problems.len() == 1,
            "{problems:?}"
        );
        let (_, problems) = parse_map(&[
            ("tollgate.dev/limit-rps", "5"),
            ("tollgate.dev/limit-scope", "fleet"),
        ]);
        assert!(problems[0].reason.contains("stays local"), "{problems:?}");
    }

    #[test]
    fn ingress_nginx_global_rate_limit_has_its_documented_semantics() {
        let n = |s: &str| format!("{NGINX}{s}");
        let (p, problems) = parse_map(&[
            (&n("global-rate-limit"), "100"),
            (&n("global-rate-limit-window"), "1m"),
            (
                &n("global-rate-limit-key"),
                "${remote_addr}-${http_x_api_client}",
            ),
            (
                &n("global-rate-limit-ignored-cidrs"),
                "10.0.0.0/8, 192.168.1.1",
            ),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let g = p.global_rate.expect("global");
        assert_eq!((g.rate.requests.get(), g.rate.burst.get()), (100, 100));
        assert_eq!(g.rate.per, Duration::from_secs(60));
        assert_eq!(g.rate.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(g.key, LimitKey::Template(_)));
        assert_eq!(g.exempt.len(), 2);
        // Both are required; 0 disables; a bad value rejects.
        let (p, problems) = parse_map(&[(&n("global-rate-limit"), "100")]);
        assert!(p.global_rate.is_none() && !problems[0].reject);
        let (p, problems) = parse_map(&[
            (&n("global-rate-limit"), "0"),
            (&n("global-rate-limit-window"), "1m"),
        ]);
        assert!(p.global_rate.is_none() && problems.is_empty());
        let (_, problems) = parse_map(&[
            (&n("global-rate-limit"), "100"),
            (&n("global-rate-limit-window"), "soon"),
        ]);
        assert!(problems[0].reject, "{problems:?}");
        // An unusable key counts by address; unusable CIDRs exempt nobody.
        let (p, problems) = parse_map(&[
            (&n("global-rate-limit"), "1"),
            (&n("global-rate-limit-window"), "1s"),
            (&n("global-rate-limit-key"), "$request_uri"),
            (&n("global-rate-limit-ignored-cidrs"), "not-a-cidr"),
        ]);
        let g = p.global_rate.expect("global");
        assert_eq!((g.key.clone(), g.exempt.len()), (LimitKey::ClientIp, 0));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
