//! Azure ML's own files, taken as they are: v1 `.runconfig` (as `RunConfiguration.save()`
//! writes it), v2 command-job YAML, and v2 datastore YAML. Each importer produces the
//! native model ([`JobSpec`], [`Datastore`](crate::Datastore)) plus an [`ImportReport`]
//! saying what every source key became and which keys were ignored.
//!
//! Importers never guess silently: a key stagehand does not act on is accepted and
//! reported once as ignored; content that only the Azure ML service can resolve (a
//! registered asset, a registry environment) is an error that names the key and says
//! why. Like the rest of this crate: pure parsing, no network.

pub mod runconfig;
pub mod v2_datastore;
pub mod v2_job;

use crate::job::JobSpec;
use crate::locate::Index;
use crate::problem::{Parsed, Problem, Problems};
use serde::Serialize;
use serde_yaml::{Mapping, Value};
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

/// Tells the format from the content: a `dataReferences` key is a runconfig; a
/// `$schema` or a `type` key is Azure ML v2 (native specs have neither); anything else
/// is native. Text that is not a YAML mapping is native (its parser reports why).
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
    } else if m.contains_key("$schema") || m.contains_key("type") {
        Format::AmlJob
    } else {
        Format::Native
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
    fn new(format: Format, file: &Path) -> ImportReport {
        ImportReport {
            format,
            file: file.to_path_buf(),
            mapped: Vec::new(),
            ignored: Vec::new(),
        }
    }

    fn map(&mut self, key: impl Into<String>, became: impl Into<String>) {
        self.mapped.push(Mapped {
            key: key.into(),
            became: became.into(),
        });
    }

    fn ignore(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.ignored.push(Ignored {
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// Records `key` as ignored, with its reason from `reasons`, or `otherwise`.
    fn ignore_with(&mut self, key: &str, reasons: &[(&str, &str)], otherwise: &str) {
        let reason = reasons
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(otherwise, |(_, r)| *r);
        self.ignore(key, reason);
    }
}

/// Options that an importer needs from the command line.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Runconfig: the code snapshot's folder on `sourceDirectoryDataStore`
    /// (`--source-path`). Without it the code is the local project folder, which is
    /// what Azure ML itself snapshots.
    pub source_path: Option<String>,
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
    pub fn finish(
        self,
        job: JobSpec,
        aliases: Vec<(String, String)>,
        report: ImportReport,
    ) -> Result<(Parsed<JobSpec>, ImportReport), Problems> {
        if !self.problems.is_empty() {
            return Err(Problems(self.problems));
        }
        Ok((
            Parsed {
                value: job,
                file: self.file.to_path_buf(),
                index: self.index,
                warnings: Vec::new(),
                aliases,
            },
            report,
        ))
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

    #[test]
    fn names_from_files() {
        assert_eq!(
            name_from_file(Path::new(".azureml/train.runconfig")),
            "train"
        );
        assert_eq!(name_from_file(Path::new("my job!.yml")), "my-job-");
    }
}
