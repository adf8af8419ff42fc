//! How requests reach the backend: `proxy-body-size`, the
//! `proxy-*-timeout`s, `proxy-next-upstream*` (retries), cookie affinity
//! and `upstream-hash-by`.
//!
//! Invariants:
//! - Every value is bounded (timeouts 1 s–24 h, at most 10 tries); a value
//!   out of bounds warns and the default applies.
//! - A hash key uses only the whitelisted variables ([`super::parse_hash_key`]).

use std::time::Duration;

use super::parser::{Parser, NGINX};
use super::values::{parse_hash_key, parse_size, valid_cookie_name};
use crate::table::policy::{Affinity, AffinityMode, HashKey, Retry};

impl Parser<'_> {
    pub(super) fn body_size(&mut self) -> Option<u64> {
        let name = format!("{NGINX}proxy-body-size");
        let value = self.get(&name)?;
        match parse_size(value) {
            Some(0) => None,
            Some(n) => Some(n),
            None => {
                self.warn(
                    &name,
                    format!("`{value}` is not a size like 8m, 512k or 1g; no limit applied"),
                );
                None
            }
        }
    }

    pub(super) fn seconds(&mut self, suffix: &str) -> Option<Duration> {
        let name = format!("{NGINX}{suffix}");
        let value = self.get(&name)?;
        let parsed = value
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .or_else(|| humantime::parse_duration(value).ok())
            .filter(|d| !d.is_zero() && *d <= Duration::from_secs(24 * 3600));
        if parsed.is_none() {
            self.warn(
                &name,
                format!("`{value}` is not a number of seconds (1–86400); the default applies"),
            );
        }
        parsed
    }

    pub(super) fn retry(&mut self) -> Option<Retry> {
        let name = format!("{NGINX}proxy-next-upstream");
        let tries_name = format!("{NGINX}proxy-next-upstream-tries");
        let tokens = self.get(&name);
        let tries = self.get(&tries_name);
        let within_name = format!("{NGINX}proxy-next-upstream-timeout");
        let within = self.get(&within_name);
        if tokens.is_none() && tries.is_none() && within.is_none() {
            return None;
        }
        // ingress-nginx's defaults: "error timeout", 3 tries.
        let mut retry = Retry {
            tries: 3,
            on_error: true,
            on_timeout: true,
            on_status: Vec::new(),
            non_idempotent: false,
            budget: None,
            within: None,
            pacing: None,
        };
        if let Some(tokens) = tokens {
            retry.on_error = false;
            retry.on_timeout = false;
            let mut bad = Vec::new();
            for token in tokens.split([' ', ',']).filter(|t| !t.is_empty()) {
                match token {
                    "off" => retry.tries = 1,
                    "error" => retry.on_error = true,
                    "timeout" => retry.on_timeout = true,
                    "invalid_header" => retry.on_error = true,
                    "non_idempotent" => retry.non_idempotent = true,
                    t => match t.strip_prefix("http_").and_then(|c| c.parse::<u16>().ok()) {
                        Some(c @ (500 | 502 | 503 | 504 | 403 | 404 | 429)) => {
                            retry.on_status.push(c)
                        }
                        _ => bad.push(t),
                    },
                }
            }
            if !bad.is_empty() {
                self.warn(
                    &name,
                    format!("unknown conditions ignored: {}", bad.join(" ")),
                );
            }
        }
        if let Some(value) = tries {
            match value.parse::<u32>() {
                // 0 means unlimited in nginx; we cap at 10 attempts.
                Ok(0) => retry.tries = 10,
                Ok(n) => retry.tries = u8::try_from(n.min(10)).unwrap_or(10),
                Err(_) => self.warn(&tries_name, format!("`{value}` is not a number; using 3")),
            }
        }
        if let Some(value) = within {
            // nginx time: seconds, `0` for no limit.
            match value.trim_end_matches('s').parse::<u64>() {
                Ok(0) => {}
                Ok(n) => retry.within = Some(std::time::Duration::from_secs(n)),
                Err(_) => self.warn(
                    &within_name,
                    format!("`{value}` is not a number of seconds; no limit"),
                ),
            }
        }
        Some(retry)
    }

    pub(super) fn affinity(&mut self, use_regex: bool) -> Option<Affinity> {
        let name = format!("{NGINX}affinity");
        let value = self.get(&name)?;
        if value != "cookie" {
            self.warn(&name, format!("`{value}` is not `cookie`; no affinity"));
            return None;
        }
        let mode_name = format!("{NGINX}affinity-mode");
        let mode = match self.get(&mode_name) {
            None | Some("balanced") => AffinityMode::Balanced,
            Some("persistent") => AffinityMode::Persistent,
            Some(other) => {
                self.warn(
                    &mode_name,
                    format!("`{other}` is not balanced or persistent; using balanced"),
                );
                AffinityMode::Balanced
            }
        };
        let cookie_name = format!("{NGINX}session-cookie-name");
        let cookie = match self.get(&cookie_name) {
            None => "INGRESSCOOKIE".to_string(),
            Some(c) if valid_cookie_name(c) => c.to_string(),
            Some(c) => {
                self.warn(
                    &cookie_name,
                    format!("`{c}` is not a valid cookie name; using INGRESSCOOKIE"),
                );
                "INGRESSCOOKIE".to_string()
            }
        };
        let age_name = format!("{NGINX}session-cookie-max-age");
        let max_age = match self.get(&age_name) {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.warn(
                        &age_name,
                        format!("`{v}` is not a number of seconds; a session cookie is used"),
                    );
                    None
                }
            },
        };
        let path_name = format!("{NGINX}session-cookie-path");
        let path = match self.get(&path_name) {
            None => None,
            Some(p)
                if p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic() && b != b';') =>
            {
                Some(p.into())
            }
            Some(p) => {
                self.warn(
                    &path_name,
                    format!("`{p}` is not a cookie path; using the default"),
                );
                None
            }
        };
        let attrs = self.cookie_attrs(use_regex, path.is_some());
        Some(Affinity {
            cookie: cookie.into(),
            mode,
            max_age,
            path,
            attrs,
        })
    }

    pub(super) fn hash_by(&mut self) -> Option<HashKey> {
        let name = format!("{NGINX}upstream-hash-by");
        let value = self.get(&name)?;
        match parse_hash_key(value) {
            Ok(key) => Some(key),
            Err(reason) => {
                self.warn(
                    &name,
                    format!("{reason}; the default load balancing applies"),
                );
                None
            }
        }
    }
}
