//! What a command job's inputs and outputs share: where an Azure ML path points
//! ([`locate`]: a datastore path, a URL, a local path, or something only the service
//! resolves), the problem when it cannot be read here, the [`Item`] an entry becomes,
//! and the collected [`Data`]. Also used by `crate::data_source` for data assets' paths.

use super::super::report::ImportReport;
use super::super::source::{entries, is_set, Source};
use crate::job::DataRef;
use serde_yaml::Mapping;
use std::collections::BTreeMap;

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

/// What the inputs and outputs became.
#[derive(Default)]
pub(super) struct Data {
    /// (is an input, name) → the text substituted for it in the command.
    pub literals: BTreeMap<(bool, String), String>,
    /// `AZURE_ML_INPUT_x` / `AZURE_ML_OUTPUT_x` of literals, then the job's own.
    pub environment: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, DataRef>,
    pub outputs: BTreeMap<String, DataRef>,
}

pub(super) fn alias_data(aliases: &mut Vec<(String, String)>, field: &str) {
    aliases.push((field.to_string(), field.to_string()));
    for native in ["datastore", "local", "url", "asset"] {
        aliases.push((format!("{field}.{native}"), format!("{field}.path")));
    }
}

/// An input or output: data, or a value substituted as text.
pub(super) enum Item {
    Data(Box<DataRef>),
    Literal(String),
}

pub(super) const DATA_TYPES: &[&str] = &[
    "uri_folder",
    "uri_file",
    "mltable",
    "custom_model",
    "mlflow_model",
    "triton_model",
];
pub(super) const LITERAL_TYPES: &[&str] = &["string", "integer", "number", "boolean"];

/// A data path → (datastore, path on it), or a problem saying why it cannot be read.
pub(super) fn data_location(
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

pub(super) fn ignore_extra(m: &Mapping, field: &str, known: &[&str], report: &mut ImportReport) {
    for (k, v) in entries(m) {
        if !known.contains(&k) && is_set(v) {
            report.ignore(format!("{field}.{k}"), "has no effect on where the data is");
        }
    }
}
