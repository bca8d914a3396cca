//! The job spec (`job.yaml`): what to run and which data it reads and writes.

use crate::duration::SpecDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One job: a command, its environment, and its data references.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job's name: in events, logs, `{name}` in output paths and `STAGEHAND_JOB_NAME`.
    pub name: String,
    /// The program and its arguments. References to inputs and outputs are substituted
    /// (`$AZUREML_DATAREFERENCE_x`, `${AZUREML_DATAREFERENCE_x}`, `${{inputs.x}}`,
    /// `${{outputs.x}}`); nothing else is, and no shell is involved.
    #[serde(deserialize_with = "scalar::list")]
    pub command: Vec<String>,
    /// Extra environment variables for the job.
    #[serde(default, deserialize_with = "scalar::map")]
    pub environment: BTreeMap<String, String>,
    /// Wall-clock limit for the job itself (not staging or upload): SIGTERM, then SIGKILL
    /// after `kill_grace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SpecDuration>,
    /// Time between SIGTERM and SIGKILL when the job is stopped (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_grace: Option<SpecDuration>,
    /// A code snapshot copied into the job's working folder before launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
    /// Run the job in this container image instead of as a host process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
    /// Data the job reads, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, DataRef>,
    /// Data the job writes, by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, DataRef>,
    /// Also set `AZURE_ML_INPUT_<name>` / `AZURE_ML_OUTPUT_<name>`, as an Azure ML v2
    /// command job does, so scripts written for Azure ML v2 find their data. The v2
    /// importer sets it; native jobs rarely need it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub azure_ml_v2_variables: bool,
    /// A multi-node, multi-process job: one agent per node (`srun -N <nodes>`), each
    /// starting `process_count_per_instance` processes with the framework's variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// Keep the whole run folder after a successful run (default false: once the
    /// outputs are uploaded, the staged inputs and the uploaded outputs are removed from
    /// it; logs, events and the record of what moved stay). A failed run always keeps it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_run_dir: bool,
}

/// How a distributed job's processes find each other, as Azure ML's `distribution`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    /// `pytorch` (`MASTER_ADDR`, `RANK`, …), `tensorflow` (`TF_CONFIG`) or `mpi`.
    #[serde(rename = "type")]
    pub kind: DistributionKind,
    /// Processes each node starts (default 1).
    #[serde(default = "one")]
    pub process_count_per_instance: u32,
    /// The nodes the job must have (Azure ML's `resources.instance_count`): a Slurm
    /// step over another number of nodes is refused before any data moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
}

fn one() -> u32 {
    1
}

/// The framework whose variables a distributed job's processes get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DistributionKind {
    /// `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `NODE_RANK`,
    /// `LOCAL_WORLD_SIZE` (torch.distributed's `env://`).
    Pytorch,
    /// `TF_CONFIG` (a worker per process).
    Tensorflow,
    /// The PyTorch-style variables plus Open MPI's `OMPI_COMM_WORLD_*` and `PMI_*`.
    Mpi,
}

impl DistributionKind {
    /// The name as written in a spec.
    pub fn as_str(&self) -> &'static str {
        match self {
            DistributionKind::Pytorch => "pytorch",
            DistributionKind::Tensorflow => "tensorflow",
            DistributionKind::Mpi => "mpi",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Arguments and variable values written as YAML numbers or booleans (`[--lr, 0.1]`,
/// `{EPOCHS: 3}`) are taken as the text they were written as, as a shell would.
pub(crate) mod scalar {
    use serde::{de::Error, Deserialize, Deserializer};
    use serde_yaml::Value;
    use std::collections::BTreeMap;

    fn text<E: Error>(v: Value) -> Result<String, E> {
        match v {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(E::custom(format!(
                "expected a string, found {}",
                kind(&other)
            ))),
        }
    }

    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "nothing (null)",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
            _ => "a tagged value",
        }
    }

    /// One scalar as text: a version written `1` or `"1"`.
    pub fn text_field<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        text(Value::deserialize(d)?)
    }

    pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Sequence(items) => items.into_iter().map(text).collect(),
            Value::String(_) => Err(D::Error::custom(
                "expected a list such as [python, train.py]; a single string is not split into arguments",
            )),
            other => Err(D::Error::custom(format!("expected a list, found {}", kind(&other)))),
        }
    }

    pub fn map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(BTreeMap::new()),
            Value::Mapping(m) => m
                .into_iter()
                .map(|(k, v)| Ok((text(k)?, text(v)?)))
                .collect(),
            other => Err(D::Error::custom(format!(
                "expected a mapping of NAME: value, found {}",
                kind(&other)
            ))),
        }
    }
}

/// How a data reference reaches the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read-only view of the datastore path, streamed on demand.
    Mount,
    /// Copied to the compute node before the job starts.
    Download,
    /// A local folder (or file) the job writes; uploaded after the job exits.
    Upload,
}

