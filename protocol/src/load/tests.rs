//! Reading and validating job specs and workspaces, section by section: what each field
//! becomes, each structural refusal (with its field path and line), each rule of
//! [`validate_job`] and [`parse_workspace`], and how problems read.

use super::*;
use crate::job::{
    AllGpus, ContainerUser, Gpus, JobSpec, Mode, MountFallback, Pull, UploadOn, Volume,
};
use crate::secret::Secret;
use crate::workspace::{Credentials, Datastore, Workspace};
use std::path::{Path, PathBuf};
use std::time::Duration;

const JOB: &str = "job.yaml";
const WS_FILE: &str = "workspace.yaml";

/// A workspace with a default local datastore and a blob datastore.
const WS: &str = r#"default_datastore: local
datastores:
  local: {type: local, root: ./data}
  blob: {type: azure_blob, account_name: acct, container_name: c}
"#;

fn job(text: &str) -> Result<Parsed<JobSpec>, Problems> {
    parse_job(Path::new(JOB), text)
}

fn spec(text: &str) -> JobSpec {
    job(text).unwrap_or_else(|e| panic!("{e}")).value
}

fn workspace(text: &str) -> Parsed<Workspace> {
    parse_workspace(Path::new(WS_FILE), text).unwrap_or_else(|e| panic!("{e}"))
}

/// The structural problems of a job spec that does not parse.
fn refused(text: &str) -> Vec<Problem> {
    match job(text) {
        Ok(j) => panic!("accepted: {:?}", j.value),
        Err(p) => p.0,
    }
}

/// The problems [`validate_job`] finds in a spec that parses, against [`WS`].
fn rules(text: &str) -> Vec<Problem> {
    validate_job(
        &job(text).unwrap_or_else(|e| panic!("{e}")),
        &workspace(WS).value,
        Some(Path::new(WS_FILE)),
    )
    .0
}

/// The one problem of `problems`, which must have `field` and a message containing
/// `fragment`; returns its line.
fn only(problems: &[Problem], field: &str, fragment: &str) -> Option<usize> {
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert_eq!(p.field, field, "{p}");
    assert!(p.message.contains(fragment), "{p}");
    assert_eq!(p.file, Path::new(JOB).to_path_buf());
    p.location.map(|l| l.line)
}

/// A job that names its data: the prefix most rule tests extend.
fn with(lines: &str) -> String {
    format!("name: j\ncommand: [run]\n{lines}")
}

// --- Parsing: what each field becomes -------------------------------------------------

#[test]
fn a_minimal_spec_gets_the_defaults() {
    let j = spec("name: j\ncommand: [python, train.py]\n");
    assert_eq!(j.name, "j");
    assert_eq!(j.command, ["python", "train.py"]);
    assert!(j.environment.is_empty() && j.inputs.is_empty() && j.outputs.is_empty());
    assert_eq!((j.timeout, j.kill_grace), (None, None));
    assert_eq!((j.code, j.container), (None, None));
    assert!(!j.azure_ml_v2_variables);
}

#[test]
fn every_field_is_read() {
    let j = spec(
        r#"name: full
command: [python, train.py, 3, true]
environment: {LR: 0.1, DEBUG: true, EMPTY: ""}
timeout: 1h 30m
kill_grace: 20
code: {datastore: blob, path: snapshots/abc}
container:
  image: python:3.11
  pull: always
  entrypoint: [sh, -c]
  user: host
  workdir: /work
  gpus: all
  shm_size: 2g
  cpus: 1.5
  memory: 8g
  network: none
  env: [HOME]
  volumes:
    - {host: /data, container: /data}
inputs:
  train: {datastore: blob, path: sets/train, mode: mount, mount_fallback: download}
  vocab: {path: v.txt, mode: download, path_on_compute: /tmp/v.txt, overwrite: true}
outputs:
  model: {path: "models/{run_id}", mode: upload, upload_on: success}
azure_ml_v2_variables: true
"#,
    );
    // Numbers and booleans in `command` and `environment` are text, as written.
    assert_eq!(j.command, ["python", "train.py", "3", "true"]);
    let env: Vec<(&str, &str)> = j
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("DEBUG", "true"), ("EMPTY", ""), ("LR", "0.1")]);
    assert_eq!(j.timeout.map(|d| d.0), Some(Duration::from_secs(5400)));
    assert_eq!(j.kill_grace.map(|d| d.0), Some(Duration::from_secs(20)));
    let code = j.code.expect("code");
    assert_eq!(
        (code.datastore.as_deref(), code.path.as_deref(), code.local),
        (Some("blob"), Some("snapshots/abc"), None)
    );
    let c = j.container.expect("container");
    assert_eq!(c.image, "python:3.11");
    assert_eq!(c.pull, Pull::Always);
    assert_eq!(
        c.entrypoint.as_deref(),
        Some(&["sh".into(), "-c".into()][..])
    );
    assert_eq!(c.user, ContainerUser::Host);
    assert_eq!(c.workdir.as_deref(), Some("/work"));
    assert_eq!(c.gpus, Some(Gpus::All(AllGpus::All)));
    assert_eq!(
        (c.shm_size.as_deref(), c.memory.as_deref()),
        (Some("2g"), Some("8g"))
    );
    assert_eq!(c.cpus, Some(1.5));
    assert_eq!(c.network.as_deref(), Some("none"));
    assert_eq!(c.env, ["HOME"]);
    assert_eq!(
        c.volumes,
        [Volume {
            host: "/data".into(),
            container: "/data".into()
        }]
    );
    let train = &j.inputs["train"];
    assert_eq!(
        (train.datastore.as_deref(), train.path.as_str(), train.mode),
        (Some("blob"), "sets/train", Mode::Mount)
    );
    assert_eq!(train.mount_fallback, Some(MountFallback::Download));
    assert!(!train.overwrite, "overwrite defaults to false");
    let vocab = &j.inputs["vocab"];
    assert_eq!(
        vocab.datastore, None,
        "no datastore: the default one, later"
    );
    assert_eq!(vocab.path_on_compute.as_deref(), Some("/tmp/v.txt"));
    assert!(vocab.overwrite);
    assert_eq!(vocab.upload_on, UploadOn::Always, "the default");
    let model = &j.outputs["model"];
    assert_eq!(
        (model.mode, model.upload_on),
        (Mode::Upload, UploadOn::Success)
    );
    assert_eq!(
        model.path, "models/{run_id}",
        "placeholders stay for the plan"
    );
    assert!(j.azure_ml_v2_variables);
}

