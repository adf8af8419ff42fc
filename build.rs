//! Embeds the git revision (`TOLLGATE_REVISION`) for `src/build_info.rs`:
//! `git rev-parse --short=12 HEAD`, or "unknown" without git or `.git`
//! (a source tarball, a container build without the repository).
//!
//! On Linux with glibc, the binary's relative relocations are packed
//! (DT_RELR) when the C library it links against supports them (see
//! [`pack_relative_relocs`]), and optimised x86_64 Linux builds place the
//! functions the quick start runs together (see [`hot_text_layout`]);
//! nothing else about the link changes.

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
    pack_relative_relocs();
    hot_text_layout();
}

/// Links the `tollgate` binary of an optimised build (release and the
/// profiles that inherit it) with `link/hot-text.ld`, a linker script that
/// gathers the functions the quick start executes into one output section,
/// `.text.hot`, placed before the rest of the code. The kernel maps a page
/// of a cached file together with its neighbours (64 kB "fault-around"
/// windows), so code scattered over the binary keeps most of `.text`
/// resident; gathered, it keeps a few megabytes. The script only groups
/// input sections (each function is its own section) by name patterns that
/// leave out the build-specific hash, so a renamed or removed function
/// matches nothing and the link is otherwise unchanged. `bench/hot-text.sh`
/// regenerates it. Only for x86_64 Linux with glibc, whose default linker
/// (LLD) and GNU ld both take a script with `INSERT BEFORE`; set
/// `TOLLGATE_HOT_TEXT=0` to link without it (to measure the difference).
fn hot_text_layout() {
    let var = |key: &str| std::env::var(key).unwrap_or_default();
    println!("cargo:rerun-if-env-changed=TOLLGATE_HOT_TEXT");
    println!("cargo:rerun-if-changed=link/hot-text.ld");
    if var("PROFILE") != "release"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || var("TOLLGATE_HOT_TEXT") == "0"
    {
        return;
    }
    let script = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot-text.ld");
    if script.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=tollgate=-Wl,-T,{}",
            script.display()
        );
    }
}

/// Links the `tollgate` binary with `-z pack-relative-relocs`: its
/// relative relocations (one per pointer in vtables, string tables and
/// other static data of a position-independent executable) go into a
/// compact DT_RELR bitmap instead of 24-byte RELA entries. The dynamic
/// loader reads the whole relocation table at start-up, so every page of
/// it stays resident: packing them takes most of a megabyte off the
/// process's memory. Only for a native Linux glibc build whose C library
/// defines `GLIBC_ABI_DT_RELR` (glibc 2.36, Debian 12, the runtime image):
/// the linker then makes the binary require that version, so it refuses
/// to start on an older glibc rather than crash. Elsewhere (another
/// target, cross builds, an older glibc) the link is unchanged.
fn pack_relative_relocs() {
    let var = |key: &str| std::env::var(key).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("HOST") != var("TARGET")
    {
        return;
    }
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let libc = Command::new(cc)
        .arg("-print-file-name=libc.so.6")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string());
    let supported = libc
        .and_then(|path| std::fs::read(path).ok())
        .is_some_and(|bytes| {
            bytes
                .windows(b"GLIBC_ABI_DT_RELR".len())
                .any(|w| w == b"GLIBC_ABI_DT_RELR")
        });
    if supported {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
