//! The runconfig importer on the SDK-written fixtures and a few whole files: the
//! command, the data references, the code snapshot, the docker sections and the
//! datastore names.

use super::*;
use crate::job::Mode;

fn fixture(name: &str) -> (std::path::PathBuf, String) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/aml/runconfig")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap();
    (p, text)
}

fn import_fixture(name: &str) -> (JobSpec, ImportReport) {
    let (p, text) = fixture(name);
    let (job, report) =
        import(&p, &text, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    (job.value, report)
}

#[test]
fn sdk_train_sample() {
    let (job, report) = import_fixture("train.runconfig");
    assert_eq!(job.name, "train");
    assert_eq!(
        job.command,
        [
            "python",
            "train.py",
            "--data_dir",
            "$AZUREML_DATAREFERENCE_my_data",
            "--lr",
            "0.1"
        ]
    );
    assert_eq!(job.environment["EXAMPLE_ENV_VAR"], "EXAMPLE_VALUE");
    assert_eq!(job.container, None, "docker.enabled is false");
    assert_eq!(job.timeout, None);
    let my_data = &job.inputs["my_data"];
    assert_eq!(
        (
            my_data.datastore.as_deref(),
            my_data.path.as_str(),
            my_data.mode
        ),
        (Some("workspaceblobstore"), "bar", Mode::Mount)
    );
    assert_eq!(my_data.path_on_compute, None);
    assert!(!my_data.overwrite);
    let foo = &job.inputs["foo"];
    assert_eq!(
        (foo.path.as_str(), foo.mode, foo.overwrite),
        ("./foo", Mode::Download, true)
    );
    assert_eq!(foo.path_on_compute.as_deref(), Some("code/foo_local"));
    let out = &job.outputs["bar_out"];
    assert_eq!(
        (out.datastore.as_deref(), out.path.as_str(), out.mode),
        (Some("datastore3"), "outputs/bar.pkl", Mode::Upload)
    );
    assert_eq!(out.path_on_compute.as_deref(), Some("code/bar.pkl"));
    assert_eq!(
        job.code,
        Some(Code {
            datastore: None,
            path: None,
            local: Some(".".into())
        })
    );
    let ignored: Vec<&str> = report.ignored.iter().map(|i| i.key.as_str()).collect();
    for k in [
        "spark",
        "hdi",
        "mpi",
        "amlcompute",
        "tensorflow",
        "pytorch",
        "environment.docker.baseImage",
        "environment.python.condaDependenciesFile",
    ] {
        assert!(
            ignored.contains(&k),
            "{k} not reported as ignored: {ignored:?}"
        );
    }
    assert_eq!(
        ignored.iter().filter(|k| **k == "spark").count(),
        1,
        "reported once"
    );
    assert!(report
        .mapped
        .iter()
        .any(|m| m.key == "dataReferences.my_data"
            && m.became
                .starts_with("inputs.my_data: mount workspaceblobstore:bar")));
}

#[test]
fn sdk_score_sample_command_and_docker() {
    let (job, _) = import_fixture("score.runconfig");
    assert_eq!(job.command, ["bash", "-c", "python score.py --model $AZUREML_DATAREFERENCE_model --out=$AZUREML_DATAREFERENCE_preds/out.csv"]);
    let c = job.container.unwrap();
    assert_eq!(
        (c.image.as_str(), c.shm_size.as_deref()),
        ("python:3.11-slim", Some("2g"))
    );
    assert_eq!(job.timeout, Some(SpecDuration(Duration::from_secs(3600))));
    assert_eq!(job.environment["BATCH_SIZE"], "64");
    assert_eq!(
        job.inputs["model"].path_on_compute.as_deref(),
        Some("code/model.pkl")
    );
    assert!(job.outputs["preds"].overwrite);
}

#[test]
fn every_mode_and_path_on_compute_form() {
    let (job, report) = import_fixture("modes.runconfig");
    let i = &job.inputs;
    assert_eq!(i["train"].mode, Mode::Mount);
    assert_eq!(
        i["vocab"].path_on_compute.as_deref(),
        Some("code/vocab.txt")
    );
    assert_eq!(
        i["cache"].path_on_compute.as_deref(),
        Some("/tmp/stagehand-cache")
    );
    assert!(i["cache"].overwrite);
    assert_eq!(i["cache"].path, "./cache/");
    // A reference to the datastore root, named after the datastore.
    assert_eq!(
        (
            i["scratch"].datastore.as_deref(),
            i["scratch"].path.as_str()
        ),
        (Some("scratch"), "")
    );
    // The SDK's made-up name for an unnamed reference starts with a digit.
    assert_eq!(i["0c5d2e4f6a7b8c9d0e1f2a3b4c5d6e7f"].mode, Mode::Download);
    assert!(job.outputs["model"].overwrite);
    assert!(
        !job.outputs["logs"].overwrite,
        "overwrite defaults to false"
    );
    assert_eq!(job.outputs["logs"].path_on_compute, None);
    assert!(job
        .command
        .contains(&"--logs=$AZUREML_DATAREFERENCE_logs/run.log".to_string()));
    assert!(report
        .mapped
        .iter()
        .any(|m| m.key == "dataReferences.scratch" && m.became.contains("named after it")));
}

#[test]
fn both_script_and_command_is_an_error_naming_the_key() {
    let err = import(
        Path::new("x.runconfig"),
        r#"script: a.py
command: ls
dataReferences: {}
"#,
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.0[0].field, "command");
    assert_eq!(err.0[0].location.map(|l| l.line), Some(2));
}

#[test]
fn datasets_need_the_service() {
    let text = r#"script: a.py
dataReferences: {}
data:
  ds:
    dataLocation: {dataset: {id: abc}}
"#;
    let err = import(Path::new("x.runconfig"), text, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.0[0].field, "data");
    assert!(
        err.0[0].message.contains("Azure ML service"),
        "{}",
        err.0[0].message
    );
}

#[test]
fn bad_mode_names_the_key() {
    let text = r#"script: a.py
dataReferences:
  x:
    dataStoreName: s
    mode: stream
"#;
    let err = import(Path::new("x.runconfig"), text, &ImportOptions::default()).unwrap_err();
    assert_eq!(err.0[0].field, "dataReferences.x.mode");
    assert_eq!(err.0[0].location.map(|l| l.line), Some(5));
}

#[test]
fn source_path_reads_the_snapshot_from_the_datastore() {
    let (p, text) = fixture("train.runconfig");
    let opts = ImportOptions {
        source_path: Some("snapshots/abc".into()),
    };
    let (job, _) = import(&p, &text, &opts).unwrap();
    assert_eq!(
        job.value.code,
        Some(Code {
            datastore: Some("workspaceblobstore".into()),
            path: Some("snapshots/abc".into()),
            local: None
        })
    );
}

#[test]
fn project_folder_is_the_parent_of_dot_azureml() {
    let (job, _) = import(
        Path::new("proj/.azureml/train.runconfig"),
        r#"script: a.py
dataReferences: {}
"#,
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(job.value.code.unwrap().local.as_deref(), Some(".."));
}

#[test]
fn aliases_point_problems_at_source_keys() {
    let (job, _) = import(
        Path::new("x.runconfig"),
        r#"script: a.py
arguments: [--x, $AZUREML_DATAREFERENCE_nope]
dataReferences:
  d:
    dataStoreName: s
    mode: upload
"#,
        &ImportOptions::default(),
    )
    .unwrap();
    let p = job.problem("command[3]", "unknown");
    assert_eq!(p.field, "arguments[1]");
    assert_eq!(p.location.map(|l| l.line), Some(2));
    assert_eq!(
        job.problem("outputs.d.datastore", "x").field,
        "dataReferences.d.dataStoreName"
    );
}

fn import_text(text: &str) -> Result<(JobSpec, ImportReport), Problems> {
    import(Path::new("x.runconfig"), text, &ImportOptions::default())
        .map(|(job, report)| (job.value, report))
}

fn ignored_reason<'a>(report: &'a ImportReport, key: &str) -> &'a str {
    report
        .ignored
        .iter()
        .find(|i| i.key == key)
        .map(|i| i.reason.as_str())
        .unwrap_or_else(|| panic!("{key} not ignored: {:?}", report.ignored))
}