#[test]
fn container_defaults_and_a_gpu_count() {
    let c = spec("name: j\ncommand: [x]\ncontainer: {image: busybox, gpus: 2}\n")
        .container
        .expect("container");
    assert_eq!((c.pull, c.user), (Pull::Missing, ContainerUser::Image));
    assert_eq!(c.gpus, Some(Gpus::Count(2)));
    assert!(c.env.is_empty() && c.volumes.is_empty());
}

#[test]
fn an_empty_environment_is_no_variables() {
    assert!(spec("name: j\ncommand: [x]\nenvironment:\n")
        .environment
        .is_empty());
}

#[test]
fn a_code_folder_here() {
    let code = spec("name: j\ncommand: [x]\ncode: {local: ./src}\n")
        .code
        .expect("code");
    assert_eq!(
        (code.datastore, code.path, code.local.as_deref()),
        (None, None, Some("./src"))
    );
}

#[test]
fn a_spec_written_out_reads_back_the_same() {
    // What `convert` writes must parse to the same job.
    let j = spec(
        r#"name: rt
command: [python, "${{inputs.a}}"]
environment: {A: "1"}
timeout: 2h
container: {image: python:3.11, gpus: 1, volumes: [{host: /h, container: /c}]}
inputs:
  a: {path: x, mode: download, overwrite: true}
outputs:
  b: {datastore: blob, path: "o/{run_id}", mode: upload, upload_on: failure}
"#,
    );
    let text = serde_yaml::to_string(&j).unwrap();
    assert_eq!(spec(&text), j, "{text}");
}

// --- Parsing: refusals, each at its field and line ------------------------------------

#[test]
fn missing_name_and_command_are_both_reported() {
    let p = refused("timeout: 5s\n");
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["name", "command"]);
    assert!(p[1].message.contains("as a list"), "{}", p[1]);
}

#[test]
fn a_command_given_as_one_string_is_refused() {
    let line = only(
        &refused("name: j\ncommand: python train.py\n"),
        "command",
        "a single string is not split into arguments",
    );
    assert_eq!(line, Some(2));
}

#[test]
fn a_command_with_a_null_or_a_list_inside_is_refused() {
    only(
        &refused("name: j\ncommand: [python, ~]\n"),
        "command",
        "expected a string, found nothing (null)",
    );
    only(
        &refused("name: j\ncommand: [python, [a]]\n"),
        "command",
        "found a list",
    );
    only(
        &refused("name: j\ncommand: {a: b}\n"),
        "command",
        "expected a list, found a mapping",
    );
}

#[test]
fn environment_must_be_a_mapping_of_scalars() {
    only(
        &refused("name: j\ncommand: [x]\nenvironment: [A]\n"),
        "environment",
        "expected a mapping of NAME: value, found a list",
    );
    only(
        &refused("name: j\ncommand: [x]\nenvironment: {A: {b: c}}\n"),
        "environment",
        "found a mapping",
    );
}

#[test]
fn unknown_fields_are_named_with_what_is_known() {
    let line = only(
        &refused("name: j\ncommand: [x]\nretries: 3\n"),
        "retries",
        "unknown field, expected one of name, command,",
    );
    assert_eq!(line, Some(3));
    let line = only(
        &refused(&with(
            "inputs:\n  x:\n    path: a\n    mode: download\n    cache: yes\n",
        )),
        "inputs.x.cache",
        "unknown field",
    );
    assert_eq!(line, Some(7));
    only(
        &refused("name: j\ncommand: [x]\ncontainer: {image: i, ports: [80]}\n"),
        "container.ports",
        "unknown field",
    );
    only(
        &refused("name: j\ncommand: [x]\ncode: {url: x}\n"),
        "code.url",
        "unknown field",
    );
}

