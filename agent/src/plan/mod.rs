//! From files to a plan: load and validate the job and its workspace, then decide
//! every path, the job's environment and its final command line. `stagehand plan`
//! prints this; `stagehand run` executes it. Nothing here writes or calls the network.

mod container;
mod data;
mod distribution;
mod render;
pub mod resources;
pub mod scheduler;
#[cfg(test)]
mod testing;

use container::container_plan;
pub use container::{Bind, BuildPlan, ContainerPlan, Propagation};
use data::Resolver;
pub use distribution::DistributionPlan;
pub use render::{render_import, render_text};

use serde::Serialize;
use stagehand_protocol::aml::{Format, ImportOptions, ImportReport};
use stagehand_protocol::events::SchedulerIds;
use stagehand_protocol::job::MountFallback;
use stagehand_protocol::job::{CONTAINER_DATA_DIR, CONTAINER_JOB_DIR, CONTAINER_RUN_DIR};
use stagehand_protocol::load::{Parsed, Problem, Problems};
use stagehand_protocol::path::{
    expand_placeholders_with, expand_task_placeholders, spec_path, Placeholders,
};
use stagehand_protocol::shard::Slice;
use stagehand_protocol::substitute::{substitute, Reference, DATAREF_PREFIX};
use stagehand_protocol::{ContainerSpec, Datastore, JobSpec, Mode, UploadOn, Workspace};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default time between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

/// A job with its workspace, both validated.
pub struct Loaded {
    /// The job spec.
    pub job: Parsed<JobSpec>,
    /// The workspace (empty when no file was found).
    pub workspace: Workspace,
    /// The workspace file, when there is one.
    pub workspace_file: Option<PathBuf>,
    /// Warnings from either file.
    pub warnings: Vec<Problem>,
    /// For an Azure ML file: what each of its keys became and which were ignored.
    pub import: Option<ImportReport>,
}

impl Loaded {
    /// The folder relative paths in the workspace are resolved against.
    pub fn workspace_dir(&self) -> PathBuf {
        match &self.workspace_file {
            Some(f) => f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            None => self.job.folder(),
        }
    }
}

/// The name a workspace file has when it is found rather than named.
pub const WORKSPACE_FILE: &str = "workspace.yaml";

/// Finds the workspace, the same way for every command: `--workspace`, else
/// `workspace.yaml` beside the job (for commands that have one), else
/// `$STAGEHAND_WORKSPACE`, else `./workspace.yaml`, else none.
pub fn find_workspace(job: Option<&Path>, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let beside = job.map(|j| j.parent().unwrap_or(Path::new(".")).join(WORKSPACE_FILE));
    if let Some(b) = beside.filter(|b| b.is_file()) {
        return Some(b);
    }
    if let Some(w) = &crate::settings::get().workspace {
        return Some(w.clone());
    }
    Some(PathBuf::from(WORKSPACE_FILE)).filter(|p| p.is_file())
}

/// How to read the job file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Force a format; `None` detects it from the content.
    pub format: Option<Format>,
    /// What the Azure ML importers need from the command line.
    pub import: ImportOptions,
}

/// Loads and validates a job (in whatever format its content says: native, Azure ML
/// runconfig or v2 command job) and its workspace, collecting every problem of both.
pub fn load(job_file: &Path, workspace: Option<&Path>) -> Result<Loaded, Problems> {
    load_with(job_file, workspace, &LoadOptions::default())
}

/// [`load`] with a forced format or importer options.
pub fn load_with(
    job_file: &Path,
    workspace: Option<&Path>,
    opts: &LoadOptions,
) -> Result<Loaded, Problems> {
    let ws_file = find_workspace(Some(job_file), workspace);
    let (workspace, warnings) = match &ws_file {
        Some(f) => {
            let w = stagehand_protocol::load_workspace(f)?;
            (w.value, w.warnings)
        }
        None => (Workspace::default(), Vec::new()),
    };
    let any = stagehand_protocol::aml::load_and_validate_any_job(
        job_file,
        opts.format,
        &opts.import,
        &workspace,
        ws_file.as_deref(),
    )?;
    Ok(Loaded {
        job: any.job,
        workspace,
        workspace_file: ws_file,
        warnings,
        import: any.report,
    })
}

/// Inputs or outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Read by the job.
    Input,
    /// Written by the job.
    Output,
}

