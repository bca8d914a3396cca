//! A runconfig's `dataReferences` → inputs (mount, download) and outputs (upload),
//! each named after its reference, with the SDK's meaning of a root path, a default
//! datastore and a relative `pathOnCompute`; dataset sections are refused.

use super::super::report::ImportReport;
use super::super::source::{entries, get, is_set, scalar_text, Aliases, Source};
use crate::job::{DataRef, Mode};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;

/// Where the native plan puts the code snapshot in the run folder; the job's working
/// folder. Relative `pathOnCompute` values are placed under it.
pub const CODE_DIR: &str = "code";

/// `dataReferences` → inputs (mount, download) and outputs (upload), each named after
/// its reference.
pub(super) fn import_data_references(
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
pub(super) fn refuse_datasets(src: &mut Source, top: &Mapping) {
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
        query: None,
        table: None,
        restore: None,
        sha256: None,
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
