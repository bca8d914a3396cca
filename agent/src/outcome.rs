//! How a run ends, as types, and the one place that turns an ending into the
//! `finished` event's status and phase and the agent's exit code.
//!
//! Every phase of a run has its error type ([`StageError`], [`RunError`],
//! [`UploadError`]), each keeping its cause as a `#[source]`; [`Outcome`] is what the
//! lifecycle hands back, and [`Outcome::report`] is the only function that decides an
//! exit code for a run. The other commands' errors get theirs here too
//! ([`DatastoreError::exit_code`]), so the table in the README has one source.
//!
//! This module never prints and never emits: it only classifies.

use crate::console::OutputError;
use crate::exit;
use crate::mount::MountError;
use crate::run::{EndedBy, Exit, RunError};
use crate::store::StoreError;
use crate::transfer::TransferError;
use stagehand_protocol::events::{Phase, Status};
use stagehand_protocol::load::Problems;
use std::path::PathBuf;
use thiserror::Error;

/// Getting the run's data (and the node) ready failed, or was cancelled: the job did
/// not run.
#[derive(Debug, Error)]
pub enum StageError {
    /// The run folder could not be made: the node is broken, not the data.
    #[error("cannot create the run folder {}: {source}", path.display())]
    RunDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The run folder's outputs could not be claimed for this job (another job's could
    /// not be moved aside): nothing was staged, and nothing of theirs is lost.
    #[error("cannot take over the run folder: {0}")]
    Claim(#[source] crate::lifecycle::run_dir::RunDirError),
    /// The mounts' settings could not be read.
    #[error(transparent)]
    MountSettings(MountError),
    /// The node cache's settings could not be read.
    #[error(transparent)]
    Cache(crate::cache::CacheError),
    /// An input (or the code snapshot) could not be mounted.
    #[error("staging {what} failed: {source}{}", if source.is_unavailable() { "; set mount_fallback: download on the input to download it instead" } else { "" })]
    Mount {
        /// `input "name"` or `code snapshot`.
        what: String,
        /// Why.
        source: MountError,
    },
    /// An input (or the code snapshot) could not be downloaded.
    #[error("staging {what} failed: {source}")]
    Download {
        /// `input "name"` or `code snapshot`.
        what: String,
        /// Why.
        source: TransferError,
    },
    /// A database input's rows could not be exported.
    #[error("staging {what} failed: {source}")]
    Query {
        /// `input "name"`.
        what: String,
        /// Why (boxed: the driver's error is large, and staging's errors are returned
        /// on every path).
        source: Box<crate::transfer::query::QueryError>,
    },
    /// A local datastore's folder, given to the job in place, is missing or holds a
    /// path (a symlink) that leaves the datastore's root.
    #[error("staging {what} failed: {source}")]
    InPlace {
        /// `input "name"`.
        what: String,
        /// Why.
        source: StoreError,
    },
    /// An output's folder could not be made before launch.
    #[error("output {name:?}: cannot create {}: {source}", dir.display())]
    OutputDir {
        /// The output's name.
        name: String,
        /// The folder.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runner could not get ready (no engine, no image).
    #[error(transparent)]
    Prepare(RunError),
    /// The events could not be written when the run was accepted: nothing was staged.
    #[error("{0}; nothing was run")]
    Events(OutputError),
    /// SIGINT or SIGTERM arrived while staging.
    #[error("cancelled while staging")]
    Cancelled,
    /// The checks before staging failed (`run`'s preflight): every failure, and
    /// nothing was moved.
    #[error("{} check(s) failed before anything was moved: {}", .0.len(), list(.0))]
    Preflight(Vec<crate::lifecycle::preflight::CheckFailure>),
}

impl OutputError {
    /// The exit code of a command whose output could not be written.
    pub fn exit_code(&self) -> i32 {
        exit::OUTPUT_FAILED
    }
}

impl StageError {
    /// Whether staging failed on something a retry cannot fix: an input that does not
    /// exist, or access that is refused.
    fn not_found_or_denied(&self) -> bool {
        match self {
            StageError::InPlace { source: e, .. } => store_not_found_or_denied(e),
            StageError::Mount {
                source: MountError::Store(e),
                ..
            } => store_not_found_or_denied(e),
            StageError::Download { source, .. } => transfer_not_found_or_denied(source),
            StageError::Query { source, .. } => source.not_found_or_denied(),
            _ => false,
        }
    }
}

/// The preflight's failures, in one line.
fn list(failures: &[crate::lifecycle::preflight::CheckFailure]) -> String {
    let each: Vec<String> = failures.iter().map(ToString::to_string).collect();
    each.join("; ")
}

/// A store's "not there" or "not allowed": the path is missing, the credentials are
/// refused, or a local file answers ENOENT/EACCES; or a refusal the same input always
/// meets (a name that would escape its target, a TLS certificate not trusted). A retry
/// cannot fix any of these, so
/// none may exit "try again" (75), or Slurm requeues and systemd restarts the run
/// forever. (A configuration error is left retryable: a root folder missing on one
/// node, an unmounted share, may be there on the next.)
fn store_not_found_or_denied(e: &StoreError) -> bool {
    match e {
        StoreError::NotFound { .. }
        | StoreError::Auth { .. }
        | StoreError::Unsafe { .. }
        | StoreError::Untrusted { .. } => true,
        StoreError::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
        ),
        _ => false,
    }
}

fn transfer_not_found_or_denied(e: &TransferError) -> bool {
    match e {
        TransferError::Store(s) => store_not_found_or_denied(s),
        // The listing holds the same hostile names on every attempt.
        TransferError::UnsafeNames { .. } => true,
        _ => false,
    }
}

/// An output that did not reach its datastore.
#[derive(Debug, Error)]
pub enum UploadError {
    /// The transfer failed.
    #[error("uploading output {name:?} failed: {source}{}", exists_advice(source, run_id_in_path.as_deref()))]
    Output {
        /// The output's name.
        name: String,
        /// Why.
        source: TransferError,
        /// The run id, when the output's datastore path holds it (`runs/{run_id}/…`):
        /// then files already there mean the run id was used before.
        run_id_in_path: Option<String>,
    },
    /// A second signal stopped the uploads.
    #[error("upload interrupted by a signal")]
    Interrupted,
}

/// What to do when an output's files exist already and overwrite is false: a path
/// with the run id in it means the id was reused (`--run-id`); one without needs it.
fn exists_advice(e: &TransferError, run_id_in_path: Option<&str>) -> String {
    match (e, run_id_in_path) {
        (TransferError::Exists { .. }, Some(id)) => format!(
            ". The run id {id:?} was used before (--run-id): run again without --run-id (each run then gets a new id), give an id not used yet, or set overwrite: true"
        ),
        (TransferError::Exists { .. }, None) => {
            ". Put {run_id} in the output's path, or set overwrite: true".to_string()
        }
        _ => String::new(),
    }
}

/// What to do when `datastore upload` finds files there already.
fn upload_cmd_advice(e: &TransferError) -> &'static str {
    match e {
        TransferError::Exists { .. } => ". Pass --overwrite to replace them",
        _ => "",
    }
}

