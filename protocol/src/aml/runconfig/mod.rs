//! Azure ML v1 `.runconfig` files (the YAML `RunConfiguration.save()` writes) → the
//! native job, with the SDK's semantics:
//!
//! - `script` + `arguments` run as `<environment.python.interpreterPath> script args…`
//!   (interpreter default `python`); `command` instead runs as one shell line
//!   (`bash -c`), as on Azure ML. Both at once is an error, as in the SDK.
//! - `dataReferences.<name>`: `mount` and `download` become inputs, `upload` an output,
//!   all named `<name>`, so the job sees `AZUREML_DATAREFERENCE_<name>` and
//!   `str(DataReference)` (`$AZUREML_DATAREFERENCE_<name>`) in `arguments` is replaced.
//!   `pathOnDataStore` null, `/`, `.` or `./` is the datastore's root (the SDK names
//!   such a reference after the datastore). `overwrite` defaults to false.
//!   `pathOnCompute`: absent → stagehand's default folder; relative → relative to the
//!   job's working folder (where the script runs, as on Azure ML); absolute → as is.
//! - `environment.environmentVariables` and the top-level `environmentVariables` →
//!   `environment` (the top-level one wins on a clash).
//! - `environment.docker.enabled` + `baseImage` → `container`; the top-level
//!   `docker.useDocker` (the SDK's current way) takes precedence over
//!   `environment.docker.enabled` unless the section is only the SDK's default.
//!   `maxRunDurationSeconds` → `timeout`; `sourceDirectoryDataStore` → `code`.
//! - `dataStoreName` must be a name Azure ML accepts (letters, digits, `_`, `-`), so
//!   an unfilled template placeholder is refused, not read as the default datastore.
//! - `communicator`, `nodeCount` and the `mpi`, `pytorch` or `tensorflow` section it
//!   chooses → `distribution`, as Azure ML v1 runs them; a parameter-server or
//!   ParallelTask layout is refused (`distribution.rs`).
//! - Everything else the SDK writes (spark, hdi, amlcompute, …) is accepted and
//!   reported once as ignored. Dataset inputs and outputs (`data`, `outputData`,
//!   `datacaches`) need the Azure ML service and are errors.
//!
//! `command.rs` reads what runs, `data_references.rs` the data, `container.rs` the
//! docker sections, `distribution.rs` the nodes and ranks; this file the rest of the
//! job and what is ignored.

mod command;
mod container;
mod data_references;
mod distribution;

pub use data_references::CODE_DIR;

use super::report::{Format, ImportReport};
use super::source::{entries, get, is_set, name_from_file, scalar_text, Aliases, Source};
use crate::duration::SpecDuration;
use crate::job::{Code, JobSpec};
use crate::problem::{Parsed, Problems};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Top-level keys the SDK writes that stagehand does not act on, with the reason.
const IGNORED: &[(&str, &str)] = &[
    (
        "target",
        "stagehand runs the job on the node it is started on",
    ),
    (
        "framework",
        "the command line is script + arguments (or command) as given",
    ),
    ("priority", "there is no Azure ML queue here"),
    (
        "history",
        "run history lives in the Azure ML service; stagehand reports events instead",
    ),
    (
        "spark",
        "Spark settings have no effect on a process or container run",
    ),
    ("hdi", "HDInsight settings have no effect here"),
    (
        "amlcompute",
        "compute targets are chosen by whoever starts stagehand",
    ),
    (
        "autoClusterComputeSpecification",
        "compute targets are chosen by whoever starts stagehand",
    ),
    (
        "kubernetescompute",
        "compute targets are chosen by whoever starts stagehand",
    ),
    (
        "instanceTypes",
        "compute targets are chosen by whoever starts stagehand",
    ),
    (
        "credentialPassthrough",
        "datastore credentials come from the workspace file",
    ),
    (
        "applicationEndpoints",
        "stagehand opens no interactive endpoints",
    ),
];

