//! The command line (clap derive). Every subcommand's `--help` ends with an example.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The version `--version` prints: the crate's, and the git commit it was built from
/// ("unknown" outside a checkout; see agent/build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("STAGEHAND_GIT_COMMIT"),
    ")"
);

/// stagehand runs one machine-learning job on this node: it stages the job's data from
/// its datastores, runs it, uploads its outputs, and reports through its exit code and
/// a JSON event stream.
#[derive(Debug, Parser)]
#[command(name = "stagehand", version = VERSION, propagate_version = true)]
#[command(
    after_help = "Example:\n  stagehand run examples/hello/job.yaml\n  stagehand plan job.yaml --format json"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log detail (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Plan output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For a person.
    Text,
    /// For a program (documented in the README).
    Json,
}

/// The format of a job file, when detection by content is not wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobFormat {
    /// stagehand's own job spec.
    Native,
    /// An Azure ML v1 `.runconfig` (as `RunConfiguration.save()` writes it).
    Runconfig,
    /// An Azure ML v2 command job (`az ml job create --file`).
    AmlJob,
}

impl From<JobFormat> for stagehand_protocol::aml::Format {
    fn from(f: JobFormat) -> Self {
        match f {
            JobFormat::Native => Self::Native,
            JobFormat::Runconfig => Self::Runconfig,
            JobFormat::AmlJob => Self::AmlJob,
        }
    }
}

/// `plan --format`: how to print the plan, and (optionally) the job file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormatArg {
    /// Print for a person (default).
    Text,
    /// Print for a program.
    Json,
    /// The job file is stagehand's own spec.
    Native,
    /// The job file is an Azure ML v1 `.runconfig`.
    Runconfig,
    /// The job file is an Azure ML v2 command job.
    AmlJob,
}

/// Which JSON Schema to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// The job spec.
    Job,
    /// The workspace (datastore registry).
    Workspace,
    /// One line of the event stream.
    Events,
}

