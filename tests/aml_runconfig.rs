//! The Azure ML v1 `.runconfig` importer, checked through
//! the binary as a scheduler sees them: the top-level `docker.useDocker` decides
//! whether the job runs in a container; a `dataStoreName` that is not text, or not a
//! name Azure ML accepts (an unfilled template placeholder), is refused with exit 64
//! and a message naming the field. Also: a file nested absurdly deep is refused before
//! any parser runs.

use crate::common::*;
use std::path::PathBuf;

/// A scratch folder with a workspace of one local datastore, `workspaceblobstore`.
fn workspace() -> (Scratch, PathBuf) {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("blob")).unwrap();
    let ws = s.write(
        "workspace.yaml",
        r#"default_datastore: workspaceblobstore
datastores:
  workspaceblobstore: {type: local, root: ./blob}
"#,
    );
    (s, ws)
}

const DOCKER_ENV: &str = r#"script: train.py
dataReferences: {}
environment:
  docker:
    enabled: ENABLED
    baseImage: python:3.11-slim
"#;

#[test]
fn docker_use_docker_true_plans_a_container_with_the_environment_image() {
    let (s, ws) = workspace();
    let text = format!(
        r#"{}docker:
  useDocker: true
  sharedVolumes: true
  arguments: []
  shmSize: 1g
"#,
        DOCKER_ENV.replace("ENABLED", "false")
    );
    let job = s.write("train.runconfig", &text);
    let plan = plan_json(&job, &["--workspace", ws.to_str().unwrap()]);
    assert_eq!(plan["runner"], "container");
    assert_eq!(plan["container"]["image"], "python:3.11-slim");
    assert_eq!(plan["container"]["shm_size"], "1g");
}

#[test]
fn docker_use_docker_false_wins_over_environment_docker_enabled() {
    let (s, ws) = workspace();
    let text = format!(
        r#"{}docker:
  useDocker: false
"#,
        DOCKER_ENV.replace("ENABLED", "true")
    );
    let job = s.write("train.runconfig", &text);
    let plan = plan_json(&job, &["--workspace", ws.to_str().unwrap()]);
    assert_eq!(plan["runner"], "process");
}

#[test]
fn data_store_name_that_is_a_list_is_refused_naming_the_field() {
    let (s, ws) = workspace();
    let job = s.write(
        "train.runconfig",
        r#"script: train.py
dataReferences:
  d:
    dataStoreName: [workspaceblobstore, other]
    pathOnDataStore: data
"#,
    );
    let (_, err) = expect_code(&plan_with(&job, &ws), code::INVALID);
    assert!(
        err.contains("train.runconfig:4:")
            && err
                .contains("dataReferences.d.dataStoreName: expected the datastore's name as text"),
        "{err}"
    );
}

#[test]
fn a_template_placeholder_datastore_name_is_refused() {
    let (s, ws) = workspace();
    let job = s.write(
        "train.runconfig",
        r#"script: train.py
dataReferences:
  d:
    dataStoreName: <CREDENTIAL_LESS_DATA_STORE_NAME>
"#,
    );
    let (_, err) = expect_code(&plan_with(&job, &ws), code::INVALID);
    assert!(
        err.contains("dataReferences.d.dataStoreName: \"<CREDENTIAL_LESS_DATA_STORE_NAME>\" is not a datastore name"),
        "{err}"
    );
}

#[test]
fn a_template_placeholder_workspace_datastore_name_is_refused() {
    let s = Scratch::new();
    let ws = s.write(
        "workspace.yaml",
        r#"datastores:
  <DATA_STORE_NAME>: {type: local, root: ./blob}
"#,
    );
    let job = s.write(
        "train.runconfig",
        r#"script: train.py
dataReferences: {}
"#,
    );
    let (_, err) = expect_code(&plan_with(&job, &ws), code::INVALID);
    assert!(
        err.contains("workspace.yaml:2:")
            && err.contains(
                "datastores.<DATA_STORE_NAME>: \"<DATA_STORE_NAME>\" is not a datastore name"
            ),
        "{err}"
    );
}

#[test]
fn a_job_nested_a_hundred_thousand_deep_is_refused_before_parsing() {
    let (s, ws) = workspace();
    let job = s.write(
        "deep.yaml",
        &format!(
            r#"name: deep
command: [echo]
environment:
  X: {}
"#,
            "[".repeat(100_000)
        ),
    );
    let (_, err) = expect_code(&plan_with(&job, &ws), code::INVALID);
    assert!(
        err.contains("deep.yaml:4:1: nested more than 64 levels deep"),
        "{err}"
    );
}

/// SDK-written distributed runconfigs (`ScriptRunConfig(distributed_job_config=…)`)
/// plan with the distribution Azure ML v1 would run, on the step of nodes they ask for;
/// a parameter-server layout is refused, naming the key.
#[test]
fn sdk_distributed_runconfigs_plan_with_their_distribution() {
    let (s, ws) = workspace();
    let dir = repo().join("tests/fixtures/aml/runconfig");
    for (name, nodes, kind, per_node) in [
        ("mpi", 3, "mpi", 2),
        ("pytorch", 2, "pytorch", 4),
        ("pytorch-per-node", 2, "pytorch", 1),
        ("tensorflow", 2, "tensorflow", 1),
    ] {
        let job = dir.join(format!("{name}.runconfig"));
        let run = s.path().join("runs").join(name);
        let out = stagehand_on_slurm_step(
            nodes,
            &[
                "plan".as_ref(),
                job.as_os_str(),
                "--format".as_ref(),
                "json".as_ref(),
                "--workspace".as_ref(),
                ws.as_os_str(),
                "--run-dir".as_ref(),
                run.as_os_str(),
            ],
        );
        let (so, _) = expect_code(&out, 0);
        let plan: serde_json::Value = serde_json::from_str(&so).unwrap();
        let d = &plan["distribution"];
        assert_eq!(
            (&d["kind"], &d["nodes"], &d["per_node"]),
            (&kind.into(), &nodes.into(), &per_node.into()),
            "{name}: {d}"
        );
        assert_eq!(plan["runner"], "process", "{name}");
    }
    let out = plan_with(&dir.join("tensorflow-ps.runconfig"), &ws);
    let (_, se) = expect_code(&out, code::INVALID);
    assert!(
        se.contains(
            "tensorflow-ps.runconfig:68:3: tensorflow.parameterServerCount: 1 parameter server(s)"
        ),
        "{se}"
    );
}