/// How the job itself went, once it was launched.
#[derive(Debug)]
pub struct Ran {
    /// How it ended.
    pub exit: Exit,
    /// Its timeout, for the message when it ran past it.
    pub timeout_secs: Option<f64>,
    /// Its container's memory limit, for the message when it was killed for it.
    pub memory_limit_bytes: Option<u64>,
    /// The outputs that failed to upload (empty when all due ones landed).
    pub uploads: Vec<UploadError>,
    /// Why the program could not be started (the exit is then 127, as a shell's).
    pub not_started: Option<RunError>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// The spec, workspace or command line was invalid; nothing was created.
    Invalid(Problems),
    /// Staging failed or was cancelled; the job did not run.
    Staging(StageError),
    /// The job could not be launched or supervised.
    Launch(RunError),
    /// The job ran (and its outputs were uploaded, or not).
    Ran(Ran),
}

/// What the scheduler is told: the `finished` event's fields and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `succeeded`, `failed`, `cancelled`, `timed_out`, `agent_error`.
    pub status: Status,
    /// The phase the run ended in.
    pub phase: Phase,
    /// The agent's exit code.
    pub code: i32,
    /// What went wrong, for people.
    pub error: Option<String>,
}

impl Report {
    fn new(status: Status, phase: Phase, code: i32, error: impl Into<Option<String>>) -> Report {
        Report {
            status,
            phase,
            code,
            error: error.into(),
        }
    }
}