#[test]
fn unknown_values_are_named() {
    let line = only(
        &refused(&with("inputs:\n  x: {path: a, mode: mnt}\n")),
        "inputs.x.mode",
        "unknown value `mnt`",
    );
    assert_eq!(line, Some(4));
    only(
        &refused(&with(
            "outputs:\n  x: {path: a, mode: upload, upload_on: never}\n",
        )),
        "outputs.x.upload_on",
        "unknown value `never`",
    );
    only(
        &refused("name: j\ncommand: [x]\ncontainer: {image: i, pull: sometimes}\n"),
        "container.pull",
        "unknown value `sometimes`",
    );
    only(
        &refused(&with("inputs:\n  x: {path: a}\n")),
        "inputs.x",
        "missing field `mode`",
    );
}

#[test]
fn durations_that_do_not_parse_are_refused() {
    let line = only(
        &refused("name: j\ncommand: [x]\ntimeout: soon\n"),
        "timeout",
        "invalid duration \"soon\"",
    );
    assert_eq!(line, Some(3));
    only(
        &refused("name: j\ncommand: [x]\nkill_grace: [1]\n"),
        "kill_grace",
        "expected a duration",
    );
}

#[test]
fn data_maps_must_be_mappings_of_names() {
    only(
        &refused(&with("inputs: [a, b]\n")),
        "inputs",
        "expected a mapping of names to entries",
    );
    only(
        &refused(&with("outputs:\n  1: {path: a, mode: upload}\n")),
        "outputs",
        "names must be strings",
    );
}

#[test]
fn documents_that_are_not_a_mapping() {
    let p = refused("");
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("the file is empty"), "{}", p[0]);
    let p = refused("- a\n- b\n");
    assert!(p[0].message.contains("is a YAML mapping"), "{}", p[0]);
    let p = refused("name: j\ncommand: [x\n");
    assert!(p[0].message.starts_with("not valid YAML"), "{}", p[0]);
    assert_eq!(p[0].location.map(|l| l.line), Some(3));
    let p = refused("name: j\ncommand: [x]\n[1]: y\n");
    assert!(p[0].message.contains("keys must be strings"), "{}", p[0]);
}

#[test]
fn a_partial_parse_keeps_the_good_fields() {
    let (parsed, problems) =
        parse_job_partial(Path::new(JOB), "name: j\ncommand: [x]\ntimeout: soon\n").unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(
        (parsed.value.name.as_str(), parsed.value.timeout),
        ("j", None)
    );
    assert_eq!(parsed.value.command, ["x"]);
}

// --- Validation: the rules that need the workspace ------------------------------------