/// One data reference, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct DataPlan {
    /// Its name.
    pub name: String,
    /// Input or output.
    pub direction: Direction,
    /// mount, download or upload.
    pub mode: Mode,
    /// The datastore's name.
    pub datastore: String,
    /// The datastore's type.
    pub datastore_type: &'static str,
    /// The path in the datastore (placeholders expanded).
    pub path: String,
    /// Where the data is on this machine.
    pub local_path: PathBuf,
    /// The path the job sees (`AZUREML_DATAREFERENCE_<name>`).
    pub job_path: String,
    /// See the spec.
    pub overwrite: bool,
    /// Outputs: when they are uploaded.
    pub upload_on: UploadOn,
    /// Outputs: the job writes one file at `local_path` rather than a folder of them,
    /// so only its parent folder is made before launch. True for a `path_on_compute`
    /// whose last part has an extension (`model.pkl`), as Azure ML v1 runconfigs and
    /// v2 `uri_file` outputs name them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_file: bool,
    /// A code snapshot from a folder on this machine (`code.local`): that folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_source: Option<PathBuf>,
    /// Mount inputs: served through a FUSE mount at `local_path` (false: a local
    /// datastore's folder given to the job in place).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fuse: bool,
    /// Mount inputs: what to do where FUSE is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_fallback: Option<MountFallback>,
    /// A URL's public container, read without credentials (no datastore of the
    /// workspace serves it): the datastore made for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<Datastore>,
    /// The storage URL or data asset this reference was written as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_from: Option<String>,
    /// Sharded inputs: this task's slice of the files under `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Slice>,
    /// Outputs: upload closed, unchanged files every this many seconds while the job
    /// runs (`sync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_secs: Option<f64>,
    /// Inputs on a database datastore: the statement whose rows are exported to the
    /// file at `local_path` (`transfer::query`), instead of a path downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Outputs: before the job, download what the destination holds into the output's
    /// folder, recorded as already sent (`restore`, on by default with `sync`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore: bool,
}

impl DataPlan {
    /// The key of the store this data moves through: the datastore's name, or the
    /// local folder of a `code.local` snapshot or a local input.
    pub fn store_key(&self) -> String {
        match &self.local_source {
            Some(dir) => format!("local:{}", dir.display()),
            None => self.datastore.clone(),
        }
    }
}

/// Whether local datastores are mounted through FUSE too (`STAGEHAND_LOCAL_MOUNT=fuse`)
/// instead of given to the job in place: a read-only view of a local folder, and the
/// way the FUSE path is tested without a cloud store.
pub fn local_mount_via_fuse() -> bool {
    crate::settings::get().local_mount_fuse
}

/// Everything `run` will do, decided before anything is done.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The run's id.
    pub run_id: String,
    /// Whether the run id was given (`--run-id`); otherwise every plan and every run
    /// makes a new one, so `plan` shows an id (and folder) the next `run` will not use.
    #[serde(skip)]
    pub run_id_pinned: bool,
    /// The job's name.
    pub job: String,
    /// The run folder: logs, default input and output folders.
    pub run_dir: PathBuf,
    /// The job's working folder.
    pub working_dir: PathBuf,
    /// The code snapshot copied into the working folder, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<DataPlan>,
    /// Inputs, by name.
    pub inputs: Vec<DataPlan>,
    /// Outputs, by name.
    pub outputs: Vec<DataPlan>,
    /// The final command line, references substituted.
    pub command: Vec<String>,
    /// The variables stagehand sets for the job (on top of its own environment).
    pub environment: BTreeMap<String, String>,
    /// Variables of the agent's environment that are removed (they hold secrets).
    pub removed_environment: Vec<String>,
    /// The job's time limit, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// Grace between SIGTERM and SIGKILL, in seconds.
    pub kill_grace_secs: f64,
    /// `process` or `container`.
    pub runner: &'static str,
    /// The container, for containerised jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerPlan>,
    /// The workspace file used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
    /// The scheduler that started the agent and its ids for this task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerIds>,
    /// A distributed job: this node's processes and where they meet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionPlan>,
    /// What the scheduler allocated on this node (GPUs, CPUs, memory) and where each
    /// was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation: Option<resources::Allocation>,
    /// A container job: the GPUs it gets and its CPU and memory limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_limits: Option<resources::ContainerLimits>,
    /// Keep the staged inputs and uploaded outputs in the run folder after a successful
    /// run (`keep_run_dir`, `run --keep-run-dir`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keep_run_dir: bool,
    /// For an Azure ML file: what each of its keys became and which were ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportReport>,
}

