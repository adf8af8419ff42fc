//! The AdmissionReview (`admission.k8s.io/v1`) types and the decision.
//!
//! Invariants:
//! - [`decide`] is pure: the reviewed object is parsed exactly as a
//!   manifest file would be (`provider::files::parse_manifests`), added to
//!   a copy of the current objects, and compiled by `config::compile`.
//!   Nothing from the request is executed.
//! - Only diagnostics about the reviewed object (kind, namespace, name)
//!   decide: rejected → denied with their text; warnings → allowed with
//!   `warnings`. Problems of other objects never deny someone else's edit.
//! - Never panics on any request body: a body that is not an
//!   AdmissionReview is an error the server answers with 400.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{self, Diagnostic, Severity};
use crate::inspect::Inspect;
use crate::provider::files::{parse_manifests, FileError};
use crate::{crd, gateway_api};

/// The API version of the reviews taken and answered.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The name a CREATE with only `generateName` is compiled under.
const GENERATED_NAME: &str = "generated-name";

/// An AdmissionReview as the API server sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    pub api_version: String,
    pub kind: String,
    pub request: Option<AdmissionRequest>,
}

/// `request` of an AdmissionReview (the fields tollgate reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    #[serde(default)]
    pub object: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub kind: String,
}

/// `response` of an AdmissionReview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The `metav1.Status` of a denial: `kubectl` prints its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

/// The answer: an AdmissionReview carrying only `response`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewAnswer {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

impl ReviewAnswer {
    pub fn new(response: AdmissionResponse) -> Self {
        Self {
            api_version: API_VERSION,
            kind: "AdmissionReview",
            response,
        }
    }
}

impl AdmissionResponse {
    fn allow(uid: &str, warnings: Vec<String>) -> Self {
        Self {
            uid: uid.to_string(),
            allowed: true,
            status: None,
            warnings,
        }
    }

    fn deny(uid: &str, message: String, warnings: Vec<String>) -> Self {
        Self {
            uid: uid.to_string(),
            allowed: false,
            status: Some(Status {
                code: 422,
                reason: "Invalid",
                message,
            }),
            warnings,
        }
    }
}

/// Why a body is not a review this webhook can answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not an AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    #[error("apiVersion `{0}` is not {API_VERSION}")]
    Version(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Parses a request body into the request it carries.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let review: AdmissionReview = serde_json::from_slice(body)?;
    if review.api_version != API_VERSION {
        return Err(ReviewError::Version(review.api_version));
    }
    review.request.ok_or(ReviewError::NoRequest)
}

/// Whether the webhook reviews objects of this group and kind.
pub fn reviewed(group: &str, kind: &str) -> bool {
    let tollgate_group = crd::API_VERSION.split('/').next().unwrap_or_default();
    matches!(
        (group, kind),
        ("networking.k8s.io", "Ingress")
            | (gateway_api::GROUP, gateway_api::GATEWAY_KIND)
            | (gateway_api::GROUP, gateway_api::HTTP_ROUTE_KIND)
            | (gateway_api::GROUP, gateway_api::GRPC_ROUTE_KIND)
    ) || (group == tollgate_group && kind == crd::KIND)
}