#[test]
fn a_valid_job_has_no_problems() {
    let p = rules(&with(
        r#"environment: {LR: "0.1"}
code: {path: snapshots/abc}
inputs:
  train: {datastore: blob, path: sets/train, mode: mount, mount_fallback: download}
  vocab: {path: v.txt, mode: download, path_on_compute: v}
outputs:
  model: {path: "models/{run_id}/{name}", mode: upload, upload_on: success}
"#,
    ));
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn job_names_become_paths() {
    only(
        &rules("name: 'a b/c'\ncommand: [x]\n"),
        "name",
        "use letters, digits",
    );
    only(&rules("name: ' '\ncommand: [x]\n"), "name", "empty");
    assert!(rules("name: a-b_c.1\ncommand: [x]\n").is_empty());
}

#[test]
fn an_empty_command_or_program_is_refused() {
    only(
        &rules("name: j\ncommand: []\n"),
        "command",
        "e.g. [python, train.py]",
    );
    only(&rules("name: j\ncommand: ['', a]\n"), "command", "empty");
}

#[test]
fn environment_names_must_be_portable() {
    only(
        &rules(&with("environment: {1BAD: x}\n")),
        "environment.1BAD",
        "not a valid environment variable name",
    );
}

#[test]
fn a_zero_timeout_is_refused() {
    only(
        &rules(&with("timeout: 0s\n")),
        "timeout",
        "longer than zero",
    );
}

#[test]
fn datastores_must_exist() {
    let p = rules(&with(
        "inputs:\n  x: {datastore: nope, path: a, mode: download}\n",
    ));
    let line = only(
        &p,
        "inputs.x.datastore",
        "unknown datastore \"nope\"; known: blob, local in workspace.yaml",
    );
    assert_eq!(line, Some(4));
    // Without a default datastore, an entry without one names the workspace's lack.
    let ws = workspace("datastores: {}\n").value;
    let j = job(&with("inputs:\n  x: {path: a, mode: download}\n")).unwrap();
    let p = validate_job(&j, &ws, None).0;
    only(
        &p,
        "inputs.x",
        "no datastore given and the workspace has no default_datastore (no workspace file was found",
    );
    let j = job(&with(
        "inputs:\n  x: {datastore: d, path: a, mode: download}\n",
    ))
    .unwrap();
    only(
        &validate_job(&j, &ws, None).0,
        "inputs.x.datastore",
        "known: none",
    );
}

#[test]
fn data_names_become_variable_names_and_are_unique() {
    only(
        &rules(&with("inputs:\n  my-data: {path: a, mode: download}\n")),
        "inputs.my-data",
        "AZUREML_DATAREFERENCE_my-data",
    );
    only(
        &rules(&with(
            "inputs:\n  x: {path: a, mode: download}\noutputs:\n  x: {path: b, mode: upload}\n",
        )),
        "outputs.x",
        "used in both inputs and outputs",
    );
}

#[test]
fn modes_belong_to_their_side() {
    only(
        &rules(&with("inputs:\n  x: {path: a, mode: upload}\n")),
        "inputs.x.mode",
        "upload is for outputs",
    );
    for mode in ["mount", "download"] {
        only(
            &rules(&with(&format!(
                "outputs:\n  x: {{path: a, mode: {mode}}}\n"
            ))),
            "outputs.x.mode",
            &format!("{mode} is for inputs"),
        );
    }
    only(
        &rules(&with(
            "inputs:\n  x: {path: a, mode: download, upload_on: failure}\n",
        )),
        "inputs.x.upload_on",
        "only outputs are uploaded",
    );
    only(
        &rules(&with(
            "inputs:\n  x: {path: a, mode: download, mount_fallback: download}\n",
        )),
        "inputs.x.mount_fallback",
        "only mount inputs",
    );
}

#[test]
fn paths_may_not_leave_the_datastore() {
    for (path, fragment) in [
        ("../..", "`..` segment"),
        ("a/../../b", "`..` segment"),
        ("'a\\b'", "backslash"),
    ] {
        only(
            &rules(&with(&format!(
                "inputs:\n  x: {{path: {path}, mode: download}}\n"
            ))),
            "inputs.x.path",
            fragment,
        );
    }
    only(
        &rules(&with("outputs:\n  x: {path: '{user}/m', mode: upload}\n")),
        "outputs.x.path",
        "unknown placeholder \"{user}\"",
    );
    // A placeholder is an output's alone: an input's braces are part of its name.
    assert!(rules(&with("inputs:\n  x: {path: '{run_id}', mode: download}\n")).is_empty());
}

#[test]
fn path_on_compute_stays_in_the_run_folder_and_is_unique() {
    only(
        &rules(&with(
            "inputs:\n  x: {path: a, mode: download, path_on_compute: ../../etc}\n",
        )),
        "inputs.x.path_on_compute",
        "would leave the run folder",
    );
    only(
        &rules(&with(
            "inputs:\n  x: {path: a, mode: download, path_on_compute: /d/}\n  y: {path: b, mode: download, path_on_compute: /d}\n",
        )),
        "inputs.y.path_on_compute",
        "also the path_on_compute of inputs.x",
    );
}

#[test]
fn code_is_a_datastore_path_or_a_local_folder() {
    only(
        &rules(&with("code: {path: ../x}\n")),
        "code.path",
        "`..` segment",
    );
    only(
        &rules(&with("code: {datastore: nope, path: x}\n")),
        "code.datastore",
        "unknown datastore",
    );
    only(
        &rules(&with("code: {datastore: blob, local: ./src}\n")),
        "code.datastore",
        "only with `path`",
    );
    only(&rules(&with("code: {local: ' '}\n")), "code.local", "empty");
    only(
        &rules(&with("code: {path: a, local: b}\n")),
        "code",
        "not both",
    );
    only(&rules(&with("code: {}\n")), "code", "give `path`");
}

#[test]
fn container_rules() {
    let c = |body: &str| rules(&with(&format!("container: {{{body}}}\n")));
    only(&c("image: ' '"), "container.image", "empty");
    only(
        &c("image: i, volumes: [{host: data, container: /d}]"),
        "container.volumes[0]",
        "must be absolute",
    );
    only(
        &c("image: i, volumes: [{host: /h, container: /mnt/stagehand/x}]"),
        "container.volumes[0].container",
        "is under /mnt/stagehand",
    );
    only(
        &c("image: i, volumes: [{host: /a, container: /d}, {host: /b, container: /d/}]"),
        "container.volumes[1].container",
        "also the container path of container.volumes[0]",
    );
    only(
        &c("image: i, workdir: work"),
        "container.workdir",
        "absolute path",
    );
    only(
        &c("image: i, shm_size: lots"),
        "container.shm_size",
        "invalid size \"lots\"",
    );
    only(
        &c("image: i, memory: 2x"),
        "container.memory",
        "invalid size \"2x\"",
    );
    only(
        &c("image: i, cpus: 0"),
        "container.cpus",
        "not a positive number",
    );
    only(
        &c("image: i, cpus: .nan"),
        "container.cpus",
        "not a positive number",
    );
    only(&c("image: i, gpus: 0"), "container.gpus", "leave gpus out");
    only(
        &c("image: i, env: [OK, 'NOT OK']"),
        "container.env[1]",
        "not a valid environment",
    );
}

#[test]
fn command_references_must_name_the_jobs_data() {
    let p = rules(
        "name: j\ncommand: [echo, '${{inputs.nope}}', '${{outputs.gone}}', '--x=$AZUREML_DATAREFERENCE_y']\ninputs:\n  a: {path: a, mode: download}\n",
    );
    let got: Vec<(&str, &str)> = p
        .iter()
        .map(|p| (p.field.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "command[1]",
                "refers to input \"nope\", which the job does not have (known: a)"
            ),
            (
                "command[2]",
                "refers to output \"gone\", which the job does not have (known: none)"
            ),
            (
                "command[3]",
                "refers to input or output \"y\", which the job does not have (known: a)"
            ),
        ]
    );
    assert!(rules(&with(
        "inputs:\n  a: {path: a, mode: download}\noutputs:\n  b: {path: b, mode: upload}\n"
    ))
    .is_empty());
    assert!(rules(
        "name: j\ncommand: [x, '${{inputs.a}}', $AZUREML_DATAREFERENCE_b, '${AZUREML_DATAREFERENCE_a}']\ninputs:\n  a: {path: a, mode: download}\noutputs:\n  b: {path: b, mode: upload}\n"
    )
    .is_empty());
}

