//! Embeds the git revision (`TOLLGATE_REVISION`) for `src/build_info.rs`:
//! `git rev-parse --short=12 HEAD`, or "unknown" without git or `.git`
//! (a source tarball, a container build without the repository).

use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TOLLGATE_REVISION={revision}");
    // Rebuild when HEAD moves: a commit rewrites the git dir's `HEAD` or
    // appends to `logs/HEAD` (a worktree's `.git` is a file naming its own
    // git dir, so ask git where it is).
    let git_dir = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok());
    if let Some(dir) = git_dir {
        for file in ["HEAD", "logs/HEAD"] {
            let path = std::path::Path::new(dir.trim()).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
