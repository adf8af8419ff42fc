//! Packaging: the Helm chart, the examples, the Dockerfile and the code
//! layout script of optimised builds (`link/hot-text.ld`).
//!
//! The chart and example checks are Python scripts in `tests/packaging/`,
//! because the tools that judge them are Python packages: helm-python-sdk
//! (Helm's own Go code, to render and lint the chart offline) and
//! kubernetes-validate (the Kubernetes schemas), pinned in
//! `tests/packaging/requirements.txt`. When they are not installed, the
//! first test installs them (pip, from PyPI) into the target directory, so
//! `cargo test` alone works on a fresh machine; `.ci/run` installs them up
//! front. Each script gets this build's binary, so the chart
//! is checked against the code it deploys (RBAC rules, flags, defaults).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
/// Where missing Python packages are installed (`target/tmp/...`).
const PYDEPS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/packaging-pydeps");
/// Upper bound for installing the Python packages (a ~80 MB download).
const PIP_TIMEOUT: Duration = Duration::from_secs(600);
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Upper bound for one script (they take a few seconds).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    PathBuf::from(ROOT)
}

/// The `PYTHONPATH` under which the packaging tools import: empty when
/// they are installed already, else [`PYDEPS`] after installing them there
/// (once per test process; concurrent callers wait for the first).
fn python_path() -> &'static str {
    static PATH: OnceLock<Result<String, String>> = OnceLock::new();
    let result = PATH.get_or_init(|| {
        let probe = "import helm_python, kubernetes_validate, yaml, jsonschema";
        let importable = |pythonpath: &str| {
            Command::new("python3")
                .args(["-c", probe])
                .env("PYTHONPATH", pythonpath)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if importable("") {
            return Ok(String::new());
        }
        if importable(PYDEPS) {
            return Ok(PYDEPS.to_string());
        }
        let requirements = root().join("tests/packaging/requirements.txt");
        let mut child = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--target", PYDEPS, "-r"])
            .arg(&requirements)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => break,
                Ok(Some(status)) => {
                    return Err(format!(
                        "pip install -r {} failed ({status})",
                        requirements.display()
                    ))
                }
                Ok(None) if started.elapsed() > PIP_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("pip install did not finish within {PIP_TIMEOUT:?}"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => return Err(format!("waiting for pip: {e}")),
            }
        }
        if importable(PYDEPS) {
            Ok(PYDEPS.to_string())
        } else {
            Err(format!(
                "installed into {PYDEPS}, but `{probe}` still fails"
            ))
        }
    });
    match result {
        Ok(path) => path,
        Err(e) => panic!(
            "the packaging tests need the Python packages of tests/packaging/requirements.txt: {e}"
        ),
    }
}

/// Runs `python3 tests/packaging/<script> <binary>` and fails the test,
/// with the script's output, unless it exits 0.
fn python(script: &str) {
    let path = root().join("tests/packaging").join(script);
    let pythonpath = python_path();
    let mut child = match Command::new("python3")
        .arg(&path)
        .arg(BIN)
        .env("PYTHONPATH", pythonpath)
        .current_dir(root())
        // No __pycache__ left in tests/packaging.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run python3 ({e}): the packaging tests need Python 3.10+ and the packages \
             of tests/packaging/requirements.txt"
        ),
    };
    // Drain the pipes on threads so a chatty script cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python3") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) if status.success() => print!("{stdout}"),
        Some(status) => panic!(
            "tests/packaging/{script} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ),
        None => panic!(
            "tests/packaging/{script} did not finish within {SCRIPT_TIMEOUT:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ),
    }
}

/// Helm chart: rendered and linted with Helm (default values and a matrix
/// of others), every object valid for Kubernetes 1.33, RBAC equal to
/// `tollgate rbac`, container arguments accepted by the binary, IngressClass
/// controller and defaults equal to the binary's, security settings,
/// probes, the schema rejecting bad values.
#[test]
fn helm_chart_renders_lints_and_matches_the_binary() {
    python("chart.py");
}

/// The chart for every cluster and for operations (issue 18): admission
/// webhook (Helm-generated and cert-manager certificates, scoped to our
/// class), DaemonSet, hostNetwork/hostPort, dual-stack Services, node
/// ports, internal load balancer, extra volumes/containers/objects,
/// envFrom, security contexts (OpenShift restricted-v2), ServiceMonitor
/// relabelings, PrometheusRule and Grafana dashboard, each rendered by Helm
/// and validated; the dashboard's and alerts' metric names are ones the
/// binary exposes (the README metric table, checked against /metrics by tests/observability.rs).
#[test]
fn helm_chart_values_for_every_cluster_render_and_validate() {
    python("chart_ops.py");
}

/// Examples: every manifest valid for Kubernetes (a TrafficPolicy for its
/// CRD's schema), standalone examples compile cleanly and their READMEs
/// start the backends their EndpointSlices name, the migration example's
/// classes, and the TLS (HTTPS), rate-limit (429/503), canary (by header
/// and weight) and TrafficPolicy (hashing, CORS, timeout, allow list)
/// examples served to curl as their READMEs show.
#[test]
fn examples_are_valid_and_the_tls_example_serves_https() {
    python("examples.py");
}

