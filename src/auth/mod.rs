//! Authentication building blocks for the ingress-nginx auth annotations.
//!
//! This module owns the parts the compiler builds from annotations and the
//! proxy calls per request; it does not decide *which* route uses them.
//!
//! - [`htpasswd`]: `auth-type: basic` with `auth-secret` (`auth-file` or
//!   `auth-map`). Pure: parsing and verifying credentials, no IO.
//! - [`template`]: the URL templates of `auth-url` / `auth-signin` with a
//!   fixed whitelist of nginx-style variables. Pure.
//! - [`external`]: `auth-url` (with `auth-method`, `auth-response-headers`,
//!   `auth-signin`). The module itself is the pure spec the compiler builds
//!   and the table holds; [`external::client`] sends the sub-requests over
//!   one shared HTTP client and is used by the proxy only.
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

pub use external::client::{AuthClient, AuthClientError, Decision};
pub use external::{ExternalAuth, ExternalAuthError};
pub use htpasswd::{CachedCheck, Htpasswd, HtpasswdError};
pub use template::{RequestVars, Template, Var, Vars};