/// `environment.*` keys that are not acted on, with the reason.
const IGNORED_ENV: &[(&str, &str)] = &[
    ("environment.name", "only labels the environment"),
    ("environment.version", "only labels the environment"),
    ("environment.python.userManagedDependencies", "stagehand does not build Python environments: the interpreter is used as found on this node (or in the image)"),
    ("environment.python.condaDependenciesFile", "stagehand does not build Python environments: the interpreter is used as found on this node (or in the image)"),
    ("environment.python.baseCondaEnvironment", "stagehand does not build Python environments"),
    ("environment.docker.sharedVolumes", "the container runner decides its volumes"),
    ("environment.docker.arguments", "extra `docker run` arguments are not passed; use the native container settings"),
    ("environment.docker.platform", "the image is run for this node's platform"),
    ("environment.docker.gpuSupport", "use the native container.gpus"),
    ("environment.docker.baseImageRegistry.username", "registry login is the node's (docker login)"),
    ("environment.docker.baseImageRegistry.password", "registry login is the node's (docker login)"),
    ("environment.docker.baseImageRegistry.registryIdentity", "registry login is the node's (docker login)"),
    ("environment.spark", "Spark settings have no effect here"),
    ("environment.databricks", "Databricks libraries are not installed"),
    ("environment.r", "R environments are not built"),
    ("environment.inferencingStackVersion", "no inferencing stack is installed"),
    ("environment.assetId", "only labels the environment"),
];

/// Options that an importer needs from the command line.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Runconfig: the code snapshot's folder on `sourceDirectoryDataStore`
    /// (`--source-path`). Without it the code is the local project folder, which is
    /// what Azure ML itself snapshots.
    pub source_path: Option<String>,
}

/// Imports a runconfig's text.
pub fn import(
    file: &Path,
    text: &str,
    opts: &ImportOptions,
) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
    let (mut src, top) = Source::open(file, text, "runconfig")?;
    let mut report = ImportReport::new(Format::Runconfig, file);
    let mut aliases: Aliases = vec![("name".into(), String::new())];

    let name = name_from_file(file);
    report.map("(file name)", format!("name: {name}"));

    // The environment section, read first: the interpreter and the image come from it.
    let env_section = src
        .mapping("environment", &get(&top, "environment"))
        .unwrap_or_default();
    let python = sub_mapping(&mut src, &env_section, "python");
    let docker = sub_mapping(&mut src, &env_section, "docker");

    let command = command::import_command(&mut src, &top, &python, &mut report, &mut aliases);
    let environment =
        import_environment_variables(&mut src, &top, &env_section, &mut report, &mut aliases);
    let container = container::import_container(&mut src, &top, &docker, &mut report, &mut aliases);
    ignore_rest_of_environment(&env_section, &mut report);
    let (distribution, unused_sections) =
        distribution::import_distribution(&mut src, &top, &mut report, &mut aliases);
    let timeout = import_timeout(&mut src, &top, &mut report, &mut aliases);
    let (inputs, outputs) =
        data_references::import_data_references(&mut src, &top, &mut report, &mut aliases);
    data_references::refuse_datasets(&mut src, &top);

    // Code snapshot.
    let code = code(
        file,
        &get(&top, "sourceDirectoryDataStore"),
        opts,
        &mut report,
    );
    aliases.push(("code".into(), "sourceDirectoryDataStore".into()));
    aliases.push(("code.local".into(), "sourceDirectoryDataStore".into()));

    ignore_rest(&top, &unused_sections, &mut report);
    let job = JobSpec {
        name,
        command,
        environment,
        timeout,
        kill_grace: None,
        code: Some(code),
        container,
        inputs,
        outputs,
        azure_ml_v2_variables: false,
        distribution,
        keep_run_dir: false,
    };
    Ok((src.finish(job, aliases)?, report))
}

/// `environment.<key>` as a mapping; empty when absent or not a mapping (reported).
fn sub_mapping(src: &mut Source, env_section: &Mapping, key: &str) -> Mapping {
    src.mapping(
        &format!("environment.{key}"),
        env_section.get(key).unwrap_or(&Value::Null),
    )
    .unwrap_or_default()
}

/// Environment variables: the environment's, then the run's own (which win).
fn import_environment_variables(
    src: &mut Source,
    top: &Mapping,
    env_section: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    for (base, v) in [
        (
            "environment.environmentVariables",
            get(env_section, "environmentVariables"),
        ),
        ("environmentVariables", get(top, "environmentVariables")),
    ] {
        let Some(m) = src.mapping(base, &v) else {
            continue;
        };
        for (k, v) in entries(&m) {
            let field = format!("{base}.{k}");
            if let Some(val) = src
                .string(&field, v)
                .or_else(|| v.is_null().then(String::new))
            {
                report.map(&field, format!("environment.{k}"));
                aliases.push((format!("environment.{k}"), field));
                environment.insert(k.to_string(), val);
            }
        }
    }
    environment
}

