//! Answers given without the backend: `permanent-redirect` /
//! `temporal-redirect` (with their codes) and `app-root`.
//!
//! A target that is a path is made absolute with the request's scheme and
//! Host, as nginx's `absolute_redirect` does, unless `relative-redirects`
//! is `"true"` (ingress-nginx's `absolute_redirect off`).
//!
//! Invariant: a redirect target is an absolute URL or path that is a valid
//! header value, else the annotation is ignored with a warning.

use http::{HeaderValue, StatusCode};

use super::parser::{Parser, NGINX};
use crate::table::policy::Redirect;

impl Parser<'_> {
    pub(super) fn redirect(&mut self) -> Option<Redirect> {
        let relative = self.flag("relative-redirects").unwrap_or(false);
        for (suffix, code_suffix, default) in [
            // ingress-nginx: a temporal redirect wins over a permanent one.
            ("temporal-redirect", "temporal-redirect-code", 302u16),
            ("permanent-redirect", "permanent-redirect-code", 301u16),
        ] {
            let name = format!("{NGINX}{suffix}");
            let Some(url) = self.get(&name) else { continue };
            let code_name = format!("{NGINX}{code_suffix}");
            let status = match self.get(&code_name) {
                None => default,
                Some(v) => match v.parse::<u16>() {
                    Ok(c) if (300..=308).contains(&c) => c,
                    _ => {
                        self.warn(
                            &code_name,
                            format!("`{v}` is not a redirect status (300–308); using {default}"),
                        );
                        default
                    }
                },
            };
            let Ok(location) = HeaderValue::from_str(url) else {
                self.warn(&name, format!("`{url}` is not a valid Location; ignored"));
                continue;
            };
            if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/'))
            {
                self.warn(
                    &name,
                    format!("`{url}` is not an absolute URL or path; ignored"),
                );
                continue;
            }
            return Some(Redirect {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
                location,
                absolute: url.starts_with('/') && !relative,
            });
        }
        None
    }

    pub(super) fn app_root(&mut self) -> Option<HeaderValue> {
        let name = format!("{NGINX}app-root");
        let value = self.get(&name)?;
        if !value.starts_with('/') || value.contains("://") {
            self.warn(
                &name,
                format!("`{value}` must be a path starting with /; ignored"),
            );
            return None;
        }
        match HeaderValue::from_str(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.warn(&name, format!("`{value}` is not a valid path; ignored"));
                None
            }
        }
    }
}
