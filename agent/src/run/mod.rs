//! The `Runner` seam: how a planned job is launched and supervised. The process runner
//! (`process.rs`) and the container runner (`container.rs`) implement the same trait;
//! both hand their children to the one supervisor (`supervise.rs`), which owns the race
//! between exit, cancel and timeout; `output.rs` is what they share to pass a job's
//! output through and keep it.
//!
//! Nothing here decides the agent's exit code: a run error says what went wrong, and
//! `before_launch` whether anything ran.

pub mod build;
pub mod container;
pub mod container_resources;
pub mod engine;
pub mod guard;
pub mod output;
pub mod process;
mod rank_containers;
pub mod ranks;
pub mod supervise;

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
    /// The engine killed its container for going over the memory limit.
    OutOfMemory,
}

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code or the signal that killed it.
    pub status: supervise::Status,
    /// What ended it.
    pub ended_by: EndedBy,
}

impl Exit {
    /// The end of a job whose program could not be started: [`crate::exit::NOT_STARTED`],
    /// as a shell answers for a command it cannot run.
    pub fn not_started() -> Exit {
        Exit {
            status: supervise::Status::Exited(crate::exit::NOT_STARTED),
            ended_by: EndedBy::Itself,
        }
    }

    /// Its exit code, when it exited.
    pub fn code(&self) -> Option<i32> {
        match self.status {
            supervise::Status::Exited(c) => Some(c),
            supervise::Status::Killed(_) => None,
        }
    }

    /// The signal that killed it, when one did.
    pub fn signal(&self) -> Option<i32> {
        match self.status {
            supervise::Status::Killed(s) => Some(s),
            supervise::Status::Exited(_) => None,
        }
    }

    /// The job's own code: its exit code, or 128+N for signal N.
    pub fn job_code(&self) -> i32 {
        match self.status {
            supervise::Status::Exited(c) => c,
            supervise::Status::Killed(s) => 128 + s,
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
    #[error("{}", spawn_message(program, workdir, source, near.as_deref()))]
    Spawn {
        /// argv[0].
        program: String,
        /// The working folder.
        workdir: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// A program on the PATH whose name is near argv[0] (`python3` for `pyhton3`).
        near: Option<String>,
    },
    /// No container engine answers.
    #[error("no container engine reachable at {host}: {reason}. Start the Docker daemon (`systemctl start docker`, or `dockerd`), or point DOCKER_HOST at a running engine (unix:///path/to/docker.sock or tcp://HOST:2375)")]
    EngineUnreachable {
        /// Where it was looked for (DOCKER_HOST, or the default socket).
        host: String,
        /// What the connection said.
        reason: String,
    },
    /// `pull: never` and the image is not on the engine.
    #[error("image {image:?} is not on the container engine and container.pull is never; load it first (`docker pull {image}` or `docker load`), or set pull: missing")]
    ImageMissing {
        /// The image reference.
        image: String,
    },
    /// The build context (or conda file) could not be read.
    #[error("cannot read the image's build context {context}: {source}")]
    BuildContext {
        /// What was to be built.
        context: String,
        /// Why.
        source: std::io::Error,
    },
    /// The engine could not build the image.
    #[error("building the image from {context} failed: {reason} (the build's output is in {})", log.display())]
    BuildFailed {
        /// What was built.
        context: String,
        /// The build log.
        log: std::path::PathBuf,
        /// What the engine said.
        reason: String,
    },
    /// Pulling the image failed.
    #[error("cannot pull image {image:?}: {reason}")]
    PullFailed {
        /// The image reference.
        image: String,
        /// What the engine said.
        reason: String,
    },
    /// The engine refused to create or start the container; the job did not run.
    #[error(
        "the container engine could not {action} for image {image:?}: {}",
        engine::reason(source)
    )]
    Launch {
        /// What was being done (`create the container`, `start the container`).
        action: &'static str,
        /// The image reference.
        image: String,
        /// What the engine said.
        source: bollard::errors::Error,
    },
    /// The engine could not say whether the image is there.
    #[error("cannot inspect image {image:?}: {}", engine::reason(source))]
    InspectImage {
        /// The image reference.
        image: String,
        /// What the engine said.
        source: bollard::errors::Error,
    },
    /// The container runner was handed a job that has no `container:` (a bug: the
    /// runner is chosen from the plan).
    #[error("the container runner was given a job without `container:`")]
    NotAContainerJob,
    /// Waiting for the job's process failed.
    #[error("cannot wait for the job: {source}")]
    Wait {
        /// The OS error.
        source: std::io::Error,
    },
    /// Waiting for the job's container failed, and the engine could not say how it ended.
    #[error("cannot wait for container {id}: {}", engine::reason(source))]
    WaitContainer {
        /// The container id.
        id: String,
        /// What the engine said.
        source: bollard::errors::Error,
    },
    /// The engine stopped answering before saying how the container ended.
    #[error("the engine stopped answering about container {id}")]
    EngineStoppedAnswering {
        /// The container id.
        id: String,
    },
}

