//! Reading one input or output field by field, so that every problem of an entry is
//! reported at once (`{datastore: nostore, path: ../x, mode: mnt}` gives three), with
//! the modes its kind allows and a near miss suggested (`datastor` → `datastore`,
//! Azure ML's `ro_mount` → `mount`). An entry with problems is still returned, its bad
//! fields at their defaults, so that the workspace rules run on the rest of it.

use super::reader::{path_join, Reader};
use crate::job::{DataRef, Mode};
use crate::suggest;
use serde_yaml::Value;
use std::collections::BTreeMap;

/// The fields of a data reference.
const FIELDS: &[&str] = &[
    "datastore",
    "path",
    "local",
    "url",
    "asset",
    "query",
    "table",
    "mode",
    "path_on_compute",
    "overwrite",
    "upload_on",
    "mount_fallback",
    "shard",
    "sync",
    "restore",
    "sha256",
];

/// Azure ML's mode names, and what they are called here.
const AML_MODES: &[(&str, &str)] = &[
    ("ro_mount", "mount"),
    ("eval_mount", "mount"),
    ("eval_download", "download"),
    ("rw_mount", "upload"),
    ("direct", "download"),
];

impl Reader<'_> {
    /// `inputs` or `outputs`: each entry read on its own, every problem reported.
    pub(super) fn data_refs(&mut self, kind: &str, v: Value) -> BTreeMap<String, DataRef> {
        let mut out = BTreeMap::new();
        let map = match v {
            Value::Null => return out,
            Value::Mapping(m) => m,
            _ => {
                self.push(kind, "expected a mapping of names to entries");
                return out;
            }
        };
        for (k, v) in map {
            let Some(name) = k.as_str().map(str::to_string) else {
                self.push(kind, format!("names must be strings, found {k:?}"));
                continue;
            };
            if let Some(r) = self.data_ref(kind, &path_join(kind, &name), v) {
                out.insert(name, r);
            }
        }
        out
    }

    fn data_ref(&mut self, kind: &str, field: &str, v: Value) -> Option<DataRef> {
        let Value::Mapping(map) = v else {
            return self.value::<DataRef>(field, v);
        };
        let mut f = self.fields(field, map, FIELDS);
        let mut take = |key: &str| f.remove(key).map(|v| (path_join(field, key), v));
        let datastore = take("datastore").and_then(|(k, v)| self.value(&k, v));
        let path = take("path").and_then(|(k, v)| self.value(&k, v));
        let local = take("local").and_then(|(k, v)| self.value(&k, v));
        let url = take("url").and_then(|(k, v)| self.value(&k, v));
        let asset = take("asset").and_then(|(k, v)| self.value(&k, v));
        let query = take("query").and_then(|(k, v)| self.value(&k, v));
        let table = take("table").and_then(|(k, v)| self.value(&k, v));
        let mode = match take("mode") {
            Some((k, v)) => self.mode(kind, &k, v),
            None => {
                self.push(field, format!("missing field `mode`, {}", allowed(kind)));
                None
            }
        };
        let path_on_compute = take("path_on_compute").and_then(|(k, v)| self.value(&k, v));
        let overwrite = take("overwrite").and_then(|(k, v)| self.value(&k, v));
        let upload_on = take("upload_on").and_then(|(k, v)| self.value(&k, v));
        let mount_fallback = take("mount_fallback").and_then(|(k, v)| self.value(&k, v));
        let shard = take("shard").and_then(|(k, v)| self.value(&k, v));
        let sync = take("sync").and_then(|(k, v)| self.value(&k, v));
        let restore = take("restore").and_then(|(k, v)| self.value(&k, v));
        let sha256 = take("sha256").and_then(|(k, v)| self.value(&k, v));
        Some(DataRef {
            datastore,
            path: path.unwrap_or_default(),
            local,
            url,
            asset,
            query,
            table,
            mode: mode.unwrap_or(if kind == "outputs" {
                Mode::Upload
            } else {
                Mode::Download
            }),
            path_on_compute,
            overwrite: overwrite.unwrap_or_default(),
            upload_on: upload_on.unwrap_or_default(),
            mount_fallback,
            shard,
            sync,
            restore,
            sha256,
        })
    }

    /// A mode: one of the three, or a problem that lists only what this kind allows
    /// (an input's `upload` is a valid mode and refused later, by `validate_job`).
    fn mode(&mut self, kind: &str, field: &str, v: Value) -> Option<Mode> {
        let Value::String(text) = &v else {
            return self.value(field, v);
        };
        match text.as_str() {
            "mount" => return Some(Mode::Mount),
            "download" => return Some(Mode::Download),
            "upload" => return Some(Mode::Upload),
            _ => {}
        }
        let hint = match AML_MODES.iter().find(|(aml, _)| aml == text) {
            Some((aml, ours)) => format!("; Azure ML's `{aml}`: did you mean `{ours}`?"),
            None => suggest::did_you_mean(text, names(kind).iter().copied()),
        };
        self.push(
            field,
            format!("unknown value `{text}`, {}{hint}", allowed(kind)),
        );
        None
    }
}

fn names(kind: &str) -> &'static [&'static str] {
    if kind == "outputs" {
        &["upload"]
    } else {
        &["mount", "download"]
    }
}

/// "expected one of `mount`, `download`" (inputs) or "expected `upload`" (outputs).
fn allowed(kind: &str) -> String {
    match names(kind) {
        [one] => format!("expected `{one}`"),
        many => format!(
            "expected one of {}",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
