//! The process runner: the job as a child process in its own process group.
//!
//! Signals go to the whole group, never just the pid, so grandchildren do not outlive
//! the job; once the job has ended the group is killed outright, and the child is
//! asked to die with the agent (PR_SET_PDEATHSIG) in case the agent itself is killed;
//! a guardian (`guard.rs`) kills the rest of its group then, and the group is named in
//! the run folder (`job.json`) for `stagehand gc` should the guardian be gone too.
//! When to signal and when to kill is the supervisor's (`supervise.rs`); this module
//! only says how, for a process group.

use super::guard::Guard;
use super::output::Sink;
use super::supervise::{self, Status};
use super::{Exit, Launch, RunError, Runner, Started};
use crate::plan::Plan;
use crate::signals::Cancel;
use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
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
        // One process, or one per local rank of a distributed job, each in its own
        // group, all handed to `supervise_all` together: the first failure stops the
        // others.
        let ranks = super::ranks::local_ranks(plan).await;
        let seen = cancel.received().0;
        let mut groups: Vec<Box<dyn supervise::Child>> = Vec::with_capacity(ranks.len());
        let (mut pgids, mut pumps, mut guards) = (Vec::new(), Vec::new(), Vec::new());
        for r in &ranks {
            match start_rank(launch, r.index as usize, &r.env) {
                Ok((group, p, guard)) => {
                    pgids.push(group.pgid);
                    pumps.extend(p);
                    guards.extend(guard);
                    groups.push(Box::new(group));
                }
                Err(e) => {
                    teardown(&pgids, pumps, guards, launch).await;
                    return Err(e);
                }
            }
        }
        record_groups(launch, &pgids);
        started(Started {
            pid: pgids.first().map(|p| p.as_raw() as u32),
            container: None,
        });
        let exit = supervise::supervise_all(groups, cancel.after(seen), super::limits(plan)).await;
        teardown(&pgids, pumps, guards, launch).await;
        exit
    }
}

/// The run folder's record of the job's process group.
fn job_file(launch: &Launch<'_>) -> std::path::PathBuf {
    launch.plan.run_dir.join(crate::owner::JOB_FILE)
}

/// One process of the job, as started: its group, its output pumps, its guardian.
type Rank = (Group, Vec<JoinHandle<()>>, Option<Guard>);

/// Starts one process of the job (the `local`th this agent starts, with `env` on top of
/// the plan's) with its output pumped through and kept (`stdout.log` for the first,
/// `stdout.<local>.log` for the others), its group guarded.
fn start_rank(
    launch: &Launch<'_>,
    local: usize,
    env: &BTreeMap<String, String>,
) -> Result<Rank, RunError> {
    let plan = launch.plan;
    let mut child = spawn(plan, launch.remove_env, env)?;
    let pid = child.id().unwrap_or(0);
    let guard = guard(pid);
    tracing::info!(pid, local, "job started: {}", plan.command.join(" "));
    let log = |stream: &str| match local {
        0 => launch.log_dir.join(format!("{stream}.log")),
        n => launch.log_dir.join(format!("{stream}.{n}.log")),
    };
    let pumps = vec![
        pump(child.stdout.take(), launch.stdout_to_stderr, &log("stdout")),
        pump(child.stderr.take(), true, &log("stderr")),
    ];
    let group = Group {
        child,
        pgid: Pid::from_raw(pid as i32),
        stopping: false,
    };
    Ok((group, pumps, guard))
}

/// Records every group of the job in the run folder, for `gc` should the agent and the
/// guardians all be gone. A failure is warned about and does not stop the job: the
/// guardians still cover it.
fn record_groups(launch: &Launch<'_>, pgids: &[Pid]) {
    let boot_id = crate::linux::boot_id();
    let groups: Vec<crate::owner::JobGroup> = pgids
        .iter()
        .filter_map(|p| {
            let start = crate::linux::stat(p.as_raw() as u32)?.start_time;
            Some(crate::owner::JobGroup {
                pgid: p.as_raw(),
                start,
                boot_id: boot_id.clone(),
            })
        })
        .collect();
    let written = serde_json::to_vec(&groups)
        .map_err(std::io::Error::other)
        .and_then(|json| crate::partial::write_file(&job_file(launch), &json));
    if let Err(e) = written {
        tracing::warn!("cannot record the job's process groups: {e}");
    }
}

/// Starts the guardian of the group led by `pid`. Failing does not stop the job: it is
/// warned about, and the job runs as it would have before guardians (its leader still
/// dies with the agent).
fn guard(pid: u32) -> Option<Guard> {
    let start = crate::linux::stat(pid).map(|s| s.start_time)?;
    match Guard::start(pid as i32, start) {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!("cannot start the guardian of the job's processes: {e}; they may outlive a killed agent");
            None
        }
    }
}

/// Once the job has ended: kills whatever it left running in its groups, lets the
/// output pumps drain, releases the guardians and forgets the recorded group.
async fn teardown(
    pgids: &[Pid],
    pumps: Vec<JoinHandle<()>>,
    guards: Vec<Guard>,
    launch: &Launch<'_>,
) {
    for &pgid in pgids {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    for p in pumps {
        // A process that left the group may still hold the pipe: do not wait forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    for g in guards {
        g.release().await;
    }
    let _ = std::fs::remove_file(job_file(launch));
}

/// Starts the job's command in a process group of its own, asked to die with the agent.
fn spawn(
    plan: &Plan,
    remove_env: &[String],
    rank_env: &BTreeMap<String, String>,
) -> Result<Child, RunError> {
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
    cmd.envs(rank_env);
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
        // Without an exit code the child was killed: its signal is in the raw wait
        // status's low bits (WTERMSIG), which `signal()` reads.
        Ok(match status.code() {
            Some(c) => Status::Exited(c),
            None => Status::Killed(status.signal().unwrap_or(status.into_raw() & 0x7f)),
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
