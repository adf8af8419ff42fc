//! The schemas of the CRD's fields where attributes cannot say it (list
//! keys, CEL rules, the CIDR pattern); [`super::types`] names them in
//! `schema_with`.
//!
//! Invariants:
//! - Every pattern and bound comes from the constants in [`super::rules`],
//!   the same ones [`super::validate`] checks.
//! - Names no resource type: the types point here, never the reverse.

use schemars::{json_schema, Schema, SchemaGenerator};

use super::rules::{CIDR_PATTERN, DURATION_PATTERN, MAX_DURATION_LEN, RETRY_ON};

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
