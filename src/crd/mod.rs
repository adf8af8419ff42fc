//! The `TrafficPolicy` custom resource (`tollgate.dev/v1alpha1`): its Rust
//! types ([`types`]), the OpenAPI schema generated from them ([`schema`]:
//! `tollgate crd`, committed as `crds/trafficpolicy.yaml`), and [`validate`]
//! ([`validation`]), which re-checks in Rust everything that schema checks.
//! The rules all three share are constants in [`rules`]; the string parsers
//! they share are in [`parse`]; the generated CRD is [`manifest`]. This file
//! only declares the modules and re-exports their public items.
//!
//! Invariants:
//! - One source of truth per rule: every pattern is a constant in [`rules`], used
//!   both in the schema and by [`validate`]; every bound, enum and CEL rule
//!   of the schema has its twin in [`validate`] (the tests compare them).
//!   The API server enforces the schema in a cluster; standalone mode has no
//!   API server, so the compiler relies on [`validate`] alone.
//! - The Rust types are lenient on purpose: enums, durations and CIDRs are
//!   plain strings and integers are `i64`, so a value the schema would refuse
//!   (an old CRD installed, a manifest file) still deserializes and is
//!   reported by [`validate`] as a field path and a reason, instead of
//!   failing a whole watch or file.
//! - The parsed accessors (`algorithm()`, `connect()`, `ip_allow()`...) are
//!   total: they never panic, and on a spec that [`validate`] accepted they
//!   return a value for every field that is set.
//! - Pure: no IO, no clock.

pub mod manifest;
pub mod parse;
pub mod rules;
pub mod schema;
pub mod types;
pub mod validation;

pub use manifest::{crd_yaml, REGENERATE};
pub use parse::{parse_cidr, parse_duration};
pub use rules::*;
pub use types::*;
pub use validation::validate;

#[cfg(test)]
use {
    ipnet::IpNet,
    parse::{matches, CIDR_RE, COOKIE_PATH_RE, DURATION_RE, NAME_RE, ORIGIN_RE, TOKEN_RE},
    std::net::IpAddr,
    std::time::Duration,
};

#[cfg(test)]
mod tests;