impl Plan {
    /// The timeout as a duration.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_secs.map(Duration::from_secs_f64)
    }
    /// The kill grace as a duration.
    pub fn kill_grace(&self) -> Duration {
        Duration::from_secs_f64(self.kill_grace_secs)
    }
}

/// A new run id: the time (UTC, to the second) and 6 random hex digits.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = stamp
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{stamp}-{:06x}", h.finish() & 0xff_ffff)
}

/// Where run folders go by default: `$STAGEHAND_RUNS_DIR`, else
/// `$XDG_STATE_HOME/stagehand/runs`, else `~/.local/state/stagehand/runs`.
pub fn default_runs_dir() -> PathBuf {
    crate::settings::get().runs_dir.clone()
}

/// `a/b/../c` → `a/c` without touching the filesystem, so `.azureml/..` reads as the
/// project folder and the "run folder inside the code folder" check compares like
/// with like.
fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Decides every path, the environment and the command line, for the scheduler (if
/// any) whose variables the agent has.
pub fn build(
    loaded: &Loaded,
    run_id: Option<&str>,
    run_dir: Option<&Path>,
) -> Result<Plan, Problems> {
    let scheduler = scheduler::detect(loaded.job.value.distribution.is_some()).map_err(|e| {
        Problems(vec![Problem {
            file: loaded.job.file.clone(),
            location: None,
            field: String::new(),
            message: format!("cannot tell which task of the scheduler's job this is: {e}"),
        }])
    })?;
    let allocation = scheduler
        .as_ref()
        .map(|s| resources::read_env(&s.kind, loaded.job.value.container.is_some()))
        .transpose()
        .map_err(|e| {
            Problems(vec![Problem {
                file: loaded.job.file.clone(),
                location: None,
                field: String::new(),
                message: format!("cannot tell what the scheduler allocated to this job: {e}"),
            }])
        })?;
    build_allocated(
        loaded,
        run_id,
        run_dir,
        scheduler,
        allocation,
        local_mount_via_fuse(),
    )
}

/// [`build`] for the task `scheduler` names (none: not started by a scheduler).
pub fn build_with(
    loaded: &Loaded,
    run_id: Option<&str>,
    run_dir: Option<&Path>,
    scheduler: Option<SchedulerIds>,
) -> Result<Plan, Problems> {
    build_placing(loaded, run_id, run_dir, scheduler, local_mount_via_fuse())
}

/// [`build_with`], told whether local datastores mount through FUSE
/// (`STAGEHAND_LOCAL_MOUNT=fuse`) instead of reading the setting: the plan's tests
/// decide it rather than inherit it from whoever runs them.
pub(crate) fn build_placing(
    loaded: &Loaded,
    run_id: Option<&str>,
    run_dir: Option<&Path>,
    scheduler: Option<SchedulerIds>,
    local_fuse: bool,
) -> Result<Plan, Problems> {
    build_allocated(loaded, run_id, run_dir, scheduler, None, local_fuse)
}

/// [`build_placing`] with what the scheduler allocated (`None`: not known, nothing
/// limited beyond the spec).
pub(crate) fn build_allocated(
    loaded: &Loaded,
    run_id: Option<&str>,
    run_dir: Option<&Path>,
    scheduler: Option<SchedulerIds>,
    allocation: Option<resources::Allocation>,
    local_fuse: bool,
) -> Result<Plan, Problems> {
    let spec = &loaded.job.value;
    let (run_id, run_id_pinned) = choose_run_id(loaded, run_id, scheduler.as_ref())?;
    let (task_index, task_count) = scheduler
        .as_ref()
        .map_or((0, 1), |s| (s.task_index, s.task_count));
    let distribution = spec
        .distribution
        .as_ref()
        .map(|d| distribution::distribution_plan(loaded, d, scheduler.as_ref()))
        .transpose()
        .map_err(|p| Problems(vec![p]))?;
    let run_dir = absolute(&run_dir.map(Path::to_path_buf).unwrap_or_else(|| {
        default_runs_dir().join(default_run_folder(&run_id, scheduler.as_ref()))
    }));
    let resolver = Resolver {
        loaded,
        run_id: &run_id,
        run_dir: &run_dir,
        local_fuse,
        task_index,
        task_count,
        slice: shard_slice(scheduler.as_ref()),
    };
    let (mut code, mut inputs, mut outputs) = place_data(&resolver, spec)?;
    let working_dir = match &code {
        Some(c) => c.local_path.clone(),
        None => absolute(&loaded.job.folder()),
    };
    let removed_environment = withheld_environment(loaded, &inputs);
    let container = match &spec.container {
        Some(c) => Some(
            container_plan(
                loaded,
                c,
                &run_dir,
                &working_dir,
                &mut code,
                &mut inputs,
                &mut outputs,
                &removed_environment,
            )
            .map_err(Problems)?,
        ),
        None => None,
    };
    let job_run_dir = if container.is_some() {
        CONTAINER_RUN_DIR.to_string()
    } else {
        run_dir.display().to_string()
    };
    let mut environment = job_environment(spec, &inputs, &outputs, &run_id, job_run_dir);
    if scheduler.is_some() {
        environment.insert("STAGEHAND_TASK_INDEX".into(), task_index.to_string());
        environment.insert("STAGEHAND_TASK_COUNT".into(), task_count.to_string());
    }
    let command = job_command(loaded, &inputs, &outputs, (task_index, task_count))?;
    let container_limits = container_share(
        loaded,
        container.as_ref(),
        allocation.as_ref(),
        &mut environment,
    )?;

    Ok(Plan {
        run_id,
        run_id_pinned,
        job: spec.name.clone(),
        working_dir,
        code,
        inputs,
        outputs,
        command,
        environment,
        removed_environment,
        timeout_secs: spec.timeout.map(|t| t.0.as_secs_f64()),
        kill_grace_secs: spec
            .kill_grace
            .map(|t| t.0)
            .unwrap_or(DEFAULT_KILL_GRACE)
            .as_secs_f64(),
        runner: if spec.container.is_some() {
            "container"
        } else {
            "process"
        },
        container,
        workspace: loaded.workspace_file.as_deref().map(absolute),
        import: loaded.import.clone(),
        keep_run_dir: spec.keep_run_dir,
        scheduler,
        distribution,
        allocation,
        container_limits,
        run_dir,
    })
}

/// The variables that hold secrets and never reach the job: the workspace's (and the
/// machine identity's, or the S3 environment's, where a datastore uses them), and the
/// Hub's token when an input reads the Hub — that token reaches the agent only.
fn withheld_environment(loaded: &Loaded, inputs: &[DataPlan]) -> Vec<String> {
    let mut removed = crate::credentials::protect(&loaded.workspace);
    if inputs
        .iter()
        .any(|d| matches!(d.anonymous, Some(Datastore::HuggingFace { .. })))
    {
        let _ = crate::credentials::hub_token();
        removed.push(crate::credentials::HUB_TOKEN_VARIABLE.to_string());
        removed.sort();
        removed.dedup();
    }
    removed
}

/// A container job's share of the scheduler's allocation (refused when it asks for
/// more), and `NVIDIA_VISIBLE_DEVICES` naming its GPUs as the device request does.
fn container_share(
    loaded: &Loaded,
    container: Option<&ContainerPlan>,
    allocation: Option<&resources::Allocation>,
    environment: &mut BTreeMap<String, String>,
) -> Result<Option<resources::ContainerLimits>, Problems> {
    let Some(c) = container else {
        return Ok(None);
    };
    let limits = resources::container_limits(&c.spec, allocation, |f, m| loaded.job.problem(f, m))
        .map_err(Problems)?;
    if let resources::GpuRequest::Ids(ids) = &limits.gpus {
        environment.insert("NVIDIA_VISIBLE_DEVICES".into(), ids.join(","));
    }
    Ok(Some(limits))
}

/// The run's id, and whether it is pinned (given, or the scheduler's: the next run's
/// too; a new one is not). A scheduler's task keeps its run id across a requeue, so
/// it resumes in its folder.
fn choose_run_id(
    loaded: &Loaded,
    run_id: Option<&str>,
    scheduler: Option<&SchedulerIds>,
) -> Result<(String, bool), Problems> {
    let pinned = run_id.is_some() || scheduler.is_some();
    let run_id = match (run_id, scheduler) {
        (Some(id), _) => id.to_string(),
        (None, Some(ids)) => scheduler::run_id(ids),
        (None, None) => new_run_id(),
    };
    check_run_id(loaded, &run_id)?;
    Ok((run_id, pinned))
}

/// Where the code, each input and each output is: every problem of all of them at
/// once.
type Placed = (Option<DataPlan>, Vec<DataPlan>, Vec<DataPlan>);
fn place_data(resolver: &Resolver<'_>, spec: &JobSpec) -> Result<Placed, Problems> {
    let mut problems = Vec::new();
    let mut refs = |direction, list: &BTreeMap<String, stagehand_protocol::DataRef>| {
        let prefix = match direction {
            Direction::Input => "inputs",
            Direction::Output => "outputs",
        };
        list.iter()
            .filter_map(|(n, r)| {
                resolver.data(&format!("{prefix}.{n}"), n, direction, r, &mut problems)
            })
            .collect::<Vec<_>>()
    };
    let inputs = refs(Direction::Input, &spec.inputs);
    let outputs = refs(Direction::Output, &spec.outputs);
    let code = spec
        .code
        .as_ref()
        .and_then(|c| resolver.code(c, &mut problems));
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    Ok((code, inputs, outputs))
}

/// The run folder's name under the runs folder: the run id, and for one node of a
/// multi-node step `<run id>-node<rank>`, so that agents sharing a file system stage
/// into folders of their own.
fn default_run_folder(run_id: &str, scheduler: Option<&SchedulerIds>) -> String {
    match scheduler {
        Some(s) if s.node_count > 1 => format!("{run_id}-node{}", s.node_rank),
        _ => run_id.to_string(),
    }
}

/// The slice of a sharded input this agent takes: one per array task and per node of
/// a multi-node job (task-major), the whole input outside a scheduler.
pub(crate) fn shard_slice(scheduler: Option<&SchedulerIds>) -> Slice {
    match scheduler {
        Some(s) => Slice {
            index: s.task_index * s.node_count + s.node_rank,
            count: s.task_count * s.node_count,
        },
        None => Slice { index: 0, count: 1 },
    }
}

/// A run id (`--run-id`, or one derived from a scheduler's variables) becomes part of
/// paths, blob names and mount options: only a safe alphabet is taken.
fn check_run_id(loaded: &Loaded, id: &str) -> Result<(), Problems> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !id.starts_with('.');
    if ok {
        return Ok(());
    }
    Err(Problems(vec![Problem {
        file: loaded.job.file.clone(),
        location: None,
        field: String::new(),
        message: format!("run id {id:?} (--run-id, or from the scheduler's variables): use 1 to 128 letters, digits, `-`, `_` and `.` (not starting with `.`)"),
    }]))
}

