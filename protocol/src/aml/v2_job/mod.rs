//! Azure ML v2 command-job YAML (`az ml job create --file job.yml`) → the native job.
//!
//! - `command` is one shell line (`bash -c`, as on Azure ML); `${{inputs.x}}` and
//!   `${{outputs.x}}` in it are substituted. Literal inputs (numbers, strings,
//!   booleans) and `mode: direct` inputs/outputs are substituted as text here, at
//!   import, and also set as `AZURE_ML_INPUT_x` / `AZURE_ML_OUTPUT_x`.
//! - Data inputs/outputs: `path: azureml://datastores/<name>/paths/<path>` (or the long
//!   `azureml://subscriptions/…/workspaces/…/datastores/<name>/paths/<path>` form);
//!   `type` uri_file / uri_folder (model and mltable types are read as folders);
//!   input modes `ro_mount` (default) → mount, `download` → download; output modes
//!   `rw_mount` (default) and `upload` → upload: a local folder the job writes,
//!   uploaded after it exits (stagehand does not mount for writing). An output without
//!   a path goes where Azure ML puts it: `azureml/<run id>/<output name>` on the
//!   default datastore. The job also gets `AZURE_ML_INPUT_<name>` /
//!   `AZURE_ML_OUTPUT_<name>` (`azure_ml_v2_variables`).
//! - `environment_variables` → `environment`; `code` (a local folder) → `code.local`;
//!   `environment.image` → `container`; `limits.timeout` → `timeout`;
//!   `distribution` and `resources.instance_count` → `distribution` (`distribution.rs`).
//! - An input may also be a local file or folder (→ `local`), a storage URL (→ `url`)
//!   or a workspace data asset (`azureml:name:version`, `azureml:name@latest` →
//!   `asset`); the plan resolves them against the workspace (`crate::data_source`).
//!
//! `inputs.rs` and `outputs.rs` read the data entries (`data.rs`: where a path points
//! and what both share), `environment.rs` the container, `distribution.rs` the nodes
//! and ranks; this file the job's own keys.

mod data;
mod distribution;
mod environment;
mod inputs;
mod outputs;

pub(crate) use data::{locate, Location};

use super::report::{Format, ImportReport};
use super::source::{
    entries, is_set, name_from_file, sanitize_name, scalar_text, shell, Aliases, Source,
};
use crate::duration::SpecDuration;
use crate::job::{Code, JobSpec};
use crate::problem::{Parsed, Problems};
use crate::substitute::{substitute, Reference, DATAREF_PREFIX};
use data::Data;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Top-level keys of a command job that have no effect here, with the reason.
const IGNORED: &[(&str, &str)] = &[
    ("display_name", "only labels the run"),
    (
        "experiment_name",
        "run history lives in the Azure ML service; stagehand reports events instead",
    ),
    ("description", "only describes the job"),
    ("tags", "only labels the run"),
    ("properties", "only labels the run"),
    (
        "compute",
        "the job runs on the node stagehand is started on",
    ),
    (
        "identity",
        "datastore credentials come from the workspace file",
    ),
    ("services", "stagehand opens no interactive services"),
    ("queue_settings", "there is no Azure ML queue here"),
    (
        "is_deterministic",
        "stagehand does not reuse earlier runs' results",
    ),
];