impl Mode {
    /// The lower-case name as written in a spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mount => "mount",
            Mode::Download => "download",
            Mode::Upload => "upload",
        }
    }
}

/// When an output is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadOn {
    /// Whatever the job's exit code (the default, so a failed run's logs and checkpoints
    /// are kept).
    #[default]
    Always,
    /// Only when the job exits 0.
    Success,
    /// Only when the job fails.
    Failure,
}

impl UploadOn {
    /// Whether this is the default, `always`.
    pub fn is_always(&self) -> bool {
        *self == UploadOn::Always
    }
}

/// What to do when a mount cannot be made (no FUSE on this node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MountFallback {
    /// Download the data instead.
    Download,
}

/// A data reference: a path on a datastore, a mode, and where it appears on the node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataRef {
    /// The datastore's name in the workspace; default: the workspace's `default_datastore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    /// The path on the datastore: a file, or a folder (prefix). Outputs may contain
    /// `{run_id}` and `{name}`.
    #[serde(default)]
    pub path: String,
    /// Inputs: a file or folder on this machine, used where it is instead of a
    /// datastore path (relative to the job file's folder); nothing is uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Inputs: a storage URL (`https://<account>.blob.core.windows.net/<container>/<path>`,
    /// `wasbs://<container>@<account>.blob.core.windows.net/<path>`, `abfss://…dfs…`),
    /// read through the workspace datastore registered for that account and container,
    /// else anonymously (a public container); any other `http(s)://` URL of one file,
    /// read from its web server; or a Hugging Face Hub repository
    /// (`hf://org/name@rev/path`, `hf://datasets/org/name@rev/path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Inputs: a data asset registered in the workspace (`data_assets`), as
    /// `name:version` or `name@latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Inputs on a `postgresql` datastore: the SQL query whose rows are exported, as a
    /// CSV file with a header, before the job starts (in a read-only session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Inputs on a `postgresql` datastore: a table (`name` or `schema.name`) exported
    /// whole, as `query: SELECT * FROM it` would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// mount, download or upload.
    pub mode: Mode,
    /// Where the data appears on the node; relative paths are under the run folder.
    /// Default: `inputs/<name>` or `outputs/<name>` in the run folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_on_compute: Option<String>,
    /// Download: fetch again even if an unchanged copy is present. Upload: replace
    /// existing files (default false: an existing file fails the upload).
    #[serde(default)]
    pub overwrite: bool,
    /// Upload outputs only: when to upload (always, success, failure). Not written
    /// when it is the default, so an input never shows it.
    #[serde(default, skip_serializing_if = "UploadOn::is_always")]
    pub upload_on: UploadOn,
    /// Mount inputs only: what to do where FUSE is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_fallback: Option<MountFallback>,
    /// Download inputs only: split the files under `path` across a scheduler's tasks
    /// (`by_file`): each array task, or each node of a multi-node job, downloads a
    /// disjoint slice of them, by sorted name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// Upload outputs only: while the job runs, every this often, upload the files under
    /// the output that are closed and unchanged since the last pass (checkpoints), so
    /// a node lost mid-job loses only the last interval's work; the rest at exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SpecDuration>,
    /// Inputs given by an `http(s)://` URL only: the file's SHA-256 (64 hex digits).
    /// The download is checked against it (a mismatch fails the run), and it pins the
    /// file in the node cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Upload outputs only: before the job starts, download what the output's
    /// destination already holds into its folder (a job requeued onto another node
    /// finds its checkpoints), recorded as already sent. Default: on for an output with
    /// `sync`, off for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<bool>,
}

impl DataRef {
    /// Whether the output starts from what its destination holds: `restore`, else
    /// whether it has `sync`.
    pub fn restores(&self) -> bool {
        self.restore.unwrap_or(self.sync.is_some())
    }
}

/// A code snapshot copied into the job's working folder before launch: a folder on a
/// datastore (`path`, with `datastore`) or a folder on this machine (`local`). Exactly
/// one of `path` and `local`. A copy, not the folder itself, so a job that writes into
/// its working folder (Azure ML's `./outputs`) never changes the source.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// The datastore's name; default: the workspace's `default_datastore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    /// The snapshot's folder on the datastore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A folder on this machine; relative paths are relative to the job file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
}

/// When to pull the container image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pull {
    /// Never pull: the image must be present.
    Never,
    /// Pull when the image is not present (default).
    #[default]
    Missing,
    /// Pull before every run.
    Always,
}

/// Which user the container runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContainerUser {
    /// The image's own user (default).
    #[default]
    Image,
    /// The agent's uid:gid, so outputs are not owned by root.
    Host,
}

/// GPUs for the container: `all` or a count.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Gpus {
    /// A number of GPUs.
    Count(u32),
    /// `all`.
    All(AllGpus),
}

/// The word `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllGpus {
    /// Every GPU of the node.
    All,
}

/// An extra read-only bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Absolute path on the node.
    pub host: String,
    /// Absolute path in the container.
    pub container: String,
}