impl RunError {
    /// Whether the job never started because of the node (engine, image, devices): the
    /// run failed before launch and may succeed when retried (exit code 75).
    pub fn before_launch(&self) -> bool {
        matches!(
            self,
            RunError::EngineUnreachable { .. }
                | RunError::ImageMissing { .. }
                | RunError::PullFailed { .. }
                | RunError::BuildContext { .. }
                | RunError::BuildFailed { .. }
                | RunError::Launch { .. }
        )
    }
}

/// The supervisor's bounds for a planned job.
fn limits(plan: &Plan) -> supervise::Limits {
    supervise::Limits {
        timeout: plan.timeout(),
        grace: plan.kill_grace(),
    }
}

/// Launches a job and supervises it until it ends.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Gets ready to launch while the data is staged (for a container: reach the engine,
    /// make sure the image is there), so a node that cannot run the job fails before the
    /// data is moved. An error here means nothing ran.
    async fn prepare(&self, _plan: &Plan) -> Result<(), RunError> {
        Ok(())
    }
    /// Runs the job; `started` is called once it is launched.
    async fn run(
        &self,
        launch: &Launch<'_>,
        cancel: &Cancel,
        started: &(dyn Fn(Started) + Send + Sync),
    ) -> Result<Exit, RunError>;
}

/// Why a program could not be started, in words that point at the cause: a bare name
/// is looked up on the PATH (not in the working folder), a path is relative to the
/// working folder.
fn spawn_message(
    program: &str,
    workdir: &std::path::Path,
    source: &std::io::Error,
    near: Option<&str>,
) -> String {
    let near = near
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    match source.kind() {
        std::io::ErrorKind::NotFound if !program.contains('/') => format!(
            "the job was not started: program {program:?} was not found on PATH{near}"
        ),
        std::io::ErrorKind::NotFound => format!(
            "the job was not started: program {program:?} does not exist (relative paths are relative to the working folder {})",
            workdir.display()
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "the job was not started: program {program:?} is not executable (chmod +x, or run it through its interpreter)"
        ),
        _ => format!(
            "the job was not started: cannot start {program:?} in {}: {source}",
            workdir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn engine_said(message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: message.into(),
        }
    }

    #[test]
    fn engine_errors_read_as_before_and_keep_their_cause() {
        let e = RunError::Launch {
            action: "create the container",
            image: "img:latest".into(),
            source: engine_said("no space left on device"),
        };
        assert_eq!(
            e.to_string(),
            "the container engine could not create the container for image \"img:latest\": no space left on device"
        );
        assert!(e.source().is_some());
        let e = RunError::WaitContainer {
            id: "c1".into(),
            source: engine_said("gone"),
        };
        assert_eq!(e.to_string(), "cannot wait for container c1: gone");
        assert!(e.source().is_some());
    }

    #[test]
    fn only_the_nodes_failures_before_launch_say_nothing_ran() {
        let nothing_ran = [
            RunError::ImageMissing { image: "i".into() },
            RunError::Launch {
                action: "start the container",
                image: "i".into(),
                source: engine_said("x"),
            },
        ];
        assert!(nothing_ran.iter().all(RunError::before_launch));
        let ran = [
            RunError::Wait {
                source: std::io::Error::other("x"),
            },
            RunError::EngineStoppedAnswering { id: "c1".into() },
            RunError::InspectImage {
                image: "i".into(),
                source: engine_said("x"),
            },
        ];
        assert!(!ran.iter().any(RunError::before_launch));
    }
}