/// Imports a command job's text.
pub fn import(file: &Path, text: &str) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
    let (mut src, top) = Source::open(file, text, "command job")?;
    let mut report = ImportReport::new(Format::AmlJob, file);
    let mut aliases: Aliases = Vec::new();
    refuse_other_kinds(&mut src, &top)?;
    let name = job_name(file, &top, &mut report);
    aliases.push(("name".into(), "name".into()));

    // Inputs and outputs first: literal values are substituted into the command.
    let mut data = Data::default();
    inputs::import_inputs(&mut src, &top, &mut data, &mut report, &mut aliases);
    outputs::import_outputs(&mut src, &top, &mut data, &mut report, &mut aliases);
    let command = import_command(&mut src, &top, &data.literals, &mut report, &mut aliases);
    import_environment_variables(
        &mut src,
        &top,
        &mut data.environment,
        &mut report,
        &mut aliases,
    );
    let container = environment::environment_section(&mut src, top.get("environment"), &mut report);
    if container.is_some() {
        aliases.push(("container".into(), "environment".into()));
        aliases.push(("container.image".into(), "environment.image".into()));
        aliases.push(("container.build".into(), "environment.build".into()));
        aliases.push(("container.environment".into(), "environment".into()));
    }
    let code = import_code(&mut src, &top, &mut report, &mut aliases);
    let timeout = import_limits(&mut src, &top, &mut report, &mut aliases);
    let distribution = distribution::import_distribution(&mut src, &top, &mut report, &mut aliases);
    ignore_rest(&top, &mut report);

    let job = JobSpec {
        name,
        command,
        environment: data.environment,
        timeout,
        kill_grace: None,
        code,
        container,
        inputs: data.inputs,
        outputs: data.outputs,
        azure_ml_v2_variables: true,
        distribution,
        keep_run_dir: false,
    };
    Ok((src.finish(job, aliases)?, report))
}

/// A top-level key's text; `None` when absent or empty.
fn text_of(top: &Mapping, key: &str) -> Option<String> {
    top.get(key).and_then(scalar_text).filter(|s| !s.is_empty())
}

/// Only command jobs run here: a datastore file, another job kind or another `type`
/// is refused at once.
fn refuse_other_kinds(src: &mut Source, top: &Mapping) -> Result<(), Problems> {
    if let Some(schema) = text_of(top, "$schema") {
        let s = schema.to_ascii_lowercase();
        if ["azureblob", "azurefile", "azuredatalake"]
            .iter()
            .any(|d| s.contains(d))
        {
            src.push("$schema", "this is an Azure ML datastore file, not a job: list it under datastore_files in the workspace");
            return Err(Problems(std::mem::take(&mut src.problems)));
        }
        if !s.contains("commandjob") {
            src.push("$schema", format!("{schema} is not a command job; other Azure ML job kinds (pipeline, sweep, spark, automl) need the Azure ML service"));
            return Err(Problems(std::mem::take(&mut src.problems)));
        }
    }
    match text_of(top, "type").as_deref() {
        None | Some("command") => Ok(()),
        Some(other) => {
            src.push("type", format!("{other} jobs need the Azure ML service; stagehand runs command jobs (type: command)"));
            Err(Problems(std::mem::take(&mut src.problems)))
        }
    }
}

/// `name`, made a valid job name, or the file's name.
fn job_name(file: &Path, top: &Mapping, report: &mut ImportReport) -> String {
    match text_of(top, "name") {
        Some(n) => {
            report.map("name", format!("name: {}", sanitize_name(&n)));
            sanitize_name(&n)
        }
        None => {
            let n = name_from_file(file);
            report.map("(file name)", format!("name: {n}"));
            n
        }
    }
}

