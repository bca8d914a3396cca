//! What reading a file yields: the value with where each field sits ([`Parsed`]), or
//! the things wrong with it ([`Problem`], [`Problems`]), each with its file, line and
//! column and field path.
//!
//! Every reader of a file (the native job and workspace, Azure ML's files, the size
//! and depth limits) reports through these types, so this module sits below all of
//! them: it must never import a parser (`load`, `aml`, `limits`).

use crate::locate::{Index, Location};
use std::fmt;
use std::path::PathBuf;

/// One thing wrong (or worth a warning) in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file it is in.
    pub file: PathBuf,
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// The field path (`inputs.train.mode`); empty for the whole document.
    pub field: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.location {
            write!(f, ":{}:{}", l.line, l.column)?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// All the problems found in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A parsed file: its value, where it came from, and where each field sits.
#[derive(Debug)]
pub struct Parsed<T> {
    /// The value.
    pub value: T,
    /// The file it was read from.
    pub file: PathBuf,
    /// Field positions, for problems found later.
    pub index: Index,
    /// Warnings (valid, but worth a look: a literal secret, say).
    pub warnings: Vec<Problem>,
    /// For a value imported from another format (an Azure ML file): native field path
    /// prefix → the source key it came from, so a problem found in the native value
    /// names the key the person wrote (`inputs.train` → `dataReferences.train`).
    pub aliases: Vec<(String, String)>,
}

impl<T> Parsed<T> {
    /// A problem at `field` of this file.
    pub fn problem(&self, field: &str, message: impl Into<String>) -> Problem {
        let field = self.source_field(field);
        Problem {
            file: self.file.clone(),
            location: self.index.find(&field),
            field,
            message: message.into(),
        }
    }

    /// The field path in the file as written: a native path translated through
    /// `aliases` (longest matching prefix), or unchanged.
    pub fn source_field(&self, field: &str) -> String {
        let best = self
            .aliases
            .iter()
            .filter(|(native, _)| {
                field == native
                    || field
                        .strip_prefix(native.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(native, _)| native.len());
        match best {
            Some((native, source)) => format!("{source}{}", &field[native.len()..]),
            None => field.to_string(),
        }
    }

    /// The folder of the file, against which relative paths in it are resolved.
    pub fn folder(&self) -> PathBuf {
        match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}
