//! Reading and validating job and workspace files.
//!
//! Every problem is collected in one pass and carries the file, the line and column
//! where the YAML has them, and the field path, so a person fixes five problems in one
//! edit, not in five runs. Nothing here touches anything but the file being read.

use crate::job::{DataRef, JobSpec, Mode, UploadOn, CONTAINER_ROOT};
use crate::locate::{Index, Location};
use crate::path;
use crate::secret::Secret;
use crate::substitute::{references, Reference};
use crate::suggest;
use crate::workspace::{Datastore, Workspace};
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

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

/// Collects problems while a document is read field by field.
struct Reader<'a> {
    file: &'a Path,
    index: Index,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            location: self.index.find(field),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Deserialises one value, recording any error at its precise field path.
    fn value<T: DeserializeOwned>(&mut self, field: &str, v: Value) -> Option<T> {
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
    fn take<T: DeserializeOwned>(
        &mut self,
        f: &mut BTreeMap<String, Value>,
        key: &str,
    ) -> Option<T> {
        f.remove(key).and_then(|v| self.value(key, v))
    }

    /// Reads a top-level mapping, or reports that the document is not one.
    fn mapping(&mut self, text: &str, what: &str) -> Option<Mapping> {
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
    fn fields(&mut self, base: &str, map: Mapping, known: &[&str]) -> BTreeMap<String, Value> {
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
    fn entries<T: DeserializeOwned>(&mut self, field: &str, v: Value) -> BTreeMap<String, T> {
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

fn path_join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

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
    let mut r = Reader {
        file,
        index: Index::of(text),
        problems: Vec::new(),
    };
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

/// Parses a workspace file's text and checks it on its own.
pub fn parse_workspace(file: &Path, text: &str) -> Result<Parsed<Workspace>, Problems> {
    crate::limits::check(file, text)?;
    let mut r = Reader {
        file,
        index: Index::of(text),
        problems: Vec::new(),
    };
    let Some(map) = r.mapping(text, "workspace") else {
        return Err(Problems(r.problems));
    };
    let mut f = r.fields(
        "",
        map,
        &[
            "default_datastore",
            "datastores",
            "datastore_files",
            "data_assets",
            "environments",
        ],
    );
    let default_datastore: Option<String> = r.take(&mut f, "default_datastore");
    let mut datastores: BTreeMap<String, Datastore> = f
        .remove("datastores")
        .map(|v| r.entries("datastores", v))
        .unwrap_or_default();
    let datastore_files: Vec<String> = r.take(&mut f, "datastore_files").unwrap_or_default();
    let data_assets: Vec<crate::workspace::DataAsset> =
        r.take(&mut f, "data_assets").unwrap_or_default();
    let environments: BTreeMap<String, crate::workspace::Environment> =
        r.take(&mut f, "environments").unwrap_or_default();
    let mut warnings = Vec::new();
    // Their literal secrets were warned about at their own file and line.
    let from_files = datastore_files_into(
        file,
        &datastore_files,
        &mut datastores,
        &mut r,
        &mut warnings,
    );
    if let Some(d) = &default_datastore {
        if !datastores.contains_key(d) && r.problems.is_empty() {
            r.push(
                "default_datastore",
                format!("names datastore {d:?}, which is not under `datastores`"),
            );
        }
    }
    for (name, ds) in &datastores {
        // A datastore file's name was checked at its own `name` field.
        let from_file = from_files.contains(name);
        check_datastore_entry(&mut r, name, ds, from_file, &mut warnings);
    }
    if !r.problems.is_empty() {
        return Err(Problems(r.problems));
    }
    Ok(Parsed {
        value: Workspace {
            default_datastore,
            datastores,
            datastore_files,
            data_assets,
            environments,
        },
        file: file.to_path_buf(),
        index: r.index,
        warnings,
        aliases: Vec::new(),
    })
}

/// The rules for one datastore of a workspace: a name Azure ML accepts, a local
/// root, one way to authenticate, and secrets from the environment or a file (a
/// literal one is a warning, unless it came from a datastore file, which warned).
fn check_datastore_entry(
    r: &mut Reader,
    name: &str,
    ds: &Datastore,
    from_file: bool,
    warnings: &mut Vec<Problem>,
) {
    let base = format!("datastores.{name}");
    if !from_file && !crate::is_datastore_name(name) {
        r.push(&base, crate::datastore_name_problem(name));
    }
    if let Datastore::Local { root } = ds {
        if root.trim().is_empty() {
            r.push(
                &format!("{base}.root"),
                "empty; give the datastore's folder",
            );
        }
    }
    let Some(c) = ds.credentials() else {
        return;
    };
    let ways = [
        c.account_key.is_some(),
        c.sas_token.is_some(),
        c.connection_string.is_some(),
        c.client_secret.is_some(),
        c.anonymous,
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        r.push(
            &format!("{base}.credentials"),
            "give one way to authenticate: account_key, sas_token, connection_string, tenant_id + client_id + client_secret, or anonymous: true",
        );
    }
    if c.client_secret.is_some() != (c.tenant_id.is_some() && c.client_id.is_some()) {
        r.push(
            &format!("{base}.credentials"),
            "a service principal needs all three of tenant_id, client_id and client_secret",
        );
    }
    for (field, secret) in c.secrets() {
        let at = format!("{base}.credentials.{field}");
        match secret {
            Secret::Literal(_) if from_file => {}
            Secret::Literal(_) => warnings.push(Problem {
                file: r.file.to_path_buf(),
                location: r.index.find(&at),
                field: at,
                message:
                    "a literal secret in the workspace file; prefer {env: NAME} or {file: PATH}"
                        .into(),
            }),
            Secret::Env { env } if !crate::is_env_name(env) => r.push(
                &at,
                format!("{env:?} is not a valid environment variable name"),
            ),
            _ => {}
        }
    }
}

/// Loads the Azure ML v2 datastore files (or folders of them) a workspace lists,
/// relative to the workspace file, into `datastores`; returns the names they added.
fn datastore_files_into(
    file: &Path,
    entries: &[String],
    datastores: &mut BTreeMap<String, Datastore>,
    r: &mut Reader,
    warnings: &mut Vec<Problem>,
) -> std::collections::HashSet<String> {
    let mut added = std::collections::HashSet::new();
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for (i, entry) in entries.iter().enumerate() {
        let field = format!("datastore_files[{i}]");
        let path = folder.join(entry);
        let files: Vec<PathBuf> = if path.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(rd) => {
                    let mut v: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml")
                        })
                        .collect();
                    v.sort();
                    v
                }
                Err(e) => {
                    r.push(
                        &field,
                        format!("cannot read the folder {}: {e}", path.display()),
                    );
                    continue;
                }
            }
        } else {
            vec![path]
        };
        for ds_file in files {
            match crate::aml::v2_datastore::load(&ds_file) {
                Ok(imported) => {
                    warnings.extend(imported.warnings);
                    match datastores.entry(imported.name.clone()) {
                        std::collections::btree_map::Entry::Occupied(_) => r.push(
                            &field,
                            format!(
                                "{} names datastore {:?}, which is already defined",
                                ds_file.display(),
                                imported.name
                            ),
                        ),
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            added.insert(imported.name);
                            slot.insert(imported.datastore);
                        }
                    }
                }
                Err(p) => r.problems.extend(p.0),
            }
        }
    }
    added
}

