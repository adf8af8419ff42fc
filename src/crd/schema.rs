//! The schemas of the CRD's fields where attributes cannot say it (list
//! keys, CEL rules, the CIDR pattern); [`super::types`] names them in
//! `schema_with`.
//!
//! Invariants:
//! - Every pattern and bound comes from the constants in [`super::rules`],
//!   the same ones [`super::validate`] checks.
//! - Names no resource type: the types point here, never the reverse.

use schemars::{json_schema, Schema, SchemaGenerator};

use super::rules::RETRY_ON;
use super::rules::{
    CIDR_PATTERN, DURATION_PATTERN, HEADER_VALUE_PATTERN, MAX_DURATION_LEN, MAX_HEADER_EDITS,
    MAX_HEADER_VALUE_LEN, REFUSED_HEADERS, TOKEN_PATTERN,
};

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

/// The CEL list of [`REFUSED_HEADERS`]: `['connection', ...]`.
fn refused_list() -> String {
    let quoted: Vec<String> = REFUSED_HEADERS.iter().map(|h| format!("'{h}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The message of the refused-header rules.
pub(super) const REFUSED_MESSAGE: &str =
    "hop-by-hop, Host and Content-Length headers cannot be edited";

/// `headers.*.set` and `add`: name/value pairs keyed by name.
pub(super) fn header_edits_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": MAX_HEADER_EDITS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name", "value"],
            "properties": {
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 256,
                    "pattern": TOKEN_PATTERN,
                    "description": "The header's name (case-insensitive)."
                },
                "value": {
                    "type": "string",
                    "maxLength": MAX_HEADER_VALUE_LEN,
                    "pattern": HEADER_VALUE_PATTERN
                }
            },
            "x-kubernetes-validations": [
                {"rule": format!("!(self.name.lowerAscii() in {})", refused_list()),
                 "message": REFUSED_MESSAGE}
            ]
        }
    })
}

/// `headers.*.remove`: header names.
pub(super) fn header_names_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": MAX_HEADER_EDITS,
        "x-kubernetes-list-type": "set",
        "items": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": TOKEN_PATTERN},
        "x-kubernetes-validations": [
            {"rule": format!("self.all(n, !(n.lowerAscii() in {}))", refused_list()),
             "message": REFUSED_MESSAGE}
        ],
        "description": "Header names removed."
    })
}

pub(super) fn date_time_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "date-time"})
}
