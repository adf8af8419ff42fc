//! What this binary is: the crate version and the git revision it was
//! built from (embedded by `build.rs`; "unknown" when built without git).
//! Read by `tollgate_build_info` and `tollgate version`.

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision (12 hex digits), or "unknown".
pub const REVISION: &str = env!("TOLLGATE_REVISION");
