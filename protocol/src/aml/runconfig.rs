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
//! - Everything else the SDK writes (spark, hdi, mpi, amlcompute, …) is accepted and
//!   reported once as ignored. Dataset inputs and outputs (`data`, `outputData`,
//!   `datacaches`) need the Azure ML service and are errors.

use super::{
    entries, is_set, name_from_file, scalar_text, shell, ImportOptions, ImportReport, Source,
};
use crate::duration::SpecDuration;
use crate::job::{Code, ContainerSpec, DataRef, JobSpec, Mode};
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
    (
        "communicator",
        "stagehand starts one process; distributed launch is the scheduler's",
    ),
    (
        "nodeCount",
        "stagehand starts one process; distributed launch is the scheduler's",
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
        "tensorflow",
        "stagehand starts one process; distributed launch is the scheduler's",
    ),
    (
        "mpi",
        "stagehand starts one process; distributed launch is the scheduler's",
    ),
    (
        "pytorch",
        "stagehand starts one process; distributed launch is the scheduler's",
    ),
    ("paralleltask", "parallel-run settings have no effect here"),
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

/// Where each native field came from: native field path prefix → source key.
type Aliases = Vec<(String, String)>;

/// Imports a runconfig's text.
pub fn import(
    file: &Path,
    text: &str,
    opts: &ImportOptions,
) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
    let (mut src, top) = Source::open(file, text, "runconfig")?;
    let mut report = ImportReport::new(super::Format::Runconfig, file);
    let mut aliases: Aliases = vec![("name".into(), String::new())];

    let name = name_from_file(file);
    report.map("(file name)", format!("name: {name}"));

    // The environment section, read first: the interpreter and the image come from it.
    let env_section = src
        .mapping("environment", &get(&top, "environment"))
        .unwrap_or_default();
    let python = sub_mapping(&mut src, &env_section, "python");
    let docker = sub_mapping(&mut src, &env_section, "docker");

    let command = import_command(&mut src, &top, &python, &mut report, &mut aliases);
    let environment =
        import_environment_variables(&mut src, &top, &env_section, &mut report, &mut aliases);
    let container = import_container(&mut src, &top, &docker, &mut report, &mut aliases);
    ignore_rest_of_environment(&env_section, &mut report);
    let timeout = import_timeout(&mut src, &top, &mut report, &mut aliases);
    let (inputs, outputs) = import_data_references(&mut src, &top, &mut report, &mut aliases);
    refuse_datasets(&mut src, &top);

    // Code snapshot.
    let code = code(
        file,
        &get(&top, "sourceDirectoryDataStore"),
        opts,
        &mut report,
    );
    aliases.push(("code".into(), "sourceDirectoryDataStore".into()));
    aliases.push(("code.local".into(), "sourceDirectoryDataStore".into()));

    ignore_rest(&top, &mut report);
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
        distribution: None,
        keep_run_dir: false,
    };
    src.finish(job, aliases, report)
}

/// A top-level key's value; null when absent.
fn get(top: &Mapping, key: &str) -> Value {
    top.get(key).cloned().unwrap_or(Value::Null)
}

/// `environment.<key>` as a mapping; empty when absent or not a mapping (reported).
fn sub_mapping(src: &mut Source, env_section: &Mapping, key: &str) -> Mapping {
    src.mapping(
        &format!("environment.{key}"),
        env_section.get(key).unwrap_or(&Value::Null),
    )
    .unwrap_or_default()
}

