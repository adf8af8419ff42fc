//! The command-line flags of global rate limits (flattened into the
//! shared selection flags, so `run` and `check` both read them: `check`
//! reports global limits that have no store).
//!
//! Invariant: the password never appears in `Debug` output or logs.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::store::{FailMode, StoreConfig};

#[derive(Clone, Args)]
pub struct GlobalRateLimitArgs {
    /// Store of global rate limits (shared by every replica):
    /// `redis://[user:password@]HOST:PORT[/DB]`, or `rediss://` for TLS.
    /// Without it, global limits are counted per replica (and reported).
    #[arg(
        long,
        env = "TOLLGATE_GLOBAL_RATE_LIMIT_STORE",
        help_heading = "Global rate limits"
    )]
    pub global_rate_limit_store: Option<String>,
    /// Password for the store when its URL has none (e.g. from a Secret).
    #[arg(
        long,
        env = "TOLLGATE_GLOBAL_RATE_LIMIT_PASSWORD",
        hide_env_values = true,
        help_heading = "Global rate limits"
    )]
    pub global_rate_limit_password: Option<String>,
    /// Longest a request waits for a global limit's decision; without an
    /// answer in time the limit fails open or closed.
    #[arg(long, env = "TOLLGATE_GLOBAL_RATE_LIMIT_TIMEOUT", default_value = "50ms", value_parser = budget, help_heading = "Global rate limits")]
    pub global_rate_limit_timeout: Duration,
    /// When the store cannot decide: `open` (the local per-replica limit
    /// applies) or `closed` (503).
    #[arg(
        long,
        env = "TOLLGATE_GLOBAL_RATE_LIMIT_FAIL",
        value_enum,
        default_value = "open",
        help_heading = "Global rate limits"
    )]
    pub global_rate_limit_fail: Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fail {
    Open,
    Closed,
}

fn budget(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 50ms: {e}"))?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

impl GlobalRateLimitArgs {
    /// The store's configuration, when a store is set.
    pub fn store_config(&self) -> Option<StoreConfig> {
        let url = self.global_rate_limit_store.clone()?;
        Some(StoreConfig {
            url,
            password: self.global_rate_limit_password.clone(),
            timeout: self.global_rate_limit_timeout,
            fail: match self.global_rate_limit_fail {
                Fail::Open => FailMode::Open,
                Fail::Closed => FailMode::Closed,
            },
        })
    }
}

impl std::fmt::Debug for GlobalRateLimitArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password too: only its scheme is shown.
        let store = self
            .global_rate_limit_store
            .as_deref()
            .map(|u| u.split("://").next().unwrap_or(""));
        f.debug_struct("GlobalRateLimitArgs")
            .field("store", &store)
            .field(
                "password",
                &self.global_rate_limit_password.as_ref().map(|_| "…"),
            )
            .field("timeout", &self.global_rate_limit_timeout)
            .field("fail", &self.global_rate_limit_fail)
            .finish()
    }
}
