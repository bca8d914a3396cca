//! Azure ML's own files, taken as they are: v1 `.runconfig` (as `RunConfiguration.save()`
//! writes it), v2 command-job YAML, and v2 datastore YAML. Each importer produces the
//! native model ([`JobSpec`], [`Datastore`](crate::Datastore)) plus an [`ImportReport`]
//! saying what every source key became and which keys were ignored.
//!
//! Importers never guess silently: a key stagehand does not act on is accepted and
//! reported once as ignored; content that only the Azure ML service can resolve (a
//! registered asset, a registry environment) is an error that names the key and says
//! why. Like the rest of this crate: pure parsing, no network.

//!
//! `mod.rs` tells the format from the content and dispatches; `source.rs` (reading a
//! file key by key) and `report.rs` (the import report) sit below every importer.

mod report;
pub mod runconfig;
mod source;
pub mod v2_datastore;
pub mod v2_job;

pub use report::{Format, Ignored, ImportReport, Mapped};
pub use runconfig::ImportOptions;
pub use source::scalar_text;

use crate::job::JobSpec;
use crate::problem::{Parsed, Problems};
use serde_yaml::{Mapping, Value};
use std::path::Path;

/// Tells the format from the content: a `dataReferences` key is a runconfig; a
/// `$schema` or a `type` key is Azure ML v2 (native specs have neither), and so is a
/// file whose `command` is not a list and that has what only a v2 command job has
/// ([`looks_like_v2`]); anything else is native. Text that is not a YAML mapping is
/// native (its parser reports why).
pub fn detect(text: &str) -> Format {
    // Beyond the bounds the native parser refuses it, before anything parses it here.
    if crate::limits::check(Path::new(""), text).is_err() {
        return Format::Native;
    }
    let Ok(Value::Mapping(m)) = serde_yaml::from_str::<Value>(text) else {
        return Format::Native;
    };
    if m.contains_key("dataReferences") {
        Format::Runconfig
    } else if m.contains_key("$schema") || m.contains_key("type") || looks_like_v2(&m) {
        Format::AmlJob
    } else {
        Format::Native
    }
}

/// Top-level keys of a v2 command job that a native spec never has.
const V2_ONLY_KEYS: &[&str] = &[
    "compute",
    "identity",
    "resources",
    "environment_variables",
    "limits",
    "experiment_name",
    "display_name",
    "services",
    "queue_settings",
    "is_deterministic",
];

/// The `type`s of a v2 input or output (a native data reference has no `type`).
const V2_DATA_TYPES: &[&str] = &[
    "uri_file",
    "uri_folder",
    "mltable",
    "custom_model",
    "mlflow_model",
    "triton_model",
    "string",
    "integer",
    "number",
    "boolean",
];

/// A v2 command job written without `$schema` and `type` (the Azure ML CLI needs
/// neither): its `command` is one line, not a native list, and it has something a
/// native spec cannot have: a v2-only key (`compute`, `identity`, `resources`, …), an
/// `environment` that is a name (`azureml:…`, `file:…`) or holds a `build` mapping, an
/// input or output with a v2 `type` (`uri_file`, …) or a literal value, or `code` as a
/// folder name. A native spec with a list `command` stays native whatever else it has,
/// so a mistake in it is reported as a native problem, not as a v2 one.
fn looks_like_v2(m: &Mapping) -> bool {
    if matches!(m.get("command"), Some(Value::Sequence(_))) {
        return false;
    }
    let key = |k: &str| m.get(k).filter(|v| !v.is_null());
    let v2_entry = |v: &Value| match v {
        Value::Mapping(e) => e
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| V2_DATA_TYPES.contains(&t)),
        Value::Null => false,
        // A literal input (`epochs: 1`); a native reference is always a mapping.
        _ => true,
    };
    let data = |k: &str| {
        key(k)
            .and_then(Value::as_mapping)
            .is_some_and(|entries| entries.values().any(v2_entry))
    };
    V2_ONLY_KEYS.iter().any(|k| key(k).is_some())
        || match key("environment") {
            Some(Value::String(_)) => true,
            Some(Value::Mapping(e)) => e.values().any(Value::is_mapping),
            _ => false,
        }
        || data("inputs")
        || data("outputs")
        || matches!(key("code"), Some(Value::String(_)))
}

