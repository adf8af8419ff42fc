//! Providers: the only sources of Kubernetes objects.
//!
//! Invariant: a provider produces objects ([`Snapshot`]s from files, or
//! object-by-object changes from the API server) plus diagnostics about
//! what it could not read; it never compiles and never touches the data
//! plane. A source that fails to read something keeps the last good version
//! of it.
//!
//! [`Snapshot`]: crate::config::Snapshot

pub mod files;
pub mod kubernetes;
