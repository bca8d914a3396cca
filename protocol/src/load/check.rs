//! The rules of a job that need the workspace ([`validate_job`]): names, datastores,
//! modes, paths, code, container, distribution and the command's references.
//!
//! It reads a parsed spec and reports; it never changes the spec or reads a file.

mod database;

use crate::job::{DataRef, JobSpec, Mode, UploadOn, CONTAINER_ROOT};
use crate::path;
use crate::problem::{Parsed, Problem, Problems};
use crate::substitute::{references, Reference};
use crate::workspace::Workspace;
use std::collections::HashMap;
use std::path::Path;

/// The rules that need both files: names, modes, datastores, paths and references.
pub fn validate_job(job: &Parsed<JobSpec>, ws: &Workspace, ws_file: Option<&Path>) -> Problems {
    let mut check = JobCheck {
        job,
        ws,
        ws_file,
        out: Vec::new(),
    };
    check.basics();
    check.data_refs();
    check.code();
    check.container();
    check.distribution();
    check.command_references();
    Problems(check.out)
}

/// The problems [`validate_job`] finds, collected rule group by rule group.
struct JobCheck<'a> {
    job: &'a Parsed<JobSpec>,
    ws: &'a Workspace,
    ws_file: Option<&'a Path>,
    out: Vec<Problem>,
}

