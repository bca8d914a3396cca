//! Azure ML's own files, run as they are: SDK-written `.runconfig` files and v2
//! command jobs / datastore files from Azure/azureml-examples (tests/fixtures/aml),
//! planned with exact paths and variables, and run end to end on a `type: local`
//! datastore and on an Azure Blob datastore (a private Azurite).

use crate::common::azurite::{Azurite, KEY, KEY_FROM_ENV};
use crate::common::fuse::fuse_ready_or;
use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;

fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures/aml").join(rel)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// The plan's environment as a sorted map.
fn env_of(plan: &Value) -> BTreeMap<String, String> {
    plan["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn ignored_keys(plan: &Value) -> Vec<String> {
    plan["import"]["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

/// The runconfig with every mode: exact variable names, paths and substituted arguments.
#[test]
fn runconfig_modes_plan_exactly() {
    let s = Scratch::new();
    let root = s.path();
    std::fs::create_dir_all(root.join("blob/datasets/mnist")).unwrap();
    std::fs::create_dir_all(root.join("scratch")).unwrap();
    let ws = s.write(
        "workspace.yaml",
        r#"default_datastore: workspaceblobstore
datastores:
  workspaceblobstore: {type: local, root: ./blob}
  scratch: {type: local, root: ./scratch}
"#,
    );
    let project = root.join("project");
    std::fs::create_dir_all(project.join(".azureml")).unwrap();
    let job = project.join(".azureml/modes.runconfig");
    std::fs::copy(fixture("runconfig/modes.runconfig"), &job).unwrap();
    let run = s.run_dir();
    let r = |p: &str| format!("{}/{p}", run.display());
    let b = |p: &str| format!("{}/blob/{p}", root.display());

    let plan = plan_json(
        &job,
        &[
            "--workspace",
            ws.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
            "--run-id",
            "r1",
        ],
    );
    assert_eq!(
        strings(&plan["command"]),
        [
            "python".to_string(),
            "train.py".into(),
            "--train".into(),
            b("datasets/mnist"),
            format!("--vocab={}", r("code/vocab.txt")),
            "--cache".into(),
            "/tmp/stagehand-cache/index".into(),
            "--scratch".into(),
            format!("{}/scratch", root.display()),
            "--extra".into(),
            r("inputs/0c5d2e4f6a7b8c9d0e1f2a3b4c5d6e7f/extra"),
            "--model".into(),
            r("code/outputs/model"),
            format!("--logs={}", r("outputs/logs/run.log")),
            "--epochs".into(),
            "3".into(),
        ]
    );
    let env = env_of(&plan);
    let expected: BTreeMap<String, String> = [
        (
            "AZUREML_DATAREFERENCE_0c5d2e4f6a7b8c9d0e1f2a3b4c5d6e7f",
            r("inputs/0c5d2e4f6a7b8c9d0e1f2a3b4c5d6e7f/extra"),
        ),
        ("AZUREML_DATAREFERENCE_cache", "/tmp/stagehand-cache".into()),
        ("AZUREML_DATAREFERENCE_logs", r("outputs/logs")),
        ("AZUREML_DATAREFERENCE_model", r("code/outputs/model")),
        (
            "AZUREML_DATAREFERENCE_scratch",
            format!("{}/scratch", root.display()),
        ),
        ("AZUREML_DATAREFERENCE_train", b("datasets/mnist")),
        ("AZUREML_DATAREFERENCE_vocab", r("code/vocab.txt")),
        ("LR", "0.1".into()),
        ("STAGEHAND_JOB_NAME", "modes".into()),
        ("STAGEHAND_RUN_DIR", run.display().to_string()),
        ("STAGEHAND_RUN_ID", "r1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(env, expected);
    assert_eq!(plan["working_dir"], r("code"));
    assert_eq!(
        plan["code"]["local_source"],
        project.display().to_string(),
        "the project folder, parent of .azureml"
    );
    // overwrite both ways, default false.
    let by_name = |list: &str, n: &str| {
        plan[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("inputs", "cache")["overwrite"], true);
    assert_eq!(by_name("inputs", "vocab")["overwrite"], false);
    assert_eq!(by_name("outputs", "model")["overwrite"], true);
    assert_eq!(by_name("outputs", "logs")["overwrite"], false);
    assert_eq!(by_name("inputs", "cache")["path"], "cache");
    assert_eq!(plan["import"]["format"], "runconfig");
    let ignored = ignored_keys(&plan);
    for k in ["spark", "hdi", "mpi", "amlcompute", "pytorch", "tensorflow"] {
        assert_eq!(
            ignored.iter().filter(|i| *i == k).count(),
            1,
            "{k} reported once: {ignored:?}"
        );
    }

    // Forcing the format gives the same plan; the text plan shows the mapping.
    let forced = plan_json(
        &job,
        &[
            "--format",
            "runconfig",
            "--workspace",
            ws.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
            "--run-id",
            "r1",
        ],
    );
    assert_eq!(forced["command"], plan["command"]);
    let out = stagehand(&[
        os("plan"),
        job.as_os_str(),
        os("-w"),
        ws.as_os_str(),
        os("--run-dir"),
        run.as_os_str(),
    ]);
    let (so, _) = expect_code(&out, 0);
    assert!(
        so.contains("imported from")
            && so.contains("dataReferences.scratch")
            && so.contains("named after it"),
        "{so}"
    );
    assert!(
        so.contains("\nignored (accepted, no effect here)\n") && so.contains("  spark "),
        "{so}"
    );
}

/// The two samples that came from Microsoft's SDK plan as the SDK defines them.
#[test]
fn sdk_samples_plan() {
    let s = Scratch::new();
    let ws = s.write(
        "workspace.yaml",
        r#"datastores:
  workspaceblobstore: {type: local, root: ./blob}
  datastore2: {type: local, root: ./d2}
  datastore3: {type: local, root: ./d3}
  models: {type: local, root: ./models}
"#,
    );
    std::fs::create_dir_all(s.path().join("blob/bar")).unwrap();
    let run = s.run_dir();
    let r = |p: &str| format!("{}/{p}", run.display());
    let args = [
        "--workspace",
        ws.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--run-id",
        "r1",
    ];

    let train = plan_json(&fixture("runconfig/train.runconfig"), &args);
    assert_eq!(
        strings(&train["command"]),
        [
            "python",
            "train.py",
            "--data_dir",
            &format!("{}/blob/bar", s.path().display()),
            "--lr",
            "0.1"
        ]
    );
    let env = env_of(&train);
    assert_eq!(env["AZUREML_DATAREFERENCE_foo"], r("code/foo_local"));
    assert_eq!(env["AZUREML_DATAREFERENCE_bar_out"], r("code/bar.pkl"));
    assert_eq!(env["EXAMPLE_ENV_VAR"], "EXAMPLE_VALUE");
    assert_eq!(train["runner"], "process");
    let bar_out = &train["outputs"][0];
    assert_eq!(
        (bar_out["is_file"].clone(), bar_out["path"].clone()),
        (Value::Bool(true), Value::from("outputs/bar.pkl"))
    );

    let score = plan_json(&fixture("runconfig/score.runconfig"), &args);
    assert_eq!(
        strings(&score["command"]),
        [
            "bash",
            "-c",
            // A containerised job sees the run folder at its container path.
            &format!(
                "python score.py --model {} --out={}/out.csv",
                "/mnt/stagehand/run/code/model.pkl", "/mnt/stagehand/run/code/outputs/preds"
            )
        ]
    );
    assert_eq!(score["runner"], "container");
    assert_eq!(score["container"]["image"], "python:3.11-slim");
    assert_eq!(score["container"]["shm_size"], "2g");
    assert_eq!(score["timeout_secs"], 3600.0);
    assert_eq!(env_of(&score)["BATCH_SIZE"], "64");
}

/// Docker enabled with a time limit; `command` instead of `script`.
#[test]
fn docker_and_command_runconfigs_plan() {
    let s = Scratch::new();
    let ws = s.write(
        "workspace.yaml",
        r#"datastores:
  workspaceblobstore: {type: local, root: ./blob}
"#,
    );
    let run = s.run_dir();
    let args = [
        "--workspace",
        ws.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ];
    let docker = plan_json(&fixture("runconfig/docker.runconfig"), &args);
    assert_eq!(docker["container"]["image"], "python:3.11-slim");
    assert_eq!(docker["container"]["shm_size"], "4g");
    assert_eq!(docker["timeout_secs"], 5400.0);
    assert_eq!(
        strings(&docker["command"])[..3],
        ["/usr/local/bin/python", "src/train.py", "--data"]
    );

    let command = plan_json(&fixture("runconfig/command.runconfig"), &args);
    let line = &strings(&command["command"])[2];
    assert_eq!(
        line,
        &format!(
            "python prep.py --in {r}/inputs/raw/raw --out {r}/outputs/clean && echo done",
            r = run.display()
        )
    );
}

/// A project as Azure ML users have it: `.azureml/runnable.runconfig` beside the script,
/// and its data in `data/`; returns the runconfig.
fn runnable_code(s: &Scratch, config: &str, script: Option<(&str, &str)>) -> PathBuf {
    let project = s.path().join("project");
    std::fs::create_dir_all(project.join(".azureml")).unwrap();
    let job = project.join(".azureml").join(config);
    std::fs::copy(fixture(&format!("runconfig/{config}")), &job).unwrap();
    if let Some((name, text)) = script {
        std::fs::write(project.join(name), text).unwrap();
    }
    s.write("data/in/names.txt", "Ada\nGrace\n");
    s.write("data/in/folder/a.txt", "a");
    s.write("data/in/folder/b.txt", "b");
    job
}

/// [`runnable_code`] with a workspace whose datastore `local` is the `data/` folder.
fn runnable_project(s: &Scratch, config: &str, script: Option<(&str, &str)>) -> (PathBuf, PathBuf) {
    let job = runnable_code(s, config, script);
    let ws = s.write(
        "workspace.yaml",
        r#"default_datastore: local
datastores:
  local: {type: local, root: ./data}
"#,
    );
    (job, ws)
}

/// Whether the mount inputs in `file` will be mounted: where FUSE cannot be used
/// (outside CI) they become downloads so the rest of the job is still checked.
fn mounts(file: &std::path::Path, mount: &str) -> bool {
    if fuse_ready_or("the mount inputs are downloaded instead") {
        return true;
    }
    let text = std::fs::read_to_string(file).unwrap();
    let changed = text.replace(&format!("mode: {mount}"), "mode: download");
    assert_ne!(text, changed, "no mount in {}", file.display());
    std::fs::write(file, changed).unwrap();
    false
}

/// Checks that input `name` was mounted (when FUSE is usable): staged as a mount that
/// moved no bytes.
fn check_mounted(mounted: bool, events: &[Event], name: &str) {
    if !mounted {
        return;
    }
    assert_eq!(stage_started(events, name).mode, "mount");
    let done = stage_finished(events, name);
    assert_eq!(done.bytes, 0, "{done:?}");
}

/// [`runnable_code`] with its data in a container of `az` and a workspace whose datastore
/// `local` (the name the runconfig uses) is that container; and whether it mounts.
fn runnable_on_azurite(
    s: &Scratch,
    az: &Azurite,
    config: &str,
    script: Option<(&str, &str)>,
) -> (PathBuf, PathBuf, bool) {
    let job = runnable_code(s, config, script);
    let mounted = mounts(&job, "mount");
    az.mkcontainer(&["data"]);
    az.upload_tree(&s.path().join("data"), "data", "");
    let ws = az.workspace(s, "workspace.yaml", "local", "data", KEY_FROM_ENV);
    (job, ws, mounted)
}

const JOB_PY: &str = r#"
import argparse, os
p = argparse.ArgumentParser()
for a in ("--names", "--folder", "--result", "--single"):
    p.add_argument(a)
a = p.parse_args()
# As on Azure ML: a relative pathOnCompute is relative to where the script runs.
assert os.path.abspath("names.txt") == a.names, (os.getcwd(), a.names)
assert os.environ["AZUREML_DATAREFERENCE_names"] == a.names
names = open("names.txt").read().split()
with open(os.path.join(a.result, "greeting.txt"), "w") as f:
    for n in names:
        f.write("%s, %s!\n" % (os.environ["GREETING"], n))
with open(a.single, "w") as f:
    f.write(",".join(sorted(os.listdir(a.folder))) + "\n")
print("job.py done")
"#;

#[test]
fn runnable_runconfig_runs_and_its_uploads_land() {
    let s = Scratch::new();
    let (job, ws) = runnable_project(&s, "runnable.runconfig", Some(("job.py", JOB_PY)));
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .output()
        .unwrap();
    let (so, _) = expect_code(&out, 0);
    assert!(so.contains("job.py done"), "{so}");
    let data = s.path().join("data");
    assert_eq!(
        std::fs::read_to_string(data.join("out/result/greeting.txt")).unwrap(),
        "Hello, Ada!\nHello, Grace!\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("out/single.txt")).unwrap(),
        "a.txt,b.txt\n"
    );
    assert_eq!(finished(&s.events()).status, Status::Succeeded);
    // The project folder itself is untouched: the job ran in a copy.
    assert!(!s.path().join("project/names.txt").exists());
}

#[test]
fn runnable_command_runconfig_runs() {
    let s = Scratch::new();
    let (job, ws) = runnable_project(&s, "runnable-command.runconfig", None);
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .output()
        .unwrap();
    expect_code(&out, 0);
    let data = s.path().join("data");
    // `local.as_mount()`: the datastore's root, named after the datastore.
    assert_eq!(
        std::fs::read_to_string(data.join("out/copy/names.txt")).unwrap(),
        "Ada\nGrace\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("out/copy/stage.txt")).unwrap(),
        "command\n"
    );
}

/// The same runconfig on an Azure Blob datastore: download, mount (FUSE) and both
/// uploads go through Azurite, and the uploaded blobs are exactly what the script wrote.
#[test]
fn runnable_runconfig_runs_against_azurite_and_its_uploads_land() {
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    let (job, ws, mounted) =
        runnable_on_azurite(&s, &az, "runnable.runconfig", Some(("job.py", JOB_PY)));
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .env("TEST_AZ_KEY", KEY)
        .output()
        .unwrap();
    let (so, _) = expect_code(&out, 0);
    assert!(so.contains("job.py done"), "{so}");
    let events = s.events();
    assert_eq!(finished(&events).status, Status::Succeeded);
    check_mounted(mounted, &events, "folder");
    let uploaded: Vec<String> = az.sha256s("data", "out/").into_keys().collect();
    assert_eq!(uploaded, ["out/result/greeting.txt", "out/single.txt"]);
    assert_eq!(
        az.get("data", "out/result/greeting.txt"),
        "Hello, Ada!\nHello, Grace!\n"
    );
    assert_eq!(az.get("data", "out/single.txt"), "a.txt,b.txt\n");
}

/// `command` instead of `script`, on Azure: the datastore's root is mounted (named after
/// the datastore) and the copy uploads.
#[test]
fn runnable_command_runconfig_runs_against_azurite() {
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    let (job, ws, mounted) = runnable_on_azurite(&s, &az, "runnable-command.runconfig", None);
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .env("TEST_AZ_KEY", KEY)
        .output()
        .unwrap();
    expect_code(&out, 0);
    check_mounted(mounted, &s.events(), "local");
    let uploaded: Vec<String> = az.sha256s("data", "out/").into_keys().collect();
    assert_eq!(uploaded, ["out/copy/names.txt", "out/copy/stage.txt"]);
    assert_eq!(az.get("data", "out/copy/names.txt"), "Ada\nGrace\n");
    assert_eq!(az.get("data", "out/copy/stage.txt"), "command\n");
}

#[test]
fn convert_prints_a_native_job_that_plans_the_same() {
    let s = Scratch::new();
    let (job, ws) = runnable_project(&s, "runnable-command.runconfig", None);
    let out = stagehand(&[os("convert"), job.as_os_str()]);
    let (so, _) = expect_code(&out, 0);
    assert!(so.starts_with("# Converted by stagehand from "), "{so}");
    assert!(so.contains("# ignored: spark:"), "{so}");
    // Written where the runconfig is, so its relative paths mean the same.
    let native = job.with_file_name("converted.yaml");
    std::fs::write(&native, &so).unwrap();
    let run = s.run_dir();
    let args = [
        "--workspace",
        ws.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--run-id",
        "r1",
    ];
    let a = plan_json(&job, &args);
    let mut b = plan_json(&native, &args);
    assert!(b.get("import").is_none());
    b["job"] = a["job"].clone();
    b["environment"]["STAGEHAND_JOB_NAME"] = a["environment"]["STAGEHAND_JOB_NAME"].clone();
    assert_eq!(a["command"], b["command"]);
    assert_eq!(a["environment"], b["environment"]);
    assert_eq!(a["inputs"], b["inputs"]);
    assert_eq!(a["outputs"], b["outputs"]);
}

const V2_JOB: &str = r#"$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: >-
  sh run.sh --names ${{inputs.names}} --folder ${{inputs.folder}}
  --greeting ${{inputs.greeting}} --times ${{inputs.times}} --out ${{outputs.result}}
code: ./src
environment_variables:
  PUNCT: "!"
compute: azureml:cpu-cluster
inputs:
  names:
    type: uri_file
    path: azureml://datastores/local/paths/in/names.txt
    mode: download
  folder:
    type: uri_folder
    path: azureml://subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/workspaces/ws/datastores/local/paths/in/folder
    mode: ro_mount
  greeting: Hello
  times: 2
outputs:
  result:
    type: uri_folder
    path: azureml://datastores/local/paths/out/${{name}}/
    mode: upload
  default_out:
"#;

const RUN_SH: &str = r#"set -eu
while [ $# -gt 0 ]; do
  case $1 in
    --names) names=$2; shift 2 ;;
    --folder) folder=$2; shift 2 ;;
    --greeting) greeting=$2; shift 2 ;;
    --times) times=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$AZURE_ML_INPUT_names" = "$names" ] || { echo "AZURE_ML_INPUT_names differs" >&2; exit 3; }
[ "$AZURE_ML_INPUT_folder" = "$folder" ] || { echo "AZURE_ML_INPUT_folder differs" >&2; exit 3; }
[ "$AZURE_ML_OUTPUT_result" = "$out" ] || { echo "AZURE_ML_OUTPUT_result differs" >&2; exit 3; }
[ "$AZURE_ML_INPUT_times" = 2 ] || { echo "AZURE_ML_INPUT_times is not 2" >&2; exit 3; }
i=0
while [ $i -lt "$times" ]; do
  while IFS= read -r n; do echo "$greeting, $n$PUNCT"; done <"$names"
  i=$((i + 1))
done >"$out/greeting.txt"
ls "$folder" >"$AZURE_ML_OUTPUT_default_out/listing.txt"
env | grep '^AZURE_ML_' | LC_ALL=C sort >"$AZURE_ML_OUTPUT_default_out/env.txt"
"#;

/// The v2 job, its code and its data in `v2/data`; returns the job file.
fn v2_code(s: &Scratch) -> PathBuf {
    s.write("v2/src/run.sh", RUN_SH);
    s.write("v2/data/in/names.txt", "Ada\nGrace\n");
    s.write("v2/data/in/folder/a.txt", "a");
    s.write("v2/job.yml", V2_JOB)
}

/// [`v2_code`] with a workspace beside the job whose datastore `local` is `v2/data`.
fn v2_project(s: &Scratch) -> PathBuf {
    s.write(
        "v2/workspace.yaml",
        r#"default_datastore: local
datastores:
  local: {type: local, root: ./data}
"#,
    );
    v2_code(s)
}

#[test]
fn v2_command_job_plans_exactly() {
    let s = Scratch::new();
    let job = v2_project(&s);
    let run = s.run_dir();
    let r = |p: &str| format!("{}/{p}", run.display());
    let plan = plan_json(
        &job,
        &["--run-dir", run.to_str().unwrap(), "--run-id", "r1"],
    );
    let data = s.path().join("v2/data");
    assert_eq!(
        strings(&plan["command"]),
        [
            "bash".to_string(),
            "-c".into(),
            format!(
                "sh run.sh --names {} --folder {} --greeting Hello --times 2 --out {}",
                r("inputs/names/names.txt"),
                data.join("in/folder").display(),
                r("outputs/result")
            ),
        ]
    );
    let env = env_of(&plan);
    for (k, v) in [
        ("AZUREML_DATAREFERENCE_names", r("inputs/names/names.txt")),
        ("AZURE_ML_INPUT_names", r("inputs/names/names.txt")),
        (
            "AZURE_ML_INPUT_folder",
            data.join("in/folder").display().to_string(),
        ),
        ("AZURE_ML_INPUT_greeting", "Hello".into()),
        ("AZURE_ML_INPUT_times", "2".into()),
        ("AZURE_ML_OUTPUT_result", r("outputs/result")),
        ("AZUREML_DATAREFERENCE_result", r("outputs/result")),
        ("AZURE_ML_OUTPUT_default_out", r("outputs/default_out")),
        ("PUNCT", "!".into()),
    ] {
        assert_eq!(env.get(k), Some(&v), "{k} in {env:#?}");
    }
    let outputs = plan["outputs"].as_array().unwrap();
    let path_of = |n: &str| outputs.iter().find(|o| o["name"] == n).unwrap()["path"].clone();
    assert_eq!(path_of("result"), "out/r1");
    assert_eq!(path_of("default_out"), "azureml/r1/default_out");
    assert_eq!(plan["import"]["format"], "aml-job");
    assert_eq!(ignored_keys(&plan), ["compute"]);
}

#[test]
fn v2_command_job_runs_and_its_uploads_land() {
    let s = Scratch::new();
    let job = v2_project(&s);
    let out = s.run_cmd(&job).arg("--run-id").arg("r2").output().unwrap();
    expect_code(&out, 0);
    let data = s.path().join("v2/data");
    assert_eq!(
        std::fs::read_to_string(data.join("out/r2/greeting.txt")).unwrap(),
        "Hello, Ada!\nHello, Grace!\nHello, Ada!\nHello, Grace!\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("azureml/r2/default_out/listing.txt")).unwrap(),
        "a.txt\n"
    );
}

/// The v2 job on Azure: `download` and `ro_mount` (FUSE) inputs from Azurite, the
/// `upload` output and the default output land there, and the job saw exactly the
/// AZURE_ML_ variables Azure ML sets.
#[test]
fn v2_command_job_runs_against_azurite_and_its_uploads_land() {
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    let job = v2_code(&s);
    let mounted = mounts(&job, "ro_mount");
    az.mkcontainer(&["data"]);
    az.upload_tree(&s.path().join("v2/data"), "data", "");
    // Beside the job, where it is found without --workspace.
    az.workspace(&s, "v2/workspace.yaml", "local", "data", KEY_FROM_ENV);
    let out = s
        .run_cmd(&job)
        .arg("--run-id")
        .arg("r2")
        .env("TEST_AZ_KEY", KEY)
        .output()
        .unwrap();
    expect_code(&out, 0);
    check_mounted(mounted, &s.events(), "folder");
    let uploaded: Vec<String> = az
        .sha256s("data", "")
        .into_keys()
        .filter(|n| !n.starts_with("in/"))
        .collect();
    assert_eq!(
        uploaded,
        [
            "azureml/r2/default_out/env.txt",
            "azureml/r2/default_out/listing.txt",
            "out/r2/greeting.txt"
        ]
    );
    assert_eq!(
        az.get("data", "out/r2/greeting.txt"),
        "Hello, Ada!\nHello, Grace!\nHello, Ada!\nHello, Grace!\n"
    );
    assert_eq!(
        az.get("data", "azureml/r2/default_out/listing.txt"),
        "a.txt\n"
    );
    let r = |p: &str| format!("{}/{p}", s.run_dir().display());
    assert_eq!(
        az.get("data", "azureml/r2/default_out/env.txt"),
        format!(
            "AZURE_ML_INPUT_folder={}\nAZURE_ML_INPUT_greeting=Hello\nAZURE_ML_INPUT_names={}\nAZURE_ML_INPUT_times=2\nAZURE_ML_OUTPUT_default_out={}\nAZURE_ML_OUTPUT_result={}\n",
            r("inputs/folder/folder"),
            r("inputs/names/names.txt"),
            r("outputs/default_out"),
            r("outputs/result"),
        )
    );
}

/// Content only the Azure ML service can resolve: exit 64 and an error naming the key.
#[test]
fn service_only_content_is_refused_naming_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "v2/jobs/hello-pipeline.yml",
            "$schema:",
            "need the Azure ML service",
        ),
        ("v2/datastore/blob.yml", "$schema:", "datastore_files"),
    ];
    for (file, key, why) in cases {
        for cmd in ["plan", "validate", "run", "convert"] {
            let out = stagehand(&[os(cmd), fixture(file).as_os_str()]);
            let (_, se) = text(&out);
            assert_eq!(out.status.code(), Some(code::INVALID), "{cmd} {file}: {se}");
            assert!(se.contains(key) && se.contains(why), "{cmd} {file}: {se}");
        }
    }
    // A runconfig with dataset inputs, and one with an unknown mode.
    let s = Scratch::new();
    let bad = s.write(
        "bad.runconfig",
        r#"script: a.py
dataReferences:
  x:
    dataStoreName: s
    mode: stream
data:
  d: {dataLocation: {dataset: {id: abc}}}
"#,
    );
    let out = stagehand(&[os("validate"), bad.as_os_str()]);
    let (_, se) = expect_code(&out, code::INVALID);
    assert!(
        se.contains("bad.runconfig:5:5: dataReferences.x.mode: unknown mode \"stream\""),
        "{se}"
    );
    assert!(
        se.contains(
            "bad.runconfig:6:1: data: dataset inputs refer to registered Azure ML datasets"
        ),
        "{se}"
    );
}

