//! Access lists and limits: `whitelist-source-range`,
//! `denylist-source-range`, `limit-rps`/`limit-rpm`/`limit-connections`
//! (ingress-nginx's and tollgate's) and `limit-whitelist`.
//!
//! Invariants:
//! - An access list that does not parse, or an empty allow list, rejects
//!   the Ingress (fail closed): it never becomes an open policy.
//! - A broken `limit-whitelist` exempts nobody (limits stay on everyone).
//! - `tollgate.dev/limit-*` wins over ingress-nginx's; each keeps its own
//!   rejection status ([`LimitStatuses`]).

use std::num::NonZeroU32;
use std::time::Duration;

use ipnet::IpNet;

use super::parser::{LimitStatuses, Parser, NGINX, TOLLGATE};
use super::values::parse_cidrs;
use crate::table::policy::{AccessList, ConnLimit, RateLimit, RoutePolicy};

impl Parser<'_> {
    /// A comma-separated CIDR list; `None` when absent, `Err` when any
    /// entry does not parse.
    pub(super) fn cidrs(&self, name: &str) -> Option<Result<Vec<IpNet>, String>> {
        let value = self.get(name)?;
        Some(parse_cidrs(value))
    }

    pub(super) fn access(&mut self) -> Option<AccessList> {
        let mut list = AccessList::default();
        let mut any = false;
        for (suffix, allow) in [
            ("whitelist-source-range", true),
            // ingress-nginx's newer name for the same list.
            ("allowlist-source-range", true),
            ("denylist-source-range", false),
        ] {
            let name = format!("{NGINX}{suffix}");
            match self.cidrs(&name) {
                None => {}
                Some(Ok(nets)) if allow && nets.is_empty() => {
                    // An empty allow list would allow everyone: refuse.
                    self.reject(&name, "an empty allow list; set CIDRs or remove it");
                }
                Some(Ok(nets)) => {
                    any = true;
                    if allow {
                        list.allow = nets;
                    } else {
                        list.deny = nets;
                    }
                }
                Some(Err(reason)) => self.reject(&name, reason),
            }
        }
        any.then_some(list)
    }

    pub(super) fn positive(&mut self, name: &str) -> Option<NonZeroU32> {
        let value = self.get(name)?;
        match value.parse::<u32>().ok().and_then(NonZeroU32::new) {
            Some(n) => Some(n),
            None => {
                self.warn(
                    name,
                    format!("`{value}` is not a whole number ≥ 1; no limit applied"),
                );
                None
            }
        }
    }

    pub(super) fn limits(&mut self, out: &mut RoutePolicy, statuses: LimitStatuses) {
        // tollgate.dev: absolute burst, 429 + Retry-After.
        let t_rps = self.positive(&format!("{TOLLGATE}limit-rps"));
        let t_rpm = self.positive(&format!("{TOLLGATE}limit-rpm"));
        let t_burst = self.positive(&format!("{TOLLGATE}limit-burst"));
        let t_conn = self.positive(&format!("{TOLLGATE}limit-connections"));
        // ingress-nginx: burst = rate × multiplier (default 5), 503.
        let n_rps = self.positive(&format!("{NGINX}limit-rps"));
        let n_rpm = self.positive(&format!("{NGINX}limit-rpm"));
        let n_conn = self.positive(&format!("{NGINX}limit-connections"));
        let multiplier = self
            .positive(&format!("{NGINX}limit-burst-multiplier"))
            .map_or(5, NonZeroU32::get);
        if t_rps.is_some() && t_rpm.is_some() {
            self.warn(
                &format!("{TOLLGATE}limit-rpm"),
                "both limit-rps and limit-rpm are set; limit-rps is used",
            );
        }
        let tollgate = t_rps
            .map(|n| (n, Duration::from_secs(1)))
            .or(t_rpm.map(|n| (n, Duration::from_secs(60))))
            .map(|(requests, per)| RateLimit {
                requests,
                per,
                burst: t_burst.unwrap_or(requests),
                status: statuses.tollgate,
            });
        // ingress-nginx applies both limit-rps and limit-rpm when both are
        // set; the per-second one is the one that bites first for bursts,
        // so it is kept (a warning says the other is not).
        if n_rps.is_some() && n_rpm.is_some() {
            self.warn(
                &format!("{NGINX}limit-rpm"),
                "both limit-rps and limit-rpm are set; tollgate applies limit-rps only",
            );
        }
        let nginx = n_rps
            .map(|n| (n, Duration::from_secs(1)))
            .or(n_rpm.map(|n| (n, Duration::from_secs(60))))
            .map(|(requests, per)| RateLimit {
                requests,
                per,
                // nginx `limit_req ... burst=B nodelay` passes B + 1 at once.
                burst: NonZeroU32::new(requests.get().saturating_mul(multiplier).saturating_add(1))
                    .unwrap_or(requests),
                status: statuses.nginx,
            });
        if tollgate.is_some() && nginx.is_some() {
            // Name the nginx annotation that is set (rps wins over rpm).
            let unused = if n_rps.is_some() {
                "limit-rps"
            } else {
                "limit-rpm"
            };
            self.warn(
                &format!("{NGINX}{unused}"),
                "tollgate.dev/limit-* is also set and wins",
            );
        }
        out.rate = tollgate.or(nginx);
        out.connections = t_conn
            .map(|max| ConnLimit {
                max,
                status: statuses.tollgate,
            })
            .or(n_conn.map(|max| ConnLimit {
                max,
                status: statuses.nginx,
            }));
        // `limit-allowlist` is ingress-nginx's newer name; it wins.
        let exempt = ["limit-allowlist", "limit-whitelist"]
            .iter()
            .map(|suffix| format!("{NGINX}{suffix}"))
            .find(|name| self.get(name).is_some())
            .unwrap_or_default();
        match self.cidrs(&exempt) {
            None => {}
            Some(Ok(nets)) => out.limit_exempt = nets,
            // Ignoring a broken exemption list limits everyone: closed.
            Some(Err(reason)) => self.warn(
                &exempt,
                format!("{reason}; no client is exempt from limits"),
            ),
        }
    }
}