/// Where the job's files are.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job spec (YAML).
    pub job: PathBuf,
    /// The workspace file (default: workspace.yaml beside the job, then $STAGEHAND_WORKSPACE, then ./workspace.yaml).
    #[arg(long, short = 'w')]
    pub workspace: Option<PathBuf>,
    /// The run folder (default: $STAGEHAND_RUNS_DIR/<run id>, else ~/.local/state/stagehand/runs/<run id>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// The run id (default: a new one from the time and random digits).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Runconfig only: the code snapshot's folder on `sourceDirectoryDataStore` (default:
    /// the local project folder, which is what Azure ML snapshots).
    #[arg(long)]
    pub source_path: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stage a job's data, run it, upload its outputs, and exit with its code.
    #[command(
        after_help = "Example:\n  stagehand run examples/hello/job.yaml --events run.jsonl\n  stagehand run job.yaml --workspace /etc/stagehand/workspace.yaml --events -"
    )]
    Run {
        /// The job and its workspace.
        #[command(flatten)]
        job: JobArgs,
        /// Write events as JSON Lines to this file, or `-` for stdout (the job's stdout then goes to stderr).
        #[arg(long)]
        events: Option<String>,
        /// The job file's format (default: detected from its content).
        #[arg(long, value_enum)]
        format: Option<JobFormat>,
        /// Keep the staged inputs and uploaded outputs in the run folder after a
        /// successful run (as the job option `keep_run_dir: true`), for debugging.
        #[arg(long)]
        keep_run_dir: bool,
    },
    /// Show what `run` would do (paths, environment, command line) without doing it.
    #[command(
        after_help = "Example:\n  stagehand plan examples/hello/job.yaml\n  stagehand plan job.yaml --format json | jq .command\n  stagehand plan .azureml/train.runconfig --format json,runconfig"
    )]
    Plan {
        /// The job and its workspace.
        #[command(flatten)]
        job: JobArgs,
        /// How to print (text or json), and optionally the job file's format (native,
        /// runconfig or aml-job; default: detected); repeat or separate with commas.
        #[arg(long, value_enum, value_delimiter = ',', action = clap::ArgAction::Append)]
        format: Vec<PlanFormatArg>,
        /// Also check, without writing anything, that the run can go: inputs exist and
        /// can be read, outputs' stores can be reached, the image is there or pullable,
        /// the disk has room for the downloads. Every failure is reported (exit 66).
        #[arg(long)]
        check: bool,
    },
    /// Check job specs (and their workspaces) and report every problem.
    #[command(after_help = "Example:\n  stagehand validate jobs/*.yaml")]
    Validate {
        /// The job specs.
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
        /// The workspace file (default: workspace.yaml beside each job, then $STAGEHAND_WORKSPACE, then ./workspace.yaml).
        #[arg(long, short = 'w')]
        workspace: Option<PathBuf>,
        /// The job files' format (default: detected from each one's content).
        #[arg(long, value_enum)]
        format: Option<JobFormat>,
        /// Runconfig only: the code snapshot's folder on `sourceDirectoryDataStore`.
        #[arg(long)]
        source_path: Option<String>,
    },
    /// Print the native job spec equivalent to an Azure ML file (or a native one, normalised).
    #[command(
        after_help = "Example:\n  stagehand convert .azureml/train.runconfig > job.yaml\n  stagehand convert job.yml --format aml-job"
    )]
    Convert {
        /// The job file: a `.runconfig`, an Azure ML v2 command job, or a native spec.
        job: PathBuf,
        /// The job file's format (default: detected from its content).
        #[arg(long, value_enum)]
        format: Option<JobFormat>,
        /// Runconfig only: the code snapshot's folder on `sourceDirectoryDataStore`.
        #[arg(long)]
        source_path: Option<String>,
    },
    /// Remove what killed agents left behind (containers, old run folders).
    #[command(
        after_help = "A resource is removed only when the agent recorded on it is gone (its pid no longer runs the same process, or this host rebooted since); resources of live agents and of other hosts are kept.\n\nExample:\n  stagehand gc\n  stagehand gc --older-than 7d --dry-run"
    )]
    Gc {
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove run folders of dead agents that nothing touched for this long (e.g. 7d, 12h).
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// The folder of run folders (default: $STAGEHAND_RUNS_DIR, else ~/.local/state/stagehand/runs).
        #[arg(long)]
        runs_dir: Option<PathBuf>,
    },
    /// Work with the workspace's datastores: list, show, upload, download, ls, check.
    #[command(
        after_help = "Example:\n  stagehand datastore list\n  stagehand datastore upload workspaceblobstore --src-dir ./data --target-path datasets/x"
    )]
    Datastore(crate::commands::datastore::DatastoreArgs),
    /// Inspect, empty and warm the node cache of downloaded inputs: ls, du, clear, warm.
    #[command(
        after_help = "The node cache is $STAGEHAND_CACHE_DIR (default: /var/cache/stagehand for root, else ~/.cache/stagehand), bounded by $STAGEHAND_CACHE_SIZE.\n\nExample:\n  stagehand cache du\n  stagehand cache clear"
    )]
    Cache(crate::commands::cache::CacheArgs),
    /// Internal: the guardian of a job's process group (see run/guard.rs).
    #[command(name = "__guard", hide = true)]
    Guard {
        /// The process group.
        pgid: i32,
        /// Its leader's start time (clock ticks after boot).
        start: u64,
    },
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    #[command(
        after_help = "Example:\n  stagehand completions bash > /etc/bash_completion.d/stagehand\n  stagehand completions zsh > \"${fpath[1]}/_stagehand\"\n  stagehand completions fish > ~/.config/fish/completions/stagehand.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (roff): the top page to stdout, or every page into --dir.
    #[command(hide = true)]
    Man {
        /// Write stagehand.1 and one page per subcommand into this folder.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of a file format.
    #[command(after_help = "Example:\n  stagehand schema job > job.schema.json")]
    Schema {
        /// job, workspace or events.
        #[arg(value_enum)]
        kind: SchemaKind,
    },
}