/// The TrafficPolicy CRD: a valid Kubernetes object; example policies
/// against its schema (jsonschema); the binary's validation refusing the
/// same bad values at the same fields.
#[test]
fn trafficpolicy_crd_is_valid_and_agrees_with_the_binary() {
    python("crd.py");
}

/// `crds/trafficpolicy.yaml` is exactly what `tollgate crd` prints: the
/// CRD is generated from the Rust types, never edited by hand.
#[test]
fn committed_crd_matches_the_generated_one() {
    let output = Command::new(BIN)
        .arg("crd")
        .stdin(Stdio::null())
        .output()
        .expect("run tollgate crd");
    assert!(
        output.status.success(),
        "tollgate crd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).expect("UTF-8 CRD");
    let path = root().join("crds/trafficpolicy.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(generated.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} differs from `tollgate crd` (first at line {line}); the CRD is generated from \
             src/crd.rs. Regenerate it with:\n\n    {}\n",
            path.display(),
            tollgate::crd::REGENERATE
        );
    }
}

// ---------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------

/// Dockerfile instructions: comments dropped, continuation lines joined;
/// (INSTRUCTION uppercased, arguments).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        if let Some(cont) = trimmed.strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (inst, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((inst.to_ascii_uppercase(), args.trim().to_string()));
        current.clear();
    }
    out
}

/// `ARG NAME=default` values declared before the first FROM.
fn global_args(insts: &[(String, String)]) -> Vec<(String, String)> {
    insts
        .iter()
        .take_while(|(i, _)| i != "FROM")
        .filter(|(i, _)| i == "ARG")
        .filter_map(|(_, a)| a.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

fn expand(s: &str, args: &[(String, String)]) -> String {
    let mut s = s.to_string();
    for (k, v) in args {
        s = s
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    s
}

fn version_tuple(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The highest `rust-version` among the locked dependencies of a Linux
/// build, and whose it is.
fn locked_dependencies_rust_version() -> (String, String) {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version=1",
            "--locked",
            "--filter-platform=x86_64-unknown-linux-gnu",
        ])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| Some((p["rust_version"].as_str()?, p["name"].as_str()?)))
        .max_by_key(|(v, _)| version_tuple(v))
        .map(|(v, n)| (v.to_string(), n.to_string()))
        .unwrap_or_else(|| ("1.0".into(), "(none)".into()))
}

#[test]
fn dockerfile_builds_a_minimal_nonroot_image() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("read Dockerfile");
    let insts = instructions(&text);
    let args = global_args(&insts);
    let froms: Vec<usize> = insts
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| i == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert!(froms.len() >= 2, "multi-stage build expected: {froms:?}");

    // Build stage: a release build from the committed lock file, with a
    // toolchain no older than the crate's rust-version.
    let build_stage = &insts[froms[0]..froms[froms.len() - 1]];
    assert!(
        build_stage
            .iter()
            .any(|(i, a)| i == "RUN" && a.contains("cargo build --release --locked")),
        "the build stage must run `cargo build --release --locked`"
    );
    let builder = expand(&insts[froms[0]].1, &args);
    let rust_image = builder.split_whitespace().next().unwrap_or_default();
    let tag = rust_image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("the build stage should use the official rust image: {builder}"));
    let toolchain = tag.split('-').next().unwrap_or_default();
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|l| l.split('"').nth(1))
        .expect("Cargo.toml rust-version");
    assert!(
        version_tuple(toolchain) >= version_tuple(rust_version),
        "build image {rust_image} is older than Cargo.toml's rust-version {rust_version}"
    );
    // `cargo build --locked` refuses a dependency whose rust-version is
    // newer than the toolchain: the image must be at least the newest one.
    let (newest, package) = locked_dependencies_rust_version();
    assert!(
        version_tuple(toolchain) >= version_tuple(&newest),
        "build image {rust_image} is older than {package}'s rust-version {newest} \
         (Cargo.lock): the image build would fail"
    );

    // Final stage: distroless (or scratch), numeric non-root user, the
    // binary as entrypoint, `run` by default.
    let final_stage = &insts[froms[froms.len() - 1]..];
    let base = expand(&final_stage[0].1, &args);
    let base = base.split_whitespace().next().unwrap_or_default();
    assert!(
        base.starts_with("gcr.io/distroless/") || base == "scratch",
        "final stage must be distroless or scratch: {base}"
    );
    let last = |name: &str| {
        final_stage
            .iter()
            .rev()
            .find(|(i, _)| i == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no {name} in the final stage"))
    };
    let user = last("USER");
    let ids: Vec<&str> = user.split(':').collect();
    assert!(
        ids.iter()
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())),
        "USER must be numeric (uid[:gid]) so runAsNonRoot can verify it: {user}"
    );
    assert_ne!(ids[0], "0", "USER must not be root");
    assert_eq!(last("ENTRYPOINT"), r#"["tollgate"]"#);
    assert_eq!(last("CMD"), r#"["run"]"#);
    assert!(
        final_stage.iter().any(|(i, a)| i == "COPY"
            && a.contains("--from=")
            && a.ends_with("/usr/local/bin/tollgate")),
        "the final stage copies the binary to /usr/local/bin/tollgate"
    );
    let exposed: Vec<&str> = final_stage
        .iter()
        .filter(|(i, _)| i == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace())
        .collect();
    for port in ["8080", "8443", "9180"] {
        assert!(
            exposed.contains(&port),
            "EXPOSE {port} expected: {exposed:?}"
        );
    }

    // .dockerignore keeps target/ (gigabytes) out of the build context but
    // not what the build needs.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect("read .dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let excluded = |path: &str| {
        patterns.iter().any(|p| {
            let p = p.trim_start_matches('/').trim_end_matches('/');
            p == path || (p.starts_with("*.") && path.ends_with(&p[1..]) && !path.contains('/'))
        })
    };
    assert!(excluded("target"), ".dockerignore must exclude target/");
    assert!(excluded(".git"), ".dockerignore should exclude .git");
    for needed in ["Cargo.toml", "Cargo.lock", "src", "benches"] {
        assert!(
            Path::new(ROOT).join(needed).exists() && !excluded(needed),
            ".dockerignore must not exclude {needed} (the build needs it)"
        );
    }
}

