//! The validating admission webhook: `POST /validate` over HTTPS, taking an
//! `admission.k8s.io/v1` AdmissionReview for an Ingress, TrafficPolicy,
//! HTTPRoute, GRPCRoute or Gateway, and answering whether tollgate would
//! serve it.
//!
//! - `review`: the AdmissionReview types and the decision (pure: the
//!   current objects plus the new one, through the same parser as manifest
//!   files and the same compiler as `run`).
//! - `server`: the HTTPS listener and the certificate it presents (a
//!   `kubernetes.io/tls` Secret from the compiled objects, re-read when the
//!   Secret changes).
//!
//! Invariants:
//! - Safe by construction: the decision runs only the pure compiler
//!   (`config::compile`: no IO, no processes, no templates evaluated); no
//!   part of a reviewed object is ever executed or written anywhere.
//! - Denies only what the compiler would reject about the reviewed object
//!   itself; warnings become the review's `warnings`. DELETE, CONNECT,
//!   other kinds and objects of other classes are allowed.
//! - Runs beside the admin endpoints, never on a data-plane worker; a
//!   review's compile runs on the blocking pool, at most
//!   [`server::CONCURRENT_REVIEWS`] at a time.

pub mod review;
pub mod server;

pub use review::{decide, AdmissionRequest, AdmissionResponse, AdmissionReview};
pub use server::{serve, AdmissionCertificate, AdmissionError};
