//! The v2 command-job importer key by key: what each key it maps becomes, each key it
//! ignores (with its reason), and each refusal (at the key the person wrote). The
//! azureml-examples fixtures are snapshotted whole: converted, or the problems they get.

use super::*;
use crate::job::Mode;

fn import_text(text: &str) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
    import(Path::new("job.yml"), text)
}

fn job(text: &str) -> (JobSpec, ImportReport) {
    let (job, report) = import_text(text).unwrap_or_else(|e| panic!("{e}"));
    (job.value, report)
}

/// A command job with `rest` after its command.
fn cmd(rest: &str) -> String {
    format!("type: command\ncommand: ls\n{rest}")
}

/// The problems of a refused job: (field, message).
fn refused(text: &str) -> Vec<(String, String)> {
    match import_text(text) {
        Ok((j, _)) => panic!("accepted: {:?}", j.value),
        Err(p) => p.0.into_iter().map(|p| (p.field, p.message)).collect(),
    }
}

/// The one problem of a refused job, which must be at `field` and say `fragment`.
fn refused_at(text: &str, field: &str, fragment: &str) {
    let r = refused(text);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, field, "{r:?}");
    assert!(r[0].1.contains(fragment), "{}", r[0].1);
}

fn mapped(report: &ImportReport, key: &str) -> String {
    report
        .mapped
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("{key} not mapped: {:?}", report.mapped))
        .became
        .clone()
}

fn ignored(report: &ImportReport, key: &str) -> String {
    let hits: Vec<_> = report.ignored.iter().filter(|i| i.key == key).collect();
    assert_eq!(hits.len(), 1, "{key}: {:?}", report.ignored);
    hits[0].reason.clone()
}

#[test]
fn the_azureml_examples_convert_as_snapshotted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/aml/v2/jobs");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 9, "fixtures missing: {names:?}");
    for file in names {
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = match import(&file, &text) {
            Ok((job, report)) => {
                let mut out = serde_yaml::to_string(&job.value).unwrap();
                out.push_str("--- mapped\n");
                for m in &report.mapped {
                    out.push_str(&format!("{} -> {}\n", m.key, m.became));
                }
                out.push_str("--- ignored\n");
                for i in &report.ignored {
                    out.push_str(&format!("{}: {}\n", i.key, i.reason));
                }
                out
            }
            Err(p) => format!("refused:\n{p}\n").replace(&dir.display().to_string(), "[FIXTURES]"),
        };
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(format!("v2_{stem}"), shown);
    }
}

// --- The kind of file -------------------------------------------------------------------

#[test]
fn only_command_jobs_are_run() {
    refused_at(
        "$schema: https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json\nname: d\n",
        "$schema",
        "list it under datastore_files",
    );
    refused_at(
        "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\ncommand: ls\n",
        "$schema",
        "is not a command job",
    );
    refused_at(
        "type: pipeline\ncommand: ls\n",
        "type",
        "pipeline jobs need the Azure ML service",
    );
    refused_at("type: command\n", "command", "missing");
    refused_at("type: command\ncommand: [ls]\n", "command", "as text");
    job("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ncommand: ls\n");
}

#[test]
fn the_name_is_the_jobs_or_the_files() {
    let (j, r) = job("type: command\nname: my job/1\ncommand: ls\n");
    assert_eq!(j.name, "my-job-1");
    assert_eq!(mapped(&r, "name"), "name: my-job-1");
    let (j, r) = job("type: command\ncommand: ls\n");
    assert_eq!(j.name, "job");
    assert_eq!(mapped(&r, "(file name)"), "name: job");
    assert!(
        j.azure_ml_v2_variables,
        "the job gets AZURE_ML_INPUT_/OUTPUT_ variables"
    );
}