/// A job read from any format: the native spec and, for an imported file, the report.
#[derive(Debug)]
pub struct AnyJob {
    /// The native job; its `aliases` point problems back at the source keys.
    pub job: Parsed<JobSpec>,
    /// Present when the file was imported.
    pub report: Option<ImportReport>,
}

/// Parses a job file of any format: `format` forces one, else [`detect`] decides.
pub fn parse_any_job(
    file: &Path,
    text: &str,
    format: Option<Format>,
    opts: &ImportOptions,
) -> Result<AnyJob, Problems> {
    crate::limits::check(file, text)?;
    match format.unwrap_or_else(|| detect(text)) {
        Format::Native => {
            crate::load::parse_job(file, text).map(|job| AnyJob { job, report: None })
        }
        Format::Runconfig => runconfig::import(file, text, opts).map(|(job, r)| AnyJob {
            job,
            report: Some(r),
        }),
        Format::AmlJob => v2_job::import(file, text).map(|(job, r)| AnyJob {
            job,
            report: Some(r),
        }),
    }
}

/// Reads a job file of any format and checks it against the workspace, reporting the
/// problems of both passes together, in file order.
pub fn load_and_validate_any_job(
    file: &Path,
    format: Option<Format>,
    opts: &ImportOptions,
    ws: &crate::Workspace,
    ws_file: Option<&Path>,
) -> Result<AnyJob, Problems> {
    let text = crate::limits::read(file, "job spec")?;
    match format.unwrap_or_else(|| detect(&text)) {
        Format::Native => crate::load::load_and_validate_job(file, ws, ws_file)
            .map(|job| AnyJob { job, report: None }),
        f => {
            let any = parse_any_job(file, &text, Some(f), opts)?;
            let mut problems = crate::load::validate_job(&any.job, ws, ws_file).0;
            if problems.is_empty() {
                Ok(any)
            } else {
                problems.sort_by_key(|p| p.location.map(|l| (l.line, l.column)));
                Err(Problems(problems))
            }
        }
    }
}

