//! The README's quick start, run as a user would: `examples/quickstart/run.sh`
//! with this build's binary. It must start the echo backends and tollgate,
//! and its curl lines must show host and path routing.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn quickstart_script_routes_by_host_and_path() {
    let http = common::free_port();
    let admin = common::free_port();
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/quickstart/run.sh"
        ))
        .arg("--once")
        .env("TOLLGATE_BIN", env!("CARGO_BIN_EXE_tollgate"))
        .env("HTTP_PORT", http.to_string())
        .env("ADMIN_PORT", admin.to_string())
        .output()
        .expect("run the quick start script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "quick start failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "quick start took {:?}",
        started.elapsed()
    );

    // Each `$ curl` block: the command, then the status line and echo fields.
    let blocks: Vec<&str> = stdout.split("$ curl").skip(1).collect();
    assert_eq!(blocks.len(), 6, "six curl examples expected:\n{stdout}");
    let expect = [
        ("demo.local", "/", "200", Some("\"service\": \"web\"")),
        ("demo.local", "/", "200", Some("\"service\": \"web\"")),
        (
            "demo.local",
            "/api/users",
            "200",
            Some("\"service\": \"api\""),
        ),
        ("demo.local", "/apix", "200", Some("\"service\": \"web\"")),
        ("eu.demo.local", "/", "200", Some("\"service\": \"api\"")),
        ("other.example", "/", "404", None),
    ];
    let mut web_pods = Vec::new();
    for (block, (host, path, status, service)) in blocks.iter().zip(expect) {
        let first = block.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("Host: {host}")) && first.ends_with(path),
            "unexpected command: {first}"
        );
        assert!(
            block.contains(&format!("HTTP/1.1 {status}")),
            "{host}{path}: expected {status}:\n{block}"
        );
        if let Some(service) = service {
            assert!(
                block.contains(service),
                "{host}{path}: expected {service}:\n{block}"
            );
        }
        if host == "demo.local" && path == "/" {
            web_pods.extend(
                block
                    .lines()
                    .filter(|l| l.contains("\"pod\""))
                    .map(str::trim)
                    .map(String::from),
            );
        }
    }
    // Round robin: the two requests to `web` went to its two replicas.
    assert_eq!(web_pods.len(), 2);
    assert_ne!(
        web_pods[0], web_pods[1],
        "round robin should alternate replicas: {web_pods:?}"
    );
}