#[test]
fn every_problem_of_a_spec_reads_as_one_list() {
    let j = job(r#"name: 'bad name'
command: [python, "${{inputs.typo}}"]
timeout: 0s
inputs:
  train: {datastore: nope, path: ../up, mode: upload}
outputs:
  model: {path: out, mode: download}
container: {image: i, gpus: 0}
"#)
    .unwrap();
    let p = validate_job(&j, &workspace(WS).value, Some(Path::new(WS_FILE)));
    insta::assert_snapshot!(p.to_string());
}

// --- One entry's every problem, and the near miss ---------------------------------------

/// Every problem `load_and_validate_job` finds in `text`, as (field, message).
fn all_problems(text: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(JOB);
    std::fs::write(&file, text).unwrap();
    let err = load_and_validate_job(&file, &workspace(WS).value, None).unwrap_err();
    err.0.into_iter().map(|p| (p.field, p.message)).collect()
}

#[test]
fn every_problem_of_one_entry_is_reported_at_once() {
    let got = all_problems(
        r#"name: j
command: [x]
inputs:
  a: {datastore: nostore, path: ../x, mode: mnt}
"#,
    );
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["inputs.a.datastore", "inputs.a.path", "inputs.a.mode"],
        "{got:#?}"
    );
}

#[test]
fn a_mode_error_lists_only_what_the_kind_allows_and_maps_azure_ml_names() {
    let got = all_problems(
        r#"name: j
command: [x]
inputs:
  a: {path: x, mode: mnt}
  b: {path: x, mode: ro_mount}
outputs:
  o: {path: y, mode: uplod}
"#,
    );
    assert_eq!(
        got[0].1,
        "unknown value `mnt`, expected one of `mount`, `download`; did you mean `mount`?"
    );
    assert_eq!(
        got[1].1,
        "unknown value `ro_mount`, expected one of `mount`, `download`; Azure ML's `ro_mount`: did you mean `mount`?"
    );
    assert_eq!(
        got[2].1,
        "unknown value `uplod`, expected `upload`; did you mean `upload`?"
    );
}

#[test]
fn a_misspelt_field_gets_the_near_name() {
    let got = all_problems(
        r#"name: j
comand: [x]
inputs:
  a: {datastor: local, path: x, mode: download}
container: {image: i, pul: never}
"#,
    );
    let say = |field: &str| {
        got.iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("no problem at {field}: {got:#?}"))
    };
    assert!(say("comand").ends_with("; did you mean `command`?"));
    assert!(say("inputs.a.datastor").ends_with("; did you mean `datastore`?"));
    assert!(
        say("container.pul").ends_with("did you mean `pull`?"),
        "{}",
        say("container.pul")
    );
}

// --- Reading files, and both passes together -------------------------------------------

#[test]
fn load_and_validate_reports_both_passes_in_line_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(
        &file,
        "name: j\ncommand: [x, '${{inputs.nope}}']\ntimeout: soon\ninputs:\n  a: {path: a, mode: mnt}\n  b: {datastore: gone, path: b, mode: download}\n",
    )
    .unwrap();
    let err = load_and_validate_job(&file, &workspace(WS).value, None).unwrap_err();
    let got: Vec<(&str, Option<usize>)> = err
        .0
        .iter()
        .map(|p| (p.field.as_str(), p.location.map(|l| l.line)))
        .collect();
    // The bad reference is left out: with inputs unreadable, it would only repeat them.
    assert_eq!(
        got,
        [
            ("timeout", Some(3)),
            ("inputs.a.mode", Some(5)),
            ("inputs.b.datastore", Some(6)),
        ]
    );
    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "name: j\ncommand: [x]\n").unwrap();
    assert_eq!(
        load_and_validate_job(&ok, &workspace(WS).value, None)
            .unwrap()
            .value
            .name,
        "j"
    );
}

