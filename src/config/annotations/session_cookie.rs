//! ingress-nginx's `session-cookie-*` attributes of the affinity cookie
//! beyond its name, path and max-age (those are in `upstream`):
//! `session-cookie-expires`, `-domain`, `-secure`, `-samesite`,
//! `-conditional-samesite-none`, and the use-regex warning.
//!
//! Invariant: every value that reaches the cookie is checked here to be a
//! valid cookie attribute (no `;`, no control characters); a bad value is
//! a warning and the attribute is left out.

use std::sync::Arc;

use super::parser::{Parser, NGINX};
use crate::table::policy::CookieAttrs;

impl Parser<'_> {
    /// The cookie attributes; `use_regex` without `session-cookie-path`
    /// gets ingress-nginx's warning (the cookie's Path is then the path
    /// regex as written).
    pub(super) fn cookie_attrs(&mut self, use_regex: bool, has_path: bool) -> CookieAttrs {
        if use_regex && !has_path {
            self.warn(
                &format!("{NGINX}session-cookie-path"),
                "session-cookie-path should be set when use-regex is true",
            );
        }
        let expires_name = format!("{NGINX}session-cookie-expires");
        let expires = match self.get(&expires_name) {
            None | Some("") => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.warn(
                        &expires_name,
                        format!("`{v}` is not a number of seconds; no Expires"),
                    );
                    None
                }
            },
        };
        let domain_name = format!("{NGINX}session-cookie-domain");
        let domain = match self.get(&domain_name) {
            None | Some("") => None,
            Some(d)
                if d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                Some(Arc::from(d))
            }
            Some(d) => {
                self.warn(&domain_name, format!("`{d}` is not a domain; no Domain"));
                None
            }
        };
        let samesite_name = format!("{NGINX}session-cookie-samesite");
        let samesite = match self.get(&samesite_name) {
            None | Some("") => None,
            Some(v) if v.eq_ignore_ascii_case("none") => Some("None"),
            Some(v) if v.eq_ignore_ascii_case("lax") => Some("Lax"),
            Some(v) if v.eq_ignore_ascii_case("strict") => Some("Strict"),
            Some(v) => {
                self.warn(
                    &samesite_name,
                    format!("`{v}` is not None, Lax or Strict; no SameSite"),
                );
                None
            }
        };
        CookieAttrs {
            nginx: true,
            expires,
            domain,
            secure: self.flag("session-cookie-secure").unwrap_or(false),
            samesite,
            conditional_samesite_none: self
                .flag("session-cookie-conditional-samesite-none")
                .unwrap_or(false),
        }
    }
}
