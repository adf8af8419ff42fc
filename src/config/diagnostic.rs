//! Diagnostics: what the compiler (or a provider) refused or warns about.
//!
//! Invariant: every diagnostic names the object (kind and `namespace/name`),
//! the field, and a reason a user can act on; `origin` says where the object
//! came from (`file:line` in standalone mode).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::snapshot::ObjectKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something was not served (an object, a rule, a path).
    Rejected,
    /// Served, but not as written (a default was used, requests get 503...).
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub origin: Option<Arc<str>>,
    pub field: String,
    pub reason: String,
}

impl Diagnostic {
    pub fn new(
        severity: Severity,
        kind: &'static str,
        key: &ObjectKey,
        origin: Option<Arc<str>>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            kind,
            namespace: key.namespace.to_string(),
            name: key.name.to_string(),
            origin,
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn is_rejection(&self) -> bool {
        self.severity == Severity::Rejected
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Rejected => "rejected",
            Severity::Warning => "warning",
        };
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        let key = ObjectKey::new(self.namespace.clone(), self.name.clone());
        write!(
            f,
            "{severity}: {} {key}: {}: {}",
            self.kind, self.field, self.reason
        )
    }
}
