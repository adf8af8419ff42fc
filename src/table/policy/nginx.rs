//! Route settings that only ingress-nginx's annotations ask for, as plain
//! values: rewriting what the upstream answered (`proxy-redirect-*`,
//! `proxy-cookie-*`, nginx's `proxy_redirect` / `proxy_cookie_domain` /
//! `proxy_cookie_path`) and response bandwidth (`limit-rate`,
//! `limit-rate-after`, nginx's `limit_rate`).
//!
//! Invariants:
//! - Built by the compiler from validated literals (no nginx variables,
//!   no regular expressions), never changed after.
//! - The rewriting functions are pure and allocate only when a value
//!   actually changes; a header they do not match is left as it was.

use std::sync::Arc;

/// Rewriting of the upstream's `Location`, `Refresh` and `Set-Cookie`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseRewrite {
    /// `proxy-redirect-from` → `proxy-redirect-to`: a `Location` (or the
    /// URL of a `Refresh`) starting with `from` (case-sensitive) gets `to`
    /// in place of that prefix.
    pub redirect: Option<Swap>,
    /// `proxy-cookie-domain`: a cookie whose `Domain` is `from`
    /// (ASCII case-insensitive, a leading dot ignored) gets `to`.
    pub cookie_domain: Option<Swap>,
    /// `proxy-cookie-path`: a cookie whose `Path` starts with `from`
    /// (case-sensitive) gets `to` in place of that prefix.
    pub cookie_path: Option<Swap>,
}

/// A literal `from → to` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub from: Arc<str>,
    pub to: Arc<str>,
}

/// nginx's `limit_rate` / `limit_rate_after`: each response body is sent
/// at most this fast once its first `after` bytes are out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRate {
    /// Bytes per second (never zero: zero means no limit and is not built).
    pub bytes_per_sec: u64,
    /// Bytes sent at full speed first.
    pub after: u64,
}

impl ResponseRewrite {
    /// The rewritten `Location`, or `None` when it does not match.
    pub fn location(&self, value: &str) -> Option<String> {
        let swap = self.redirect.as_ref()?;
        let rest = value.strip_prefix(&*swap.from)?;
        Some(format!("{}{rest}", swap.to))
    }

    /// The rewritten `Refresh` (`5; url=http://...`): its URL as
    /// [`Self::location`].
    pub fn refresh(&self, value: &str) -> Option<String> {
        let at = value.to_ascii_lowercase().find("url=")? + 4;
        let url = self.location(value.get(at..)?)?;
        Some(format!("{}{url}", value.get(..at)?))
    }

    /// The rewritten `Set-Cookie`, or `None` when no attribute matched.
    pub fn set_cookie(&self, value: &str) -> Option<String> {
        if self.cookie_domain.is_none() && self.cookie_path.is_none() {
            return None;
        }
        let mut changed = false;
        let mut out = String::with_capacity(value.len() + 16);
        for (i, part) in value.split(';').enumerate() {
            if i > 0 {
                out.push(';');
            }
            let rewritten = (i > 0).then(|| self.attribute(part)).flatten();
            match rewritten {
                Some(new) => {
                    changed = true;
                    out.push_str(&new);
                }
                None => out.push_str(part),
            }
        }
        changed.then_some(out)
    }

    /// One `; name=value` attribute (with its leading space) rewritten.
    fn attribute(&self, part: &str) -> Option<String> {
        let (name, value) = part.split_once('=')?;
        let lead = &part[..part.len() - part.trim_start().len()];
        let name_trim = name.trim();
        if name_trim.eq_ignore_ascii_case("domain") {
            let swap = self.cookie_domain.as_ref()?;
            let value = value.trim();
            let (dot, bare) = match value.strip_prefix('.') {
                Some(bare) => (".", bare),
                None => ("", value),
            };
            if !bare.eq_ignore_ascii_case(&swap.from) {
                return None;
            }
            return Some(format!("{lead}{name_trim}={dot}{}", swap.to));
        }
        if name_trim.eq_ignore_ascii_case("path") {
            let swap = self.cookie_path.as_ref()?;
            let rest = value.trim().strip_prefix(&*swap.from)?;
            return Some(format!("{lead}{name_trim}={}{rest}", swap.to));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swap(from: &str, to: &str) -> Option<Swap> {
        Some(Swap {
            from: from.into(),
            to: to.into(),
        })
    }

    #[test]
    fn location_and_refresh_swap_their_prefix() {
        let r = ResponseRewrite {
            redirect: swap("http://hello.com/", "http://goodbye.com/"),
            ..Default::default()
        };
        assert_eq!(
            r.location("http://hello.com/a?b").as_deref(),
            Some("http://goodbye.com/a?b")
        );
        assert_eq!(r.location("http://HELLO.com/a"), None);
        assert_eq!(r.location("/relative"), None);
        assert_eq!(
            r.refresh("5; URL=http://hello.com/x").as_deref(),
            Some("5; URL=http://goodbye.com/x")
        );
        assert_eq!(r.refresh("5"), None);
    }

    #[test]
    fn cookies_swap_domain_and_path() {
        let r = ResponseRewrite {
            cookie_domain: swap("localhost", "example.org"),
            cookie_path: swap("/one/", "/"),
            ..Default::default()
        };
        assert_eq!(
            r.set_cookie("a=1; Domain=.LocalHost; Path=/one/two; HttpOnly")
                .as_deref(),
            Some("a=1; Domain=.example.org; Path=/two; HttpOnly")
        );
        assert_eq!(r.set_cookie("a=1; Domain=other; Path=/two"), None);
        // The cookie's own value is never an attribute.
        assert_eq!(r.set_cookie("path=/one/"), None);
    }
}
