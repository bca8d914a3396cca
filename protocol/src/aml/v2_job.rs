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
//! - Registry assets and environments and job outputs need the Azure ML service: an
//!   error naming the key.

use super::{
    entries, is_set, name_from_file, sanitize_name, scalar_text, shell, Format, ImportReport,
    Source,
};
use crate::duration::SpecDuration;
use crate::job::{Code, ContainerSpec, DataRef, JobSpec, Mode};
use crate::problem::{Parsed, Problems};
use crate::substitute::{substitute, Reference, DATAREF_PREFIX};
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

/// Why a path cannot be read here, or where it is.
pub(crate) enum Location {
    /// A path on a named datastore (`None` = the workspace default).
    Datastore { name: Option<String>, path: String },
    /// Something only the Azure ML service can resolve.
    Service(&'static str),
    /// A storage URL that is not a datastore path.
    Url,
    /// A path on the machine that ran the Azure ML CLI.
    Local,
}

/// Splits an `azureml://…` or other path.
pub(crate) fn locate(uri: &str) -> Location {
    let lower = uri.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("azureml://") {
        // Short form `datastores/<n>/paths/<p>`; long form with subscriptions/…/workspaces/<w>/ before it.
        let start = if rest.starts_with("datastores/") {
            Some(0)
        } else if rest.starts_with("subscriptions/") {
            rest.find("/datastores/").map(|i| i + 1)
        } else {
            None
        };
        if let Some(start) = start {
            let orig = &uri["azureml://".len() + start + "datastores/".len()..];
            if let Some(slash) = orig.find('/') {
                let (name, after) = (&orig[..slash], &orig[slash..]);
                let lower_after = after.to_ascii_lowercase();
                let path = if lower_after.starts_with("/paths/") {
                    Some(&after["/paths/".len()..])
                } else {
                    (lower_after == "/paths").then_some("")
                };
                if let Some(path) = path {
                    let name = (name != "${{default_datastore}}").then(|| name.to_string());
                    return Location::Datastore {
                        name,
                        path: path.to_string(),
                    };
                }
            }
        }
        if rest.starts_with("registries/") {
            return Location::Service("an asset in an Azure ML registry");
        }
        if rest.starts_with("jobs/") {
            return Location::Service("another Azure ML job's output");
        }
        return Location::Service("an Azure ML asset URI");
    }
    if lower.starts_with("azureml:") {
        return Location::Service("a registered Azure ML asset (azureml:name:version)");
    }
    for scheme in [
        "https://", "http://", "wasbs://", "wasb://", "abfss://", "abfs://", "adl://", "s3://",
        "gs://", "git+", "runs:/", "models:/",
    ] {
        if lower.starts_with(scheme) {
            return Location::Url;
        }
    }
    Location::Local
}

/// Where each native field came from: native field path prefix → source key.
type Aliases = Vec<(String, String)>;

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
    import_inputs(&mut src, &top, &mut data, &mut report, &mut aliases);
    import_outputs(&mut src, &top, &mut data, &mut report, &mut aliases);
    let command = import_command(&mut src, &top, &data.literals, &mut report, &mut aliases);
    import_environment_variables(
        &mut src,
        &top,
        &mut data.environment,
        &mut report,
        &mut aliases,
    );
    let container = environment_section(&mut src, top.get("environment"), &mut report);
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
    src.finish(job, aliases, report)
}

