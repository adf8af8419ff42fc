//! Reading annotations: the prefixes, one raw value of an Ingress
//! ([`annotation`]), the [`Parser`] every per-concern file extends, the
//! [`Problem`]s it collects, and the settings it takes from flags
//! ([`LimitStatuses`]).
//!
//! Invariants:
//! - Values are read trimmed, and only read: nothing is interpolated or
//!   executed.
//! - Problems keep the order they were found in; each names its annotation
//!   as `metadata.annotations[NAME]`.
//! - Knows no concern: which annotations exist and what they mean is in the
//!   sibling files, which import this one (never the reverse).

use crate::config::snapshot::{AnnotationMap, CompactIngress};
use http::{HeaderValue, StatusCode};

/// ingress-nginx's annotation prefix.
pub const NGINX: &str = "nginx.ingress.kubernetes.io/";
/// tollgate's own prefix.
pub const TOLLGATE: &str = "tollgate.dev/";

/// One problem with an annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `metadata.annotations[NAME]`.
    pub field: String,
    pub reason: String,
    /// Rejects the Ingress (fail closed) rather than warning.
    pub reject: bool,
}

/// Settings of the annotation parser that come from flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStatuses {
    /// Rejection status of `tollgate.dev/limit-*` (default 429).
    pub tollgate: StatusCode,
    /// Rejection status of `nginx.ingress.kubernetes.io/limit-*` (default
    /// 503, ingress-nginx's `limit-req-status-code`).
    pub nginx: StatusCode,
}

impl Default for LimitStatuses {
    fn default() -> Self {
        Self {
            tollgate: StatusCode::TOO_MANY_REQUESTS,
            nginx: StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Reads one Ingress's annotations and collects the problems found, in
/// order. The per-concern files add their methods to it.
pub(super) struct Parser<'a> {
    pub(super) map: Option<&'a AnnotationMap>,
    pub(super) problems: Vec<Problem>,
}

/// `metadata.annotations[NAME]`.
fn field(name: &str) -> String {
    format!("metadata.annotations[{name}]")
}

impl<'a> Parser<'a> {
    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.map?.get(name).map(|v| v.trim())
    }

    pub(super) fn nginx(&self, suffix: &str) -> Option<&'a str> {
        self.get(&format!("{NGINX}{suffix}"))
    }

    pub(super) fn warn(&mut self, name: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            field: field(name),
            reason: reason.into(),
            reject: false,
        });
    }

    pub(super) fn reject(&mut self, name: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            field: field(name),
            reason: reason.into(),
            reject: true,
        });
    }

    pub(super) fn flag(&mut self, suffix: &str) -> Option<bool> {
        let name = format!("{NGINX}{suffix}");
        let value = self.get(&name)?;
        match value {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.warn(&name, format!("`{other}` is not true or false; ignored"));
                None
            }
        }
    }

    pub(super) fn header_value(&mut self, suffix: &str) -> Option<HeaderValue> {
        let name = format!("{NGINX}{suffix}");
        let value = self.get(&name)?;
        match HeaderValue::from_str(value) {
            Ok(v) if !value.is_empty() => Some(v),
            _ => {
                self.warn(
                    &name,
                    format!("`{value}` is not a valid header value; ignored"),
                );
                None
            }
        }
    }
}

/// An annotation's value, trimmed.
pub fn annotation<'a>(ingress: &'a CompactIngress, name: &str) -> Option<&'a str> {
    ingress
        .metadata
        .annotations
        .as_ref()?
        .get(name)
        .map(|v| v.trim())
}
