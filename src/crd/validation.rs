//! [`validate`]: everything the CRD schema (patterns, bounds, enums and CEL
//! rules) would refuse, as field paths and reasons.
//!
//! Invariants:
//! - Each check has its twin in the schema and uses the same constant
//!   (the tests compare the two).
//! - Fails closed: a pattern that does not compile matches nothing.
//! - Never panics on any input; pure.

use super::parse::{
    matches, parse_cidr, parse_duration, Pattern, COOKIE_PATH_RE, HEADER_VALUE_RE, NAME_RE,
    ORIGIN_RE, TOKEN_RE,
};
use super::rules::{
    AFFINITY_MODES, ALGORITHMS, MAX_HEADER_EDITS, MAX_HEADER_VALUE_LEN, MAX_RATE,
    MAX_RETRY_ATTEMPTS, MAX_TARGET_REFS, RATE_LIMIT_SCOPES, REFUSED_HEADERS, RETRY_ON,
    TARGET_GROUPS, TARGET_KINDS,
};
use super::schema::REFUSED_MESSAGE;
use super::types::{HeaderModifier, TrafficPolicySpec};

/// Collects (field path, reason) pairs.
struct Problems(Vec<(String, String)>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push((field.into(), reason.into()));
    }

    fn range(&mut self, field: &str, value: Option<i64>, min: i64, max: i64) {
        if let Some(v) = value {
            if v < min || v > max {
                self.push(field, format!("{v} is not in {min}..{max}"));
            }
        }
    }

    fn pattern(&mut self, field: String, value: &str, re: &Pattern, max_len: usize, what: &str) {
        if value.len() > max_len {
            self.push(field, format!("longer than {max_len} characters"));
        } else if !matches(re, value) {
            self.push(field, format!("`{value}` is not {what}"));
        }
    }

    fn one_of(&mut self, field: String, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.push(
                field,
                format!("`{value}` is not one of {}", allowed.join(", ")),
            );
        }
    }

    /// A header name `headers` may edit.
    fn header_name(&mut self, field: String, name: &str) {
        if name.is_empty() {
            self.push(field, "required");
        } else if name.len() <= 256
            && matches(&TOKEN_RE, name)
            && REFUSED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
        {
            self.push(field, format!("`{name}`: {REFUSED_MESSAGE}"));
        } else {
            self.pattern(field, name, &TOKEN_RE, 256, "a header name");
        }
    }

    /// One side (`request` or `response`) of `headers`.
    fn header_modifier(&mut self, side: &str, m: &HeaderModifier) {
        for (list, edits) in [("set", &m.set), ("add", &m.add)] {
            let at = format!("spec.headers.{side}.{list}");
            if edits.len() > MAX_HEADER_EDITS {
                self.push(at.clone(), format!("at most {MAX_HEADER_EDITS} headers"));
            }
            for (i, e) in edits.iter().enumerate() {
                self.header_name(format!("{at}[{i}].name"), &e.name);
                self.pattern(
                    format!("{at}[{i}].value"),
                    &e.value,
                    &HEADER_VALUE_RE,
                    MAX_HEADER_VALUE_LEN,
                    "a header value (visible ASCII, spaces and tabs)",
                );
                if edits[..i].iter().any(|other| other.name == e.name) {
                    self.push(
                        format!("{at}[{i}]"),
                        format!("duplicate header `{}`", e.name),
                    );
                }
            }
        }
        let at = format!("spec.headers.{side}.remove");
        if m.remove.len() > MAX_HEADER_EDITS {
            self.push(at.clone(), format!("at most {MAX_HEADER_EDITS} headers"));
        }
        for (i, name) in m.remove.iter().enumerate() {
            self.header_name(format!("{at}[{i}]"), name);
            if m.remove[..i].contains(name) {
                self.push(format!("{at}[{i}]"), format!("duplicate header `{name}`"));
            }
        }
    }

    fn duration(&mut self, field: &str, value: Option<&String>) {
        if let Some(v) = value {
            match parse_duration(v) {
                Ok(d) if d.is_zero() => self.push(field, "must be greater than zero"),
                Ok(_) => {}
                Err(reason) => self.push(field, reason),
            }
        }
    }
}

