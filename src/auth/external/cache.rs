//! The external-auth answer cache (`auth-cache-key`,
//! `auth-cache-duration`), as ingress-nginx's `proxy_cache` of the auth
//! location: the key is the request's host (ingress-nginx: the server's
//! name, the same for exact hosts and finer for wildcard ones), the
//! route's path (ingress-nginx: the location's auth path), the auth URL
//! and the rendered key template; an answer is kept for the duration its status is listed
//! with (`200 202 401 5m`, ingress-nginx's default).
//!
//! [`CacheSpec`] is the pure spec the compiler builds (no clock, no IO);
//! [`AuthCache`] is the process-wide store the auth client owns, so cached
//! answers survive recompiles as nginx's survive reloads.
//!
//! Invariants:
//! - Reads are lock-free (papaya); nothing is shared between keys except
//!   the map.
//! - Keys are compared whole (never by a hash alone): one user's answer
//!   can never be served to another whose key merely collides.
//! - Memory is bounded: at most [`MAX_ENTRIES`] answers, keys of at most
//!   [`MAX_KEY_BYTES`]; when full, expired answers are dropped first and a
//!   new answer that still does not fit is not cached (the next request
//!   asks the auth service again: never an allow that was not given).
//! - Time is tokio's (`tokio::time::Instant`), so a paused test runtime
//!   controls it.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use crate::auth::template::{Template, Var, Vars};

/// Most answers kept, over every route.
pub const MAX_ENTRIES: usize = 16_384;
/// Longer keys are not cached.
pub const MAX_KEY_BYTES: usize = 4096;
/// ingress-nginx's `auth-cache-duration` when only a key is given.
pub const DEFAULT_DURATIONS: &str = "200 202 401 5m";

/// How answers of one route are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    /// The auth URL as written, in every key (ingress-nginx:
    /// `$server.Hostname + $authPath + key`).
    prefix: Box<str>,
    key: Template,
    /// `proxy_cache_valid` entries in order: statuses (empty: 200, 301,
    /// 302; `None` in the list: `any`) and their time.
    durations: Vec<(Vec<Option<StatusCode>>, Duration)>,
}

/// One cached answer of the auth service: what deciding needs.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The headers deciding reads (`auth-response-headers`, Set-Cookie,
    /// WWW-Authenticate).
    pub headers: HeaderMap,
    expires: Instant,
}

type Map = papaya::HashMap<Box<str>, Arc<Answer>, foldhash::fast::RandomState>;

/// The process-wide answer store.
pub struct AuthCache {
    map: Map,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache")
            .field("len", &self.map.len())
            .finish()
    }
}

impl Default for AuthCache {
    fn default() -> Self {
        Self {
            map: papaya::HashMap::with_hasher(foldhash::fast::RandomState::default()),
        }
    }
}

impl CacheSpec {
    /// From `auth-cache-key` (a template of nginx variables) and
    /// `auth-cache-duration` (comma-separated `proxy_cache_valid` entries:
    /// `[status ...] time`, status a code or `any`, time `30s`, `5m`, `1h`,
    /// `1d` or seconds; default [`DEFAULT_DURATIONS`]). `url` is the
    /// route's auth URL.
    pub fn parse(url: &str, key: &str, durations: Option<&str>) -> Result<CacheSpec, String> {
        let key = Template::parse(key.trim()).map_err(|e| format!("auth-cache-key: {e}"))?;
        let durations = durations
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_DURATIONS);
        let durations = durations
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(parse_valid)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("auth-cache-duration: {e}"))?;
        if durations.is_empty() {
            return Err("auth-cache-duration: no entry".into());
        }
        Ok(CacheSpec {
            prefix: url.into(),
            key,
            durations,
        })
    }

    /// The full key of one request at `location` (the route's path);
    /// `None` when it is too long to cache.
    pub fn key(&self, vars: &dyn Vars, location: &str) -> Option<Box<str>> {
        let mut key = String::with_capacity(self.prefix.len() + 64);
        key.push_str(vars.get(&Var::Host).as_deref().unwrap_or_default());
        key.push('\0');
        key.push_str(location);
        key.push('\0');
        key.push_str(&self.prefix);
        key.push('\0');
        key.push_str(&self.key.render(vars));
        (key.len() <= MAX_KEY_BYTES).then(|| key.into())
    }

    /// How long an answer with `status` is kept (`None`: not cached). The
    /// first entry naming the status wins, then `any`.
    pub fn ttl(&self, status: StatusCode) -> Option<Duration> {
        let named = self.durations.iter().find(|(codes, _)| {
            if codes.is_empty() {
                matches!(status.as_u16(), 200 | 301 | 302)
            } else {
                codes.contains(&Some(status))
            }
        });
        named
            .or_else(|| {
                self.durations
                    .iter()
                    .find(|(codes, _)| codes.contains(&None))
            })
            .map(|(_, ttl)| *ttl)
            .filter(|ttl| !ttl.is_zero())
    }
}

