//! The [`Reader`]: a YAML document read field by field, every problem recorded at its
//! field path and position instead of stopping at the first, with a near miss
//! suggested for an unknown field or value.
//!
//! It knows mappings, fields and serde, never what a job or a workspace holds.

use crate::locate::{Index, Location};
use crate::problem::Problem;
use crate::suggest;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Collects problems while a document is read field by field.
pub(super) struct Reader<'a> {
    /// The file being read, named in every problem.
    pub(super) file: &'a Path,
    /// Where each field of the document sits.
    pub(super) index: Index,
    /// What was found wrong so far.
    pub(super) problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    /// A reader of `text`, the content of `file`, with no problem found yet.
    pub(super) fn new(file: &'a Path, text: &str) -> Self {
        Reader {
            file,
            index: Index::of(text),
            problems: Vec::new(),
        }
    }

    /// A problem at `field`, placed where the document has it.
    pub(super) fn push(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            location: self.index.find(field),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Deserialises one value, recording any error at its precise field path.
    pub(super) fn value<T: DeserializeOwned>(&mut self, field: &str, v: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                let inner = e.path().to_string();
                let mut message = e.into_inner().to_string();
                let mut full = field.to_string();
                if inner != "." && !inner.is_empty() {
                    if inner.starts_with('[') {
                        full.push_str(&inner);
                    } else {
                        full = path_join(&full, &inner);
                    }
                }
                // serde reports an unknown field at its parent; point at the field itself.
                if let Some(rest) = message.strip_prefix("unknown field `") {
                    if let Some(end) = rest.find('`') {
                        let name = &rest[..end];
                        if !full.ends_with(&format!(".{name}")) && full != name {
                            full = path_join(&full, name);
                        }
                        message = format!(
                            "unknown field{}{}",
                            &rest[end + 1..],
                            suggest_from_message(name, &rest[end + 1..])
                        );
                    }
                } else if let Some(rest) = message.strip_prefix("unknown variant `") {
                    if let Some(end) = rest.find('`') {
                        message.push_str(&suggest_from_message(&rest[..end], &rest[end + 1..]));
                    }
                }
                message = message.replace("unknown variant", "unknown value");
                self.push(&full, message);
                None
            }
        }
    }

    /// Takes and deserialises a top-level field, if present.
    pub(super) fn take<T: DeserializeOwned>(
        &mut self,
        f: &mut BTreeMap<String, Value>,
        key: &str,
    ) -> Option<T> {
        f.remove(key).and_then(|v| self.value(key, v))
    }

    /// Reads a top-level mapping, or reports that the document is not one.
    pub(super) fn mapping(&mut self, text: &str, what: &str) -> Option<Mapping> {
        match serde_yaml::from_str::<Value>(text) {
            Err(e) => {
                let location = e.location().map(|l| Location {
                    line: l.line(),
                    column: l.column(),
                });
                self.problems.push(Problem {
                    file: self.file.to_path_buf(),
                    location,
                    field: String::new(),
                    message: format!("not valid YAML: {e}"),
                });
                None
            }
            Ok(Value::Mapping(m)) => Some(m),
            Ok(Value::Null) => {
                self.push("", format!("the file is empty; a {what} is a YAML mapping"));
                None
            }
            Ok(_) => {
                self.push("", format!("a {what} is a YAML mapping (key: value lines)"));
                None
            }
        }
    }

    /// Splits a mapping into its known keys, reporting the others.
    pub(super) fn fields(
        &mut self,
        base: &str,
        map: Mapping,
        known: &[&str],
    ) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let Some(key) = k.as_str().map(str::to_string) else {
                self.push(base, format!("keys must be strings, found {k:?}"));
                continue;
            };
            if known.contains(&key.as_str()) {
                out.insert(key, v);
            } else {
                self.push(
                    &path_join(base, &key),
                    format!(
                        "unknown field, expected one of {}{}",
                        known.join(", "),
                        suggest::did_you_mean(&key, known.iter().copied())
                    ),
                );
            }
        }
        out
    }

    /// Reads a map of named entries (`inputs`, `datastores`), each on its own.
    pub(super) fn entries<T: DeserializeOwned>(
        &mut self,
        field: &str,
        v: Value,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let map = match v {
            Value::Null => return out,
            Value::Mapping(m) => m,
            _ => {
                self.push(field, "expected a mapping of names to entries");
                return out;
            }
        };
        for (k, v) in map {
            let Some(name) = k.as_str().map(str::to_string) else {
                self.push(field, format!("names must be strings, found {k:?}"));
                continue;
            };
            if let Some(t) = self.value::<T>(&path_join(field, &name), v) {
                out.insert(name, t);
            }
        }
        out
    }
}

/// "; did you mean `x`?" for `word`, the candidates being the backticked names in the
/// rest of serde's message (`, expected one of `a`, `b``).
fn suggest_from_message(word: &str, rest: &str) -> String {
    let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    suggest::did_you_mean(word, known)
}

pub(super) fn path_join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}
