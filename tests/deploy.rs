//! The deployment examples under deploy/: the Kubernetes manifests are valid for the
//! API (kubernetes-validate, strict: no field Kubernetes does not know), and the job
//! specs inside them are valid stagehand specs. No cluster runs here; the Slurm
//! scripts run on the test cluster in `slurm.rs`.

use crate::common::*;
use serde::Deserialize;
use std::path::PathBuf;
use std::process::Command;

fn kubernetes_validate() -> Option<PathBuf> {
    let found = std::env::var_os("STAGEHAND_TEST_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .or_else(|| Some(repo().join(".tools/venv/bin/kubernetes-validate")))
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            !in_ci(),
            "kubernetes-validate is not installed; CI=true (run scripts/test)"
        );
        eprintln!("kubernetes-validate is not installed (run scripts/test): this test returns early without checking anything");
    }
    found
}

#[test]
fn the_kubernetes_manifests_are_valid() {
    let Some(validate) = kubernetes_validate() else {
        return;
    };
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "an Indexed Job and a multi-node example");
    let o = Command::new(validate)
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out.matches(" passed for resource ").count(), 4, "{out}");
}

#[test]
fn the_indexed_jobs_spec_is_a_valid_stagehand_job() {
    let manifest =
        std::fs::read_to_string(repo().join("deploy/kubernetes/indexed-job.yaml")).unwrap();
    let config: serde_yaml::Value = serde_yaml::Deserializer::from_str(&manifest)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    let s = Scratch::new();
    let job = s.write("job.yaml", config["data"]["job.yaml"].as_str().unwrap());
    let ws = s.write(
        "workspace.yaml",
        config["data"]["workspace.yaml"].as_str().unwrap(),
    );
    let o = stagehand(&[
        "validate".as_ref(),
        job.as_os_str(),
        "--workspace".as_ref(),
        ws.as_os_str(),
    ]);
    expect_code(&o, 0);
}
