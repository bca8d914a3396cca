//! The job spec file: its structure and types read field by field
//! ([`parse_job_partial`]), and, with the workspace, every rule of
//! [`validate_job`] in the same report.

use super::check::validate_job;
use super::reader::Reader;
use crate::job::JobSpec;
use crate::problem::{Parsed, Problem, Problems};
use crate::workspace::Workspace;
use std::collections::BTreeMap;
use std::path::Path;

/// `command`, read as [`JobSpec`] reads it.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Args(#[serde(deserialize_with = "crate::job::scalar::list")] Vec<String>);

/// `environment`, read as [`JobSpec`] reads it.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Env(#[serde(deserialize_with = "crate::job::scalar::map")] BTreeMap<String, String>);

const JOB_FIELDS: &[&str] = &[
    "name",
    "command",
    "environment",
    "timeout",
    "kill_grace",
    "code",
    "container",
    "inputs",
    "outputs",
    "azure_ml_v2_variables",
    "distribution",
    "keep_run_dir",
];

/// Parses a job spec's text. Checks structure and types only; see [`validate_job`]
/// for the rules that need the workspace.
pub fn parse_job(file: &Path, text: &str) -> Result<Parsed<JobSpec>, Problems> {
    match parse_job_partial(file, text)? {
        (parsed, problems) if problems.is_empty() => Ok(parsed),
        (_, problems) => Err(Problems(problems)),
    }
}

/// Like [`parse_job`], but a document that is a mapping always gives a spec: fields
/// with problems are left at their defaults and the problems are returned beside it,
/// so that the rules of [`validate_job`] can still run and every problem is reported
/// in one pass.
pub fn parse_job_partial(
    file: &Path,
    text: &str,
) -> Result<(Parsed<JobSpec>, Vec<Problem>), Problems> {
    crate::limits::check(file, text)?;
    let mut r = Reader::new(file, text);
    let Some(map) = r.mapping(text, "job spec") else {
        return Err(Problems(r.problems));
    };
    let mut f = r.fields("", map, JOB_FIELDS);
    let name: Option<String> = r.take(&mut f, "name");
    let command: Option<Vec<String>> = r.take::<Args>(&mut f, "command").map(|a| a.0);
    if !r.problems.iter().any(|p| p.field == "name") && name.is_none() {
        r.push("name", "missing; every job needs a name");
    }
    if !r.problems.iter().any(|p| p.field.starts_with("command")) && command.is_none() {
        r.push(
            "command",
            "missing; give the program and its arguments as a list",
        );
    }
    let environment = r.take::<Env>(&mut f, "environment").map(|e| e.0);
    let timeout = r.take(&mut f, "timeout");
    let kill_grace = r.take(&mut f, "kill_grace");
    let code = r.take(&mut f, "code");
    let container = r.take(&mut f, "container");
    let inputs = f.remove("inputs").map(|v| r.data_refs("inputs", v));
    let outputs = f.remove("outputs").map(|v| r.data_refs("outputs", v));
    let azure_ml_v2_variables = r.take(&mut f, "azure_ml_v2_variables");
    let distribution = r.take(&mut f, "distribution");
    let keep_run_dir = r.take(&mut f, "keep_run_dir");
    let spec = JobSpec {
        name: name.unwrap_or_default(),
        command: command.unwrap_or_default(),
        environment: environment.unwrap_or_default(),
        timeout,
        kill_grace,
        code,
        container,
        inputs: inputs.unwrap_or_default(),
        outputs: outputs.unwrap_or_default(),
        azure_ml_v2_variables: azure_ml_v2_variables.unwrap_or_default(),
        distribution,
        keep_run_dir: keep_run_dir.unwrap_or_default(),
    };
    let parsed = Parsed {
        value: spec,
        file: file.to_path_buf(),
        index: r.index,
        warnings: Vec::new(),
        aliases: Vec::new(),
    };
    Ok((parsed, r.problems))
}

/// Reads and parses a job spec file.
pub fn load_job(file: &Path) -> Result<Parsed<JobSpec>, Problems> {
    parse_job(file, &crate::limits::read(file, "job spec")?)
}

/// Reads a job spec file and checks it against the workspace, reporting the problems
/// of both passes together.
pub fn load_and_validate_job(
    file: &Path,
    ws: &Workspace,
    ws_file: Option<&Path>,
) -> Result<Parsed<JobSpec>, Problems> {
    let (parsed, mut problems) = parse_job_partial(file, &crate::limits::read(file, "job spec")?)?;
    let structural = !problems.is_empty();
    for p in validate_job(&parsed, ws, ws_file).0 {
        // With fields missing, cross-references and emptiness checks would only repeat
        // what the structural problems already say.
        let echo = structural
            && (problems
                .iter()
                .any(|q| p.field.starts_with(&q.field) || q.field.starts_with(&p.field))
                || (p.field.starts_with("command[")
                    && problems
                        .iter()
                        .any(|q| q.field.starts_with("inputs") || q.field.starts_with("outputs"))));
        if !echo {
            problems.push(p);
        }
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        problems.sort_by_key(|p| p.location.map(|l| (l.line, l.column)));
        Err(Problems(problems))
    }
}
