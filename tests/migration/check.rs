//! `tollgate check` for a migration: unmodified ingress-nginx manifests
//! (`examples/migration/before.yaml`, an Ingress-only repository) read
//! from stdin with `--ingress-class nginx --controller-name
//! k8s.io/ingress-nginx`, `--assume-external-refs`, `--output json`, and
//! the annotations summed up by state.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// `tollgate check ARGS` with `stdin` on its standard input.
fn check_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tollgate check");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const NGINX: [&str; 4] = [
    "--ingress-class",
    "nginx",
    "--controller-name",
    "k8s.io/ingress-nginx",
];

fn before() -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/migration/before.yaml");
    let mut text = std::fs::read_to_string(path).unwrap();
    // An IngressClass as ingress-nginx's chart installs it, a snippet it
    // cannot read and an annotation it ignores.
    text.push_str(
        "---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\n\
         spec: {controller: k8s.io/ingress-nginx}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: legacy\n  namespace: shop\n  annotations:\n\
         \x20   nginx.ingress.kubernetes.io/proxy-buffering: \"on\"\n\
         \x20   nginx.ingress.kubernetes.io/frobnicate: \"1\"\n\
         \x20   nginx.ingress.kubernetes.io/configuration-snippet: |\n\
         \x20     more_set_headers \"X-Frame-Options: DENY\";\n\
         spec:\n  ingressClassName: nginx\n  rules:\n  - host: legacy.example.com\n    http:\n      paths:\n\
         \x20     - {path: /, pathType: Prefix, backend: {service: {name: legacy, port: {number: 80}}}}\n",
    );
    text
}

#[test]
fn ingress_nginx_manifests_from_stdin_with_assumed_refs() {
    let mut args = vec!["--manifests", "-"];
    args.extend(NGINX);
    args.extend(["--assume-external-refs", "--output", "json"]);
    let (code, out, err) = check_stdin(&args, &before());
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON report");
    let routes: Vec<String> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}{} {}", r["host"], r["path"], r["service"]))
        .collect();
    assert_eq!(routes.len(), 3, "{routes:?}");
    assert!(
        routes
            .iter()
            .any(|r| r.contains("shop.example.com") && r.contains("shop/storefront:http")),
        "{routes:?}"
    );
    let assumed: Vec<&str> = report["assumed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        assumed.contains(&"Service shop/storefront") && assumed.contains(&"Secret shop/shop-tls"),
        "{assumed:?}"
    );
    let states = &report["annotations"];
    assert_eq!(states["supported"]["load-balance"], 2, "{states}");
    assert_eq!(states["supported"]["ssl-redirect"], 1, "{states}");
    assert_eq!(states["supported"]["configuration-snippet"], 1, "{states}");
    assert_eq!(states["no-op"]["proxy-buffering"], 1, "{states}");
    assert_eq!(states["unknown"]["frobnicate"], 1, "{states}");
    assert_eq!(report["rejected"], false);
}

#[test]
fn without_assumed_refs_the_missing_objects_are_named() {
    let mut args = vec!["--manifests", "-"];
    args.extend(NGINX);
    let (code, out, err) = check_stdin(&args, &before());
    assert_ne!(code, 0, "the TLS Secret is missing: {out}{err}");
    assert!(out.contains("shop/shop-tls"), "{out}");
    assert!(
        out.contains("annotations (nginx.ingress.kubernetes.io/): 5 supported, 1 no-op, 0 refused, 1 unknown"),
        "{out}"
    );
    // Another class: nothing of ingress-nginx's is served.
    let (_, out, _) = check_stdin(&["--manifests", "-"], &before());
    assert!(out.contains("(no routes)"), "{out}");
    // A refused annotation is counted as such (`auth-tls-*`, the example
    // here before client certificates were supported, is now honoured).
    let refused = before().replace("frobnicate", "enable-modsecurity");
    let mut args = vec!["--manifests", "-", "--assume-external-refs"];
    args.extend(NGINX);
    let (code, out, _) = check_stdin(&args, &refused);
    assert_ne!(code, 0);
    assert!(out.contains("refused: enable-modsecurity (1)"), "{out}");
}

/// `ssl-passthrough` without `--enable-ssl-passthrough`: refused with a
/// diagnostic, never silently terminated (tests/tls_passthrough.rs: with it).
#[test]
fn ssl_passthrough_is_refused_not_terminated() {
    let text = before().replace(
        "nginx.ingress.kubernetes.io/proxy-buffering: \"on\"",
        "nginx.ingress.kubernetes.io/ssl-passthrough: \"true\"",
    );
    let mut args = vec!["--manifests", "-", "--assume-external-refs"];
    args.extend(NGINX);
    let (code, out, _) = check_stdin(&args, &text);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("refused: ssl-passthrough (1)"), "{out}");
    assert!(
        out.contains("annotations[nginx.ingress.kubernetes.io/ssl-passthrough]")
            && out.contains("shop/legacy"),
        "{out}"
    );
}