/// The variables stagehand sets for the job: the spec's own, one per data reference
/// (`AZUREML_DATAREFERENCE_<name>`, and Azure ML v2's names for an imported v2 job),
/// and the run's identity.
fn job_environment(
    spec: &JobSpec,
    inputs: &[DataPlan],
    outputs: &[DataPlan],
    run_id: &str,
    job_run_dir: String,
) -> BTreeMap<String, String> {
    let mut environment = spec.environment.clone();
    for d in inputs.iter().chain(outputs) {
        environment.insert(format!("{DATAREF_PREFIX}{}", d.name), d.job_path.clone());
        if spec.azure_ml_v2_variables {
            let prefix = match d.direction {
                Direction::Input => "AZURE_ML_INPUT_",
                Direction::Output => "AZURE_ML_OUTPUT_",
            };
            environment.insert(format!("{prefix}{}", d.name), d.job_path.clone());
        }
    }
    environment.insert("STAGEHAND_RUN_ID".into(), run_id.to_string());
    environment.insert("STAGEHAND_JOB_NAME".into(), spec.name.clone());
    environment.insert("STAGEHAND_RUN_DIR".into(), job_run_dir);
    environment
}

/// The command line with every `{inputs.x}`, `{outputs.x}` and `$AZUREML_DATAREFERENCE_x`
/// replaced by the path the job sees, and `{task_index}`, `{task_count}` by this task's.
fn job_command(
    loaded: &Loaded,
    inputs: &[DataPlan],
    outputs: &[DataPlan],
    (task_index, task_count): (u32, u32),
) -> Result<Vec<String>, Problems> {
    let lookup = |r: &Reference| -> Option<String> {
        let find = |list: &[DataPlan], n: &str| {
            list.iter()
                .find(|d| d.name == n)
                .map(|d| d.job_path.clone())
        };
        match r {
            Reference::Input(n) => find(inputs, n),
            Reference::Output(n) => find(outputs, n),
            Reference::DataRef(n) => find(inputs, n).or_else(|| find(outputs, n)),
        }
    };
    loaded
        .job
        .value
        .command
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let a = expand_task_placeholders(a, task_index, task_count);
            substitute(&a, lookup).map_err(|r| {
                loaded.job.problem(
                    &format!("command[{i}]"),
                    format!("unknown reference to {:?}", r.name()),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|p| Problems(vec![p]))
}
