//! Authentication building blocks for the ingress-nginx auth annotations.
//!
//! This module owns the parts the compiler builds from annotations and the
//! proxy calls per request; it does not decide *which* route uses them.
//!
//! - [`htpasswd`]: `auth-type: basic` with `auth-secret` (`auth-file` or
//!   `auth-map`). Pure: parsing and verifying credentials, no IO.
//! - [`template`]: the URL templates of `auth-url` / `auth-signin` with a
//!   fixed whitelist of nginx-style variables. Pure.
//! - [`external`]: `auth-url` sub-requests (with `auth-method`,
//!   `auth-response-headers`, `auth-signin`) over one shared HTTP client.
//!
//! Invariants shared by all three:
//! - Every failure to authenticate denies: malformed credentials, an
//!   unsupported hash, an unreachable or misbehaving auth service never let
//!   a request through ("fail closed").
//! - Nothing here panics on request bytes; everything a request controls is
//!   parsed with fallible code.
//! - Secrets (password hashes, passwords) never appear in errors or logs.

pub mod external;
pub mod htpasswd;
pub mod template;

pub use external::{AuthClient, AuthClientError, Decision, ExternalAuth, ExternalAuthError};
pub use htpasswd::{CachedCheck, Htpasswd, HtpasswdError};
pub use template::{RequestVars, Template, Var, Vars};
