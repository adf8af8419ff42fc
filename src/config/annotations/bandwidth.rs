//! `limit-rate` and `limit-rate-after` (nginx's `limit_rate` and
//! `limit_rate_after`): response bandwidth per request, in kilobytes per
//! second after that many kilobytes.
//!
//! As ingress-nginx documents, they take effect only with
//! `proxy-buffering: "on"` (nginx does not pace unbuffered proxying);
//! without it they are accepted with a warning saying they have no effect.
//! `limit-rate: "0"` is no limit.
//!
//! Invariant: pure; a value that is not a whole number warns and is
//! ignored (no limit), never rejects the Ingress.

use super::parser::{Parser, NGINX};
use crate::table::policy::LimitRate;

impl Parser<'_> {
    pub(super) fn limit_rate(&mut self) -> Option<LimitRate> {
        let rate = self.kilobytes("limit-rate")?;
        let after = self.kilobytes("limit-rate-after").unwrap_or(0);
        if rate == 0 {
            return None;
        }
        if self.nginx("proxy-buffering") != Some("on") {
            self.warn(
                &format!("{NGINX}limit-rate"),
                "no effect without proxy-buffering: \"on\" (as in ingress-nginx, which documents that limit-rate needs it)",
            );
            return None;
        }
        Some(LimitRate {
            bytes_per_sec: rate.saturating_mul(1024),
            after: after.saturating_mul(1024),
        })
    }

    fn kilobytes(&mut self, suffix: &str) -> Option<u64> {
        let name = format!("{NGINX}{suffix}");
        let value = self.get(&name)?;
        match value.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.warn(
                    &name,
                    format!("`{value}` is not a whole number of kilobytes; ignored"),
                );
                None
            }
        }
    }
}
