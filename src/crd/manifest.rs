//! The generated CustomResourceDefinition: what `tollgate crd` prints and
//! `crds/trafficpolicy.yaml` holds.
//!
//! Invariants:
//! - [`crd_yaml`] is deterministic: `crds/trafficpolicy.yaml` is its output,
//!   byte for byte (a test checks for drift).
//! - Everything in it comes from [`super::types`] (their doc comments and
//!   `schemars` attributes); nothing is added here.

use super::types::TrafficPolicy;

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