#[test]
fn a_missing_file_is_one_problem_naming_it() {
    let err = load_job(Path::new("/nonexistent/job.yaml")).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert!(
        err.0[0].message.starts_with("cannot read the job spec"),
        "{err}"
    );
    let err = load_workspace(Path::new("/nonexistent/ws.yaml")).unwrap_err();
    assert!(
        err.0[0].message.starts_with("cannot read the workspace"),
        "{err}"
    );
}

// --- How problems read, and where they point ------------------------------------------

#[test]
fn a_problem_shows_file_line_column_and_field() {
    let at = |line, column| Some(crate::locate::Location { line, column });
    let p = |location, field: &str| Problem {
        file: PathBuf::from("j.yaml"),
        location,
        field: field.into(),
        message: "wrong".into(),
    };
    assert_eq!(
        p(at(3, 5), "inputs.x").to_string(),
        "j.yaml:3:5: inputs.x: wrong"
    );
    assert_eq!(p(None, "inputs.x").to_string(), "j.yaml: inputs.x: wrong");
    assert_eq!(p(None, "").to_string(), "j.yaml: wrong");
    let all = Problems(vec![p(at(1, 1), "a"), p(None, "b")]);
    assert_eq!(all.to_string(), "j.yaml:1:1: a: wrong\nj.yaml: b: wrong");
}

#[test]
fn aliases_translate_the_longest_prefix_at_a_boundary() {
    let mut j = job(&with("inputs:\n  train: {path: a, mode: download}\n")).unwrap();
    j.aliases = vec![
        ("inputs".into(), "data".into()),
        ("inputs.train".into(), "dataReferences.train".into()),
        ("command".into(), "script".into()),
    ];
    assert_eq!(
        j.source_field("inputs.train.mode"),
        "dataReferences.train.mode"
    );
    assert_eq!(j.source_field("inputs.train"), "dataReferences.train");
    assert_eq!(
        j.source_field("inputs.trainer"),
        "data.trainer",
        "not a prefix of a name"
    );
    assert_eq!(j.source_field("command[2]"), "script[2]");
    assert_eq!(j.source_field("timeout"), "timeout");
    // A problem at a native field points at the line of the key that was written.
    let p = j.problem("inputs.train.mode", "x");
    assert_eq!(p.field, "dataReferences.train.mode");
}

#[test]
fn relative_paths_resolve_against_the_files_folder() {
    let mut j = job("name: j\ncommand: [x]\n").unwrap();
    assert_eq!(j.folder(), PathBuf::from("."));
    j.file = PathBuf::from("proj/job.yaml");
    assert_eq!(j.folder(), PathBuf::from("proj"));
}

// --- Workspaces -------------------------------------------------------------------------

