//! Bakes the git revision into the binary for `tracegate --version` and the status.

use std::path::Path;
use std::process::Command;

/// Runs git in the package's folder; its trimmed output when it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let revision = std::env::var("TRACEGATE_GIT_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    println!(
        "cargo:rustc-env=TRACEGATE_GIT_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=TRACEGATE_GIT_REVISION");
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, and the packed refs. Git
    // says where they are, so that a worktree (whose `.git` is a file) is followed too. A file
    // that does not exist is not named: cargo would rebuild every time.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