/// Every problem the CRD schema (patterns, bounds, enums and CEL rules)
/// would refuse, as (field path like `spec.ipAllow[2]`, reason). Empty
/// means valid.
pub fn validate(spec: &TrafficPolicySpec) -> Vec<(String, String)> {
    let mut p = Problems(Vec::new());
    if spec.target_refs.is_empty() {
        p.push("spec.targetRefs", "at least one target is required");
    } else if spec.target_refs.len() > MAX_TARGET_REFS {
        p.push(
            "spec.targetRefs",
            format!("at most {MAX_TARGET_REFS} targets"),
        );
    }
    for (i, t) in spec.target_refs.iter().enumerate() {
        p.one_of(
            format!("spec.targetRefs[{i}].group"),
            &t.group,
            &TARGET_GROUPS,
        );
        p.one_of(format!("spec.targetRefs[{i}].kind"), &t.kind, &TARGET_KINDS);
        if TARGET_GROUPS.contains(&t.group.as_str())
            && TARGET_KINDS.contains(&t.kind.as_str())
            && t.target_kind().is_none()
        {
            p.push(
                format!("spec.targetRefs[{i}].group"),
                format!("kind {} is not in group {}", t.kind, t.group),
            );
        }
        if t.name.is_empty() {
            p.push(format!("spec.targetRefs[{i}].name"), "required");
        } else {
            p.pattern(
                format!("spec.targetRefs[{i}].name"),
                &t.name,
                &NAME_RE,
                253,
                "a valid object name (lowercase DNS-1123 subdomain)",
            );
        }
        if spec.target_refs[..i].contains(t) {
            p.push(
                format!("spec.targetRefs[{i}]"),
                format!("duplicate target {} `{}`", t.kind, t.name),
            );
        }
    }
    if let Some(r) = &spec.rate_limit {
        for (name, v) in [
            ("requestsPerSecond", r.requests_per_second),
            ("requestsPerMinute", r.requests_per_minute),
            ("burst", r.burst),
            ("connections", r.connections),
        ] {
            p.range(&format!("spec.rateLimit.{name}"), v, 1, MAX_RATE);
        }
        if let Some(scope) = &r.scope {
            p.one_of("spec.rateLimit.scope".into(), scope, &RATE_LIMIT_SCOPES);
            if r.is_global() && r.requests_per_second.is_none() && r.requests_per_minute.is_none() {
                p.push(
                    "spec.rateLimit.scope",
                    "scope Global needs requestsPerSecond or requestsPerMinute",
                );
            }
        }
        if r.requests_per_second.is_some() && r.requests_per_minute.is_some() {
            p.push(
                "spec.rateLimit",
                "set requestsPerSecond or requestsPerMinute, not both",
            );
        }
        if r.burst.is_some() && r.requests_per_second.is_none() && r.requests_per_minute.is_none() {
            p.push(
                "spec.rateLimit.burst",
                "burst needs requestsPerSecond or requestsPerMinute",
            );
        }
        if r.requests_per_second.is_none()
            && r.requests_per_minute.is_none()
            && r.connections.is_none()
        {
            p.push(
                "spec.rateLimit",
                "set requestsPerSecond, requestsPerMinute or connections",
            );
        }
    }
    if let Some(lb) = &spec.load_balancer {
        p.one_of(
            "spec.loadBalancer.algorithm".into(),
            &lb.algorithm,
            &ALGORITHMS,
        );
        let consistent = lb.algorithm == "consistent-hash";
        match &lb.hash_by {
            None if consistent => p.push(
                "spec.loadBalancer.hashBy",
                "required when algorithm is consistent-hash",
            ),
            None => {}
            Some(_) if !consistent => p.push(
                "spec.loadBalancer.hashBy",
                "applies only to algorithm consistent-hash",
            ),
            Some(h) => {
                let set = usize::from(h.header.is_some())
                    + usize::from(h.cookie.is_some())
                    + usize::from(h.client_ip == Some(true));
                if set != 1 {
                    p.push(
                        "spec.loadBalancer.hashBy",
                        "set exactly one of header, cookie or clientIP: true",
                    );
                }
            }
        }
        if let Some(h) = &lb.hash_by {
            if let Some(v) = &h.header {
                p.pattern(
                    "spec.loadBalancer.hashBy.header".into(),
                    v,
                    &TOKEN_RE,
                    256,
                    "a header name",
                );
            }
            if let Some(v) = &h.cookie {
                p.pattern(
                    "spec.loadBalancer.hashBy.cookie".into(),
                    v,
                    &TOKEN_RE,
                    256,
                    "a cookie name",
                );
            }
        }
    }
    if let Some(s) = &spec.session_affinity {
        p.pattern(
            "spec.sessionAffinity.cookieName".into(),
            &s.cookie_name,
            &TOKEN_RE,
            256,
            "a cookie name",
        );
        p.duration("spec.sessionAffinity.maxAge", s.max_age.as_ref());
        if let Some(path) = &s.path {
            p.pattern(
                "spec.sessionAffinity.path".into(),
                path,
                &COOKIE_PATH_RE,
                1024,
                "an absolute cookie path (printable, no spaces or `;`)",
            );
        }
        p.one_of("spec.sessionAffinity.mode".into(), &s.mode, &AFFINITY_MODES);
    }
    if let Some(t) = &spec.timeouts {
        p.duration("spec.timeouts.connect", t.connect.as_ref());
        p.duration("spec.timeouts.responseHeaders", t.response_headers.as_ref());
        p.duration("spec.timeouts.idle", t.idle.as_ref());
    }
    if let Some(r) = &spec.retries {
        p.range("spec.retries.attempts", r.attempts, 0, MAX_RETRY_ATTEMPTS);
        p.range("spec.retries.budget", r.budget, 0, 100);
        for (i, on) in r.retry_on.iter().enumerate() {
            p.one_of(format!("spec.retries.retryOn[{i}]"), on, &RETRY_ON);
            if r.retry_on[..i].contains(on) {
                p.push(
                    format!("spec.retries.retryOn[{i}]"),
                    format!("duplicate `{on}`"),
                );
            }
        }
    }
    if let Some(c) = &spec.cors {
        for (i, o) in c.allow_origins.iter().enumerate() {
            p.pattern(
                format!("spec.cors.allowOrigins[{i}]"),
                o,
                &ORIGIN_RE,
                usize::MAX,
                "`*` or an origin like https://example.com[:port]",
            );
        }
        for (name, list, what) in [
            ("allowMethods", &c.allow_methods, "an HTTP method"),
            ("allowHeaders", &c.allow_headers, "a header name"),
            ("exposeHeaders", &c.expose_headers, "a header name"),
        ] {
            for (i, v) in list.iter().enumerate() {
                p.pattern(
                    format!("spec.cors.{name}[{i}]"),
                    v,
                    &TOKEN_RE,
                    usize::MAX,
                    what,
                );
            }
        }
        p.range("spec.cors.maxAge", c.max_age, 0, i64::MAX);
    }
    if let Some(h) = &spec.headers {
        for (side, m) in [("request", &h.request), ("response", &h.response)] {
            if let Some(m) = m {
                p.header_modifier(side, m);
            }
        }
    }
    for (name, list) in [("ipAllow", &spec.ip_allow), ("ipDeny", &spec.ip_deny)] {
        for (i, v) in list.iter().enumerate() {
            let field = format!("spec.{name}[{i}]");
            if v.len() > 64 {
                p.push(field, "longer than 64 characters");
            } else if let Err(reason) = parse_cidr(v) {
                p.push(field, reason);
            }
        }
    }
    p.range(
        "spec.maxRequestBodyBytes",
        spec.max_request_body_bytes,
        0,
        i64::MAX,
    );
    p.0
}
