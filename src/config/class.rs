//! IngressClass selection: is an Ingress ours?
//!
//! Rules (checked in this order, as ingress-nginx does):
//! 1. the deprecated annotation `kubernetes.io/ingress.class`, when present,
//!    must equal `--ingress-class`;
//! 2. `spec.ingressClassName` naming an IngressClass whose `spec.controller`
//!    equals `--controller-name`; or naming `--ingress-class` when no
//!    IngressClass of that name exists;
//! 3. no class at all: ours when one of our IngressClasses is annotated
//!    `ingressclass.kubernetes.io/is-default-class: "true"`.

use k8s_openapi::api::networking::v1::IngressClass;

use crate::config::snapshot::CompactIngress;

use super::options::CompileOptions;
use super::snapshot::{Entry, Map};

pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

fn controller_of(class: &IngressClass) -> Option<&str> {
    class.spec.as_ref()?.controller.as_deref()
}

fn is_default(class: &IngressClass) -> bool {
    class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether `ingress` belongs to this controller.
pub fn is_ours(
    ingress: &CompactIngress,
    classes: &Map<String, Entry<IngressClass>>,
    opts: &CompileOptions,
) -> bool {
    if let Some(annotated) = ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLASS_ANNOTATION))
    {
        return *annotated == opts.ingress_class;
    }
    match ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
    {
        Some(name) => match classes.get(name) {
            Some(class) => controller_of(&class.object) == Some(opts.controller_name.as_str()),
            None => name == opts.ingress_class,
        },
        None => classes.values().any(|c| {
            controller_of(&c.object) == Some(opts.controller_name.as_str()) && is_default(&c.object)
        }),
    }
}