/// One `proxy_cache_valid` entry.
fn parse_valid(entry: &str) -> Result<(Vec<Option<StatusCode>>, Duration), String> {
    let mut words: Vec<&str> = entry.split_whitespace().collect();
    let Some(time) = words.pop() else {
        return Err("empty entry".into());
    };
    let ttl = parse_time(time).ok_or_else(|| format!("`{time}` is not a time"))?;
    let codes = words
        .into_iter()
        .map(|w| match w {
            "any" => Ok(None),
            code => code
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
                .map(Some)
                .ok_or_else(|| format!("`{code}` is not a status code")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((codes, ttl))
}

/// nginx time: a number with an optional unit (`s`, `m`, `h`, `d`).
fn parse_time(s: &str) -> Option<Duration> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(seconds).map(Duration::from_secs)
}

impl AuthCache {
    /// The answer under `key`, if not expired.
    pub fn get(&self, key: &str) -> Option<Arc<Answer>> {
        let map = self.map.pin();
        let answer = map.get(key)?;
        (answer.expires > Instant::now()).then(|| answer.clone())
    }

    /// Keeps an answer for `ttl`.
    pub fn insert(&self, key: Box<str>, status: StatusCode, headers: HeaderMap, ttl: Duration) {
        let now = Instant::now();
        let map = self.map.pin();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, answer| answer.expires > now);
            if map.len() >= MAX_ENTRIES {
                return;
            }
        }
        let answer = Answer {
            status,
            headers,
            expires: now + ttl,
        };
        map.insert(key, Arc::new(answer));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    struct One(&'static str);
    impl Vars for One {
        fn get(&self, _: &Var) -> Option<Cow<'_, str>> {
            Some(self.0.into())
        }
    }

    #[test]
    fn durations_follow_proxy_cache_valid() {
        let spec = CacheSpec::parse("http://a/auth", "$http_authorization", None).unwrap();
        assert_eq!(spec.ttl(StatusCode::OK), Some(Duration::from_secs(300)));
        assert_eq!(
            spec.ttl(StatusCode::UNAUTHORIZED),
            Some(Duration::from_secs(300))
        );
        assert_eq!(spec.ttl(StatusCode::FORBIDDEN), None);
        let spec = CacheSpec::parse("u", "k", Some("200 30s, any 1m")).unwrap();
        assert_eq!(spec.ttl(StatusCode::OK), Some(Duration::from_secs(30)));
        assert_eq!(
            spec.ttl(StatusCode::FORBIDDEN),
            Some(Duration::from_secs(60))
        );
        let spec = CacheSpec::parse("u", "k", Some("10m")).unwrap();
        assert_eq!(spec.ttl(StatusCode::FOUND), Some(Duration::from_secs(600)));
        assert_eq!(spec.ttl(StatusCode::ACCEPTED), None);
        assert!(CacheSpec::parse("u", "k", Some("200 soon")).is_err());
        assert!(CacheSpec::parse("u", "k", Some("999 1m")).is_err());
        assert!(CacheSpec::parse("u", "$nope", None).is_err());
    }

    #[test]
    fn keys_are_whole_and_prefixed() {
        let spec = CacheSpec::parse("u", "$http_x", None).unwrap();
        assert_eq!(spec.key(&One("a"), "/p").as_deref(), Some("a\0/p\0u\0a"));
        let long: &'static str = Box::leak("x".repeat(MAX_KEY_BYTES).into_boxed_str());
        assert_eq!(spec.key(&One(long), "/"), None);
    }

    #[test]
    fn answers_expire_and_memory_is_bounded() {
        let cache = AuthCache::default();
        cache.insert(
            "k".into(),
            StatusCode::OK,
            HeaderMap::new(),
            Duration::from_millis(20),
        );
        assert_eq!(cache.get("k").unwrap().status, StatusCode::OK);
        assert!(cache.get("other").is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("k").is_none());
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(
                i.to_string().into(),
                StatusCode::OK,
                HeaderMap::new(),
                Duration::from_secs(60),
            );
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
