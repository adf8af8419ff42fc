//! ACME HTTP-01 (`examples/cert-manager`): `/.well-known/acme-challenge/`
//! is never redirected to HTTPS, whatever forces the redirect.

use crate::common::*;

/// The example's manifests, with its backends moved to this test's echo
/// ports and, as on a renewal, the host's certificate already issued.
async fn example(echo: &Echo) -> Tollgate {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let app = read("cert-manager/app.yaml")
        .replace("9401", &echo.port("web").to_string())
        .replace("9402", &echo.port("solver").to_string());
    let secret = read("tls/secret.yaml")
        .replace("name: tls-example", "name: web-tls")
        .replace("namespace: tls-demo", "namespace: acme-demo");
    Tollgate::builder()
        .file("ingress.yaml", &read("cert-manager/ingress.yaml"))
        .file("solver.yaml", &read("cert-manager/solver.yaml"))
        .file("app.yaml", &app)
        .file("secret.yaml", &secret)
        .args(&["--https-redirect-port", "8443"])
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_challenge_passes_over_http_on_a_host_that_forces_https() {
    let echo = Echo::services(&["web", "solver"]).await;
    let tg = example(&echo).await;
    let host = "tls.example.com";
    let token = "/.well-known/acme-challenge/Q2hhbGxlbmdlVG9rZW4";
    let r = tg.get(host, token).await;
    assert_eq!(r.status, 200, "solver path: {}", r.summary());
    assert_eq!(r.service().as_deref(), Some("solver"), "{}", r.summary());
    // A challenge path without a solver Ingress is served by the app's
    // route over HTTP too (ingress-nginx's `no-tls-redirect-locations`).
    let r = tg.get(host, "/.well-known/acme-challenge/other").await;
    assert_eq!(r.service().as_deref(), Some("web"), "{}", r.summary());
    // Everything else still goes to HTTPS.
    for path in ["/", "/.well-known/other", "/.well-known/acme-challenge"] {
        let r = tg.get(host, path).await;
        assert_eq!(r.status, 308, "{path}: {}", r.summary());
        assert_eq!(
            r.header("location").as_deref(),
            Some(format!("https://{host}:8443{path}").as_str())
        );
    }
    // The example checks clean but for the Secret cert-manager will issue;
    // with --assume-external-refs it checks clean.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cert-manager");
    let (_, out, err) = check(&dir, &[]).await;
    let diagnostics: Vec<&str> = out.lines().filter(|l| l.contains(".yaml:")).collect();
    assert!(
        diagnostics.len() == 1 && diagnostics[0].contains("acme-demo/web-tls not found"),
        "{out}{err}"
    );
    let (code, out, err) = check(&dir, &["--assume-external-refs"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Secret acme-demo/web-tls") && out.contains("no diagnostics"),
        "{out}"
    );
}
