//! The guardian: what keeps a SIGKILLed agent from leaving its job running.
//!
//! The job's direct child dies with the agent (PR_SET_PDEATHSIG), but its children do
//! not: reparented to PID 1, they would run on. So for each process group of a job the
//! agent starts a tiny guardian, its own binary run as `stagehand __guard PGID START`,
//! in a group of its own, reading a pipe whose only writer is the agent. When the agent
//! is done with the group it writes one byte ([`Guard::release`]) and the guardian exits
//! quietly; when the pipe closes without that byte, the agent died, and the guardian
//! kills the whole group — unless the group's leader now is another process (same pid,
//! another start time), since a pid is reused and a stranger must never be killed.
//!
//! This module never decides when a job should stop (that is `supervise.rs`); it only
//! makes sure nothing of the job outlives the agent.

use nix::sys::signal::{killpg, signal, SigHandler, Signal};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

/// The hidden subcommand that runs a guardian.
pub const SUBCOMMAND: &str = "__guard";

/// A running guardian of one process group, and the agent's end of its pipe.
pub struct Guard {
    pipe: Option<std::fs::File>,
    child: tokio::process::Child,
}

impl Guard {
    /// Starts a guardian for group `pgid`, whose leader started at `start` (clock ticks
    /// after boot, as `/proc/PID/stat` says).
    pub fn start(pgid: i32, start: u64) -> std::io::Result<Guard> {
        let (read, write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg(SUBCOMMAND)
            .arg(pgid.to_string())
            .arg(start.to_string())
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(false)
            .spawn()?;
        Ok(Guard {
            pipe: Some(std::fs::File::from(write)),
            child,
        })
    }

    /// The group needs no guarding any more (it was killed and reaped): the guardian
    /// exits without killing.
    pub async fn release(mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"x");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
    }
}

/// The guardian's body (`stagehand __guard PGID START`): waits for the agent's byte or
/// for its pipe to close, and in the second case kills the group. Returns the exit code.
pub fn guard(pgid: i32, start: u64) -> i32 {
    // Only the pipe ends a guardian: not the terminal's ^C or hang-up.
    for s in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGPIPE,
    ] {
        // SAFETY: sets a disposition to SIG_IGN; no handler code runs.
        let _ = unsafe { signal(s, SigHandler::SigIgn) };
    }
    let mut byte = [0u8; 1];
    let released = loop {
        match std::io::stdin().read(&mut byte) {
            Ok(0) => break false,
            Ok(_) => break true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
    };
    if released || pgid <= 1 {
        return 0;
    }
    kill_group(pgid, start);
    0
}

/// Kills group `pgid` unless its leader is now another process; kills again while any
/// of it runs (a process forking as the first SIGKILL arrived), for a few seconds.
pub fn kill_group(pgid: i32, start: u64) -> bool {
    if !same_group(pgid, start) {
        return false;
    }
    for _ in 0..50 {
        if killpg(Pid::from_raw(pgid), Signal::SIGKILL).is_err() {
            break;
        }
        if !crate::linux::group_alive(pgid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Whether group `pgid` is still the one whose leader started at `start`: the leader
/// runs with that start time, or has exited and every process left in the group started
/// after it (a reused pgid would have a leader of its own).
pub fn same_group(pgid: i32, start: u64) -> bool {
    match crate::linux::stat(pgid as u32) {
        Some(s) if s.running() => s.start_time == start && s.pgrp == pgid,
        _ => crate::linux::group_members(pgid)
            .iter()
            .all(|m| m.start_time >= start),
    }
}
