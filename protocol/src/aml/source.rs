//! Reading an Azure ML file key by key: [`Source`] (the document, its index of
//! locations and the problems found so far) and the small readers every importer
//! shares (a scalar as Python prints it, whether a value is set, a mapping's entries,
//! a job name from a file name, the `bash -c` shell line).
//!
//! It sits below every importer and below `load` (the v2 datastore files a workspace
//! lists are read with it), so it must never use an importer, `load` or the
//! format detection in `aml/mod.rs`: that would bring the import circle back.

use crate::locate::Index;
use crate::problem::{Parsed, Problem, Problems};
use serde_yaml::{Mapping, Value};
use std::path::Path;

/// Where each native field came from: native field path prefix → source key.
pub(crate) type Aliases = Vec<(String, String)>;

/// Reads a source document key by key, collecting problems with their locations.
pub(crate) struct Source<'a> {
    pub file: &'a Path,
    pub index: Index,
    pub problems: Vec<Problem>,
}

impl<'a> Source<'a> {
    /// Parses `text` as a YAML mapping, or returns the problem.
    pub fn open(file: &'a Path, text: &str, what: &str) -> Result<(Source<'a>, Mapping), Problems> {
        crate::limits::check(file, text)?;
        let src = Source {
            file,
            index: Index::of(text),
            problems: Vec::new(),
        };
        match serde_yaml::from_str::<Value>(text) {
            Ok(Value::Mapping(m)) => Ok((src, m)),
            Ok(_) => Err(Problems(vec![src.problem(
                "",
                format!("a {what} is a YAML mapping (key: value lines)"),
            )])),
            Err(e) => Err(Problems(vec![Problem {
                file: file.to_path_buf(),
                location: e.location().map(|l| crate::locate::Location {
                    line: l.line(),
                    column: l.column(),
                }),
                field: String::new(),
                message: format!("not valid YAML: {e}"),
            }])),
        }
    }

    pub fn problem(&self, field: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.to_path_buf(),
            location: self.index.find(field),
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        let p = self.problem(field, message);
        self.problems.push(p);
    }

    /// A string value; numbers and booleans are taken as their text (the SDK writes
    /// `'0.1'`, a person may write `0.1`). Null is `None`.
    pub fn string(&mut self, field: &str, v: &Value) -> Option<String> {
        match scalar_text(v) {
            Some(s) => Some(s),
            None if v.is_null() => None,
            None => {
                self.push(field, "expected a single value (text or number)");
                None
            }
        }
    }

    /// A mapping value; null is an empty one.
    pub fn mapping(&mut self, field: &str, v: &Value) -> Option<Mapping> {
        match v {
            Value::Mapping(m) => Some(m.clone()),
            Value::Null => Some(Mapping::new()),
            _ => {
                self.push(field, "expected a mapping (key: value lines)");
                None
            }
        }
    }

    /// Finishes: the value and the report, or every problem found.
    /// Finishes: the value, with the aliases that point its fields back at the
    /// source's keys, or every problem found.
    pub fn finish<T>(self, value: T, aliases: Aliases) -> Result<Parsed<T>, Problems> {
        if !self.problems.is_empty() {
            return Err(Problems(self.problems));
        }
        Ok(Parsed {
            value,
            file: self.file.to_path_buf(),
            index: self.index,
            warnings: Vec::new(),
            aliases,
        })
    }
}

/// The text of a scalar as a program would see it on its command line: numbers as
/// written, booleans as Python prints them (`True`, `False`), which is what Azure ML
/// substitutes. `None` for null, sequences and mappings.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Tagged(t) => scalar_text(&t.value),
        _ => None,
    }
}

/// A mapping's value at `key`; null when absent.
pub(crate) fn get(m: &Mapping, key: &str) -> Value {
    m.get(key).cloned().unwrap_or(Value::Null)
}

/// Whether a value carries something: not null, not an empty string, list or mapping.
pub(crate) fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => !m.is_empty(),
        _ => true,
    }
}

/// Iterates a mapping's string keys in order (other keys are reported by the caller's
/// YAML rules never arising in Azure ML files; they are skipped).
pub(crate) fn entries(m: &Mapping) -> impl Iterator<Item = (&str, &Value)> {
    m.iter().filter_map(|(k, v)| k.as_str().map(|k| (k, v)))
}

/// A job name from a file name: `train.runconfig` → `train`; characters a job name
/// may not have become `-`.
pub(crate) fn name_from_file(file: &Path) -> String {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("job");
    sanitize_name(stem)
}

/// Letters, digits, `-`, `_` and `.` kept; anything else becomes `-`.
pub(crate) fn sanitize_name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if n.trim_matches('-').is_empty() {
        "job".into()
    } else {
        n
    }
}

/// The shell a command line given as one string runs in, as on Azure ML.
pub(crate) fn shell(line: &str) -> Vec<String> {
    vec!["bash".into(), "-c".into(), line.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_as_python_prints_them() {
        let v: Value = serde_yaml::from_str("[1, 0.5, true, x]").unwrap();
        let texts: Vec<_> = v
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| scalar_text(v).unwrap())
            .collect();
        assert_eq!(texts, ["1", "0.5", "True", "x"]);
    }

    #[test]
    fn names_that_are_all_punctuation_become_job() {
        assert_eq!(sanitize_name("!!!"), "job");
        assert_eq!(sanitize_name(""), "job");
        assert_eq!(sanitize_name("a.b_c-1"), "a.b_c-1");
    }

    /// A workspace with the one datastore `ws`.
    #[test]
    fn names_from_files() {
        assert_eq!(
            name_from_file(Path::new(".azureml/train.runconfig")),
            "train"
        );
        assert_eq!(name_from_file(Path::new("my job!.yml")), "my-job-");
    }
}