/// The time limit: `maxRunDurationSeconds` (0 or absent: none).
fn import_timeout(
    src: &mut Source,
    top: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Option<SpecDuration> {
    match get(top, "maxRunDurationSeconds") {
        Value::Null => None,
        v => match v.as_u64() {
            Some(0) => None,
            Some(s) => {
                report.map("maxRunDurationSeconds", format!("timeout: {s}s"));
                aliases.push(("timeout".into(), "maxRunDurationSeconds".into()));
                Some(SpecDuration(Duration::from_secs(s)))
            }
            None => {
                src.push(
                    "maxRunDurationSeconds",
                    "expected a whole number of seconds",
                );
                None
            }
        },
    }
}

/// Every other top-level key: accepted, reported once, in file order; `decided` holds
/// the reasons for keys another part decided to ignore (the distributed sections).
fn ignore_rest(top: &Mapping, decided: &[(&str, String)], report: &mut ImportReport) {
    const HANDLED: &[&str] = &[
        "script",
        "arguments",
        "command",
        "environment",
        "environmentVariables",
        "maxRunDurationSeconds",
        "dataReferences",
        "data",
        "outputData",
        "datacaches",
        "sourceDirectoryDataStore",
        "docker",
        "communicator",
        "nodeCount",
        "mpi",
        "pytorch",
        "pyTorch",
        "tensorflow",
        "paralleltask",
    ];
    for (key, v) in entries(top) {
        if key == "docker" && v.as_mapping().is_some_and(container::is_sdk_default_docker) {
            report.ignore(
                key,
                "the SDK's default section (useDocker: false), written into every runconfig; environment.docker.enabled decides",
            );
            continue;
        }
        if let Some((_, reason)) = decided.iter().find(|(k, _)| *k == key) {
            report.ignore(key, reason.clone());
            continue;
        }
        if HANDLED.contains(&key)
            || !is_set(v)
            || (key == "credentialPassthrough" && v.as_bool() == Some(false))
        {
            continue;
        }
        report.ignore_with(
            key,
            IGNORED,
            "not a runconfig key stagehand knows; it has no effect",
        );
    }
}

/// The code snapshot: the folder on `sourceDirectoryDataStore` given with
/// `--source-path`, else the local project folder (what Azure ML would have uploaded):
/// the runconfig's folder, or its parent when that is `.azureml` or `aml_config`.
fn code(file: &Path, store: &Value, opts: &ImportOptions, report: &mut ImportReport) -> Code {
    let store = scalar_text(store).filter(|s| !s.is_empty());
    if let Some(path) = &opts.source_path {
        report.map(
            "sourceDirectoryDataStore",
            format!(
                "code: {}:{path} (from --source-path)",
                store.as_deref().unwrap_or("(default datastore)")
            ),
        );
        return Code {
            datastore: store,
            path: Some(path.clone()),
            local: None,
        };
    }
    let in_config_dir = file
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == ".azureml" || n == "aml_config");
    let local = if in_config_dir { ".." } else { "." }.to_string();
    let why = match &store {
        Some(s) => format!("code: local {local} (the project folder Azure ML snapshots to {s}; give --source-path to read a snapshot from {s} instead)"),
        None => format!("code: local {local} (the project folder)"),
    };
    report.map("sourceDirectoryDataStore", why);
    Code {
        datastore: None,
        path: None,
        local: Some(local),
    }
}

/// Reports the `environment.*` keys that have no effect (each once, when set).
fn ignore_rest_of_environment(env: &Mapping, report: &mut ImportReport) {
    const HANDLED: &[&str] = &[
        "environment.environmentVariables",
        "environment.python.interpreterPath",
        "environment.docker.enabled",
        "environment.docker.baseImage",
        "environment.docker.shmSize",
        "environment.docker.baseDockerfile",
        "environment.docker.buildContext",
        "environment.docker.baseImageRegistry.address",
    ];
    fn walk(base: &str, m: &Mapping, out: &mut Vec<(String, Value)>) {
        for (k, v) in entries(m) {
            let key = format!("{base}.{k}");
            match v {
                Value::Mapping(inner)
                    if [
                        "environment.python",
                        "environment.docker",
                        "environment.docker.baseImageRegistry",
                    ]
                    .contains(&key.as_str()) =>
                {
                    walk(&key, inner, out)
                }
                _ => out.push((key, v.clone())),
            }
        }
    }
    let mut keys = Vec::new();
    walk("environment", env, &mut keys);
    for (key, v) in keys {
        if HANDLED.contains(&key.as_str())
            || !is_set(&v)
            || report.ignored.iter().any(|i| i.key == key)
        {
            continue;
        }
        // userManagedDependencies: true is what stagehand does anyway.
        if key == "environment.python.userManagedDependencies" && v.as_bool() == Some(true) {
            continue;
        }
        report.ignore_with(
            &key,
            IGNORED_ENV,
            "not an environment key stagehand knows; it has no effect",
        );
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod key_tests;