#[test]
fn docker_use_docker_true_runs_in_the_environment_image() {
    let text = r#"script: train.py
dataReferences: {}
environment:
  docker:
    enabled: false
    baseImage: python:3.11-slim
    shmSize: 4g
docker:
  useDocker: true
  sharedVolumes: true
  arguments: []
  shmSize: 1g
"#;
    let (job, report) = import_text(text).unwrap_or_else(|e| panic!("{e}"));
    let c = job
        .container
        .expect("docker.useDocker: true runs in a container");
    assert_eq!(
        (c.image.as_str(), c.shm_size.as_deref()),
        ("python:3.11-slim", Some("1g"))
    );
    assert!(report.mapped.iter().any(|m| m.key == "docker.useDocker"
        && m.became.contains("over environment.docker.enabled: false")));
    assert_eq!(
        ignored_reason(&report, "docker.sharedVolumes"),
        "the container runner decides its volumes"
    );
    assert_eq!(
        ignored_reason(&report, "environment.docker.shmSize"),
        "docker.shmSize takes precedence"
    );
}

#[test]
fn docker_use_docker_false_wins_over_environment_docker_enabled() {
    let text = r#"script: train.py
dataReferences: {}
environment:
  docker:
    enabled: true
    baseImage: python:3.11-slim
docker:
  useDocker: false
"#;
    let (job, report) = import_text(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.container, None);
    assert!(ignored_reason(&report, "environment.docker.baseImage")
        .starts_with("docker.useDocker is false"));
}