/// Problems found after import point at the key the person wrote.
#[test]
fn problems_name_the_source_keys() {
    let s = Scratch::new();
    let job = s.write(
        "x.runconfig",
        r#"script: a.py
arguments: [--in, $AZUREML_DATAREFERENCE_nope]
dataReferences:
  d:
    dataStoreName: missing
    pathOnDataStore: x
    mode: download
"#,
    );
    s.write(
        "workspace.yaml",
        r#"datastores:
  local: {type: local, root: .}
"#,
    );
    let out = stagehand(&[os("validate"), job.as_os_str()]);
    let (_, se) = expect_code(&out, code::INVALID);
    assert!(
        se.contains("x.runconfig:2:19: arguments[1]: refers to input or output \"nope\""),
        "{se}"
    );
    assert!(
        se.contains(
            "x.runconfig:5:5: dataReferences.d.dataStoreName: unknown datastore \"missing\""
        ),
        "{se}"
    );
}

/// v2 datastore files from azureml-examples load through `datastore_files`.
#[test]
fn v2_datastore_files_load_into_the_workspace() {
    let s = Scratch::new();
    for f in [
        "blob.yml",
        "blob-sas.yml",
        "blob-credless.yml",
        "adls-gen2.yml",
        "file.yml",
    ] {
        std::fs::copy(fixture(&format!("v2/datastore/{f}")), {
            std::fs::create_dir_all(s.path().join("datastores")).unwrap();
            s.path().join("datastores").join(f)
        })
        .unwrap();
    }
    s.write(
        "workspace.yaml",
        r#"default_datastore: blob_example
datastore_files: [datastores]
"#,
    );
    let job = s.write(
        "job.yml",
        r#"type: command
command: ls ${{inputs.a}} ${{inputs.b}}
inputs:
  a: {path: 'azureml://datastores/blob_sas_example/paths/x', mode: download}
  b: {path: 'azureml://datastores/adls_gen2_example/paths/y/', mode: download}
"#,
    );
    let out = stagehand(&[os("validate"), job.as_os_str()]);
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    // Literal secrets in those files are warned about, never printed.
    assert!(
        se.contains("a literal secret in the datastore file"),
        "{se}"
    );
    assert!(!se.contains("XXXxxxXXX"), "{se}");
}