impl JobCheck<'_> {
    /// A distributed job starts at least one process on at least one node (host
    /// processes, or one container per process).
    fn distribution(&mut self) {
        let Some(d) = &self.job.value.distribution else {
            return;
        };
        if d.process_count_per_instance == 0 {
            self.push(
                "distribution.process_count_per_instance",
                "must be at least 1".into(),
            );
        }
        if d.instance_count == Some(0) {
            self.push("distribution.instance_count", "must be at least 1".into());
        }
    }

    /// A problem at `field`, named as the person wrote it (through the aliases).
    fn push(&mut self, field: &str, msg: String) {
        self.out.push(self.job.problem(field, msg));
    }

    /// Where the workspace came from, for a message about its datastores.
    fn where_ws(&self) -> String {
        match self.ws_file {
            Some(p) => format!("in {}", p.display()),
            None => {
                "(no workspace file was found: pass --workspace or put workspace.yaml beside the job)"
                    .into()
            }
        }
    }

    /// The datastore `ds` (or the workspace default) of the entry at `field` exists.
    fn datastore(&mut self, field: &str, ds: &Option<String>) {
        let ws = self.ws;
        match ds.as_ref().or(ws.default_datastore.as_ref()) {
            Some(name) if ws.datastores.contains_key(name) => {}
            Some(name) => {
                let msg = format!(
                    "unknown datastore {name:?}; known: {} {}",
                    if ws.datastores.is_empty() {
                        "none".to_string()
                    } else {
                        ws.datastores.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                    self.where_ws()
                );
                self.push(&format!("{field}.datastore"), msg);
            }
            None => {
                let msg = format!(
                    "no datastore given and the workspace has no default_datastore {}",
                    self.where_ws()
                );
                self.push(field, msg);
            }
        }
    }

    /// The job's name, command, environment and timeout.
    fn basics(&mut self) {
        let spec = &self.job.value;
        if spec.name.trim().is_empty() {
            self.push("name", "empty; every job needs a name".into());
        } else if !spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.push(
                "name",
                format!(
                    "{:?}: use letters, digits, `-`, `_` and `.` only (it becomes part of paths)",
                    spec.name
                ),
            );
        }
        if spec.command.is_empty() || spec.command[0].is_empty() {
            self.push(
                "command",
                "empty; give the program and its arguments as a list, e.g. [python, train.py]"
                    .into(),
            );
        }
        for k in spec.environment.keys() {
            if !crate::is_env_name(k) {
                self.push(
                    &format!("environment.{k}"),
                    format!("{k:?} is not a valid environment variable name"),
                );
            }
        }
        if let Some(t) = spec.timeout {
            if t.0.is_zero() {
                self.push(
                    "timeout",
                    "must be longer than zero; leave it out for no limit".into(),
                );
            }
        }
    }

    /// Every input and output: its name, datastore, mode, paths and options.
    fn data_refs(&mut self) {
        let spec = &self.job.value;
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let mut on_compute: HashMap<String, String> = HashMap::new();
        for (kind, refs) in [("inputs", &spec.inputs), ("outputs", &spec.outputs)] {
            for (name, r) in refs {
                let field = format!("{kind}.{name}");
                if !crate::is_env_suffix(name) {
                    self.push(&field, format!("{name:?} cannot be part of an environment variable name (AZUREML_DATAREFERENCE_{name}); use letters, digits and `_`"));
                }
                if let Some(other) = seen.insert(name, kind) {
                    self.push(&field, format!("the name {name:?} is used in both {other} and {kind}; names must be unique across both"));
                }
                let elsewhere = self.elsewhere(kind, &field, r);
                if !elsewhere {
                    self.datastore(&field, &r.datastore);
                }
                self.mode(kind, &field, r);
                self.database(kind, &field, r);
                if !elsewhere {
                    self.data_path(kind, &field, r);
                }
                self.path_on_compute(&field, r, &mut on_compute);
                if kind == "inputs" && r.upload_on != Default::default() {
                    self.push(
                        &format!("{field}.upload_on"),
                        "only outputs are uploaded".into(),
                    );
                }
                if r.shard.is_some() && (kind != "inputs" || r.mode != Mode::Download) {
                    self.push(
                        &format!("{field}.shard"),
                        "only download inputs are sharded (a mount or an output is whole)".into(),
                    );
                }
                if let Some(every) = r.sync {
                    self.sync(kind, &field, r, every.0);
                }
                if r.restore.is_some() && (kind != "outputs" || r.mode != Mode::Upload) {
                    self.push(
                        &format!("{field}.restore"),
                        "only upload outputs are restored from their destination; remove `restore` from this input".into(),
                    );
                }
                if let Some(sha) = &r.sha256 {
                    self.sha256(kind, &field, r, sha);
                }
                if r.mount_fallback.is_some() && r.mode != Mode::Mount {
                    self.push(
                        &format!("{field}.mount_fallback"),
                        "only mount inputs have a fallback".into(),
                    );
                }
            }
        }
    }

    /// `sha256:`: 64 hex digits, on an input given by an `http(s)://` URL (a web file;
    /// the other stores publish their own versions and hashes).
    fn sha256(&mut self, kind: &str, field: &str, r: &DataRef, sha: &str) {
        let web = r.url.as_deref().is_some_and(|u| {
            let l = u.to_ascii_lowercase();
            l.starts_with("https://") || l.starts_with("http://")
        });
        let field = format!("{field}.sha256");
        if kind != "inputs" || !web {
            self.push(
                &field,
                "only an input given by an http(s):// url has a sha256 to check its file against"
                    .into(),
            );
        } else if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.push(
                &field,
                format!("{sha:?} is not a SHA-256: give its 64 hex digits (`sha256sum FILE`)"),
            );
        }
    }

    /// `sync: <interval>`: an upload output's, longer than zero, and uploaded whatever
    /// the job's end (a file synced while the job runs is up before anyone knows
    /// whether it succeeds).
    fn sync(&mut self, kind: &str, field: &str, r: &DataRef, every: std::time::Duration) {
        let field = format!("{field}.sync");
        if kind != "outputs" || r.mode != Mode::Upload {
            self.push(
                &field,
                "only upload outputs sync while the job runs; remove `sync` from this input".into(),
            );
        } else if every.is_zero() {
            self.push(
                &field,
                "must be longer than zero, e.g. `sync: 30s`; leave it out to upload only at exit"
                    .into(),
            );
        } else if r.upload_on != UploadOn::Always {
            self.push(&field, format!("files synced while the job runs are uploaded before it is known whether the job succeeds, so `sync` needs `upload_on: always` (this output has `upload_on: {}`); remove one of them", match r.upload_on { UploadOn::Success => "success", UploadOn::Failure => "failure", UploadOn::Always => "always" }));
        }
    }

    /// Whether `r` names its data by `local`, `url` or `asset` instead of a datastore
    /// path (one of them, with no `datastore` or `path`; `local` and `asset` for inputs
    /// only). Where each really is, the plan resolves ([`crate::data_source`]).
    fn elsewhere(&mut self, kind: &str, field: &str, r: &DataRef) -> bool {
        let given: Vec<&str> = [
            ("local", r.local.is_some()),
            ("url", r.url.is_some()),
            ("asset", r.asset.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        let Some(first) = given.first() else {
            return false;
        };
        if given.len() > 1 {
            self.push(
                field,
                format!("give one of {}, not several", given.join(", ")),
            );
        }
        if r.datastore.is_some() || !r.path.is_empty() {
            self.push(
                field,
                format!("{first} names the data; leave out datastore and path"),
            );
        }
        if kind == "outputs" && *first != "url" {
            self.push(
                &format!("{field}.{first}"),
                format!("{first} is for inputs; an output goes to a datastore path or a url"),
            );
        }
        true
    }

    /// Inputs mount or download; outputs upload.
    fn mode(&mut self, kind: &str, field: &str, r: &DataRef) {
        match (kind, r.mode) {
            ("inputs", Mode::Upload) => self.push(
                &format!("{field}.mode"),
                "upload is for outputs; an input is mount or download".into(),
            ),
            ("outputs", Mode::Mount | Mode::Download) => self.push(
                &format!("{field}.mode"),
                format!("{} is for inputs; an output is upload", r.mode.as_str()),
            ),
            _ => {}
        }
    }

    /// The path on the datastore stays under its root (an output's after its
    /// placeholders are filled).
    fn data_path(&mut self, kind: &str, field: &str, r: &DataRef) {
        let checked = if kind == "outputs" {
            path::expand_placeholders(&r.path, "run", "job").and_then(|p| path::spec_path(&p))
        } else {
            path::spec_path(&r.path)
        };
        if let Err(e) = checked {
            self.push(
                &format!("{field}.path"),
                format!("{e}; paths are relative to the datastore's root and may not leave it"),
            );
        }
    }

    /// `path_on_compute` stays in the run folder and is no other entry's.
    fn path_on_compute(
        &mut self,
        field: &str,
        r: &DataRef,
        on_compute: &mut HashMap<String, String>,
    ) {
        let Some(p) = &r.path_on_compute else {
            return;
        };
        if p.contains('\0') || (!p.starts_with('/') && p.split('/').any(|s| s == "..")) {
            self.push(
                &format!("{field}.path_on_compute"),
                format!(
                    "{p:?} would leave the run folder; use an absolute path or one without `..`"
                ),
            );
        } else if let Some(other) =
            on_compute.insert(p.trim_end_matches('/').to_string(), field.to_string())
        {
            self.push(
                &format!("{field}.path_on_compute"),
                format!("{p:?} is also the path_on_compute of {other}"),
            );
        }
    }

    /// `code`: a folder on a datastore or a local one, not both, not neither.
    fn code(&mut self) {
        let Some(code) = &self.job.value.code else {
            return;
        };
        match (&code.path, &code.local) {
            (Some(p), None) => {
                self.datastore("code", &code.datastore);
                if let Err(e) = path::spec_path(p) {
                    self.push("code.path", e.to_string());
                }
            }
            (None, Some(local)) => {
                if code.datastore.is_some() {
                    self.push(
                        "code.datastore",
                        "only with `path`; `local` is a folder on this machine".into(),
                    );
                }
                if local.trim().is_empty() || local.contains('\0') {
                    self.push(
                        "code.local",
                        "empty; give the folder to copy, e.g. ./src".into(),
                    );
                }
            }
            (Some(_), Some(_)) => self.push(
                "code",
                "give either `path` (on a datastore) or `local` (a folder here), not both".into(),
            ),
            (None, None) => self.push(
                "code",
                "give `path` (a folder on a datastore) or `local` (a folder on this machine)"
                    .into(),
            ),
        }
    }

    /// `container`: image, volumes, workdir, resources and passed variables.
    fn container(&mut self) {
        let Some(c) = &self.job.value.container else {
            return;
        };
        let needs_image =
            c.environment.is_none() && c.build.as_ref().is_none_or(|b| b.context.is_none());
        if needs_image && c.image.trim().is_empty() {
            self.push(
                "container.image",
                "empty; name an image such as python:3.11".into(),
            );
        }
        self.volumes(c);
        if let Some(w) = &c.workdir {
            if !w.starts_with('/') {
                self.push(
                    "container.workdir",
                    format!("{w:?} must be an absolute path in the container"),
                );
            }
        }
        for (field, value) in [("shm_size", &c.shm_size), ("memory", &c.memory)] {
            if let Some(Err(e)) = value.as_deref().map(crate::size::parse_bytes) {
                self.push(&format!("container.{field}"), e);
            }
        }
        if let Some(cpus) = c.cpus {
            if !(cpus > 0.0 && cpus.is_finite()) {
                self.push(
                    "container.cpus",
                    format!("{cpus} is not a positive number of CPUs"),
                );
            }
        }
        if let Some(crate::job::Gpus::Count(0)) = c.gpus {
            self.push("container.gpus", "0 GPUs: leave gpus out instead".into());
        }
        for (i, e) in c.env.iter().enumerate() {
            if !crate::is_env_name(e) {
                self.push(
                    &format!("container.env[{i}]"),
                    format!("{e:?} is not a valid environment variable name"),
                );
            }
        }
    }

    /// `container.volumes`: absolute, outside the job's data folder, one per target.
    fn volumes(&mut self, c: &crate::job::ContainerSpec) {
        let mut targets: HashMap<&str, usize> = HashMap::new();
        for (i, v) in c.volumes.iter().enumerate() {
            if !v.host.starts_with('/') || !v.container.starts_with('/') {
                self.push(
                    &format!("container.volumes[{i}]"),
                    "host and container paths must be absolute".into(),
                );
            } else if v.container.trim_end_matches('/') == CONTAINER_ROOT
                || v.container.starts_with(&format!("{CONTAINER_ROOT}/"))
            {
                self.push(&format!("container.volumes[{i}].container"), format!("{:?} is under {CONTAINER_ROOT}, where stagehand puts the job's data; choose another path", v.container));
            } else if let Some(j) = targets.insert(v.container.trim_end_matches('/'), i) {
                self.push(
                    &format!("container.volumes[{i}].container"),
                    format!(
                        "{:?} is also the container path of container.volumes[{j}]",
                        v.container
                    ),
                );
            }
        }
    }

    /// Every `${{inputs.x}}`, `${{outputs.x}}` and data reference in the command names
    /// an input or output the job has.
    fn command_references(&mut self) {
        let spec = &self.job.value;
        for (i, arg) in spec.command.iter().enumerate() {
            for r in references(arg) {
                let ok = match &r {
                    Reference::Input(n) => spec.inputs.contains_key(n),
                    Reference::Output(n) => spec.outputs.contains_key(n),
                    Reference::DataRef(n) => {
                        spec.inputs.contains_key(n) || spec.outputs.contains_key(n)
                    }
                };
                if !ok {
                    self.unknown_reference(i, &r);
                }
            }
        }
    }

    /// A reference in `command[i]` to an input or output the job does not have.
    fn unknown_reference(&mut self, i: usize, r: &Reference) {
        let spec = &self.job.value;
        let (what, names) = match r {
            Reference::Input(_) => ("input", spec.inputs.keys().cloned().collect::<Vec<_>>()),
            Reference::Output(_) => ("output", spec.outputs.keys().cloned().collect()),
            Reference::DataRef(_) => (
                "input or output",
                spec.inputs
                    .keys()
                    .chain(spec.outputs.keys())
                    .cloned()
                    .collect(),
            ),
        };
        self.push(
            &format!("command[{i}]"),
            format!(
                "refers to {what} {:?}, which the job does not have (known: {})",
                r.name(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        );
    }
}