/// What the inputs and outputs became.
#[derive(Default)]
struct Data {
    /// (is an input, name) → the text substituted for it in the command.
    literals: BTreeMap<(bool, String), String>,
    /// `AZURE_ML_INPUT_x` / `AZURE_ML_OUTPUT_x` of literals, then the job's own.
    environment: BTreeMap<String, String>,
    inputs: BTreeMap<String, DataRef>,
    outputs: BTreeMap<String, DataRef>,
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

/// `inputs`: literals go to the command and the environment, data to `inputs`.
fn import_inputs(
    src: &mut Source,
    top: &Mapping,
    data: &mut Data,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) {
    let ins = src
        .mapping("inputs", top.get("inputs").unwrap_or(&Value::Null))
        .unwrap_or_default();
    for (n, v) in entries(&ins) {
        let field = format!("inputs.{n}");
        match input(src, &field, v, report) {
            Some(Item::Literal(value)) => {
                data.environment
                    .insert(format!("AZURE_ML_INPUT_{n}"), value.clone());
                data.literals.insert((true, n.to_string()), value);
            }
            Some(Item::Data(r)) => {
                alias_data(aliases, &field);
                data.inputs.insert(n.to_string(), r);
            }
            None => {}
        }
    }
}

/// `outputs`: direct URIs go to the command and the environment, data to `outputs`.
fn import_outputs(
    src: &mut Source,
    top: &Mapping,
    data: &mut Data,
    report: &mut ImportReport,
    aliases: &mut Aliases,
) {
    let outs = src
        .mapping("outputs", top.get("outputs").unwrap_or(&Value::Null))
        .unwrap_or_default();
    for (n, v) in entries(&outs) {
        let field = format!("outputs.{n}");
        match output(src, &field, n, v, report) {
            Some(Item::Literal(value)) => {
                data.environment
                    .insert(format!("AZURE_ML_OUTPUT_{n}"), value.clone());
                data.literals.insert((false, n.to_string()), value);
            }
            Some(Item::Data(r)) => {
                alias_data(aliases, &field);
                data.outputs.insert(n.to_string(), r);
            }
            None => {}
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

fn alias_data(aliases: &mut Vec<(String, String)>, field: &str) {
    aliases.push((field.to_string(), field.to_string()));
    for native in ["datastore", "local", "url", "asset"] {
        aliases.push((format!("{field}.{native}"), format!("{field}.path")));
    }
}

/// An input or output: data, or a value substituted as text.
enum Item {
    Data(DataRef),
    Literal(String),
}

const DATA_TYPES: &[&str] = &[
    "uri_folder",
    "uri_file",
    "mltable",
    "custom_model",
    "mlflow_model",
    "triton_model",
];
const LITERAL_TYPES: &[&str] = &["string", "integer", "number", "boolean"];

/// One `inputs` entry: a literal value (bare, or typed string/integer/number/boolean),
/// a `mode: direct` URI, or data on a datastore.
fn input(src: &mut Source, field: &str, v: &Value, report: &mut ImportReport) -> Option<Item> {
    if let Some(text) = scalar_text(v) {
        return Some(literal_input(field, text, report));
    }
    let m = match v {
        Value::Mapping(m) => m.clone(),
        _ => {
            src.push(
                field,
                "expected a value, or a mapping with type, path and mode",
            );
            return None;
        }
    };
    let ty = m
        .get("type")
        .and_then(scalar_text)
        .unwrap_or_else(|| "uri_folder".into());
    if LITERAL_TYPES.contains(&ty.as_str()) {
        let Some(text) = m
            .get("value")
            .or_else(|| m.get("default"))
            .and_then(scalar_text)
        else {
            src.push(field, format!("a {ty} input needs a value"));
            return None;
        };
        return Some(literal_input(field, text, report));
    }
    if !DATA_TYPES.contains(&ty.as_str()) {
        src.push(&format!("{field}.type"), format!("unknown input type {ty:?}; expected uri_file, uri_folder, a model or mltable type, or a literal value"));
        return None;
    }
    let Some(path) = m
        .get("path")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
    else {
        src.push(
            &format!("{field}.path"),
            "missing; give azureml://datastores/<name>/paths/<path>",
        );
        return None;
    };
    let mode_text = m
        .get("mode")
        .and_then(scalar_text)
        .unwrap_or_else(|| "ro_mount".into());
    let Some(mode) = input_mode(src, field, &mode_text)? else {
        report.map(
            field,
            format!(
                "direct: the URI {path:?} is substituted as it is, and AZURE_ML_INPUT_{}",
                field.trim_start_matches("inputs.")
            ),
        );
        return Some(Item::Literal(path));
    };
    let mut r = input_location(src, &format!("{field}.path"), &path)?;
    r.mode = mode;
    ignore_extra(&m, field, &["type", "path", "mode"], report);
    let note = if ty.starts_with("uri") {
        String::new()
    } else {
        format!(", {ty} read as its folder")
    };
    let from = match (&r.local, &r.url, &r.asset) {
        (Some(l), _, _) => format!("local {l} (used where it is, nothing uploaded)"),
        (_, Some(u), _) => {
            format!("url {u} (a registered datastore, else anonymous)")
        }
        (_, _, Some(a)) => format!("asset {a} (from the workspace's data_assets)"),
        _ => format!(
            "{}:{}",
            r.datastore.as_deref().unwrap_or("(default datastore)"),
            r.path
        ),
    };
    report.map(
        field,
        format!(
            "inputs.{}: {} ({mode_text}) {from}{note}",
            field.trim_start_matches("inputs."),
            mode.as_str(),
        ),
    );
    Some(Item::Data(r))
}

/// Where an input's data is: a datastore path, a storage URL, a registered data asset
/// or a local file or folder (relative to the job file); the plan resolves the last
/// three against the workspace.
fn input_location(src: &mut Source, field: &str, uri: &str) -> Option<DataRef> {
    let mut r = DataRef {
        datastore: None,
        path: String::new(),
        mode: Mode::Mount,
        path_on_compute: None,
        overwrite: false,
        upload_on: Default::default(),
        mount_fallback: None,
        local: None,
        url: None,
        asset: None,
        shard: None,
        sync: None,
        sha256: None,
    };
    match locate(uri) {
        Location::Datastore { name, path } => {
            r.datastore = name;
            r.path = path;
        }
        Location::Local => r.local = Some(uri.strip_prefix("file:").unwrap_or(uri).to_string()),
        Location::Url if crate::storage_url::is_storage_scheme(uri) => {
            // Any http(s):// URL reads: an Azure account's, else a web server's file.
            let web = crate::storage_url::is_web_url(uri);
            if let (false, Err(e)) = (web, crate::storage_url::parse(uri)) {
                src.push(
                    field,
                    format!("{e}; or use mode: direct to pass the URL to the job as it is"),
                );
                return None;
            }
            r.url = Some(uri.to_string());
        }
        Location::Service(_) if is_data_asset(uri) => {
            r.asset = Some(uri.trim_start_matches("azureml:").to_string());
        }
        _ => {
            data_location(src, field, uri, false)?;
        }
    }
    Some(r)
}

/// `azureml:<name>:<version>` or `azureml:<name>@latest`: a workspace data asset.
fn is_data_asset(uri: &str) -> bool {
    uri.strip_prefix("azureml:")
        .is_some_and(|rest| !rest.starts_with("//") && !rest.is_empty())
}

/// A literal input, substituted in the command and set as `AZURE_ML_INPUT_<name>`.
fn literal_input(field: &str, text: String, report: &mut ImportReport) -> Item {
    report.map(
        field,
        format!(
            "literal {text:?}: substituted in the command, and AZURE_ML_INPUT_{}",
            field.trim_start_matches("inputs.")
        ),
    );
    Item::Literal(text)
}

/// An input's `mode`: `Some(Some(mode))` for data, `Some(None)` for `direct`, `None`
/// (reported) for a mode stagehand cannot give an input.
fn input_mode(src: &mut Source, field: &str, mode_text: &str) -> Option<Option<Mode>> {
    match mode_text {
        "ro_mount" => Some(Some(Mode::Mount)),
        "download" => Some(Some(Mode::Download)),
        "direct" => Some(None),
        "eval_mount" | "eval_download" => {
            src.push(&format!("{field}.mode"), format!("{mode_text} evaluates an MLTable with Azure ML's mltable runtime; use ro_mount or download to get its files"));
            None
        }
        "rw_mount" | "upload" => {
            src.push(
                &format!("{field}.mode"),
                format!("{mode_text} is for outputs; an input is ro_mount, download or direct"),
            );
            None
        }
        other => {
            src.push(
                &format!("{field}.mode"),
                format!("unknown mode {other:?}; an input is ro_mount, download or direct"),
            );
            None
        }
    }
}

/// One `outputs` entry: a `mode: direct` URI, or a folder (or file) the job writes
/// that is uploaded after it exits.
fn output(
    src: &mut Source,
    field: &str,
    name: &str,
    v: &Value,
    report: &mut ImportReport,
) -> Option<Item> {
    let m = match v {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m.clone(),
        _ => {
            src.push(
                field,
                "expected a mapping with type, path and mode (or nothing, for the defaults)",
            );
            return None;
        }
    };
    let ty = m
        .get("type")
        .and_then(scalar_text)
        .unwrap_or_else(|| "uri_folder".into());
    if !DATA_TYPES.contains(&ty.as_str()) {
        src.push(&format!("{field}.type"), format!("unknown output type {ty:?}; expected uri_file, uri_folder, or a model or mltable type"));
        return None;
    }
    let mode_text = m
        .get("mode")
        .and_then(scalar_text)
        .unwrap_or_else(|| "rw_mount".into());
    let path = m
        .get("path")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty());
    match mode_text.as_str() {
        "rw_mount" | "upload" => {}
        "direct" => return direct_output(src, field, name, path, report),
        other => {
            src.push(
                &format!("{field}.mode"),
                format!("unknown output mode {other:?}; an output is rw_mount, upload or direct"),
            );
            return None;
        }
    }
    // Azure ML's default output location, with its placeholders in stagehand's words.
    let (datastore, dpath, defaulted) = match path {
        None => (None, format!("azureml/{{run_id}}/{name}"), true),
        Some(p) => {
            let p = p
                .replace("${{name}}", "{run_id}")
                .replace("${{output_name}}", name);
            let (d, dp) = data_location(src, &format!("{field}.path"), &p, true)?;
            (d, dp, false)
        }
    };
    for key in ["name", "version"] {
        if m.get(key).is_some_and(is_set) {
            report.ignore(format!("{field}.{key}"), "registering the output as a data asset needs the Azure ML service; the data is uploaded, not registered");
        }
    }
    ignore_extra(
        &m,
        field,
        &["type", "path", "mode", "name", "version"],
        report,
    );
    // A uri_file output is a file the job writes: give it a file name in the run folder.
    let path_on_compute = (ty == "uri_file").then(|| {
        let leaf = dpath.rsplit('/').find(|s| !s.is_empty()).unwrap_or(name);
        format!("outputs/{name}/{leaf}")
    });
    let at = format!(
        "{}:{dpath}",
        datastore.as_deref().unwrap_or("(default datastore)")
    );
    report_output(field, name, &mode_text, at, defaulted, report);
    Some(Item::Data(DataRef {
        datastore,
        path: dpath,
        mode: Mode::Upload,
        path_on_compute,
        overwrite: true,
        upload_on: Default::default(),
        mount_fallback: None,
        local: None,
        url: None,
        asset: None,
        shard: None,
        sync: None,
        sha256: None,
    }))
}

/// A `mode: direct` output: its URI is passed to the job as it is.
fn direct_output(
    src: &mut Source,
    field: &str,
    name: &str,
    path: Option<String>,
    report: &mut ImportReport,
) -> Option<Item> {
    let Some(path) = path else {
        src.push(
            &format!("{field}.path"),
            "missing; a direct output passes its path to the job",
        );
        return None;
    };
    report.map(
        field,
        format!("direct: the URI {path:?} is substituted as it is, and AZURE_ML_OUTPUT_{name}"),
    );
    Some(Item::Literal(path))
}

/// What an uploaded output became, in one line of the import report.
fn report_output(
    field: &str,
    name: &str,
    mode_text: &str,
    at: String,
    defaulted: bool,
    report: &mut ImportReport,
) {
    let how = if mode_text == "rw_mount" {
        "rw_mount → upload: a local folder the job writes, uploaded after it exits"
    } else {
        "upload"
    };
    let at = if defaulted {
        format!("{at} (Azure ML's default output path)")
    } else {
        at
    };
    // Azure ML writes an output over whatever is at its path; so does stagehand.
    report.map(field, format!("outputs.{name}: {how}, to {at}, overwrite"));
}

/// A data path → (datastore, path on it), or a problem saying why it cannot be read.
fn data_location(
    src: &mut Source,
    field: &str,
    uri: &str,
    output: bool,
) -> Option<(Option<String>, String)> {
    match locate(uri) {
        Location::Datastore { name, path } => Some((name, path)),
        Location::Service(what) => {
            src.push(field, format!("{uri:?} is {what}, which only the Azure ML service can resolve; use azureml://datastores/<name>/paths/<path>"));
            None
        }
        Location::Url => {
            let direct = if output {
                ""
            } else {
                ", or use mode: direct to pass the URL to the job as it is"
            };
            src.push(field, format!("{uri:?} is a storage URL, not a datastore path: register the account as a datastore in the workspace and write azureml://datastores/<name>/paths/<path>{direct}"));
            None
        }
        Location::Local => {
            src.push(field, format!("{uri:?} is a local path, which the Azure ML CLI would upload first; stagehand reads data from datastores: put it in one (a type: local datastore is a folder) and write azureml://datastores/<name>/paths/<path>"));
            None
        }
    }
}

fn ignore_extra(m: &Mapping, field: &str, known: &[&str], report: &mut ImportReport) {
    for (k, v) in entries(m) {
        if !known.contains(&k) && is_set(v) {
            report.ignore(format!("{field}.{k}"), "has no effect on where the data is");
        }
    }
}

/// `environment`: an inline image, a build context, an image plus a conda file, a
/// `file:` environment YAML, or a name (registry or workspace) the plan resolves.
fn environment_section(
    src: &mut Source,
    v: Option<&Value>,
    report: &mut ImportReport,
) -> Option<ContainerSpec> {
    let m = match v? {
        Value::Null => return None,
        Value::Mapping(m) => m.clone(),
        v => {
            let text = scalar_text(v).unwrap_or_default();
            return named_environment(src, &text, report);
        }
    };
    environment_mapping(src, &m, Path::new(""), "environment", report)
}

/// `environment: <name>`: a `file:` YAML is read here; an `azureml://registries/azureml/…`
/// or `azureml:<name>…` one is left for the plan (workspace `environments`, or a
/// curated image); another registry needs the Azure ML service.
fn named_environment(
    src: &mut Source,
    text: &str,
    report: &mut ImportReport,
) -> Option<ContainerSpec> {
    if let Some(rel) = text.strip_prefix("file:") {
        let rel = rel.trim();
        let path = src.file.parent().unwrap_or(Path::new("")).join(rel);
        let body = match crate::limits::read(&path, "environment file") {
            Ok(b) => b,
            Err(p) => {
                src.push(
                    "environment",
                    format!("{text:?}: cannot read the environment file: {p}"),
                );
                return None;
            }
        };
        let Ok(Value::Mapping(m)) = serde_yaml::from_str::<Value>(&body) else {
            src.push("environment", format!("{text:?} is not an environment YAML (a mapping with image, build or conda_file)"));
            return None;
        };
        let base = Path::new(rel).parent().unwrap_or(Path::new(""));
        return environment_mapping(src, &m, base, "environment", report);
    }
    if text.contains('<') || text.trim().contains(char::is_whitespace) {
        src.push("environment", format!("{text:?} is a template placeholder, not an environment name; fill in the environment"));
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let known = lower.starts_with("azureml://registries/azureml/environments/")
        || (lower.starts_with("azureml:") && !lower.starts_with("azureml://"));
    if !known {
        src.push("environment", format!("{text:?} is an environment only the Azure ML service can resolve to an image; give environment: {{image: <image>}}, register it under environments in the workspace, or remove the key to run on this node as it is"));
        return None;
    }
    report.map(
        "environment",
        format!(
            "container.environment: {text} (the workspace's environments, else a curated image)"
        ),
    );
    Some(container(String::new(), None, Some(text.to_string())))
}

/// An environment written out: `image`, `build: {path, dockerfile_path}`, `conda_file`.
/// `base` is the folder (relative to the job file's) its relative paths start from.
fn environment_mapping(
    src: &mut Source,
    m: &Mapping,
    base: &Path,
    field: &str,
    report: &mut ImportReport,
) -> Option<ContainerSpec> {
    let rel = |p: String| base.join(p).display().to_string();
    let image = m
        .get("image")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty());
    let conda_file = m
        .get("conda_file")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
        .map(rel);
    let build = match m.get("build").filter(|b| is_set(b)) {
        None => None,
        Some(Value::Mapping(b)) => {
            let Some(path) = b
                .get("path")
                .and_then(scalar_text)
                .filter(|s| !s.is_empty())
            else {
                src.push(
                    &format!("{field}.build.path"),
                    "missing; give the build context folder",
                );
                return None;
            };
            if path.contains("://") {
                src.push(&format!("{field}.build.path"), format!("{path:?} is a remote build context, which the Azure ML service fetches; give a local folder"));
                return None;
            }
            let dockerfile = b.get("dockerfile_path").and_then(scalar_text);
            report.map(
                format!("{field}.build"),
                format!("container.build: the image is built from {path} (cached by its content)"),
            );
            Some(crate::job::ImageBuild {
                context: Some(rel(path)),
                dockerfile,
                conda_file: None,
            })
        }
        Some(_) => {
            src.push(
                &format!("{field}.build"),
                "expected a mapping with path (and dockerfile_path)",
            );
            return None;
        }
    };
    let build = match (build, &conda_file, &image) {
        (Some(b), _, _) => Some(b),
        (None, Some(c), Some(_)) => {
            report.map(
                format!("{field}.conda_file"),
                "container.build.conda_file: an image derived from environment.image with this conda environment (cached by its content)",
            );
            Some(crate::job::ImageBuild {
                context: None,
                dockerfile: None,
                conda_file: Some(c.clone()),
            })
        }
        _ => None,
    };
    if build.as_ref().is_none_or(|b| b.context.is_none()) && image.is_none() {
        src.push(
            &format!("{field}.image"),
            "missing; give the image to run in, or build: {path: <context>}",
        );
        return None;
    }
    if let Some(i) = &image {
        report.map(format!("{field}.image"), format!("container.image: {i}"));
    }
    for (k, v) in entries(m) {
        if ["image", "build", "conda_file"].contains(&k) || !is_set(v) {
            continue;
        }
        let reason = match k {
            "name" | "version" | "description" | "tags" => "only labels the environment",
            "$schema" => "only names the file's schema",
            _ => "not an environment key stagehand knows; it has no effect",
        };
        report.ignore(format!("{field}.{k}"), reason);
    }
    Some(container(image.unwrap_or_default(), build, None))
}

/// A container of `image` (or a build, or a named environment), with no other setting.
fn container(
    image: String,
    build: Option<crate::job::ImageBuild>,
    environment: Option<String>,
) -> ContainerSpec {
    ContainerSpec {
        build,
        environment,
        ..ContainerSpec::of_image(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/aml/v2/jobs")
            .join(name);
        import(&p, &std::fs::read_to_string(&p).unwrap())
    }

    #[test]
    fn literal_inputs_are_text() {
        let (job, report) = fixture("hello-world-input.yml").unwrap();
        let j = job.value;
        assert_eq!(j.command, ["bash", "-c", "echo hello world\necho 42\n"]);
        assert_eq!(j.environment["AZURE_ML_INPUT_hello_number"], "42");
        assert_eq!(j.container.unwrap().image, "library/python:latest");
        assert!(j.azure_ml_v2_variables);
        assert!(report.mapped.iter().any(|m| m.key == "inputs.hello_string"));
    }

    #[test]
    fn environment_variables() {
        let (job, _) = fixture("hello-world-env-var.yml").unwrap();
        assert_eq!(job.value.environment["hello_env_var"], "hello world");
        assert_eq!(job.value.command, ["bash", "-c", "echo $hello_env_var"]);
    }

    #[test]
    fn default_output() {
        let (job, _) = fixture("hello-world-output-data.yml").unwrap();
        let o = &job.value.outputs["hello_output"];
        assert_eq!(
            (o.datastore.as_deref(), o.path.as_str(), o.mode),
            (None, "azureml/{run_id}/hello_output", Mode::Upload)
        );
        assert_eq!(
            job.value.command[2],
            "echo \"hello world\" > ${{outputs.hello_output}}/helloworld.txt"
        );
    }

    #[test]
    fn service_only_content_names_the_key() {
        // A pipeline passed as a command job.
        let err = fixture("hello-pipeline.yml").unwrap_err();
        assert_eq!(err.0[0].field, "$schema");
    }

    #[test]
    fn datastore_uris_short_and_long() {
        let text = r#"
type: command
command: python t.py --a ${{inputs.a}} --b ${{inputs.b}} --u ${{inputs.u}} --m ${{outputs.m}} --f ${{outputs.f}}
code: ./src
limits: {timeout: 600}
inputs:
  a: {type: uri_folder, path: "azureml://datastores/blobs/paths/data/a/", mode: download}
  b: {type: uri_file, path: "azureml://subscriptions/0000/resourcegroups/rg/workspaces/ws/datastores/blobs/paths/data/b.csv"}
  u: {path: "https://acct.blob.core.windows.net/c/x", mode: direct}
  lr: {type: number, default: 0.01}
outputs:
  m: {type: uri_folder, path: "azureml://datastores/blobs/paths/models/${{name}}/", mode: upload}
  f: {type: uri_file, path: "azureml://datastores/blobs/paths/metrics/${{name}}/m.json"}
"#;
        let (job, _) = import(Path::new("job.yml"), text).unwrap();
        let j = job.value;
        assert_eq!(
            (
                j.inputs["a"].datastore.as_deref(),
                j.inputs["a"].path.as_str(),
                j.inputs["a"].mode
            ),
            (Some("blobs"), "data/a/", Mode::Download)
        );
        assert_eq!(
            (j.inputs["b"].path.as_str(), j.inputs["b"].mode),
            ("data/b.csv", Mode::Mount)
        );
        assert_eq!(j.outputs["m"].path, "models/{run_id}/");
        assert_eq!(
            j.outputs["f"].path_on_compute.as_deref(),
            Some("outputs/f/m.json")
        );
        assert!(j.command[2].contains("--u https://acct.blob.core.windows.net/c/x"));
        assert_eq!(
            j.environment["AZURE_ML_INPUT_u"],
            "https://acct.blob.core.windows.net/c/x"
        );
        assert_eq!(j.environment["AZURE_ML_INPUT_lr"], "0.01");
        assert_eq!(j.code.unwrap().local.as_deref(), Some("./src"));
        assert_eq!(j.timeout, Some(SpecDuration(Duration::from_secs(600))));
    }

    #[test]
    fn input_modes_that_cannot_work_name_the_key() {
        let text = "type: command\ncommand: ls\ninputs:\n  x: {path: 'azureml://datastores/d/paths/p', mode: rw_mount}\n  y: {type: mltable, path: 'azureml://datastores/d/paths/t', mode: eval_mount}\n  z: {path: 's3://b/x'}\n";
        let err = import(Path::new("job.yml"), text).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["inputs.x.mode", "inputs.y.mode", "inputs.z.path"]);
    }

    #[test]
    fn ignored_keys_are_reported_once() {
        let text = "type: command\ncommand: ls\ncompute: azureml:cpu-cluster\nresources: {instance_type: Standard_NC6}\ndisplay_name: x\n";
        let (_, report) = import(Path::new("job.yml"), text).unwrap();
        let keys: Vec<&str> = report.ignored.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["resources.instance_type", "compute", "display_name"]);
    }

    #[test]
    fn distribution_and_instance_count_are_honoured() {
        use crate::job::{Distribution, DistributionKind};
        let text = r#"type: command
command: python train.py
distribution: {type: pytorch, process_count_per_instance: 2}
resources: {instance_count: 3, instance_type: Standard_NC6}
"#;
        let (job, report) = import(Path::new("job.yml"), text).unwrap();
        assert_eq!(
            job.value.distribution,
            Some(Distribution {
                kind: DistributionKind::Pytorch,
                process_count_per_instance: 2,
                instance_count: Some(3),
            })
        );
        assert!(report
            .mapped
            .iter()
            .any(|m| m.key == "resources.instance_count"));
        let tf = "type: command\ncommand: x\ndistribution: {type: tensorflow, worker_count: 4, parameter_server_count: 1}\n";
        let (job, report) = import(Path::new("job.yml"), tf).unwrap();
        let d = job.value.distribution.unwrap();
        assert_eq!(
            (d.kind, d.process_count_per_instance),
            (DistributionKind::Tensorflow, 4)
        );
        assert!(report
            .ignored
            .iter()
            .any(|i| i.key == "distribution.parameter_server_count"));
        let alone = "type: command\ncommand: x\nresources: {instance_count: 3}\n";
        let err = import(Path::new("job.yml"), alone).unwrap_err().to_string();
        assert!(err.contains("without a `distribution`"), "{err}");
        let bad = "type: command\ncommand: x\ndistribution: {type: ray}\n";
        assert!(import(Path::new("job.yml"), bad).is_err());
    }
}

mod distribution;

#[cfg(test)]
mod key_tests;