impl Outcome {
    /// The one mapping from an ending to status, phase and exit code (the README's
    /// "Exit codes" table).
    pub fn report(&self) -> Report {
        match self {
            Outcome::Invalid(p) => Report::new(
                Status::Failed,
                Phase::Validate,
                exit::INVALID,
                p.to_string(),
            ),
            Outcome::Staging(e) => {
                let (status, code) = match e {
                    StageError::RunDir { .. } | StageError::Claim(_) => {
                        (Status::AgentError, exit::INTERNAL)
                    }
                    StageError::Cancelled => (Status::Cancelled, exit::CANCELLED),
                    StageError::Events(e) => (Status::AgentError, e.exit_code()),
                    StageError::Preflight(f) => (Status::Failed, preflight_code(f)),
                    e if e.not_found_or_denied() => (Status::Failed, exit::NOT_FOUND_OR_DENIED),
                    _ => (Status::Failed, exit::STAGING_FAILED),
                };
                Report::new(status, Phase::Stage, code, e.to_string())
            }
            Outcome::Launch(e) if e.before_launch() => Report::new(
                Status::Failed,
                Phase::Run,
                exit::STAGING_FAILED,
                e.to_string(),
            ),
            Outcome::Launch(e) => Report::new(
                Status::AgentError,
                Phase::Run,
                exit::INTERNAL,
                e.to_string(),
            ),
            Outcome::Ran(r) => r.report(),
        }
    }
}

impl Report {
    /// The report of a run whose events or log could not all be written: a run that
    /// otherwise succeeded fails with [`exit::OUTPUT_FAILED`], since whoever follows it
    /// lost what it said; a run that failed keeps its own code, and the loss is added
    /// to its error.
    pub fn with_lost_output(self, lost: Option<&OutputError>) -> Report {
        let Some(lost) = lost.filter(|_| self.code != exit::OUTPUT_FAILED) else {
            return self;
        };
        let error = Some(match self.error {
            Some(e) => format!("{e}; {lost}"),
            None => lost.to_string(),
        });
        if self.code == 0 {
            Report::new(Status::AgentError, self.phase, lost.exit_code(), error)
        } else {
            Report { error, ..self }
        }
    }
}

impl Ran {
    fn report(&self) -> Report {
        let uploads = (!self.uploads.is_empty()).then(|| {
            self.uploads
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        });
        // The job's own failure comes first; a failed upload is added to it.
        let with_uploads = |what: String| match &uploads {
            Some(u) => format!("{what}; {u}"),
            None => what,
        };
        let code = self.exit.job_code();
        match self.exit.ended_by {
            EndedBy::Cancelled => Report::new(
                Status::Cancelled,
                Phase::Run,
                exit::CANCELLED,
                uploads.unwrap_or_else(|| "cancelled by a signal".into()),
            ),
            EndedBy::TimedOut => Report::new(
                Status::TimedOut,
                Phase::Run,
                exit::TIMED_OUT,
                with_uploads(format!(
                    "the job ran past its timeout of {}s",
                    self.timeout_secs.unwrap_or_default()
                )),
            ),
            EndedBy::OutOfMemory => Report::new(
                Status::OutOfMemory,
                Phase::Run,
                code,
                with_uploads(format!(
                    "the container ran out of memory{} and the engine killed it (exit code {code}); give it more (container.memory, srun --mem)",
                    self.memory_limit_bytes
                        .map(|b| format!(" (its limit: {})", crate::plan::resources::memory_text(b)))
                        .unwrap_or_default()
                )),
            ),
            EndedBy::Itself if code != 0 => Report::new(
                Status::Failed,
                Phase::Run,
                code,
                with_uploads(match &self.not_started {
                    Some(e) => e.to_string(),
                    None => format!("the job exited with code {code}"),
                }),
            ),
            EndedBy::Itself => match uploads {
                Some(u) => Report::new(Status::Failed, Phase::Upload, exit::UPLOAD_FAILED, u),
                None => Report::new(Status::Succeeded, Phase::Done, 0, None),
            },
        }
    }
}