/// `--format` forces a format; a native-looking file read as a runconfig says why not.
#[test]
fn format_can_be_forced() {
    let s = Scratch::new();
    let job = s.write(
        "job.yml",
        r#"command: echo hi
"#,
    );
    s.write(
        "workspace.yaml",
        r#"datastores: {}
"#,
    );
    let out = stagehand(&[os("validate"), job.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(code::INVALID),
        "detected as native: no name, command not a list"
    );
    let out = stagehand(&[
        os("validate"),
        job.as_os_str(),
        os("--format"),
        os("aml-job"),
    ]);
    expect_code(&out, 0);
    let out = stagehand(&[
        os("plan"),
        job.as_os_str(),
        os("--format"),
        os("json,native"),
    ]);
    assert_eq!(out.status.code(), Some(code::INVALID));
    let out = stagehand(&[
        os("plan"),
        job.as_os_str(),
        os("--format"),
        os("json"),
        os("--format"),
        os("text"),
    ]);
    let (_, se) = expect_code(&out, code::INVALID);
    assert!(se.contains("two output formats"), "{se}");
}

/// A run folder inside the project folder would be copied into itself: refused.
#[test]
fn run_folder_inside_the_code_folder_is_refused() {
    let s = Scratch::new();
    let (job, ws) = runnable_project(&s, "runnable-command.runconfig", None);
    let inside = s.path().join("project/runs/r1");
    let out = stagehand(&[
        os("plan"),
        job.as_os_str(),
        os("-w"),
        ws.as_os_str(),
        os("--run-dir"),
        inside.as_os_str(),
    ]);
    let (_, se) = expect_code(&out, code::INVALID);
    assert!(
        se.contains("sourceDirectoryDataStore: the run folder")
            && se.contains("is inside the code folder"),
        "{se}"
    );
}

/// What a person reads for an imported file: the plan text with its mapping, and the
/// error for service-only content (`cargo insta review` after a change).
#[test]
fn imported_texts() {
    let s = Scratch::new();
    let ws = s.write(
        "workspace.yaml",
        r#"datastores:
  workspaceblobstore: {type: local, root: ./blob}
  datastore2: {type: local, root: ./d2}
  datastore3: {type: local, root: ./d3}
"#,
    );
    std::fs::create_dir_all(s.path().join("blob/bar")).unwrap();
    std::fs::create_dir_all(s.path().join("project")).unwrap();
    let job = s.path().join("project/train.runconfig");
    std::fs::copy(fixture("runconfig/train.runconfig"), &job).unwrap();
    let out = stagehand(&[
        os("plan"),
        job.as_os_str(),
        os("-w"),
        ws.as_os_str(),
        os("--run-dir"),
        s.run_dir().as_os_str(),
        os("--run-id"),
        os("r1"),
    ]);
    let (so, _) = expect_code(&out, 0);
    let tmp = s.path().display().to_string();
    insta::assert_snapshot!("plan_train_runconfig", so.replace(&tmp, "[TMP]"));

    let job = s.path().join("hello-dataset.yml");
    std::fs::copy(fixture("v2/jobs/hello-dataset.yml"), &job).unwrap();
    let out = stagehand(&[os("plan"), job.as_os_str()]);
    let (_, se) = text(&out);
    assert_eq!(out.status.code(), Some(code::INVALID));
    insta::assert_snapshot!("error_hello_dataset", se.replace(&tmp, "[TMP]"));
}