/// What to run: `script` + `arguments` after the interpreter, or `command` as a shell
/// line; both, or neither, is an error.
fn import_command(
    src: &mut Source,
    top: &Mapping,
    python: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Vec<String> {
    let script = src
        .string("script", &get(top, "script"))
        .filter(|s| !s.is_empty());
    let arguments = import_arguments(src, top);
    let command_line: Option<String> = match get(top, "command") {
        Value::Null => None,
        Value::Sequence(items) => {
            // The SDK accepts a list and runs it joined with spaces.
            let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
            Some(parts.join(" ")).filter(|s| !s.trim().is_empty())
        }
        v => src.string("command", &v).filter(|s| !s.trim().is_empty()),
    };
    let mut command = Vec::new();
    match (&script, &command_line) {
        (Some(_), Some(_)) => src.push(
            "command",
            "give either command or script + arguments, not both (Azure ML refuses both too)",
        ),
        (None, Some(line)) => {
            if !arguments.is_empty() {
                src.push(
                    "arguments",
                    "arguments go with script; with command, put them in the command line",
                );
            }
            command = shell(line);
            aliases.push(("command".into(), "command".into()));
            report.map("command", "command: bash -c <the command line>");
        }
        (Some(script), None) => {
            command = script_command(script, &arguments, python, report, aliases);
        }
        (None, None) => src.push(
            "script",
            "missing; a runconfig needs script (with arguments) or command",
        ),
    }
    command
}

/// `arguments`: a list of single values, as the program sees them.
fn import_arguments(src: &mut Source, top: &Mapping) -> Vec<String> {
    match get(top, "arguments") {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match scalar_text(v) {
                Some(s) => Some(s),
                None => {
                    src.push(
                        &format!("arguments[{i}]"),
                        "expected a single value (text or number)",
                    );
                    None
                }
            })
            .collect(),
        _ => {
            src.push("arguments", "expected a list of arguments");
            Vec::new()
        }
    }
}