/// Reads and parses a workspace file.
pub fn load_workspace(file: &Path) -> Result<Parsed<Workspace>, Problems> {
    parse_workspace(file, &crate::limits::read(file, "workspace")?)
}

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
    /// A distributed job starts at least one process on at least one node, as host
    /// processes (the container runner starts one).
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
        if self.job.value.container.is_some() {
            self.push(
                "distribution",
                "a distributed job runs host processes; a container job starts one process (drop `container`, or run one process per node without `distribution`)".into(),
            );
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
                if r.mount_fallback.is_some() && r.mode != Mode::Mount {
                    self.push(
                        &format!("{field}.mount_fallback"),
                        "only mount inputs have a fallback".into(),
                    );
                }
            }
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

#[cfg(test)]
mod datastore_name_tests {
    use super::*;

    #[test]
    fn a_workspace_datastore_name_is_checked_as_azure_ml_checks_it() {
        let text = r#"datastores:
  good-one_1: {type: local, root: ./a}
  <DATA_STORE_NAME>: {type: local, root: ./b}
"#;
        let err = parse_workspace(Path::new("ws.yaml"), text).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].field, "datastores.<DATA_STORE_NAME>");
        assert_eq!(err.0[0].location.map(|l| l.line), Some(3));
        assert!(err.0[0].message.contains("is not a datastore name"));
    }

    #[test]
    fn a_datastore_file_name_is_checked_at_its_name_field() {
        let text = r#"type: azure_blob
name: <CREDENTIAL_LESS_DATA_STORE_NAME>
account_name: acct
container_name: c
"#;
        let err = crate::aml::v2_datastore::import(Path::new("ds.yml"), text).unwrap_err();
        assert_eq!(err.0[0].field, "name");
        assert_eq!(err.0[0].location.map(|l| l.line), Some(2));
        assert!(err.0[0].message.contains("is not a datastore name"));
    }
}

mod data_ref;
#[cfg(test)]
mod tests;
