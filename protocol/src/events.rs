//! The event stream (`--events`): JSON Lines, one object per event, each with the
//! stream's version `v`, a timestamp, the run id and the `event` kind.
//!
//! Consumers should ignore kinds and fields they do not know; a change that removes or
//! renames a field bumps [`VERSION`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The version of the event stream's format.
pub const VERSION: u32 = 1;

/// One line of the event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// The format version ([`VERSION`]).
    pub v: u32,
    /// RFC 3339 time, UTC.
    pub ts: String,
    /// The run this event belongs to.
    pub run_id: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The spec and workspace are valid; the run folder exists.
    Accepted {
        /// The job's name.
        job: String,
        /// The run folder.
        run_dir: String,
        /// The scheduler that started the agent and its ids for this task (Slurm, a
        /// Kubernetes Indexed Job); absent when none did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduler: Option<SchedulerIds>,
    },
    /// An input (or the code snapshot) starts staging.
    StageStarted {
        /// The input's name (`code` for the snapshot).
        name: String,
        /// mount or download.
        mode: String,
        /// `datastore:path`.
        source: String,
        /// The path on the node.
        destination: String,
    },
    /// Bytes moved so far for one input (at most a few per second).
    StageProgress {
        /// The input's name.
        name: String,
        /// Files done.
        files: u64,
        /// Bytes moved.
        bytes: u64,
    },
    /// An input is ready.
    StageFinished {
        /// The input's name.
        name: String,
        /// Files placed in the run folder: fetched, or served from the node cache.
        files: u64,
        /// Bytes fetched from the datastore.
        bytes: u64,
        /// Files already present and unchanged, not copied again.
        skipped_files: u64,
        /// Their bytes.
        skipped_bytes: u64,
        /// Files served from the node cache, fetched by no one this time.
        #[serde(default)]
        cache_hits: u64,
        /// Their bytes.
        #[serde(default)]
        cache_hit_bytes: u64,
        /// Files fetched into the node cache (their bytes are in `bytes`).
        #[serde(default)]
        cache_misses: u64,
        /// Wall time.
        duration_ms: u64,
        /// The version the source was read at, when it resolved one: a Hugging Face
        /// revision's `commit <id>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pinned: Option<String>,
        /// Requests to the datastore tried again after a transient fault (a reset
        /// connection, a 500, 503 or 429, a slow answer) while staging this input.
        #[serde(default)]
        retries: u64,
    },
    /// A database input's rows are exported to its file, whole (just before its
    /// `stage_finished`).
    QueryExported {
        /// The input's name.
        name: String,
        /// The datastore the rows came from.
        datastore: String,
        /// Rows written (the header not counted).
        rows: u64,
        /// Bytes of the file.
        bytes: u64,
        /// The file's format: `csv` (with a header row).
        format: String,
        /// Wall time of the export, connection included.
        duration_ms: u64,
    },
    /// Every input is ready and every output folder exists.
    Staged {
        /// Bytes moved for all inputs.
        bytes: u64,
        /// Wall time of staging.
        duration_ms: u64,
    },
    /// The job was launched.
    Started {
        /// The process id (process runner) or none (container runner).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The container id (container runner).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
    },
    /// The job ended.
    Exited {
        /// Its exit code, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// The signal that ended it, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// What ended it: `exited` (by itself), `cancelled`, `timed_out`.
        reason: String,
        /// Wall time of the job.
        duration_ms: u64,
    },
    /// An output starts uploading.
    UploadStarted {
        /// The output's name.
        name: String,
        /// The local folder.
        source: String,
        /// `datastore:path`.
        destination: String,
    },
    /// Upload progress for one output.
    UploadProgress {
        /// The output's name.
        name: String,
        /// Files done.
        files: u64,
        /// Bytes moved.
        bytes: u64,
    },
    /// An output with `restore` started from what its destination held for this run
    /// (a requeued job's checkpoints), before the job: those files are in its folder
    /// and recorded as already sent.
    OutputRestored {
        /// The output's name.
        name: String,
        /// Files downloaded from the destination into the output's folder.
        files: u64,
        /// Their bytes.
        bytes: u64,
        /// Files already in the folder, unchanged since this run id sent them.
        skipped_files: u64,
        /// Wall time.
        duration_ms: u64,
    },
    /// One pass of an output's `sync` while the job runs: what it uploaded, and what
    /// waits for the next pass (still written to, or not yet seen unchanged twice).
    SyncPass {
        /// The output's name.
        name: String,
        /// Files uploaded by this pass.
        files: u64,
        /// Their bytes.
        bytes: u64,
        /// Files left for a later pass or the upload at exit.
        pending: u64,
        /// Files of the output already in the datastore, unchanged since.
        uploaded_before: u64,
        /// Wall time of the pass.
        duration_ms: u64,
    },
    /// An output is uploaded.
    UploadFinished {
        /// The output's name.
        name: String,
        /// Files uploaded.
        files: u64,
        /// Bytes uploaded.
        bytes: u64,
        /// Files not uploaded again: a sync pass or an earlier run with this run id
        /// uploaded them unchanged, or the same bytes are already at the destination.
        #[serde(default)]
        skipped_files: u64,
        /// Their bytes.
        #[serde(default)]
        skipped_bytes: u64,
        /// Wall time.
        duration_ms: u64,
        /// Requests to the datastore tried again after a transient fault while
        /// uploading this output.
        #[serde(default)]
        retries: u64,
    },
    /// An output was not uploaded because of its `upload_on` policy.
    UploadSkipped {
        /// The output's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Every output that was due has been handled (uploaded or failed).
    Uploaded {
        /// Bytes uploaded in all.
        bytes: u64,
        /// Wall time of the upload phase.
        duration_ms: u64,
    },
    /// After a successful run, the staged inputs and uploaded outputs were removed
    /// from the run folder (logs, events and records stay).
    RunDirCleaned {
        /// Files removed.
        files: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// Something worth knowing that did not stop the run.
    Warning {
        /// What.
        message: String,
    },
    /// The last event of every run.
    Finished {
        /// How the run ended.
        status: Status,
        /// The agent's exit code.
        exit_code: i32,
        /// The phase the run was in when it ended.
        phase: Phase,
        /// What went wrong, when something did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Bytes downloaded for inputs (fetched from datastores; what the node cache
        /// served is not in it).
        bytes_downloaded: u64,
        /// Input files served from the node cache.
        #[serde(default)]
        cache_hits: u64,
        /// Input files fetched into the node cache.
        #[serde(default)]
        cache_misses: u64,
        /// Bytes uploaded for outputs.
        bytes_uploaded: u64,
        /// Wall time of the whole run.
        duration_ms: u64,
        /// The agent's own peak resident memory over the run, in bytes (its `VmHWM`,
        /// not the job's): what it took from the node's memory at its highest, data
        /// moving and mounts included. Absent when it could not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peak_rss_bytes: Option<u64>,
        /// Requests to datastores tried again after a transient fault over the whole run:
        /// the inputs' and outputs' retries, and those of the checks before staging and
        /// of the `sync` passes.
        #[serde(default)]
        retries: u64,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The job exited 0 and every due upload landed.
    Succeeded,
    /// The job failed, or staging or upload did.
    Failed,
    /// SIGINT or SIGTERM reached the agent.
    Cancelled,
    /// The job ran past its timeout.
    TimedOut,
    /// The agent itself failed.
    AgentError,
    /// The job's container was killed by the engine for going over its memory limit.
    OutOfMemory,
}

/// The phases of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading the spec and the workspace.
    Validate,
    /// Staging code and inputs.
    Stage,
    /// The job is running.
    Run,
    /// Uploading outputs.
    Upload,
    /// Everything is done.
    Done,
}

/// The scheduler that started the agent, and its ids for this task: what joins a run
/// to `squeue`/`sacct` or `kubectl`, and what `{task_index}`, `{task_count}` and
/// sharded inputs are computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SchedulerIds {
    /// `slurm` or `kubernetes`.
    pub kind: String,
    /// Slurm: the job id (the array's, for an array task: `SLURM_ARRAY_JOB_ID`);
    /// Kubernetes: the Job's name, when the manifest gives it (`STAGEHAND_K8S_JOB_NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Slurm: the array task id (`SLURM_ARRAY_TASK_ID`); Kubernetes: the completion
    /// index (`JOB_COMPLETION_INDEX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<u32>,
    /// Slurm: this job's own id (`SLURM_JOB_ID`), which differs from `job_id` for an
    /// array task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_job_id: Option<String>,
    /// This task's place in its array, from 0 (`{task_index}`).
    pub task_index: u32,
    /// How many tasks the array has (`{task_count}`).
    pub task_count: u32,
    /// This node's place among the nodes that run an agent for the job, from 0.
    pub node_rank: u32,
    /// How many nodes run an agent for the job (`srun -N`).
    pub node_count: u32,
    /// This node's name, as the scheduler knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The nodes that run an agent for the job, in the scheduler's notation
    /// (`n[1-3]`); the first is where a distributed job's processes meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodelist: Option<String>,
}
