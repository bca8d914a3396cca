//! What an importer did with each key of its source file ([`ImportReport`]: mapped,
//! ignored), and the [`Format`] it read. Shared by every importer; uses none of them.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// The formats a job file can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// stagehand's own job spec.
    Native,
    /// An Azure ML v1 `.runconfig`.
    Runconfig,
    /// An Azure ML v2 command job.
    AmlJob,
}

impl Format {
    /// The name used by `--format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Runconfig => "runconfig",
            Format::AmlJob => "aml-job",
        }
    }
}

/// One source key and what it became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapped {
    /// The key as written in the source file (`dataReferences.train`).
    pub key: String,
    /// What it became in the native job (`inputs.train: mount workspaceblobstore:datasets/mnist`).
    pub became: String,
}

/// One source key stagehand accepted but does not act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// The key as written in the source file.
    pub key: String,
    /// Why it has no effect here.
    pub reason: String,
}

/// What an importer did with each key of its source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The source's format.
    pub format: Format,
    /// The source file.
    pub file: PathBuf,
    /// Keys that became part of the native job, in source order.
    pub mapped: Vec<Mapped>,
    /// Keys that were accepted and have no effect, each once.
    pub ignored: Vec<Ignored>,
}

impl ImportReport {
    pub(crate) fn new(format: Format, file: &Path) -> ImportReport {
        ImportReport {
            format,
            file: file.to_path_buf(),
            mapped: Vec::new(),
            ignored: Vec::new(),
        }
    }

    pub(crate) fn map(&mut self, key: impl Into<String>, became: impl Into<String>) {
        self.mapped.push(Mapped {
            key: key.into(),
            became: became.into(),
        });
    }

    pub(crate) fn ignore(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.ignored.push(Ignored {
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// Records `key` as ignored, with its reason from `reasons`, or `otherwise`.
    pub(crate) fn ignore_with(&mut self, key: &str, reasons: &[(&str, &str)], otherwise: &str) {
        let reason = reasons
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(otherwise, |(_, r)| *r);
        self.ignore(key, reason);
    }
}
