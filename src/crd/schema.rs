//! The CRD's schema where attributes cannot say it (list keys, CEL rules,
//! the CIDR pattern), and the generated CustomResourceDefinition itself.
//!
//! Invariants:
//! - Every pattern and bound comes from the constants in [`super`], the same
//!   ones [`super::validate`] checks.
//! - [`crd_yaml`] is deterministic: `crds/trafficpolicy.yaml` is its output,
//!   byte for byte (a test checks for drift).

use schemars::{json_schema, Schema, SchemaGenerator};

use super::types::{TargetRef, TrafficPolicy};
use super::{CIDR_PATTERN, DURATION_PATTERN, MAX_DURATION_LEN, MAX_TARGET_REFS, RETRY_ON};

pub(super) fn target_refs_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<TargetRef>();
    json_schema!({
        "type": "array",
        "items": item,
        "minItems": 1,
        "maxItems": MAX_TARGET_REFS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["group", "kind", "name"],
        "description": "The Ingresses (in the policy's namespace) this policy applies to. When several policies target one Ingress, the oldest applies."
    })
}

pub(super) fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "maxLength": MAX_DURATION_LEN,
        "x-kubernetes-validations": [
            {"rule": "duration(self) > duration('0s')", "message": "must be greater than zero"}
        ]
    })
}

pub(super) fn cidr_list_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string", "maxLength": 64, "pattern": CIDR_PATTERN.as_str()}
    })
}

pub(super) fn retry_on_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string", "enum": RETRY_ON},
        "maxItems": RETRY_ON.len(),
        "x-kubernetes-list-type": "set",
        "description": "What is retried: `connect-failure`, `5xx`, `timeout`."
    })
}

pub(super) fn date_time_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "date-time"})
}

/// The command that regenerates the committed CRD.
pub const REGENERATE: &str = "cargo run -- crd > crds/trafficpolicy.yaml";

/// The CustomResourceDefinition, as `tollgate crd` prints it (and
/// `crds/trafficpolicy.yaml` holds it).
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let body = serde_yaml::to_string(&TrafficPolicy::crd())?;
    Ok(format!(
        "# Generated from src/crd.rs by `tollgate crd`; do not edit.\n# Regenerate: {REGENERATE}\n{body}"
    ))
}
