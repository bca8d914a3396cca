//! Build script: records the git commit the binary was built from, for `--version`
//! (`stagehand 0.1.0 (abc1234)`). Outside a git checkout (a source tarball, a crate
//! package) the commit is "unknown". It must never fail the build.

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STAGEHAND_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points at
    // (a commit). In a worktree both live under git's own folders, which git names.
    // Only files that exist: cargo reruns a build script on every build for a missing
    // one, and that would rebuild the binary each time.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let files = ["HEAD", "packed-refs"]
        .into_iter()
        .chain(branch.as_deref())
        .filter_map(|f| git(&["rev-parse", "--git-path", f]))
        .filter(|p| std::path::Path::new(p).exists());
    for p in files {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// One line of git's output, or `None` when git is missing or this is no checkout.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}