/// How a command other than `run` and `datastore` failed, once it has said why: the
/// rows of the README's exit-code table such a command can end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The command line, a spec or a workspace is invalid; nothing was done.
    Invalid,
    /// The agent itself failed (no runtime, no signal handlers), or could not remove
    /// what it was asked to (`gc`).
    Internal,
    /// The agent's own output could not be written (a full disk, `/dev/full`).
    Output,
}

impl Failure {
    /// Its exit code.
    pub fn exit_code(self) -> i32 {
        match self {
            Failure::Invalid => exit::INVALID,
            Failure::Internal => exit::INTERNAL,
            Failure::Output => exit::OUTPUT_FAILED,
        }
    }
}

/// A `stagehand datastore …` command that failed.
#[derive(Debug, Error)]
pub enum DatastoreError {
    /// The workspace file is invalid.
    #[error("{0}")]
    Workspace(Problems),
    /// The command line names something that is not there or not valid.
    #[error("{0}")]
    Usage(String),
    /// The workspace file cannot be edited as asked (`register`, `set-default`,
    /// `unregister`).
    #[error(transparent)]
    Edit(crate::commands::datastore::registry_edit::EditError),
    /// The datastore could not be opened (its configuration).
    #[error(transparent)]
    Open(StoreError),
    /// Reaching the store failed (listing, checking, creating).
    #[error(transparent)]
    Store(StoreError),
    /// An upload failed.
    #[error("{}{}", .0, upload_cmd_advice(.0))]
    Upload(TransferError),
    /// A download failed.
    #[error(transparent)]
    Download(TransferError),
    /// A database datastore could not be reached or refused (`datastore check`).
    #[error(transparent)]
    Query(crate::transfer::query::QueryError),
    /// What the command prints could not be written.
    #[error(transparent)]
    Output(OutputError),
}

impl DatastoreError {
    /// The exit code of a failed datastore command: the same codes as a run's phases.
    pub fn exit_code(&self) -> i32 {
        match self {
            DatastoreError::Workspace(_)
            | DatastoreError::Usage(_)
            | DatastoreError::Edit(_)
            | DatastoreError::Open(_) => exit::INVALID,
            DatastoreError::Store(e) if store_not_found_or_denied(e) => exit::NOT_FOUND_OR_DENIED,
            DatastoreError::Download(e) if transfer_not_found_or_denied(e) => {
                exit::NOT_FOUND_OR_DENIED
            }
            DatastoreError::Store(_) | DatastoreError::Download(_) => exit::STAGING_FAILED,
            DatastoreError::Upload(_) => exit::UPLOAD_FAILED,
            DatastoreError::Query(e) if e.not_found_or_denied() => exit::NOT_FOUND_OR_DENIED,
            DatastoreError::Query(_) => exit::STAGING_FAILED,
            DatastoreError::Output(e) => e.exit_code(),
        }
    }
}

/// The exit code of `plan --check`: 0 when everything passed;
/// [`exit::NOT_FOUND_OR_DENIED`] when anything is missing or refused (an input, a
/// credential, an image with `pull: never` or that its registry does not offer), which
/// a retry cannot fix; [`exit::STAGING_FAILED`] when only a service did not answer or
/// this node's disk is short (another node may do).
pub fn preflight_code(failures: &[crate::lifecycle::preflight::CheckFailure]) -> i32 {
    use crate::lifecycle::preflight::CheckFailure;
    if failures.is_empty() {
        return 0;
    }
    let fatal = failures.iter().any(|f| match f {
        CheckFailure::Store { source, .. } => store_not_found_or_denied(source),
        CheckFailure::Query { source, .. } => source.not_found_or_denied(),
        CheckFailure::Image(RunError::ImageMissing { .. } | RunError::PullFailed { .. }) => true,
        CheckFailure::Image(_) => false,
        CheckFailure::Disk { .. } => false,
        CheckFailure::DiskUnreadable { .. } => false,
    });
    if fatal {
        exit::NOT_FOUND_OR_DENIED
    } else {
        exit::STAGING_FAILED
    }
}