#[test]
fn the_sdk_default_docker_section_leaves_environment_docker_deciding() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/aml/runconfig/docker.runconfig");
    let text = std::fs::read_to_string(&p).unwrap();
    let (job, report) = import_text(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        job.container.map(|c| c.image).as_deref(),
        Some("python:3.11-slim")
    );
    assert!(ignored_reason(&report, "docker").contains("environment.docker.enabled decides"));
}

#[test]
fn use_docker_that_is_not_a_boolean_is_an_error() {
    let err = import_text(
        r#"script: a.py
dataReferences: {}
docker:
  useDocker: maybe
"#,
    )
    .unwrap_err();
    assert_eq!(err.0[0].field, "docker.useDocker");
    assert_eq!(err.0[0].location.map(|l| l.line), Some(4));
}

#[test]
fn data_store_name_that_is_not_text_is_an_error_naming_the_field() {
    for (value, line) in [("[a, b]", 4), ("42", 4)] {
        let text = format!(
            r#"script: a.py
dataReferences:
  d:
    dataStoreName: {value}
    mode: download
"#
        );
        let err = import_text(&text).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].field, "dataReferences.d.dataStoreName");
        assert_eq!(err.0[0].location.map(|l| l.line), Some(line));
        assert!(err.0[0].message.contains("as text"), "{}", err.0[0].message);
    }
}

#[test]
fn a_template_placeholder_is_not_a_datastore_name() {
    let text = r#"script: a.py
dataReferences:
  d:
    dataStoreName: <CREDENTIAL_LESS_DATA_STORE_NAME>
"#;
    let err = import_text(text).unwrap_err();
    assert_eq!(err.0[0].field, "dataReferences.d.dataStoreName");
    assert!(
        err.0[0]
            .message
            .starts_with("\"<CREDENTIAL_LESS_DATA_STORE_NAME>\" is not a datastore name"),
        "{}",
        err.0[0].message
    );
    // Letters, digits, `_`, and the `-` the v1 SDK allows.
    let (job, _) = import_text(
        r#"script: a.py
dataReferences:
  d:
    dataStoreName: my-store_2
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.inputs["d"].datastore.as_deref(), Some("my-store_2"));
}
