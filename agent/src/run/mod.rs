//! The `Runner` seam: how a planned job is launched and supervised. The process runner
//! lives here; the container runner implements the same trait.

pub mod process;

use crate::plan::Plan;
use crate::signals::Cancel;
use async_trait::async_trait;
use std::path::PathBuf;
use thiserror::Error;

/// What to launch, beyond the plan itself.
pub struct Launch<'a> {
    /// The plan: command, environment, paths, timeout, grace.
    pub plan: &'a Plan,
    /// Variables of the agent's environment the job must not inherit.
    pub remove_env: &'a [String],
    /// Send the job's stdout to the agent's stderr (when events go to stdout).
    pub stdout_to_stderr: bool,
    /// Where `stdout.log` and `stderr.log` are kept.
    pub log_dir: PathBuf,
}

/// What ended the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// It exited (or died) by itself.
    Itself,
    /// The agent was signalled and stopped it.
    Cancelled,
    /// It ran past its timeout.
    TimedOut,
}

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// What ended it.
    pub ended_by: EndedBy,
}

impl Exit {
    /// The job's own code: its exit code, or 128+N for signal N.
    pub fn job_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => crate::exit::INTERNAL,
        }
    }
}

/// How the job was launched, for the `started` event.
#[derive(Debug, Clone, Default)]
pub struct Started {
    /// Process id.
    pub pid: Option<u32>,
    /// Container id.
    pub container: Option<String>,
}

/// The job could not be launched or supervised.
#[derive(Debug, Error)]
pub enum RunError {
    /// The program could not be started.
    #[error("cannot start {program:?} in {}: {source}", workdir.display())]
    Spawn {
        /// argv[0].
        program: String,
        /// The working folder.
        workdir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something else went wrong while the job ran.
    #[error("{0}")]
    Other(String),
}

/// Launches a job and supervises it until it ends.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Runs the job; `started` is called once it is launched.
    async fn run(
        &self,
        launch: &Launch<'_>,
        cancel: &Cancel,
        started: &(dyn Fn(Started) + Send + Sync),
    ) -> Result<Exit, RunError>;
}
