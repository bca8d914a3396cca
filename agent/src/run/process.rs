//! The process runner: the job as a child process in its own process group.
//!
//! Signals go to the whole group, never just the pid, so grandchildren do not outlive
//! the job; once the job has ended the group is killed outright, and the child is
//! asked to die with the agent (PR_SET_PDEATHSIG) in case the agent itself is killed.

use super::output::Sink;
use super::{EndedBy, Exit, Launch, RunError, Runner, Started};
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
        let mut cmd = Command::new(&plan.command[0]);
        cmd.args(&plan.command[1..])
            .current_dir(&plan.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for k in launch.remove_env {
            cmd.env_remove(k);
        }
        cmd.envs(&plan.environment);
        // SAFETY: prctl is async-signal-safe and touches nothing but this process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            program: plan.command[0].clone(),
            workdir: plan.working_dir.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let pgid = Pid::from_raw(pid as i32);
        started(Started {
            pid: Some(pid),
            container: None,
        });
        tracing::info!(pid, "job started: {}", plan.command.join(" "));

        let out = pump(
            child.stdout.take(),
            launch.stdout_to_stderr,
            &launch.log_dir.join("stdout.log"),
        );
        let err = pump(
            child.stderr.take(),
            true,
            &launch.log_dir.join("stderr.log"),
        );
        let seen = cancel.received().0;

        let timeout = async {
            match plan.timeout() {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let (status, ended_by) = tokio::select! {
            s = child.wait() => (s, EndedBy::Itself),
            sig = cancel.after(seen) => {
                let sig = Signal::try_from(sig).unwrap_or(Signal::SIGTERM);
                (stop(&mut child, pgid, sig, plan.kill_grace()).await, EndedBy::Cancelled)
            }
            _ = timeout => {
                tracing::warn!("job ran past its timeout of {}s; sending SIGTERM", plan.timeout_secs.unwrap_or_default());
                (stop(&mut child, pgid, Signal::SIGTERM, plan.kill_grace()).await, EndedBy::TimedOut)
            }
        };
        // Whatever the job left running in its group goes now.
        let _ = killpg(pgid, Signal::SIGKILL);
        for p in [out, err] {
            // A process that left the group may still hold the pipe: do not wait forever.
            let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
        }
        let status =
            status.map_err(|e| RunError::Other(format!("cannot wait for the job: {e}")))?;
        Ok(Exit {
            code: status.code(),
            signal: status.signal(),
            ended_by,
        })
    }
}

/// Sends `sig` to the group, then SIGKILL after `grace`; returns the child's status.
/// The grace covers the whole group: grandchildren get the same time to finish their
/// signal handlers as the job itself.
async fn stop(
    child: &mut Child,
    pgid: Pid,
    sig: Signal,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    let _ = killpg(pgid, sig);
    let deadline = tokio::time::Instant::now() + grace;
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(s) => s,
        Err(_) => {
            tracing::warn!(
                "job still running {}s after {sig}; sending SIGKILL",
                grace.as_secs_f64()
            );
            let _ = killpg(pgid, Signal::SIGKILL);
            return child.wait().await;
        }
    };
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    status
}

/// Whether any process of group `pgid` is still running (zombies do not count).
fn group_alive(pgid: Pid) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let mut rest = stat
            .rsplit_once(") ")
            .map(|(_, r)| r)
            .unwrap_or("")
            .split(' ');
        let state = rest.next().unwrap_or("Z");
        let pgrp = rest.nth(1).and_then(|g| g.parse::<i32>().ok());
        pgrp == Some(pgid.as_raw()) && state != "Z" && state != "X"
    })
}

/// Copies a child's output to the agent's stdout or stderr and to a log file.
fn pump(
    src: Option<impl AsyncRead + Unpin + Send + 'static>,
    to_stderr: bool,
    log: &Path,
) -> tokio::task::JoinHandle<()> {
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