/// The command line, as `bash -c`, with literals and direct URIs substituted now and
/// data references left for the plan, which knows their paths.
fn import_command(
    src: &mut Source,
    top: &Mapping,
    literals: &BTreeMap<(bool, String), String>,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Vec<String> {
    let v = match top.get("command") {
        None | Some(Value::Null) => {
            src.push("command", "missing; a command job runs a command line");
            return Vec::new();
        }
        Some(v) => v,
    };
    let Some(line) = scalar_text(v) else {
        src.push("command", "expected the command line as text");
        return Vec::new();
    };
    let line = substitute(&line, |r| {
        Some(match r {
            Reference::Input(n) => literals
                .get(&(true, n.clone()))
                .cloned()
                .unwrap_or_else(|| format!("${{{{inputs.{n}}}}}")),
            Reference::Output(n) => literals
                .get(&(false, n.clone()))
                .cloned()
                .unwrap_or_else(|| format!("${{{{outputs.{n}}}}}")),
            Reference::DataRef(n) => format!("${{{DATAREF_PREFIX}{n}}}"),
        })
    })
    .unwrap_or(line);
    aliases.push(("command".into(), "command".into()));
    report.map(
        "command",
        "command: bash -c <the command line>, ${{inputs.x}} / ${{outputs.x}} substituted",
    );
    shell(&line)
}

/// `environment_variables` → the job's environment.
fn import_environment_variables(
    src: &mut Source,
    top: &Mapping,
    environment: &mut BTreeMap<String, String>,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) {
    let vars = src
        .mapping(
            "environment_variables",
            top.get("environment_variables").unwrap_or(&Value::Null),
        )
        .unwrap_or_default();
    for (k, v) in entries(&vars) {
        let field = format!("environment_variables.{k}");
        let val = scalar_text(v).unwrap_or_default();
        aliases.push((format!("environment.{k}"), field.clone()));
        report.map(&field, format!("environment.{k}"));
        environment.insert(k.to_string(), val);
    }
}

/// `code`: a local folder (copied into the run folder) or a datastore path.
fn import_code(
    src: &mut Source,
    top: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Option<Code> {
    let v = top.get("code").filter(|v| !v.is_null())?;
    let Some(p) = scalar_text(v) else {
        src.push("code", "expected a folder");
        return None;
    };
    match locate(&p) {
        Location::Local => {
            let p = p.strip_prefix("file:").unwrap_or(&p).to_string();
            report.map(
                "code",
                format!("code.local: {p} (copied into the run folder; the job runs there)"),
            );
            aliases.push(("code".into(), "code".into()));
            aliases.push(("code.local".into(), "code".into()));
            Some(Code {
                datastore: None,
                path: None,
                local: Some(p),
            })
        }
        Location::Datastore { name, path } => {
            report.map(
                "code",
                format!(
                    "code: {}:{path}",
                    name.as_deref().unwrap_or("(default datastore)")
                ),
            );
            Some(Code {
                datastore: name,
                path: Some(path),
                local: None,
            })
        }
        Location::Service(what) => {
            src.push("code", format!("{p:?} is {what}, which only the Azure ML service can resolve; give a local folder"));
            None
        }
        Location::Url => {
            src.push(
                "code",
                format!("{p:?} is a URL; clone or download it and give the local folder"),
            );
            None
        }
    }
}

/// `limits.timeout` → the time limit; the other limits have no effect on one run.
fn import_limits(
    src: &mut Source,
    top: &Mapping,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) -> Option<SpecDuration> {
    let mut timeout = None;
    let limits = top.get("limits").and_then(|l| src.mapping("limits", l))?;
    for (k, v) in entries(&limits) {
        match (k, v.as_u64()) {
            ("timeout", Some(s)) if s > 0 => {
                timeout = Some(SpecDuration(Duration::from_secs(s)));
                aliases.push(("timeout".into(), "limits.timeout".into()));
                report.map("limits.timeout", format!("timeout: {s}s"));
            }
            ("timeout", _) => src.push("limits.timeout", "expected a whole number of seconds"),
            _ if is_set(v) => report.ignore(
                format!("limits.{k}"),
                "only limits.timeout applies to one run",
            ),
            _ => {}
        }
    }
    timeout
}

/// Every other top-level key: accepted, reported once.
fn ignore_rest(top: &Mapping, report: &mut ImportReport) {
    const HANDLED: &[&str] = &[
        "$schema",
        "type",
        "name",
        "command",
        "code",
        "environment",
        "environment_variables",
        "inputs",
        "outputs",
        "limits",
        "distribution",
        "resources",
    ];
    for (k, v) in entries(top) {
        if HANDLED.contains(&k) || !is_set(v) {
            continue;
        }
        report.ignore_with(
            k,
            IGNORED,
            "not a command-job key stagehand knows; it has no effect",
        );
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod key_tests;