#[test]
fn the_command_is_a_shell_line_with_literals_substituted() {
    let (j, _) = job(
        "type: command\ncommand: run ${{inputs.n}} ${{inputs.s}} ${{inputs.d}} ${{outputs.o}} $AZUREML_DATAREFERENCE_d\ninputs:\n  n: 3\n  s: {type: string, value: hi}\n  d: {path: 'azureml://datastores/s/paths/p'}\noutputs:\n  o: {}\n",
    );
    assert_eq!(
        j.command,
        [
            "bash",
            "-c",
            "run 3 hi ${{inputs.d}} ${{outputs.o}} ${AZUREML_DATAREFERENCE_d}"
        ],
        "literals now, data references when the plan knows the paths"
    );
}

// --- Inputs -----------------------------------------------------------------------------

#[test]
fn literal_inputs_are_text_and_variables() {
    let (j, r) = job(&cmd(
        "inputs:\n  a: 42\n  b: true\n  c: {type: number, default: 0.5}\n  d: {type: integer, value: 7}\n  e: {type: boolean, value: false}\n",
    ));
    let env: Vec<(&str, &str)> = j
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("AZURE_ML_INPUT_a", "42"),
            ("AZURE_ML_INPUT_b", "True"),
            ("AZURE_ML_INPUT_c", "0.5"),
            ("AZURE_ML_INPUT_d", "7"),
            ("AZURE_ML_INPUT_e", "False"),
        ]
    );
    assert!(j.inputs.is_empty(), "literals are not data");
    assert!(mapped(&r, "inputs.a").starts_with("literal \"42\""));
    refused_at(
        &cmd("inputs:\n  a: {type: string}\n"),
        "inputs.a",
        "a string input needs a value",
    );
    refused_at(
        &cmd("inputs:\n  a: [1]\n"),
        "inputs.a",
        "expected a value, or a mapping",
    );
}