/// `<interpreterPath> script arguments…`, with the aliases that point each word of
/// the command back at its key.
fn script_command(
    script: &str,
    arguments: &[String],
    python: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Vec<String> {
    let interpreter = python
        .get("interpreterPath")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python".into());
    let mut command = vec![interpreter.clone(), script.to_string()];
    command.extend(arguments.iter().cloned());
    aliases.push((
        "command[0]".into(),
        "environment.python.interpreterPath".into(),
    ));
    aliases.push(("command[1]".into(), "script".into()));
    for i in 0..arguments.len() {
        aliases.push((format!("command[{}]", i + 2), format!("arguments[{i}]")));
    }
    report.map(
        "environment.python.interpreterPath",
        format!("command[0]: {interpreter}"),
    );
    report.map("script", format!("command[1]: {script}"));
    if !arguments.is_empty() {
        report.map(
            "arguments",
            format!(
                "command[2..]: {} argument(s), references substituted",
                arguments.len()
            ),
        );
    }
    command
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

/// `dataReferences` → inputs (mount, download) and outputs (upload), each named after
/// its reference.
fn import_data_references(
    src: &mut Source,
    top: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> (BTreeMap<String, DataRef>, BTreeMap<String, DataRef>) {
    let mut inputs = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    let refs = src
        .mapping("dataReferences", &get(top, "dataReferences"))
        .unwrap_or_default();
    for (name, v) in entries(&refs) {
        let field = format!("dataReferences.{name}");
        let Some((r, became)) = data_reference(src, &field, name, v, report) else {
            continue;
        };
        let kind = if r.mode == Mode::Upload {
            "outputs"
        } else {
            "inputs"
        };
        let native = format!("{kind}.{name}");
        for (n, s) in [
            ("", ""),
            (".datastore", ".dataStoreName"),
            (".path", ".pathOnDataStore"),
            (".mode", ".mode"),
            (".path_on_compute", ".pathOnCompute"),
            (".overwrite", ".overwrite"),
        ] {
            aliases.push((format!("{native}{n}"), format!("{field}{s}")));
        }
        report.map(&field, format!("{native}: {became}"));
        if r.mode == Mode::Upload {
            outputs.insert(name.to_string(), r);
        } else {
            inputs.insert(name.to_string(), r);
        }
    }
    (inputs, outputs)
}

/// Dataset inputs and outputs name registered assets: the service resolves them.
fn refuse_datasets(src: &mut Source, top: &Mapping) {
    for (key, what) in [
        ("data", "dataset inputs"),
        ("outputData", "dataset outputs"),
        ("datacaches", "datacaches"),
    ] {
        if top.get(key).is_some_and(is_set) {
            src.push(key, format!("{what} refer to registered Azure ML datasets, which only the Azure ML service can resolve; use dataReferences on a datastore instead"));
        }
    }
}

/// Every other top-level key: accepted, reported once.
fn ignore_rest(top: &Mapping, report: &mut ImportReport) {
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
    ];
    for (key, v) in entries(top) {
        if key == "docker" && v.as_mapping().is_some_and(is_sdk_default_docker) {
            report.ignore(
                key,
                "the SDK's default section (useDocker: false), written into every runconfig; environment.docker.enabled decides",
            );
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

/// One `dataReferences` entry → a data reference, and a one-line description.
fn data_reference(
    src: &mut Source,
    field: &str,
    name: &str,
    v: &Value,
    report: &mut ImportReport,
) -> Option<(DataRef, String)> {
    let m: Mapping = src.mapping(field, v)?;
    let datastore = data_store_name(src, field, &m);
    let raw_path = m.get("pathOnDataStore").and_then(scalar_text);
    // The SDK's `_is_current_path`: these all mean the datastore's root.
    let path = match raw_path.as_deref() {
        None | Some("") | Some("/") | Some(".") | Some("./") => String::new(),
        Some(p) => p.to_string(),
    };
    let mode = match m.get("mode").and_then(scalar_text).as_deref() {
        None | Some("mount") => Mode::Mount,
        Some("download") => Mode::Download,
        Some("upload") => Mode::Upload,
        Some(other) => {
            src.push(&format!("{field}.mode"), format!("unknown mode {other:?}; Azure ML data references are mount, download or upload"));
            return None;
        }
    };
    let datastore = datastore?;
    let overwrite = match m.get("overwrite") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            src.push(&format!("{field}.overwrite"), "expected true or false");
            false
        }
    };
    let path_on_compute = m
        .get("pathOnCompute")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
        .map(|p| path_on_compute(&p));
    ignore_other_reference_keys(&m, field, report);
    let r = DataRef {
        datastore,
        path,
        mode,
        path_on_compute,
        overwrite,
        upload_on: Default::default(),
        mount_fallback: None,
        local: None,
        url: None,
        asset: None,
        shard: None,
        sync: None,
        sha256: None,
    };
    let became = describe_reference(&r, name);
    Some((r, became))
}

/// `dataStoreName`: absent, null or empty is the workspace's default datastore; a
/// name must be text that Azure ML would accept as one. `None` (with the problem
/// pushed) when it is neither, so the reference is not read from another store.
fn data_store_name(src: &mut Source, field: &str, m: &Mapping) -> Option<Option<String>> {
    let at = format!("{field}.dataStoreName");
    match m.get("dataStoreName") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.is_empty() => Some(None),
        Some(Value::String(s)) if crate::is_datastore_name(s) => Some(Some(s.clone())),
        Some(Value::String(s)) => {
            src.push(&at, crate::datastore_name_problem(s));
            None
        }
        Some(_) => {
            src.push(
                &at,
                "expected the datastore's name as text; without a name the reference would read the default datastore",
            );
            None
        }
    }
}

/// A `pathOnCompute`: absolute as it is; relative to where the script runs, the
/// working folder, which is the code snapshot's copy in the run folder.
fn path_on_compute(p: &str) -> String {
    if p.starts_with('/') {
        return p.to_string();
    }
    let rel: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if rel.is_empty() {
        CODE_DIR.to_string()
    } else {
        format!("{CODE_DIR}/{}", rel.join("/"))
    }
}

/// Reports the keys of a data reference that stagehand does not act on.
fn ignore_other_reference_keys(m: &Mapping, field: &str, report: &mut ImportReport) {
    for (k, v) in entries(m) {
        if ![
            "dataStoreName",
            "pathOnDataStore",
            "mode",
            "overwrite",
            "pathOnCompute",
        ]
        .contains(&k)
            && is_set(v)
        {
            report.ignore(
                format!("{field}.{k}"),
                "not a data reference key stagehand knows; it has no effect",
            );
        }
    }
}

/// What a reference became, in one line of the import report.
fn describe_reference(r: &DataRef, name: &str) -> String {
    let shown_path = if r.path.is_empty() {
        "(root)".to_string()
    } else {
        r.path.clone()
    };
    let mut became = format!(
        "{} {}:{shown_path}",
        r.mode.as_str(),
        r.datastore.as_deref().unwrap_or("(default datastore)")
    );
    if r.path.is_empty() && r.datastore.as_deref() == Some(name) {
        became.push_str(", the datastore's root named after it");
    }
    if r.overwrite {
        became.push_str(", overwrite");
    }
    if let Some(p) = &r.path_on_compute {
        became.push_str(&format!(", path_on_compute {p}"));
    }
    became
}

/// Which key decides whether the job runs in a container, and its answer.
struct UseDocker {
    /// Run in a container.
    enabled: bool,
    /// The top-level `docker` section decided (not `environment.docker.enabled`).
    from_docker_section: bool,
}

/// The top-level `docker` section exactly as `RunConfiguration()` writes it when
/// nobody set it (`DockerConfiguration()`'s defaults). The SDK writes it into every
/// runconfig, also beside the deprecated `environment.docker.enabled: true`, so this
/// section says nothing: `environment.docker.enabled` decides.
fn is_sdk_default_docker(docker: &Mapping) -> bool {
    let keys = ["useDocker", "sharedVolumes", "arguments", "shmSize"];
    entries(docker).count() == keys.len()
        && docker.get("useDocker") == Some(&Value::Bool(false))
        && docker.get("sharedVolumes") == Some(&Value::Bool(true))
        && docker
            .get("arguments")
            .is_some_and(|a| !is_set(a) && !a.is_string())
        && docker.get("shmSize").and_then(Value::as_str) == Some("2g")
}

/// Whether to run in a container: the top-level `docker.useDocker` (written by
/// `rc.docker = DockerConfiguration(use_docker=…)`, the SDK's current way) takes
/// precedence over the deprecated `environment.docker.enabled`, as the SDK's
/// `script_run_config.py` says; a `docker` section that is only the SDK's default
/// leaves the decision to `environment.docker.enabled`.
fn use_docker(
    src: &mut Source,
    top: &Mapping,
    env_docker: &Mapping,
    report: &mut ImportReport,
) -> UseDocker {
    let env_enabled = env_docker
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let from_env = UseDocker {
        enabled: env_enabled,
        from_docker_section: false,
    };
    let Some(docker) = src.mapping("docker", &get(top, "docker")) else {
        return from_env;
    };
    if docker.is_empty() {
        return from_env;
    }
    if is_sdk_default_docker(&docker) {
        // Reported with the other top-level keys, in file order (see `ignore_rest`).
        return from_env;
    }
    let enabled = match docker.get("useDocker") {
        Some(Value::Bool(b)) => Some(*b),
        None | Some(Value::Null) => None,
        Some(_) => {
            src.push("docker.useDocker", "expected true or false");
            None
        }
    };
    let Some(enabled) = enabled else {
        for (k, v) in entries(&docker) {
            if k != "useDocker" && is_set(v) {
                report.ignore(
                    format!("docker.{k}"),
                    "docker.useDocker is not set: environment.docker.enabled decides",
                );
            }
        }
        return from_env;
    };
    let overrides = if env_enabled != enabled && env_docker.contains_key("enabled") {
        format!(", over environment.docker.enabled: {env_enabled}")
    } else {
        String::new()
    };
    let became = if enabled {
        "the job runs in a container"
    } else {
        "the job runs as a process on this node"
    };
    report.map("docker.useDocker", format!("{became}{overrides}"));
    ignore_docker_section_rest(&docker, enabled, report);
    UseDocker {
        enabled,
        from_docker_section: true,
    }
}

/// The top-level `docker` keys other than `useDocker`: `shmSize` is mapped with the
/// container (see [`import_container`]), the others have no effect.
fn ignore_docker_section_rest(docker: &Mapping, enabled: bool, report: &mut ImportReport) {
    for (k, v) in entries(docker) {
        if k == "useDocker" || !is_set(v) || (enabled && k == "shmSize") {
            continue;
        }
        let key = format!("docker.{k}");
        let reason = match k {
            _ if !enabled => "docker.useDocker is false: the job runs as a process on this node",
            "sharedVolumes" => "the container runner decides its volumes",
            "arguments" => {
                "extra `docker run` arguments are not passed; use the native container settings"
            }
            _ => "not a docker key stagehand knows; it has no effect",
        };
        report.ignore(key, reason);
    }
}

/// The container: the image of `environment.docker` when [`use_docker`] says so, with
/// its registry and shared-memory size; building an image is the service's.
fn import_container(
    src: &mut Source,
    top: &Mapping,
    docker: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Option<ContainerSpec> {
    let decision = use_docker(src, top, docker, report);
    if !decision.enabled {
        let reason = if decision.from_docker_section {
            "docker.useDocker is false: the job runs as a process on this node"
        } else {
            "environment.docker.enabled is false: the job runs as a process on this node"
        };
        for key in ["baseImage", "shmSize", "baseDockerfile"] {
            if docker.get(key).is_some_and(is_set) {
                report.ignore(format!("environment.docker.{key}"), reason);
            }
        }
        return None;
    }
    for key in ["baseDockerfile", "buildContext"] {
        if docker.get(key).is_some_and(is_set) {
            src.push(&format!("environment.docker.{key}"), "building an image is done by the Azure ML service; build it yourself and give environment.docker.baseImage");
        }
    }
    let Some(image) = docker
        .get("baseImage")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
    else {
        src.push(
            "environment.docker.baseImage",
            "missing; docker is enabled, so name the image to run in",
        );
        return None;
    };
    let image = with_registry(image, docker);
    let decided_by = if decision.from_docker_section {
        "docker.useDocker + environment.docker.baseImage"
    } else {
        "environment.docker.enabled + baseImage"
    };
    report.map(decided_by, format!("container.image: {image}"));
    let shm_size = container_shm_size(top, docker, &decision, report);
    aliases.push(("container".into(), "environment.docker".into()));
    aliases.push((
        "container.image".into(),
        "environment.docker.baseImage".into(),
    ));
    Some(ContainerSpec {
        shm_size,
        ..ContainerSpec::of_image(image)
    })
}

/// `baseImage` with `baseImageRegistry.address` in front, unless it already is.
fn with_registry(image: String, docker: &Mapping) -> String {
    let registry = docker
        .get("baseImageRegistry")
        .and_then(|r| r.get("address"))
        .and_then(scalar_text)
        .filter(|a| !a.is_empty());
    match registry {
        Some(addr) if !image.starts_with(&format!("{addr}/")) => {
            format!("{}/{image}", addr.trim_end_matches('/'))
        }
        _ => image,
    }
}

/// The container's shared memory: the top-level `docker.shmSize` when that section
/// decided (the SDK sends it with `useDocker`), else `environment.docker.shmSize`.
fn container_shm_size(
    top: &Mapping,
    env_docker: &Mapping,
    decision: &UseDocker,
    report: &mut ImportReport,
) -> Option<String> {
    let top_docker = top.get("docker").and_then(Value::as_mapping);
    let from_section = top_docker
        .filter(|_| decision.from_docker_section)
        .and_then(|d| d.get("shmSize"))
        .and_then(scalar_text)
        .filter(|s| !s.is_empty());
    let env_shm_set = env_docker.get("shmSize").is_some_and(is_set);
    let (key, shm_size) = match from_section {
        Some(s) => {
            if env_shm_set {
                report.ignore(
                    "environment.docker.shmSize",
                    "docker.shmSize takes precedence",
                );
            }
            ("docker.shmSize", Some(s))
        }
        None => (
            "environment.docker.shmSize",
            env_docker
                .get("shmSize")
                .and_then(scalar_text)
                .filter(|s| !s.is_empty()),
        ),
    };
    if let Some(s) = &shm_size {
        report.map(key, format!("container.shm_size: {s}"));
    }
    shm_size
}

/// Where the native plan puts the code snapshot in the run folder; the job's working
/// folder. Relative `pathOnCompute` values are placed under it.
pub const CODE_DIR: &str = "code";

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
mod tests {
    use super::*;

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
}

#[cfg(test)]
mod key_tests;

#[cfg(test)]
mod v1_fixes_tests {
    use super::*;

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
}