/// `link/hot-text.ld` (the linker script `build.rs` gives optimised x86_64
/// Linux builds, see `bench/hot-text.sh`) must stay a script that only
/// groups functions: two output sections of input-section patterns,
/// inserted before `.text`. `.text.hot` names functions exactly (they match
/// the build kind they came from); `.text.warm` must hold no build-specific
/// hash, so that it matches in any build. And it must still name tollgate's
/// hot functions: most of `.text.warm`'s patterns for tollgate's own code
/// match a function of this build (the test binary is a debug build, which
/// keeps every function), else the layout silently stopped working and the
/// script needs regenerating.
#[test]
fn hot_text_script_groups_functions_that_still_exist() {
    let text = std::fs::read_to_string(root().join("link/hot-text.ld")).expect("link/hot-text.ld");
    let section = |name: &str| -> Vec<String> {
        let start = format!("\n  {name} : {{\n");
        let body = text
            .split_once(start.as_str())
            .unwrap_or_else(|| panic!("no {name} output section"))
            .1;
        let (patterns, _) = body.split_once("\n  }\n").expect("section closed");
        patterns
            .lines()
            .map(|line| {
                // `*(.text.P .text.unlikely.P)`: LLVM's section for a cold
                // function is `.text.unlikely.<name>`.
                line.strip_prefix("    *(.text.")
                    .and_then(|p| p.strip_suffix(')'))
                    .and_then(|p| p.split_once(" .text.unlikely."))
                    .filter(|(p, cold)| p == cold)
                    .unwrap_or_else(|| panic!("not an input-section pattern: {line:?}"))
                    .0
                    .to_string()
            })
            .collect()
    };
    assert!(text.starts_with("/*") && text.contains("*/\nSECTIONS {\n  .text.hot : {\n"));
    assert!(
        text.ends_with("  }\n}\nINSERT BEFORE .text;\n"),
        "inserted before .text, default script kept"
    );
    let (hot, patterns) = (section(".text.hot"), section(".text.warm"));
    assert!(
        hot.len() > 500 && patterns.len() > 500,
        "{} and {} patterns: the quick start runs thousands of functions",
        hot.len(),
        patterns.len()
    );
    let hash = |p: &str| {
        p.as_bytes().windows(20).any(|w| {
            w.starts_with(b"17h") && w[19] == b'E' && w[3..19].iter().all(u8::is_ascii_hexdigit)
        }) || p.contains(".llvm.")
    };
    for p in hot.iter().chain(&patterns) {
        assert!(
            !p.chars().any(|c| c.is_whitespace() || "()\"".contains(c)),
            "{p}"
        );
        assert!(!p.contains(".llvm."), "LLVM's suffix left in {p}");
    }
    for p in &patterns {
        assert!(!hash(p), "build-specific hash left in {p}");
    }
    for hot in ["hyper", "tollgate5proxy8fastpath", "tokio"] {
        assert!(
            patterns.iter().any(|p| p.contains(hot)),
            "no pattern names {hot}"
        );
    }

    let nm = Command::new("nm")
        .args(["--defined-only", BIN])
        .output()
        .expect("nm (binutils)");
    assert!(nm.status.success());
    let mut symbols: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    symbols.sort_unstable();
    let ours: Vec<&str> = patterns
        .iter()
        .map(String::as_str)
        .filter(|p| p.starts_with("_ZN8tollgate"))
        .collect();
    let found = ours
        .iter()
        .filter(|p| {
            let prefix = p.strip_suffix('*').unwrap_or(p);
            let at = symbols.partition_point(|s| s.as_str() < prefix);
            symbols.get(at).is_some_and(|s| s.starts_with(prefix))
        })
        .count();
    assert!(
        found * 10 >= ours.len() * 7,
        "only {found} of {} patterns for tollgate's own functions match this build: run bench/hot-text.sh",
        ours.len()
    );
}
