//! The Debian package, as a VM image or a cluster node takes it: `scripts/package`
//! builds it (from the debug binary under test, stripped), `dpkg -i` installs it for
//! real, the installed `/usr/bin/stagehand` runs the example job, the installed unit
//! passes `systemd-analyze verify`, and `dpkg --purge` takes it all away again.
//!
//! Needs root and dpkg (and systemd-analyze, which scripts/test installs); without
//! them the test fails in CI and returns early elsewhere.

use crate::common::*;
use std::path::Path;
use std::process::Command;

const INSTALLED: &str = "/usr/bin/stagehand";
const UNIT: &str = "/lib/systemd/system/stagehand@.service";

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "stagehand"]).output();
    }
}

fn can_install() -> bool {
    let root = nix_is_root();
    let tools = ["dpkg", "dpkg-deb", "systemd-analyze", "strip"]
        .iter()
        .all(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if root && tools {
        return true;
    }
    assert!(
        !in_ci(),
        "the package test needs root, dpkg, strip and systemd-analyze"
    );
    false
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        r#"{cmd:?} failed:
{out}
{err}"#
    );
    out
}

#[test]
fn the_deb_installs_runs_the_example_and_purges() {
    if !can_install() {
        return;
    }
    // Someone's own stagehand in /usr/bin (not from a package) is not ours to replace.
    let owned = Command::new("dpkg")
        .args(["-S", INSTALLED])
        .output()
        .unwrap();
    assert!(
        owned.status.success() || !Path::new(INSTALLED).exists(),
        "{INSTALLED} exists and no package owns it"
    );
    let s = Scratch::new();
    let out = run(Command::new(repo().join("scripts/package"))
        .arg(bin())
        .arg(s.path().join("deb")));
    let deb = out.trim().to_string();
    assert!(
        deb.ends_with("_amd64.deb") || deb.ends_with(".deb"),
        "{deb}"
    );

    let _guard = Installed;
    run(Command::new("dpkg").args(["-i", &deb]));

    // What the package put on the node.
    let version = run(Command::new(INSTALLED).arg("--version"));
    let ours = run(Command::new(bin()).arg("--version"));
    assert_eq!(version, ours);
    assert!(!version.contains("(unknown)"), "{version}");
    for f in [
        "/usr/share/man/man1/stagehand.1.gz",
        "/usr/share/man/man1/stagehand-run.1.gz",
        "/usr/share/bash-completion/completions/stagehand",
        "/usr/share/zsh/vendor-completions/_stagehand",
        "/usr/share/fish/vendor_completions.d/stagehand.fish",
        "/usr/share/doc/stagehand/copyright",
        UNIT,
    ] {
        assert!(Path::new(f).is_file(), "{f} was not installed");
    }
    let man = run(Command::new("sh").args(["-c", "gzip -dc /usr/share/man/man1/stagehand.1.gz"]));
    assert!(man.contains(".TH stagehand 1"), "{man}");

    // The unit, as systemd reads it (its ExecStart must now exist).
    let verify = Command::new("systemd-analyze")
        .args(["verify", UNIT])
        .output()
        .unwrap();
    let (_, err) = text(&verify);
    assert!(verify.status.success(), "systemd-analyze verify: {err}");
    assert!(!err.contains("stagehand@"), "systemd-analyze verify: {err}");

    // The example job, with the installed binary.
    let example = s.path().join("hello");
    run(Command::new("cp")
        .arg("-r")
        .arg(repo().join("examples/hello"))
        .arg(&example));
    let o = Command::new(INSTALLED)
        .arg("run")
        .arg(example.join("job.yaml"))
        .arg("--run-id")
        .arg("from-the-deb")
        .in_scratch(&s)
        .output()
        .unwrap();
    expect_code(&o, 0);
    let greeting =
        std::fs::read_to_string(example.join("data/runs/from-the-deb/greeting/greeting.txt"))
            .unwrap();
    assert!(greeting.starts_with("Hello, "), "{greeting}");

    // And away again.
    run(Command::new("dpkg").args(["--purge", "stagehand"]));
    assert!(!Path::new(INSTALLED).exists());
    assert!(!Path::new(UNIT).exists());
}
