//! A command job's `outputs`: a folder (or file) the job writes, uploaded after it
//! exits, at its path or where Azure ML puts it by default; or a `mode: direct` URI
//! passed to the job as it is.

use super::super::report::ImportReport;
use super::super::source::{entries, is_set, scalar_text, Aliases, Source};
use super::data::{alias_data, data_location, ignore_extra, Data, Item, DATA_TYPES};
use crate::job::{DataRef, Mode};
use serde_yaml::{Mapping, Value};

/// `outputs`: direct URIs go to the command and the environment, data to `outputs`.
pub(super) fn import_outputs(
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
                data.outputs.insert(n.to_string(), *r);
            }
            None => {}
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
    Some(Item::Data(Box::new(DataRef {
        query: None,
        table: None,
        restore: None,
        sha256: None,
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
    })))
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
