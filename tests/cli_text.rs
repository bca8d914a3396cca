//! What people read: `--help` and spec errors, snapshotted so that a change in them is
//! a reviewed change (`cargo insta review`).

use crate::common::*;
use std::process::Command;

fn stagehand(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("STAGEHAND_WORKSPACE")
        .output()
        .unwrap();
    let (so, se) = text(&out);
    (out.status.code().unwrap_or(-1), so, se)
}

#[test]
fn help_texts() {
    let s = Scratch::new();
    for cmd in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["plan", "--help"],
        vec!["validate", "--help"],
        vec!["convert", "--help"],
        vec!["gc", "--help"],
        vec!["datastore", "--help"],
        vec!["cache", "--help"],
    ] {
        let (code, out, _) = stagehand(s.path(), &cmd);
        assert_eq!(code, 0);
        assert!(out.contains("Example:"), "no example in {cmd:?} --help");
        insta::assert_snapshot!(format!("help_{}", cmd[0].trim_start_matches('-')), out);
    }
}

#[test]
fn spec_errors() {
    let s = Scratch::new();
    s.write(
        "workspace.yaml",
        r#"default_datastore: local
datastores:
  local: {type: local, root: data}
"#,
    );
    s.write(
        "job.yaml",
        r#"name: demo
command: [python, train.py, "${{inputs.typo}}"]
timeout: 2 hours
retries: 3
inputs:
  train: {path: ../up, mode: mnt}
  vocab: {path: v.txt, mode: download, datastore: blob}
outputs:
  train: {path: out, mode: upload}
"#,
    );
    let (code, _, err) = stagehand(s.path(), &["validate", "job.yaml"]);
    assert_eq!(code, code::INVALID);
    insta::assert_snapshot!(err);
}

#[test]
fn usage_errors_exit_64() {
    let s = Scratch::new();
    let (code, _, err) = stagehand(s.path(), &["run"]);
    assert_eq!(code, code::INVALID);
    assert!(err.contains("JOB"), "{err}");
    s.write(
        "ok.yaml",
        r#"name: ok
command: ["true"]
"#,
    );
    for bad in ["a,b", "../x", "a/b", ".hidden", ""] {
        let (code, _, err) = stagehand(s.path(), &["run", "ok.yaml", "--run-id", bad]);
        assert_eq!(code, code::INVALID, "--run-id {bad:?}");
        assert!(err.contains("--run-id"), "{err}");
    }
    let (code, _, err) = stagehand(s.path(), &["run", "missing.yaml"]);
    assert_eq!(code, code::INVALID);
    assert!(
        err.contains("missing.yaml") && err.contains("cannot read the job spec"),
        "{err}"
    );
}