#[test]
fn data_inputs_by_mode_and_type() {
    let (j, r) = job(&cmd(r#"inputs:
  m: {type: uri_folder, path: "azureml://datastores/s/paths/a/"}
  d: {type: uri_file, path: "azureml://datastores/s/paths/b.csv", mode: download}
  t: {type: mlflow_model, path: "azureml://datastores/s/paths/model", mode: ro_mount}
  u: {path: "https://acct.blob.core.windows.net/c/x", mode: direct}
"#));
    assert_eq!(
        (
            j.inputs["m"].datastore.as_deref(),
            j.inputs["m"].path.as_str(),
            j.inputs["m"].mode
        ),
        (Some("s"), "a/", Mode::Mount),
        "ro_mount is the default"
    );
    assert_eq!(j.inputs["d"].mode, Mode::Download);
    assert!(!j.inputs["d"].overwrite);
    assert_eq!(mapped(&r, "inputs.m"), "inputs.m: mount (ro_mount) s:a/");
    assert_eq!(
        mapped(&r, "inputs.t"),
        "inputs.t: mount (ro_mount) s:model, mlflow_model read as its folder"
    );
    assert!(
        !j.inputs.contains_key("u"),
        "a direct input is its URI as text"
    );
    assert_eq!(
        j.environment["AZURE_ML_INPUT_u"],
        "https://acct.blob.core.windows.net/c/x"
    );
    assert!(mapped(&r, "inputs.u").starts_with("direct: the URI"));
}

#[test]
fn input_refusals() {
    let at = |spec: &str| cmd(&format!("inputs:\n  x: {spec}\n"));
    refused_at(
        &at("{type: pickle, path: p}"),
        "inputs.x.type",
        "unknown input type \"pickle\"",
    );
    refused_at(&at("{type: uri_folder}"), "inputs.x.path", "missing");
    for mode in ["eval_mount", "eval_download"] {
        refused_at(
            &at(&format!(
                "{{type: mltable, path: 'azureml://datastores/s/paths/t', mode: {mode}}}"
            )),
            "inputs.x.mode",
            "mltable runtime",
        );
    }
    for mode in ["rw_mount", "upload"] {
        refused_at(
            &at(&format!(
                "{{path: 'azureml://datastores/s/paths/t', mode: {mode}}}"
            )),
            "inputs.x.mode",
            "is for outputs",
        );
    }
    refused_at(
        &at("{path: 'azureml://datastores/s/paths/t', mode: stream}"),
        "inputs.x.mode",
        "unknown mode \"stream\"",
    );
}

#[test]
fn where_data_can_be() {
    let at = |path: &str| cmd(&format!("inputs:\n  x: {{path: '{path}'}}\n"));
    // Short, long and default-datastore forms, and a datastore's root.
    for (uri, store, path) in [
        ("azureml://datastores/s/paths/a/b", Some("s"), "a/b"),
        (
            "azureml://subscriptions/0/resourcegroups/rg/workspaces/w/datastores/s/paths/a",
            Some("s"),
            "a",
        ),
        (
            "azureml://datastores/${{default_datastore}}/paths/a",
            None,
            "a",
        ),
        ("azureml://datastores/s/paths", Some("s"), ""),
        ("AzureML://Datastores/S/Paths/A", Some("S"), "A"),
    ] {
        let (j, _) = job(&at(uri));
        assert_eq!(
            (
                j.inputs["x"].datastore.as_deref(),
                j.inputs["x"].path.as_str()
            ),
            (store, path),
            "{uri}"
        );
    }
    // Read through the workspace when planned: a local path, a storage URL, an asset.
    let (j, r) = job(&at("./data"));
    assert_eq!(j.inputs["x"].local.as_deref(), Some("./data"));
    assert!(mapped(&r, "inputs.x").contains("nothing uploaded"));
    let (j, _) = job(&at("wasbs://c@acct.blob.core.windows.net/x"));
    assert_eq!(
        j.inputs["x"].url.as_deref(),
        Some("wasbs://c@acct.blob.core.windows.net/x")
    );
    for (uri, asset) in [
        ("azureml:iris:1", "iris:1"),
        ("azureml:iris@latest", "iris@latest"),
    ] {
        let (j, _) = job(&at(uri));
        assert_eq!(j.inputs["x"].asset.as_deref(), Some(asset));
        assert_eq!(
            (
                j.inputs["x"].datastore.as_deref(),
                j.inputs["x"].path.as_str()
            ),
            (None, "")
        );
    }
    for (uri, fragment) in [
        (
            "azureml://registries/r/data/d/versions/1",
            "an asset in an Azure ML registry",
        ),
        (
            "azureml://jobs/j/outputs/o",
            "another Azure ML job's output",
        ),
        ("azureml://locations/x", "an Azure ML asset URI"),
        ("azureml://datastores/s/other/a", "an Azure ML asset URI"),
        ("abfss://acct.dfs.core.windows.net/x", "or use mode: direct"),
        ("s3://bucket/x", "storage URL"),
    ] {
        refused_at(&at(uri), "inputs.x.path", fragment);
    }
}

#[test]
fn unknown_keys_of_data_are_ignored() {
    let (_, r) = job(&cmd(
        "inputs:\n  x: {path: 'azureml://datastores/s/paths/a', description: d}\n",
    ));
    assert_eq!(
        ignored(&r, "inputs.x.description"),
        "has no effect on where the data is"
    );
}

// --- Outputs ----------------------------------------------------------------------------

#[test]
fn outputs_upload_a_folder_the_job_writes() {
    let (j, r) = job(&cmd(r#"outputs:
  d: {}
  n:
  m: {type: uri_folder, path: "azureml://datastores/s/paths/models/${{name}}/${{output_name}}", mode: upload}
  f: {type: uri_file, path: "azureml://datastores/s/paths/metrics/m.json"}
  r: {type: uri_folder, path: "azureml://datastores/s/paths/x", name: reg, version: 2}
"#));
    let o = &j.outputs;
    assert_eq!(
        (o["d"].datastore.as_deref(), o["d"].path.as_str()),
        (None, "azureml/{run_id}/d"),
        "Azure ML's default output path"
    );
    assert_eq!(o["n"].path, "azureml/{run_id}/n");
    assert_eq!(
        o["m"].path, "models/{run_id}/m",
        "the placeholders in stagehand's words"
    );
    assert!(o.values().all(|d| d.mode == Mode::Upload && d.overwrite));
    assert_eq!(o["f"].path_on_compute.as_deref(), Some("outputs/f/m.json"));
    assert_eq!(o["m"].path_on_compute, None);
    assert_eq!(
        mapped(&r, "outputs.d"),
        "outputs.d: rw_mount → upload: a local folder the job writes, uploaded after it exits, to (default datastore):azureml/{run_id}/d (Azure ML's default output path), overwrite"
    );
    assert_eq!(
        mapped(&r, "outputs.m"),
        "outputs.m: upload, to s:models/{run_id}/m, overwrite"
    );
    for key in ["outputs.r.name", "outputs.r.version"] {
        assert!(ignored(&r, key).contains("not registered"));
    }
}

#[test]
fn direct_outputs_are_text() {
    let (j, _) = job(&cmd(
        "outputs:\n  o: {path: 'https://acct.blob.core.windows.net/c/o', mode: direct}\n",
    ));
    assert!(j.outputs.is_empty());
    assert_eq!(
        j.environment["AZURE_ML_OUTPUT_o"],
        "https://acct.blob.core.windows.net/c/o"
    );
}

#[test]
fn output_refusals() {
    let at = |spec: &str| cmd(&format!("outputs:\n  o: {spec}\n"));
    refused_at(
        &at("{mode: direct}"),
        "outputs.o.path",
        "a direct output passes its path",
    );
    refused_at(
        &at("{mode: ro_mount}"),
        "outputs.o.mode",
        "unknown output mode \"ro_mount\"",
    );
    refused_at(
        &at("{type: string}"),
        "outputs.o.type",
        "unknown output type \"string\"",
    );
    refused_at(&at("[a]"), "outputs.o", "expected a mapping");
    refused_at(
        &at("{path: 'https://a.blob.core.windows.net/c'}"),
        "outputs.o.path",
        "storage URL",
    );
    let r = refused(&at("{path: 'https://a.blob.core.windows.net/c'}"));
    assert!(
        !r[0].1.contains("mode: direct"),
        "direct is offered for inputs only"
    );
}

// --- Environment, code, limits, variables ----------------------------------------------

#[test]
fn the_environment_is_an_image_a_build_or_a_name() {
    let (j, r) = job(&cmd(
        "environment:\n  image: python:3.11\n  conda_file: env.yml\n  name: e\n  version: 1\n  extra: x\n",
    ));
    let c = j.container.expect("container");
    assert_eq!(c.image, "python:3.11");
    assert_eq!(c.build.unwrap().conda_file.as_deref(), Some("env.yml"));
    assert_eq!(
        mapped(&r, "environment.image"),
        "container.image: python:3.11"
    );
    assert!(mapped(&r, "environment.conda_file").contains("derived from environment.image"));
    assert_eq!(
        ignored(&r, "environment.name"),
        "only labels the environment"
    );
    assert_eq!(
        ignored(&r, "environment.version"),
        "only labels the environment"
    );
    assert!(ignored(&r, "environment.extra").contains("not an environment key"));
    // A name is left for the plan; a build context is built there.
    let (j, _) = job(&cmd("environment: azureml:sklearn:1\n"));
    assert_eq!(
        j.container.unwrap().environment.as_deref(),
        Some("azureml:sklearn:1")
    );
    let (j, _) = job(&cmd(
        "environment: {build: {path: docker, dockerfile_path: Dockerfile.gpu}}\n",
    ));
    let b = j.container.unwrap().build.unwrap();
    assert_eq!(
        (b.context.as_deref(), b.dockerfile.as_deref()),
        (Some("docker"), Some("Dockerfile.gpu"))
    );
    refused_at(
        &cmd("environment: azureml://registries/other/environments/x/versions/1\n"),
        "environment",
        "only the Azure ML service",
    );
    refused_at(
        &cmd("environment: < your environment name >\n"),
        "environment",
        "template placeholder",
    );
    refused_at(
        &cmd("environment: {build: {path: 'https://x/y.git'}}\n"),
        "environment.build.path",
        "remote build context",
    );
    refused_at(
        &cmd("environment: {conda_file: e.yml}\n"),
        "environment.image",
        "missing",
    );
    assert_eq!(job(&cmd("environment:\n")).0.container, None);
}

#[test]
fn a_file_environment_is_read_beside_the_job() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("env")).unwrap();
    std::fs::write(
        d.path().join("env/env.yml"),
        "name: e\nimage: python:3.11\nconda_file: conda.yml\n",
    )
    .unwrap();
    let file = d.path().join("job.yml");
    let (j, _) = import(&file, &cmd("environment: file:env/env.yml\n")).unwrap();
    let c = j.value.container.unwrap();
    assert_eq!(c.image, "python:3.11");
    assert_eq!(
        c.build.unwrap().conda_file.as_deref(),
        Some("env/conda.yml")
    );
    let err = import(&file, &cmd("environment: file:nothere.yml\n")).unwrap_err();
    assert_eq!(err.0[0].field, "environment");
}

#[test]
fn code_is_a_local_folder_or_on_a_datastore() {
    let (j, r) = job(&cmd("code: file:./src\n"));
    assert_eq!(j.code.unwrap().local.as_deref(), Some("./src"));
    assert!(mapped(&r, "code").starts_with("code.local: ./src"));
    let (j, _) = job(&cmd("code: azureml://datastores/s/paths/snap/1\n"));
    let code = j.code.unwrap();
    assert_eq!(
        (code.datastore.as_deref(), code.path.as_deref()),
        (Some("s"), Some("snap/1"))
    );
    refused_at(&cmd("code: azureml:src:1\n"), "code", "give a local folder");
    refused_at(
        &cmd("code: https://github.com/x/y\n"),
        "code",
        "is a URL; clone or download it",
    );
    refused_at(&cmd("code: [a]\n"), "code", "expected a folder");
}

#[test]
fn limits_timeout_is_the_timeout() {
    let (j, r) = job(&cmd("limits: {timeout: 120, max_trials: 3}\n"));
    assert_eq!(j.timeout, Some(SpecDuration(Duration::from_secs(120))));
    assert_eq!(mapped(&r, "limits.timeout"), "timeout: 120s");
    assert_eq!(
        ignored(&r, "limits.max_trials"),
        "only limits.timeout applies to one run"
    );
    refused_at(
        &cmd("limits: {timeout: 2h}\n"),
        "limits.timeout",
        "whole number of seconds",
    );
    refused_at(
        &cmd("limits: {timeout: 0}\n"),
        "limits.timeout",
        "whole number of seconds",
    );
}

#[test]
fn environment_variables_are_the_environment() {
    let (j, r) = job(&cmd("environment_variables: {A: x, N: 2}\n"));
    assert_eq!(
        (j.environment["A"].as_str(), j.environment["N"].as_str()),
        ("x", "2")
    );
    assert_eq!(mapped(&r, "environment_variables.A"), "environment.A");
}

#[test]
fn every_known_top_level_key_is_ignored_with_its_reason() {
    for (key, reason) in IGNORED {
        let (_, r) = job(&cmd(&format!("{key}: x\n")));
        assert_eq!(ignored(&r, key), *reason, "{key}");
    }
    let (_, r) = job(&cmd("something_new: 1\n"));
    assert!(ignored(&r, "something_new").contains("not a command-job key"));
    let (_, r) = job(&cmd("tags: {}\ndescription: ''\n"));
    assert!(
        r.ignored.is_empty(),
        "unset keys say nothing: {:?}",
        r.ignored
    );
}

#[test]
fn problems_found_later_point_at_the_jobs_keys() {
    let (j, _) = import_text(
        "type: command\ncommand: ls\nenvironment_variables: {X: 1}\ninputs:\n  d: {path: 'azureml://datastores/s/paths/p'}\nlimits: {timeout: 5}\n",
    )
    .unwrap();
    for (native, source, line) in [
        ("command", "command", 2),
        ("environment.X", "environment_variables.X", 3),
        ("inputs.d", "inputs.d", 5),
        ("inputs.d.datastore", "inputs.d.path", 5),
        ("timeout", "limits.timeout", 6),
    ] {
        let p = j.problem(native, "x");
        assert_eq!(p.field, source, "{native}");
        assert_eq!(p.location.map(|l| l.line), Some(line), "{native}");
    }
}
