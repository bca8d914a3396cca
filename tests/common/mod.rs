//! Helpers shared by the end-to-end tests: they drive the built `stagehand` binary the
//! way a scheduler does (files in, exit code and events out).
//!
//! Every wait goes through [`wait_until`] (or [`wait_exit`] for a child), never a loop of
//! its own; events are read as the protocol's types ([`events`]). A helper that starts a
//! service picks a free port and stops the service when dropped.
#![allow(dead_code)]

pub mod docker;
pub mod events;
pub mod faults;
pub mod files;
pub mod fuse;
pub mod slurm;
pub mod web;

pub use events::*;

use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

/// The agent's exit codes (their numbers are pinned by `exit_codes_are_as_documented`).
pub use stagehand::exit as code;

/// Whether a missing service must fail the test (CI) rather than skip it.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stagehand"))
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copies the example `name` (`examples/<name>`) to `to`: only the files the repository
/// tracks, so what a user's own runs of the example left in the checkout
/// (`data/runs/<run id>`, git-ignored) never reaches a test.
pub fn copy_example(name: &str, to: &Path) {
    let dir = format!("examples/{name}");
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z", "--", &dir])
        .current_dir(repo())
        .output()
        .expect("git runs (the tests copy the examples git tracks)");
    assert!(out.status.success(), "git ls-files {dir} failed: {:?}", out);
    let files: Vec<&[u8]> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .collect();
    assert!(!files.is_empty(), "git tracks no file under {dir}");
    for f in files {
        let rel = Path::new(std::str::from_utf8(f).unwrap());
        let dest = to.join(rel.strip_prefix(&dir).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(rel), &dest).unwrap();
    }
}

/// A scratch folder for one test, removed when dropped.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("stagehand-test-")
                .tempdir()
                .unwrap(),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Writes `text` to `rel` (creating folders) and returns the path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
    /// The run folder tests pass with --run-dir.
    pub fn run_dir(&self) -> PathBuf {
        self.path().join("run")
    }
    /// The events file tests pass with --events.
    pub fn events_file(&self) -> PathBuf {
        self.path().join("events.jsonl")
    }
    /// `stagehand run JOB` with --run-dir and --events in this scratch folder, and
    /// `--keep-run-dir`: most tests look at what was staged into the run folder after
    /// the run, which a successful run otherwise removes ([`Scratch::run_cmd_as_shipped`]
    /// leaves the flag out).
    pub fn run_cmd(&self, job: &Path) -> Command {
        let mut c = self.run_cmd_as_shipped(job);
        c.arg("--keep-run-dir");
        c
    }
    /// [`Scratch::run_cmd`] without `--keep-run-dir`: the run folder cleans up after a
    /// successful run, as it does for users.
    pub fn run_cmd_as_shipped(&self, job: &Path) -> Command {
        self.run_cmd_with_events(job, self.events_file())
    }
    /// `stagehand run JOB` with --run-dir in this scratch folder and `--events EVENTS`
    /// (a file, `-` for stdout, `/dev/full`).
    pub fn run_cmd_with_events(&self, job: &Path, events: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(bin());
        c.arg("run")
            .arg(job)
            .arg("--run-dir")
            .arg(self.run_dir())
            .arg("--events")
            .arg(events);
        c.in_scratch(self);
        c
    }
    /// The node cache the agents of this test share (`STAGEHAND_CACHE_DIR`).
    pub fn cache_dir(&self) -> PathBuf {
        self.path().join("cache")
    }
    /// Runs the job to completion.
    pub fn run(&self, job: &Path) -> Output {
        self.run_cmd(job).output().unwrap()
    }
    /// The events written so far.
    pub fn events(&self) -> Vec<Event> {
        read_events(&self.events_file())
    }
    /// Whether an event of `kind` (`started`) has been written yet.
    pub fn saw(&self, kind: &str) -> bool {
        kinds(&self.events()).iter().any(|k| k == kind)
    }
}

pub mod azurite;
pub mod postgres;
pub mod s3;
pub mod tls;
pub mod token;

/// How often a test looks again at what it waits for, unless it needs finer steps.
pub const POLL: Duration = Duration::from_millis(50);

/// Checks `cond` every `poll` until it holds or `timeout` has passed; whether it held.
/// Every wait in the tests goes through here, so none can spin or wait forever, and the
/// caller decides what a timeout means (a failure, or the answer to its question).
pub fn wait_until(timeout: Duration, poll: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(poll);
    }
}

