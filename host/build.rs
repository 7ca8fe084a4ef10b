//! Builds the built-in policy plugins (plugins/) for wasm32-wasip2, so that
//! the binary can embed them and the default setup needs no extra file; and
//! records the git commit for `wanwatch --version`.

use std::path::{Path, PathBuf};
use std::process::Command;

include!("../plugins/guest_build.rs");

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = ["powercycle", "notify"];
    let built = build_guests(&root.join("plugins"), &plugins);
    for (name, wasm) in plugins.iter().zip(built) {
        println!(
            "cargo:rustc-env=WANWATCH_{}_WASM={}",
            name.to_uppercase(),
            wasm.display()
        );
    }
    println!("cargo:rustc-env=WANWATCH_GIT_COMMIT={}", git_commit(&root));
}

/// The commit built: `WANWATCH_GIT_COMMIT` if set (a build from a tarball,
/// which has no .git), else what git says, else "unknown". Never fails the
/// build: a version string is not worth a broken package build.
///
/// No "-dirty" suffix: the build script only runs again when the files it
/// watches change, so a suffix would go stale and lie.
fn git_commit(root: &Path) -> String {
    println!("cargo:rerun-if-env-changed=WANWATCH_GIT_COMMIT");
    if let Some(commit) = std::env::var("WANWATCH_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
    {
        return commit.trim().to_owned();
    }
    let Some(commit) = git(root, &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    // Built again when HEAD moves: a checkout changes HEAD, a commit the
    // branch it points to (loose, or packed by `git gc`). Only files that
    // exist: cargo reruns the script every time for a missing one.
    let git_dir = git(root, &["rev-parse", "--git-dir"]).map(|d| root.join(d));
    let common_dir = git(root, &["rev-parse", "--git-common-dir"]).map(|d| root.join(d));
    let branch = git(root, &["symbolic-ref", "-q", "HEAD"]);
    let watched: Vec<PathBuf> = [
        git_dir.as_ref().map(|d| d.join("HEAD")),
        common_dir
            .as_ref()
            .zip(branch.as_ref())
            .map(|(d, b)| d.join(b)),
        common_dir.as_ref().map(|d| d.join("packed-refs")),
    ]
    .into_iter()
    .flatten()
    .filter(|p| p.exists())
    .collect();
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    commit
}

/// What `git ARGS` prints in `dir`, trimmed; None if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
