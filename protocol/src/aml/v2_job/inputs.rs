//! A command job's `inputs`: literal values (substituted in the command and set as
//! `AZURE_ML_INPUT_<name>`), `mode: direct` URIs, and data (a datastore path, a
//! storage URL, a data asset or a local path) mounted or downloaded.

use super::super::report::ImportReport;
use super::super::source::{entries, scalar_text, Aliases, Source};
use super::data::{
    alias_data, data_location, ignore_extra, locate, Data, Item, Location, DATA_TYPES,
    LITERAL_TYPES,
};
use crate::job::{DataRef, Mode};
use serde_yaml::{Mapping, Value};

/// `inputs`: literals go to the command and the environment, data to `inputs`.
pub(super) fn import_inputs(
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
                data.inputs.insert(n.to_string(), *r);
            }
            None => {}
        }
    }
}

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
        (_, Some(u), _) => format!("url {u} (a registered datastore, else anonymous)"),
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
    Some(Item::Data(Box::new(r)))
}

/// Where an input's data is: a datastore path, a storage URL, a registered data asset
/// or a local file or folder (relative to the job file); the plan resolves the last
/// three against the workspace.
fn input_location(src: &mut Source, field: &str, uri: &str) -> Option<DataRef> {
    let mut r = DataRef {
        query: None,
        table: None,
        restore: None,
        sha256: None,
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
