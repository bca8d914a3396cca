//! Nothing of a job outlives its agent: after `kill -9` of the agent
//! its guardian kills the job's whole process group, and `stagehand gc` kills the groups
//! that an older agent left, never a group whose pid was reused.

use crate::common::*;
use stagehand::linux;
use stagehand::owner::{JobGroup, Owner, JOB_FILE, RUN_DIR_FILE};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The running processes of group `pgid`.
fn members(pgid: i32) -> usize {
    linux::group_members(pgid).len()
}

#[test]
fn kill_9_of_the_agent_leaves_no_process_of_the_job() {
    let s = Scratch::new();
    s.write(
        "workspace.yaml",
        r#"datastores:
  local: {type: local, root: ./data}
"#,
    );
    std::fs::create_dir_all(s.path().join("data")).unwrap();
    let pidfile = s.path().join("job.pid");
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: spawner
command:
  - sh
  - -c
  - |
    sleep 300 &
    sh -c 'sleep 300 & wait' &
    echo $$ > {p}.tmp && mv {p}.tmp {p}
    wait
"#,
            p = pidfile.display()
        ),
    );
    let mut agent = s
        .run_cmd(&job)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pgid = 0;
    let up = wait_until(Duration::from_secs(20), POLL, || {
        pgid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        // The job's shell, its sleep, the inner shell and its sleep.
        pgid > 0 && members(pgid) >= 4
    });
    assert!(up, "the job never started its grandchildren");
    assert!(
        s.run_dir().join(JOB_FILE).exists(),
        "the job's group is not recorded"
    );
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    let gone = wait_until(Duration::from_secs(5), POLL, || members(pgid) == 0);
    assert!(
        gone,
        "{} process(es) of the job outlived its agent",
        members(pgid)
    );
}

/// Starts a process group like a job's (a shell and two grandchildren); its pgid.
fn job_like_group() -> std::process::Child {
    let child = Command::new("sh")
        .args(["-c", "sleep 300 & sleep 300 & wait"])
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    assert!(wait_until(Duration::from_secs(10), POLL, || members(pgid) >= 3));
    child
}

/// A run folder under `runs` left by a dead agent, naming `group` as its job.
fn left_behind(runs: &std::path::Path, name: &str, group: &JobGroup) {
    let dir = runs.join(name);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let me = Owner::current();
    let dead = Owner {
        start: me.start + 1,
        ..me
    };
    std::fs::write(dir.join(RUN_DIR_FILE), serde_json::to_vec(&dead).unwrap()).unwrap();
    std::fs::write(dir.join(JOB_FILE), serde_json::to_vec(group).unwrap()).unwrap();
}

#[test]
fn gc_kills_a_dead_agents_job_but_never_a_reused_pid() {
    let s = Scratch::new();
    let runs = s.path().join("runs");
    let mut orphan = job_like_group();
    let mut stranger = job_like_group();
    let record = |c: &std::process::Child, skew: u64| JobGroup {
        pgid: c.id() as i32,
        start: linux::stat(c.id()).unwrap().start_time + skew,
        boot_id: linux::boot_id(),
    };
    left_behind(&runs, "orphaned", &record(&orphan, 0));
    // Same pgid, another start time: the pid was reused by a process of no job's.
    left_behind(&runs, "reused", &record(&stranger, 1));
    let out = Command::new(bin())
        .args(["gc", "--runs-dir"])
        .arg(&runs)
        .output()
        .unwrap();
    let (so, _) = expect_code(&out, 0);
    assert!(so.contains("killed"), "{so}");
    let (op, sp) = (orphan.id() as i32, stranger.id() as i32);
    assert!(
        wait_until(Duration::from_secs(5), POLL, || members(op) == 0),
        "gc left the dead agent's job running"
    );
    assert!(members(sp) >= 3, "gc killed a group whose pid was reused");
    assert!(!runs.join("orphaned").join(JOB_FILE).exists());
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(sp),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = stranger.wait();
    let _ = orphan.wait();
}
