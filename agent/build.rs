//! Bakes the git revision into the binary for `tracegate --version` and the status.

use std::process::Command;

fn main() {
    let revision = std::env::var("TRACEGATE_GIT_REVISION").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!(
        "cargo:rustc-env=TRACEGATE_GIT_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=TRACEGATE_GIT_REVISION");
    // Rebuild when HEAD moves: HEAD itself, and the branch it points to.
    let git = std::path::Path::new("../.git");
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        println!("cargo:rerun-if-changed=../.git/HEAD");
        if let Some(r) = head.strip_prefix("ref: ") {
            let r = r.trim();
            if git.join(r).exists() {
                println!("cargo:rerun-if-changed=../.git/{r}");
            }
            if git.join("packed-refs").exists() {
                println!("cargo:rerun-if-changed=../.git/packed-refs");
            }
        }
    }
}
