//! Stamps the git commit into every Vox binary (through `vox_telemetry::build`), so
//! `--version`, `/health`, heartbeats and `vox_build_info` say exactly what runs.
//!
//! The commit comes from `VOX_GIT_SHA` when set (release builds from a tarball without
//! `.git`), else from `git rev-parse`, else "unknown". A commit with uncommitted changes
//! in the work tree is not detected: release builds come from `ops/release.sh`, which
//! refuses a dirty tree.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VOX_GIT_SHA");
    let sha = std::env::var("VOX_GIT_SHA").ok().filter(|s| !s.trim().is_empty()).or_else(git_sha);
    println!("cargo:rustc-env=VOX_GIT_SHA={}", sha.as_deref().map_or("unknown", str::trim));
}

fn git_sha() -> Option<String> {
    let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it names, and packed refs.
    let git_dir = Command::new("git").args(["rev-parse", "--absolute-git-dir"]).output().ok()?;
    let git_dir = String::from_utf8(git_dir.stdout).ok()?;
    let git_dir = Path::new(git_dir.trim());
    // (Only files that exist: cargo reruns a build script on every build while a
    // watched path is missing, and a fresh clone keeps its refs in packed-refs.)
    let mut watched = vec![git_dir.join("HEAD"), git_dir.join("packed-refs")];
    if let Ok(head) = std::fs::read_to_string(git_dir.join("HEAD"))
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        watched.push(git_dir.join(reference));
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    String::from_utf8(out.stdout).ok()
}
