//! Moving off ingress-nginx (issue 13, items 2 to 6), end to end through a
//! real `tollgate` binary and real sockets: typed header rules from
//! ingress-nginx's `custom-headers`, `proxy-set-headers`, `add-headers`
//! and the snippet subset (`headers`), ACME HTTP-01 on hosts that force
//! HTTPS (`acme`), the ingress-nginx ConfigMap (`configmap`), `tollgate
//! check` for migration (`check`) and TLS passthrough (`passthrough`).
//! Cases ported from ingress-nginx's e2e suite name their source file.

mod common;

#[path = "migration/acme.rs"]
mod acme;