/// Where stagehand puts a containerised job's data; a `volumes` entry may not use it.
pub const CONTAINER_ROOT: &str = "/mnt/stagehand";
/// The run folder inside a container: `inputs/<name>`, `outputs/<name>`, `code` and
/// `logs` under it are the same folders as on the node.
pub const CONTAINER_RUN_DIR: &str = "/mnt/stagehand/run";
/// The job's own folder (where `job.yaml` is) inside a container, read-only: the working
/// folder of a job without a code snapshot, as it is for a process job.
pub const CONTAINER_JOB_DIR: &str = "/mnt/stagehand/job";
/// Data that lives outside the run folder (an absolute `path_on_compute`, a local
/// datastore read in place) appears at `<this>/<name>/<its file or folder name>`.
pub const CONTAINER_DATA_DIR: &str = "/mnt/stagehand/data";

/// Run the job in a container image.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// The image reference, e.g. `python:3.11`; for a `build` with a `conda_file` only,
    /// the image it starts from. Empty with `build` (a context) or `environment`.
    #[serde(default)]
    pub image: String,
    /// Build the image on this node instead of pulling it (cached by its content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ImageBuild>,
    /// An environment by name, resolved to an image or a build when planned: the
    /// workspace's `environments`, or a curated Azure ML environment
    /// (`azureml://registries/azureml/environments/<name>/…`, `azureml:AzureML-<name>@latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// never, missing (default) or always.
    #[serde(default)]
    pub pull: Pull,
    /// Replace the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `image` (default) or `host` (the agent's uid:gid).
    #[serde(default)]
    pub user: ContainerUser,
    /// Working folder inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `all` or a number of GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Gpus>,
    /// Size of /dev/shm, e.g. `2g`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
    /// CPU limit, e.g. 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory limit, e.g. `4g`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Docker network mode, e.g. `host` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Names of agent environment variables passed through to the container.
    #[serde(default)]
    pub env: Vec<String>,
    /// Extra read-only bind mounts.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

impl ContainerSpec {
    /// `image` with every other field at its default: what an importer starts from.
    pub fn of_image(image: String) -> ContainerSpec {
        ContainerSpec {
            image,
            build: None,
            environment: None,
            pull: Pull::default(),
            entrypoint: None,
            user: ContainerUser::default(),
            workdir: None,
            gpus: None,
            shm_size: None,
            cpus: None,
            memory: None,
            network: None,
            env: Vec::new(),
            volumes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> JobSpec {
        crate::parse_job(std::path::Path::new("j.yaml"), "name: j\ncommand: [x]\n")
            .unwrap_or_else(|e| panic!("{e}"))
            .value
    }

    #[test]
    fn mode_names_are_the_names_in_a_spec() {
        for mode in [Mode::Mount, Mode::Download, Mode::Upload] {
            let written = serde_yaml::to_string(&mode).unwrap();
            assert_eq!(written.trim(), mode.as_str());
        }
    }

    #[test]
    fn defaults_are_as_documented() {
        assert_eq!(UploadOn::default(), UploadOn::Always);
        assert_eq!(Pull::default(), Pull::Missing);
        assert_eq!(ContainerUser::default(), ContainerUser::Image);
    }

    #[test]
    fn a_written_spec_leaves_out_what_is_unset() {
        // What `convert` prints: no empty optional keys, no `azure_ml_v2_variables: false`.
        assert_eq!(
            serde_yaml::to_string(&minimal()).unwrap(),
            "name: j\ncommand:\n- x\nenvironment: {}\ninputs: {}\noutputs: {}\n"
        );
        let mut j = minimal();
        j.azure_ml_v2_variables = true;
        assert!(serde_yaml::to_string(&j)
            .unwrap()
            .ends_with("azure_ml_v2_variables: true\n"));
    }

    #[test]
    fn gpus_are_a_count_or_all() {
        let g: Gpus = serde_yaml::from_str("all").unwrap();
        assert_eq!(g, Gpus::All(AllGpus::All));
        let g: Gpus = serde_yaml::from_str("3").unwrap();
        assert_eq!(g, Gpus::Count(3));
        assert!(serde_yaml::from_str::<Gpus>("some").is_err());
        assert!(serde_yaml::from_str::<Gpus>("-1").is_err());
    }

    #[test]
    fn the_container_paths_are_under_the_root() {
        for p in [CONTAINER_RUN_DIR, CONTAINER_JOB_DIR, CONTAINER_DATA_DIR] {
            assert!(p.starts_with(&format!("{CONTAINER_ROOT}/")), "{p}");
        }
    }
}

/// An image built on this node with the Docker engine: from a build context, or
/// derived from `image` with a conda environment. Built once per content: a second run
/// with the same files reuses the image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageBuild {
    /// The build context folder (relative to the job file's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// A conda environment file (relative to the job file's folder): without a
    /// context, the image is `image` plus this environment, created in its base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conda_file: Option<String>,
}