#[test]
fn every_datastore_type_is_read() {
    let ws = workspace(
        r#"default_datastore: l
datastores:
  l: {type: local, root: ./data}
  b:
    type: azure_blob
    account_name: acct
    container_name: c
    endpoint: http://127.0.0.1:10000/acct
    protocol: https
    credentials: {account_key: {env: KEY}}
  g: {type: azure_data_lake_gen2, account_name: acct, filesystem: fs, credentials: {sas_token: {file: sas.txt}}}
  f: {type: azure_file, account_name: acct, file_share_name: share}
"#,
    );
    assert!(ws.warnings.is_empty(), "{:?}", ws.warnings);
    let w = ws.value;
    assert_eq!(w.default_datastore.as_deref(), Some("l"));
    let types: Vec<(&str, &str)> = w
        .datastores
        .iter()
        .map(|(n, d)| (n.as_str(), d.type_name()))
        .collect();
    assert_eq!(
        types,
        [
            ("b", "azure_blob"),
            ("f", "azure_file"),
            ("g", "azure_data_lake_gen2"),
            ("l", "local")
        ]
    );
    match &w.datastores["b"] {
        Datastore::AzureBlob {
            account_name,
            container_name,
            endpoint,
            protocol,
            credentials,
        } => {
            assert_eq!(
                (account_name.as_str(), container_name.as_str()),
                ("acct", "c")
            );
            assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:10000/acct"));
            assert_eq!(protocol.as_deref(), Some("https"));
            assert_eq!(
                credentials.account_key,
                Some(Secret::Env { env: "KEY".into() })
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.datastores["g"]
            .credentials()
            .and_then(|c| c.sas_token.clone()),
        Some(Secret::File {
            file: "sas.txt".into()
        })
    );
    assert_eq!(
        w.datastores["f"].credentials(),
        Some(&Credentials::default())
    );
    assert_eq!(w.datastores["l"].credentials(), None);
}

#[test]
fn a_literal_secret_is_accepted_and_warned_about_at_its_line() {
    let ws = workspace(
        "datastores:\n  b:\n    type: azure_blob\n    account_name: a\n    container_name: c\n    credentials: {account_key: s3cr3t}\n",
    );
    assert_eq!(ws.warnings.len(), 1);
    let w = &ws.warnings[0];
    assert_eq!(w.field, "datastores.b.credentials.account_key");
    assert_eq!(w.location.map(|l| l.line), Some(6));
    assert!(w.message.contains("prefer {env: NAME}"), "{w}");
    assert!(
        !w.to_string().contains("s3cr3t"),
        "the warning shows the secret"
    );
}

#[test]
fn workspace_refusals() {
    let problems = |text: &str| -> Vec<(String, String)> {
        parse_workspace(Path::new(WS_FILE), text)
            .map(|w| panic!("accepted: {:?}", w.value))
            .unwrap_or_else(|e| e.0)
            .into_iter()
            .map(|p| (p.field, p.message))
            .collect()
    };
    let blob = |creds: &str| {
        format!("datastores:\n  b: {{type: azure_blob, account_name: a, container_name: c, credentials: {creds}}}\n")
    };
    for (text, field, fragment) in [
        (
            "default_datastore: x\ndatastores:\n  l: {type: local, root: .}\n".to_string(),
            "default_datastore",
            "not under `datastores`",
        ),
        (
            "datastores:\n  l: {type: local, root: ' '}\n".into(),
            "datastores.l.root",
            "empty",
        ),
        (
            "datastores:\n  s: {type: gcs, bucket: b}\n".into(),
            "datastores.s.type",
            "unknown value `gcs`",
        ),
        (
            "datastores:\n  l: {type: local}\n".into(),
            "datastores.l",
            "missing field `root`",
        ),
        (
            "datastores:\n  l: {type: local, root: ., extra: 1}\n".into(),
            "datastores.l.extra",
            "unknown field",
        ),
        (
            blob("{account_key: a, sas_token: b}"),
            "datastores.b.credentials",
            "give one way",
        ),
        (
            blob("{tenant_id: t, client_secret: s}"),
            "datastores.b.credentials",
            "all three of tenant_id, client_id and client_secret",
        ),
        (
            blob("{account_key: {env: 'NOT OK'}}"),
            "datastores.b.credentials.account_key",
            "not a valid environment variable name",
        ),
        // The path loses its `credentials` step: serde buffers an internally tagged
        // enum, so serde_path_to_error sees the inner field at the datastore's level.
        (
            blob("{password: p}"),
            "datastores.b.password",
            "unknown field",
        ),
        (
            "datastores: [a]\n".into(),
            "datastores",
            "expected a mapping",
        ),
        (
            "stores: {}\n".into(),
            "stores",
            "expected one of default_datastore, datastores, datastore_files",
        ),
    ] {
        let got = problems(&text);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        assert_eq!(got[0].0, field, "{text}");
        assert!(got[0].1.contains(fragment), "{text}: {}", got[0].1);
    }
}

#[test]
fn a_service_principal_with_all_three_is_accepted() {
    let ws = workspace(
        "datastores:\n  b: {type: azure_blob, account_name: a, container_name: c, credentials: {tenant_id: t, client_id: i, client_secret: {env: S}}}\n",
    );
    let c = ws.value.datastores["b"].credentials().unwrap().clone();
    assert_eq!(
        (c.tenant_id.as_deref(), c.client_id.as_deref()),
        (Some("t"), Some("i"))
    );
    let secrets: Vec<&str> = c.secrets().into_iter().map(|(k, _)| k).collect();
    assert_eq!(secrets, ["client_secret"]);
}

#[test]
fn datastore_files_are_read_relative_to_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("stores")).unwrap();
    std::fs::write(
        dir.path().join("stores/a.yml"),
        "name: a\ntype: azure_blob\naccount_name: acct\ncontainer_name: c\ncredentials: {account_key: {env: K}}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("stores/notes.txt"), "not a datastore").unwrap();
    let file = dir.path().join("workspace.yaml");
    let ws = parse_workspace(&file, "default_datastore: a\ndatastore_files: [stores]\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ws.value.datastores.keys().collect::<Vec<_>>(), ["a"]);
    // A name defined twice is refused, naming the file.
    let err = parse_workspace(
        &file,
        "datastore_files: [stores/a.yml]\ndatastores:\n  a: {type: local, root: .}\n",
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].field, "datastore_files[0]");
    assert!(err.0[0].message.contains("already defined"), "{err}");
    let err = parse_workspace(&file, "datastore_files: [missing.yml]\n").unwrap_err();
    assert!(
        err.0[0].message.contains("cannot read the datastore file"),
        "{err}"
    );
}

#[test]
fn only_download_inputs_are_sharded() {
    assert!(rules(&with(
        "inputs:\n  x: {path: a, mode: download, shard: by_file}\n"
    ))
    .is_empty());
    only(
        &rules(&with(
            "inputs:\n  x: {path: a, mode: mount, shard: by_file}\n",
        )),
        "inputs.x.shard",
        "only download inputs are sharded",
    );
    only(
        &rules(&with(
            "outputs:\n  x: {path: a, mode: upload, shard: by_file}\n",
        )),
        "outputs.x.shard",
        "only download inputs are sharded",
    );
}

#[test]
fn a_distribution_starts_at_least_one_process_on_at_least_one_node() {
    let ok =
        with("distribution: {type: pytorch, process_count_per_instance: 2, instance_count: 3}\n");
    assert!(rules(&ok).is_empty());
    assert_eq!(
        spec(&ok).distribution.unwrap().process_count_per_instance,
        2
    );
    only(
        &rules(&with(
            "distribution: {type: mpi, process_count_per_instance: 0}\n",
        )),
        "distribution.process_count_per_instance",
        "at least 1",
    );
    // Its processes may run in the job's image, one container each.
    assert!(rules(&with(
        "distribution: {type: pytorch}\ncontainer: {image: x}\n"
    ))
    .is_empty());
    assert!(job(&with("distribution: {type: ray}\n")).is_err());
}

#[test]
fn an_input_written_back_has_no_upload_on() {
    let s = spec("name: j\ncommand: [x]\ninputs:\n  a: {path: x, mode: download}\n");
    let yaml = serde_yaml::to_string(&s).unwrap();
    assert!(!yaml.contains("upload_on"), "{yaml}");
    let s =
        spec("name: j\ncommand: [x]\noutputs:\n  o: {path: y, mode: upload, upload_on: success}\n");
    let yaml = serde_yaml::to_string(&s).unwrap();
    assert!(yaml.contains("upload_on: success"), "{yaml}");
}

#[test]
fn sync_is_for_upload_outputs_uploaded_whatever_the_end() {
    let ok = with("outputs:\n  ckpt: {path: a, mode: upload, sync: 2s}\nkeep_run_dir: true\n");
    assert!(rules(&ok).is_empty());
    let s = spec(&ok);
    assert_eq!(
        s.outputs["ckpt"].sync.map(|d| d.0),
        Some(std::time::Duration::from_secs(2))
    );
    assert!(s.keep_run_dir);
    only(
        &rules(&with("inputs:\n  x: {path: a, mode: download, sync: 2s}\n")),
        "inputs.x.sync",
        "only upload outputs sync",
    );
    only(
        &rules(&with("outputs:\n  x: {path: a, mode: upload, sync: 0s}\n")),
        "outputs.x.sync",
        "longer than zero",
    );
    only(
        &rules(&with(
            "outputs:\n  x: {path: a, mode: upload, sync: 1m, upload_on: success}\n",
        )),
        "outputs.x.sync",
        "needs `upload_on: always`",
    );
    // Every problem at once, with a near miss named.
    let both = refused(&with(
        "outputs:\n  x: {path: a, mode: upload, synk: 1m}\n  y: {path: b, mode: upload, sync: soon}\n",
    ));
    assert!(
        both.iter()
            .any(|p| p.field == "outputs.x.synk" && p.message.contains("sync")),
        "{both:?}"
    );
    assert!(both.iter().any(|p| p.field == "outputs.y.sync"), "{both:?}");
}

#[test]
fn restore_is_on_with_sync_and_for_upload_outputs_only() {
    let s = spec(&with(
        "outputs:\n  ckpt: {path: a, mode: upload, sync: 2s}\n  off: {path: b, mode: upload, sync: 2s, restore: false}\n  asked: {path: c, mode: upload, restore: true}\n  plain: {path: d, mode: upload}\n",
    ));
    let restores = |n: &str| s.outputs[n].restores();
    assert!(restores("ckpt") && restores("asked"));
    assert!(!restores("off") && !restores("plain"));
    only(
        &rules(&with(
            "inputs:\n  x: {path: a, mode: download, restore: true}\n",
        )),
        "inputs.x.restore",
        "only upload outputs are restored",
    );
}

#[test]
fn a_sha256_is_64_hex_digits_on_a_web_input() {
    let good = "a".repeat(64);
    let ok = with(&format!(
        "inputs:\n  f: {{url: \"https://example.org/f.csv\", mode: download, sha256: {good}}}\n"
    ));
    assert!(rules(&ok).is_empty(), "{:#?}", rules(&ok));
    only(
        &rules(&with(
            "inputs:\n  f: {url: \"https://example.org/f.csv\", mode: download, sha256: abc}\n",
        )),
        "inputs.f.sha256",
        "64 hex digits",
    );
    only(
        &rules(&with(&format!(
            "inputs:\n  f: {{datastore: local, path: f.csv, mode: download, sha256: {good}}}\n"
        ))),
        "inputs.f.sha256",
        "http(s):// url",
    );
}