/// The decision about one request against the current objects.
pub fn decide(inspect: &Inspect, request: &AdmissionRequest) -> AdmissionResponse {
    let uid = request.uid.as_str();
    if matches!(request.operation.as_str(), "DELETE" | "CONNECT")
        || !reviewed(&request.kind.group, &request.kind.kind)
    {
        return AdmissionResponse::allow(uid, Vec::new());
    }
    let (Some(mut object), Some(options)) = (request.object.clone(), &inspect.options) else {
        // Nothing compiled yet (or no object): nothing to compare with.
        return AdmissionResponse::allow(uid, Vec::new());
    };
    fill_metadata(&mut object, request);
    let text = object.to_string();
    let parsed = match parse_manifests("admission.json", &text) {
        Ok(parsed) => parsed,
        Err(e) => return AdmissionResponse::deny(uid, parse_message(&e), Vec::new()),
    };
    let Some((_, object)) = parsed.into_iter().next() else {
        return AdmissionResponse::allow(uid, Vec::new());
    };
    let (kind, key) = (object.kind(), object.key());
    let mut snapshot = inspect.snapshot.clone();
    snapshot.insert("admission request".into(), object);
    let mut options = options.clone();
    options.now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    let compiled = config::compile(&snapshot, &options, &inspect.last_good);
    let about: Vec<&Diagnostic> = compiled
        .diagnostics
        .iter()
        .filter(|d| d.kind == kind && *d.namespace == *key.namespace && *d.name == *key.name)
        .collect();
    let text = |d: &&Diagnostic| format!("{}: {}", d.field, d.reason);
    let warnings: Vec<String> = about
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(text)
        .collect();
    let rejected: Vec<String> = about
        .iter()
        .filter(|d| d.severity == Severity::Rejected)
        .map(text)
        .collect();
    if rejected.is_empty() {
        AdmissionResponse::allow(uid, warnings)
    } else {
        let message = format!(
            "tollgate would not serve {kind} {key}: {}",
            rejected.join("; ")
        );
        AdmissionResponse::deny(uid, message, warnings)
    }
}

/// The namespace of the request where the object has none (a CREATE), a
/// stand-in name for `generateName`, and a creation time of now where
/// there is none (a new object is the newest: it loses conflicts).
fn fill_metadata(object: &mut Value, request: &AdmissionRequest) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if meta.get("creationTimestamp").is_none_or(Value::is_null) {
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        meta.insert("creationTimestamp".into(), Value::String(now));
    }
    if let Some(ns) = request.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        meta.entry("namespace")
            .or_insert_with(|| Value::String(ns.to_string()));
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        let name = request
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                let prefix = meta
                    .get("generateName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                format!("{prefix}{GENERATED_NAME}")
            });
        meta.insert("name".into(), Value::String(name));
    }
}

/// A parse error without the file position (there is no file).
fn parse_message(e: &FileError) -> String {
    match e {
        FileError::Schema {
            object,
            field,
            message,
            ..
        } => format!("{object}: field `{field}`: {message}"),
        FileError::Document { message, .. } | FileError::Syntax { message, .. } => message.clone(),
        FileError::Read { .. } => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_are_not_reviews_are_errors() {
        assert!(matches!(parse(b"{"), Err(ReviewError::Json(_))));
        assert!(matches!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#),
            Err(ReviewError::Version(_))
        ));
        assert!(matches!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(ReviewError::NoRequest)
        ));
    }

    #[test]
    fn only_the_served_kinds_are_reviewed() {
        assert!(reviewed("networking.k8s.io", "Ingress"));
        assert!(reviewed("tollgate.dev", "TrafficPolicy"));
        assert!(reviewed("gateway.networking.k8s.io", "HTTPRoute"));
        assert!(reviewed("gateway.networking.k8s.io", "GRPCRoute"));
        assert!(reviewed("gateway.networking.k8s.io", "Gateway"));
        assert!(!reviewed("", "Secret"));
        assert!(!reviewed("networking.k8s.io", "IngressClass"));
    }

    #[test]
    fn a_create_gets_the_request_namespace_and_a_generated_name() {
        let request = AdmissionRequest {
            uid: "u".into(),
            kind: GroupVersionKind {
                group: "networking.k8s.io".into(),
                version: "v1".into(),
                kind: "Ingress".into(),
            },
            namespace: Some("apps".into()),
            name: None,
            operation: "CREATE".into(),
            object: None,
        };
        let mut object = serde_json::json!({"metadata": {"generateName": "web-"}});
        fill_metadata(&mut object, &request);
        assert_eq!(object["metadata"]["namespace"], "apps");
        assert_eq!(object["metadata"]["name"], "web-generated-name");
        assert!(object["metadata"]["creationTimestamp"].is_string());
    }
}