/// Reads and parses a job file of any format.
pub fn load_any_job(
    file: &Path,
    format: Option<Format>,
    opts: &ImportOptions,
) -> Result<AnyJob, Problems> {
    parse_any_job(file, &crate::limits::read(file, "job spec")?, format, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An azureml-examples job, as written.
    fn example(rel: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/aml/examples")
            .join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn a_v2_job_without_schema_and_type_is_detected_by_what_only_v2_has() {
        // azureml-examples' on-behalf-of job: command, inputs with type: uri_file,
        // environment, compute, identity; neither $schema nor type.
        assert_eq!(
            detect(&example("single-step/on-behalf-of/job.yaml")),
            Format::AmlJob
        );
        for text in [
            "command: python t.py\ncompute: azureml:cpu-cluster\n",
            "command: python t.py\nidentity: {type: user_identity}\n",
            "command: python t.py\nresources: {instance_count: 2}\n",
            "command: python t.py\nenvironment_variables: {A: b}\n",
            "command: python t.py\nlimits: {timeout: 60}\n",
            "command: python t.py\nenvironment: azureml:AzureML-sklearn-1.0@latest\n",
            "command: python t.py\nenvironment: {build: {path: docker-context}}\n",
            "command: python t.py\ninputs: {d: {type: uri_folder, path: ./data}}\n",
            "command: python t.py\ninputs: {epochs: 3}\n",
            "command: python t.py\noutputs: {m: {type: mlflow_model}}\n",
            "command: python t.py\ncode: src\n",
            "code: src\n",
        ] {
            assert_eq!(detect(text), Format::AmlJob, "{text}");
        }
    }

    #[test]
    fn a_native_spec_stays_native_whatever_v2_like_content_it_has() {
        for text in [
            // Everything a native spec has, written natively.
            "name: j\ncommand: [python, t.py]\nenvironment: {image: x, LR: 0.1}\ncode: {local: src}\ninputs:\n  d: {datastore: ws, path: data, mode: download}\noutputs:\n  m: {path: out, mode: upload}\ndistribution: {type: pytorch, process_count_per_instance: 2}\ncontainer: {image: python:3.12}\n",
            // A native spec with a v2 key by mistake: a list command keeps it native,
            // so the mistake reads as a native problem.
            "name: j\ncommand: [python, t.py]\ncompute: big\n",
            "name: j\ncommand: [ls]\ninputs: {d: {type: uri_folder, path: x}}\n",
            // A single-string command alone: the native parser says it must be a list.
            "name: j\ncommand: python t.py\n",
            "name: j\ncommand: python t.py\nenvironment: {A: b}\ninputs: {d: {path: x}}\n",
            "name: j\n",
        ] {
            assert_eq!(detect(text), Format::Native, "{text}");
        }
    }

    #[test]
    fn detects_by_content() {
        assert_eq!(
            detect("script: train.py\ndataReferences: {}\n"),
            Format::Runconfig
        );
        assert_eq!(detect("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ncommand: ls\n"), Format::AmlJob);
        assert_eq!(detect("type: command\ncommand: ls\n"), Format::AmlJob);
        assert_eq!(detect("name: x\ncommand: [ls]\n"), Format::Native);
        assert_eq!(detect("- not a mapping"), Format::Native);
    }

    /// A workspace with the one datastore `ws`.
    fn workspace() -> crate::Workspace {
        crate::parse_workspace(
            Path::new("workspace.yaml"),
            "datastores:\n  ws: {type: local, root: .}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .value
    }

    #[test]
    fn an_imported_jobs_problems_name_the_keys_written_in_line_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("train.runconfig");
        std::fs::write(
            &file,
            "script: t.py\narguments: [$AZUREML_DATAREFERENCE_nope]\ndataReferences:\n  d:\n    dataStoreName: gone\n    mode: download\n",
        )
        .unwrap();
        let err =
            load_and_validate_any_job(&file, None, &ImportOptions::default(), &workspace(), None)
                .unwrap_err();
        let got: Vec<(&str, Option<usize>)> = err
            .0
            .iter()
            .map(|p| (p.field.as_str(), p.location.map(|l| l.line)))
            .collect();
        assert_eq!(
            got,
            [
                ("arguments[0]", Some(2)),
                ("dataReferences.d.dataStoreName", Some(5))
            ]
        );
    }

    #[test]
    fn the_format_is_detected_or_forced() {
        let dir = tempfile::tempdir().unwrap();
        let native = dir.path().join("job.yaml");
        std::fs::write(&native, "name: j\ncommand: [x]\n").unwrap();
        let any =
            load_and_validate_any_job(&native, None, &ImportOptions::default(), &workspace(), None)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(any.report.is_none(), "a native spec has no import report");
        let v2 = dir.path().join("job.yml");
        std::fs::write(&v2, "type: command\ncommand: ls\n").unwrap();
        let any =
            load_any_job(&v2, None, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(any.report.map(|r| r.format), Some(Format::AmlJob));
        // Forced: the same text read as a runconfig, where `type` means nothing.
        let report = load_any_job(&v2, Some(Format::Runconfig), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .report
            .expect("a report");
        assert_eq!(report.format, Format::Runconfig);
        let ignored: Vec<&str> = report.ignored.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(ignored, ["type"]);
        let err = load_any_job(
            &dir.path().join("missing.yml"),
            None,
            &ImportOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.0[0].message.starts_with("cannot read the job spec"),
            "{err}"
        );
        assert_eq!(
            [Format::Native, Format::Runconfig, Format::AmlJob].map(Format::as_str),
            ["native", "runconfig", "aml-job"]
        );
    }
}