/// The exit code of a command that only prints (`completions`, `man`): 0, or
/// [`exit::OUTPUT_FAILED`] when its output could not be written (the command said why).
pub fn print_code(written: &std::io::Result<()>) -> i32 {
    match written {
        Ok(()) => 0,
        Err(_) => exit::OUTPUT_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::Channel;

    fn ran(code: Option<i32>, signal: Option<i32>, ended_by: EndedBy, uploads: usize) -> Report {
        Outcome::Ran(Ran {
            exit: Exit {
                status: match (code, signal) {
                    (Some(c), _) => crate::run::supervise::Status::Exited(c),
                    (None, Some(s)) => crate::run::supervise::Status::Killed(s),
                    (None, None) => panic!("an exit has a code or a signal"),
                },
                ended_by,
            },
            timeout_secs: Some(5.0),
            memory_limit_bytes: Some(256 << 20),
            uploads: (0..uploads).map(|_| UploadError::Interrupted).collect(),
            not_started: None,
        })
        .report()
    }

    #[test]
    fn a_clean_run_succeeds_with_zero() {
        let r = ran(Some(0), None, EndedBy::Itself, 0);
        assert_eq!(r, Report::new(Status::Succeeded, Phase::Done, 0, None));
    }

    #[test]
    fn the_jobs_code_wins_and_a_failed_upload_is_added() {
        let r = ran(Some(3), None, EndedBy::Itself, 1);
        assert_eq!((r.status, r.phase, r.code), (Status::Failed, Phase::Run, 3));
        assert_eq!(
            r.error.as_deref(),
            Some("the job exited with code 3; upload interrupted by a signal")
        );
        let r = ran(None, Some(9), EndedBy::Itself, 0);
        assert_eq!(r.code, 137);
    }

    #[test]
    fn a_failed_upload_after_success_is_73_in_the_upload_phase() {
        let r = ran(Some(0), None, EndedBy::Itself, 2);
        assert_eq!(
            (r.status, r.phase, r.code),
            (Status::Failed, Phase::Upload, exit::UPLOAD_FAILED)
        );
    }

    #[test]
    fn a_container_killed_for_memory_says_so_with_its_limit() {
        let r = ran(Some(137), None, EndedBy::OutOfMemory, 0);
        assert_eq!(
            (r.status, r.phase, r.code),
            (Status::OutOfMemory, Phase::Run, 137)
        );
        assert_eq!(
            r.error.as_deref(),
            Some("the container ran out of memory (its limit: 256 MiB) and the engine killed it (exit code 137); give it more (container.memory, srun --mem)")
        );
    }

    #[test]
    fn cancel_and_timeout_have_their_own_codes() {
        let r = ran(None, Some(15), EndedBy::Cancelled, 0);
        assert_eq!((r.status, r.code), (Status::Cancelled, exit::CANCELLED));
        assert_eq!(r.error.as_deref(), Some("cancelled by a signal"));
        let r = ran(None, Some(15), EndedBy::TimedOut, 0);
        assert_eq!((r.status, r.code), (Status::TimedOut, exit::TIMED_OUT));
        assert_eq!(
            r.error.as_deref(),
            Some("the job ran past its timeout of 5s")
        );
    }

    #[test]
    fn staging_failures_are_retryable_except_the_nodes_own() {
        let r = Outcome::Staging(StageError::Cancelled).report();
        assert_eq!(
            (r.status, r.phase, r.code),
            (Status::Cancelled, Phase::Stage, exit::CANCELLED)
        );
        let r = Outcome::Staging(StageError::RunDir {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        })
        .report();
        assert_eq!((r.status, r.code), (Status::AgentError, exit::INTERNAL));
        let r = Outcome::Staging(StageError::OutputDir {
            name: "o".into(),
            dir: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        })
        .report();
        assert_eq!((r.status, r.code), (Status::Failed, exit::STAGING_FAILED));
    }

    #[test]
    fn hostile_names_are_not_worth_a_retry() {
        let unsafe_names = TransferError::UnsafeNames {
            datastore: "d".into(),
            target: "/t".into(),
            names: vec!["../escape.txt: escapes the target".into()],
        };
        assert_eq!(
            DatastoreError::Download(unsafe_names).exit_code(),
            exit::NOT_FOUND_OR_DENIED
        );
        let refused = StoreError::Unsafe {
            datastore: "d".into(),
            path: "h/..".into(),
            reason: "escapes".into(),
        };
        assert_eq!(
            DatastoreError::Store(refused).exit_code(),
            exit::NOT_FOUND_OR_DENIED
        );
    }

    #[test]
    fn lost_output_fails_a_successful_run_with_74_and_keeps_a_failures_code() {
        let lost = OutputError {
            channel: Channel::Events,
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let r = ran(Some(0), None, EndedBy::Itself, 0).with_lost_output(Some(&lost));
        assert_eq!(
            (r.status, r.code),
            (Status::AgentError, exit::OUTPUT_FAILED)
        );
        assert!(r
            .error
            .unwrap()
            .starts_with("cannot write to the events file"));
        let r = ran(Some(3), None, EndedBy::Itself, 0).with_lost_output(Some(&lost));
        assert_eq!((r.status, r.code), (Status::Failed, 3));
        let r = ran(Some(0), None, EndedBy::Itself, 0).with_lost_output(None);
        assert_eq!(r.code, 0);
    }

    #[test]
    fn a_missing_or_refused_input_is_not_retryable() {
        let missing = StoreError::NotFound {
            datastore: "d".into(),
            path: "x".into(),
        };
        let r = Outcome::Staging(StageError::Download {
            what: "input \"a\"".into(),
            source: TransferError::Store(missing),
        })
        .report();
        assert_eq!(
            (r.status, r.code),
            (Status::Failed, exit::NOT_FOUND_OR_DENIED)
        );
        let denied = StoreError::Io {
            action: "reading",
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let r = Outcome::Staging(StageError::InPlace {
            what: "input \"a\"".into(),
            source: denied,
        })
        .report();
        assert_eq!(r.code, exit::NOT_FOUND_OR_DENIED);
        let refused = StoreError::Auth {
            datastore: "d".into(),
            detail: "403".into(),
        };
        assert_eq!(
            DatastoreError::Store(refused).exit_code(),
            exit::NOT_FOUND_OR_DENIED
        );
        // Run's preflight: a service that does not answer is still worth a retry; a
        // path that is not there, beside it, is not.
        let down = || crate::lifecycle::preflight::CheckFailure::Store {
            what: "input \"a\"".into(),
            source: StoreError::Remote {
                datastore: "d".into(),
                detail: "503".into(),
            },
        };
        let r = Outcome::Staging(StageError::Preflight(vec![down()])).report();
        assert_eq!((r.code, r.phase), (exit::STAGING_FAILED, Phase::Stage));
        let missing = crate::lifecycle::preflight::CheckFailure::Store {
            what: "input \"b\"".into(),
            source: StoreError::NotFound {
                datastore: "d".into(),
                path: "x".into(),
            },
        };
        let r = Outcome::Staging(StageError::Preflight(vec![down(), missing])).report();
        assert_eq!(r.code, exit::NOT_FOUND_OR_DENIED);
        let error = r.error.unwrap_or_default();
        assert!(
            error.starts_with("2 check(s) failed before anything was moved: input \"a\"")
                && error.contains("input \"b\": datastore \"d\": \"x\" does not exist"),
            "{error}"
        );
    }

    #[test]
    fn preflight_is_non_retryable_when_anything_is_missing_or_refused() {
        use crate::lifecycle::preflight::CheckFailure;
        assert_eq!(preflight_code(&[]), 0);
        let short = CheckFailure::Disk {
            need: 2,
            free: 1,
            dir: "/x".into(),
        };
        assert_eq!(preflight_code(&[short]), exit::STAGING_FAILED);
        let missing = CheckFailure::Image(RunError::ImageMissing { image: "i".into() });
        let down = CheckFailure::Store {
            what: "input \"a\"".into(),
            source: StoreError::Remote {
                datastore: "d".into(),
                detail: "503".into(),
            },
        };
        assert_eq!(preflight_code(&[down, missing]), exit::NOT_FOUND_OR_DENIED);
    }

    #[test]
    fn an_invalid_spec_is_64_in_the_validate_phase() {
        let r = Outcome::Invalid(Problems(vec![])).report();
        assert_eq!(
            (r.status, r.phase, r.code),
            (Status::Failed, Phase::Validate, exit::INVALID)
        );
    }
}
