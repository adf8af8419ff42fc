//! What this binary is: its version (from Cargo.toml) and the git revision
//! it was built from (set by `build.rs`; "unknown" outside a git checkout).
//!
//! Invariant: compile-time constants only; nothing here reads the
//! environment at run time.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision (`git rev-parse --short=12 HEAD`) or "unknown".
pub const REVISION: &str = env!("TOLLGATE_GIT_REVISION");
