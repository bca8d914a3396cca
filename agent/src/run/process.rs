//! The process runner: the job as a child process in its own process group.
//!
//! Signals go to the whole group, never just the pid, so grandchildren do not outlive
//! the job; once the job has ended the group is killed outright, and the child is
//! asked to die with the agent (PR_SET_PDEATHSIG) in case the agent itself is killed.
//! When to signal and when to kill is the supervisor's (`supervise.rs`); this module
//! only says how, for a process group.

use super::output::Sink;
use super::supervise::{self, Status};
use super::{Exit, Launch, RunError, Runner, Started};
use crate::plan::Plan;
use crate::signals::Cancel;
use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Runs jobs as host processes.
pub struct ProcessRunner;

#[async_trait]
impl Runner for ProcessRunner {
    async fn run(
        &self,
        launch: &Launch<'_>,
        cancel: &Cancel,
        started: &(dyn Fn(Started) + Send + Sync),
    ) -> Result<Exit, RunError> {
        let plan = launch.plan;
        // One rank today: the ranks of a multi-process job would each be a turn of a
        // loop here, each in its own group, all handed to `supervise_all` together.
        let (group, pumps) = start_rank(launch)?;
        started(Started {
            pid: Some(group.pgid.as_raw() as u32),
            container: None,
        });
        let seen = cancel.received().0;
        let pgids = [group.pgid];
        let exit = supervise::supervise_all(
            vec![Box::new(group)],
            cancel.after(seen),
            super::limits(plan),
        )
        .await;
        teardown(&pgids, pumps).await;
        exit
    }
}

/// Starts one process of the job with its output pumped through and kept.
fn start_rank(launch: &Launch<'_>) -> Result<(Group, Vec<JoinHandle<()>>), RunError> {
    let plan = launch.plan;
    let mut child = spawn(plan, launch.remove_env)?;
    let pid = child.id().unwrap_or(0);
    tracing::info!(pid, "job started: {}", plan.command.join(" "));
    let pumps = vec![
        pump(
            child.stdout.take(),
            launch.stdout_to_stderr,
            &launch.log_dir.join("stdout.log"),
        ),
        pump(
            child.stderr.take(),
            true,
            &launch.log_dir.join("stderr.log"),
        ),
    ];
    let group = Group {
        child,
        pgid: Pid::from_raw(pid as i32),
        stopping: false,
    };
    Ok((group, pumps))
}

/// Once the job has ended: kills whatever it left running in its groups, and lets the
/// output pumps drain.
async fn teardown(pgids: &[Pid], pumps: Vec<JoinHandle<()>>) {
    for &pgid in pgids {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    for p in pumps {
        // A process that left the group may still hold the pipe: do not wait forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
}

/// Starts the job's command in a process group of its own, asked to die with the agent.
fn spawn(plan: &Plan, remove_env: &[String]) -> Result<Child, RunError> {
    let mut cmd = Command::new(&plan.command[0]);
    cmd.args(&plan.command[1..])
        .current_dir(&plan.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for k in remove_env {
        cmd.env_remove(k);
    }
    cmd.envs(&plan.environment);
    // SAFETY: die_with_parent only calls prctl, which is async-signal-safe and
    // touches nothing but this process.
    unsafe {
        cmd.pre_exec(|| {
            crate::linux::die_with_parent();
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| {
        let program = &plan.command[0];
        let bare = source.kind() == std::io::ErrorKind::NotFound && !program.contains('/');
        let path = plan
            .environment
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        RunError::Spawn {
            program: program.clone(),
            workdir: plan.working_dir.clone(),
            source,
            near: bare.then(|| near_program(program, &path)).flatten(),
        }
    })
}

/// The program on `path` whose name is nearest to `program` (a typo's fix), if any.
/// Only read when a start has failed, so its cost (a listing of each PATH folder) is
/// paid once, on the way out.
fn near_program(program: &str, path: &str) -> Option<String> {
    let names: Vec<String> = std::env::split_paths(path)
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    stagehand_protocol::suggest::nearest(program, names.iter().map(String::as_str))
        .map(str::to_string)
}

/// The job's process and its group, as the supervisor sees them: signals go to the
/// whole group. Once asked to stop, it has ended only when the whole group has, so
/// grandchildren get the same grace to finish their signal handlers as the job itself.
struct Group {
    child: Child,
    pgid: Pid,
    /// Whether a stop signal was sent (and no SIGKILL since).
    stopping: bool,
}

#[async_trait]
impl supervise::Child for Group {
    async fn stop(&mut self, sig: Signal) {
        self.stopping = true;
        let _ = killpg(self.pgid, sig);
    }

    async fn kill(&mut self) {
        self.stopping = false;
        let _ = killpg(self.pgid, Signal::SIGKILL);
    }

    async fn wait(&mut self) -> Result<Status, RunError> {
        // tokio keeps the status once reaped, so this is cancel-safe.
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| RunError::Wait { source })?;
        while self.stopping && crate::linux::group_alive(self.pgid.as_raw()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Status {
            code: status.code(),
            signal: status.signal(),
        })
    }
}

/// Copies a child's output to the agent's stdout or stderr and to a log file.
fn pump(
    src: Option<impl AsyncRead + Unpin + Send + 'static>,
    to_stderr: bool,
    log: &Path,
) -> JoinHandle<()> {
    let log = log.to_path_buf();
    tokio::spawn(async move {
        let Some(mut src) = src else { return };
        let mut sink = Sink::open(to_stderr, &log).await;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match src.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.write(&buf[..n]).await,
            };
        }
        sink.close().await;
    })
}