/// Waits at most `limit` for `child` to exit and returns its status; past the limit it
/// kills the child and fails the test. A piped stderr is copied to the test's, so a
/// failure shows what the agent said.
/// Runs `cmd` to its end and returns its output. One still running after `limit` is
/// killed and fails the test: a guard against a hang, not a timing goal.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot start the agent");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("cannot wait for the agent"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("the agent did not exit within {limit:?}: it hung");
        }
    }
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let mut status = None;
    let exited = wait_until(limit, POLL, || {
        status = child.try_wait().expect("cannot poll the child");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the agent did not exit within {limit:?}");
    }
    if let Some(mut e) = child.stderr.take() {
        let mut buf = String::new();
        let _ = std::io::Read::read_to_string(&mut e, &mut buf);
        eprint!("{buf}");
    }
    status.expect("an exited child has a status")
}

/// Text of an Output's stdout and stderr.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `stagehand ARGS…` with no workspace from the environment, run to completion.
pub fn stagehand(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("STAGEHAND_WORKSPACE")
        .output()
        .unwrap()
}

/// `stagehand ARGS…` as the first node of a Slurm step over `nodes` nodes (`srun -N
/// <nodes> --ntasks-per-node=1` as the scheduler's variables say it), with no workspace
/// from the environment: to plan a multi-node job without a cluster.
pub fn stagehand_on_slurm_step(nodes: u32, args: &[&std::ffi::OsStr]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env_remove("STAGEHAND_WORKSPACE");
    for v in [
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_STEP",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(v);
    }
    c.env("SLURM_JOB_ID", "4242")
        .env("SLURM_STEP_NUM_NODES", nodes.to_string())
        .env("SLURM_NODEID", "0")
        .env("SLURM_STEP_NODELIST", format!("node[1-{nodes}]"))
        .env("SLURMD_NODENAME", "node1");
    c.output().unwrap()
}

/// `stagehand plan JOB --format json EXTRA…` → the parsed plan; panics unless exit 0.
/// `stagehand plan JOB --workspace WS`, as it ended: for the tests of what `plan`
/// refuses.
pub fn plan_with(job: &Path, workspace: &Path) -> Output {
    stagehand(&[
        "plan".as_ref(),
        job.as_os_str(),
        "--workspace".as_ref(),
        workspace.as_os_str(),
    ])
}

pub fn plan_json(job: &Path, extra: &[&str]) -> serde_json::Value {
    let mut c = Command::new(bin());
    c.arg("plan")
        .arg(job)
        .arg("--format")
        .arg("json")
        .args(extra)
        .env_remove("STAGEHAND_WORKSPACE");
    let out = c.output().unwrap();
    let (so, se) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "plan failed\nstdout: {so}\nstderr: {se}"
    );
    serde_json::from_str(&so).unwrap_or_else(|e| panic!("plan is not JSON: {e}\n{so}"))
}

/// Asserts that a run ended with `code`, showing its output when it did not, and
/// returns its stdout and stderr.
pub fn expect_code(o: &Output, code: i32) -> (String, String) {
    let (so, se) = text(o);
    assert_eq!(o.status.code(), Some(code), "stdout: {so}\nstderr: {se}");
    (so, se)
}

/// `relative path -> sha256` of every file under `root` (temporary and manifest files
/// of stagehand excluded).
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    walk(root)
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            (rel, hex(&sha2::Sha256::digest(std::fs::read(&p).unwrap())))
        })
        .collect()
}

/// Bytes as lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every file under `root`.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// Agents started by a test (directly, or through srun, sbatch, an installed binary)
/// keep to the test's own folders: no workspace from the environment, run folders in
/// `<scratch>/runs`, the node cache in `<scratch>/cache` (never the machine's own).
pub trait InScratch {
    /// Sets the agent's environment for `s`.
    fn in_scratch(&mut self, s: &Scratch) -> &mut Self;
}

impl InScratch for Command {
    fn in_scratch(&mut self, s: &Scratch) -> &mut Command {
        self.env_remove("STAGEHAND_WORKSPACE")
            .env("STAGEHAND_RUNS_DIR", s.path().join("runs"))
            .env("STAGEHAND_CACHE_DIR", s.cache_dir())
    }
}

/// Starts a test server (`cmd`, a Python script) that prints the port it listens on as
/// its first line: the child and that port. `what` names it in the panic if it does
/// not start.
pub fn spawn_server(cmd: &mut Command, what: &str) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what} did not start: {line:?}"));
    (child, port)
}
