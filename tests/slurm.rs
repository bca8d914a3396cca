//! stagehand under a real Slurm cluster (three `slurmd` on this machine, started by
//! `common::slurm`): the cluster itself, scheduler identity, sharded inputs over an
//! array, multi-node distributed jobs.

use crate::common::azurite::{self, Azurite};
use crate::common::slurm::{Slurm, NODES};
use crate::common::*;
use stagehand_protocol::events::SchedulerIds;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A workspace beside the job whose default datastore is the local folder `store`.
pub(crate) fn local_store(s: &Scratch) {
    s.write(
        "workspace.yaml",
        r#"datastores:
  local: {type: local, root: store}
default_datastore: local
"#,
    );
    std::fs::create_dir_all(s.path().join("store")).unwrap();
}

/// A job on the local datastore that writes a checkpoint to its `upload_on: always`
/// output, then sleeps `secs` as a process named `marker` (for finding leftovers).
fn preempted_job(s: &Scratch, marker: &str, secs: u32) -> PathBuf {
    local_store(s);
    s.write(
        "job.yaml",
        &format!(
            r#"name: preempted
command: [bash, -c, 'echo partial > "$1/ckpt.txt"; exec -a {marker} sleep {secs}', bash, "${{{{outputs.out}}}}"]
kill_grace: 2s
outputs:
  out: {{path: ckpt, mode: upload, upload_on: always}}
"#
        ),
    )
}

/// The cluster the other tests rely on: `srun -N 3` runs one task on each node, with
/// node ids 0–2 and the whole node list.
#[test]
fn srun_runs_one_task_on_each_of_three_nodes() {
    let Some(slurm) = Slurm::start() else { return };
    let o = slurm.run(
        "srun",
        &[
            "-N",
            "3",
            "bash",
            "-c",
            "echo $SLURM_NODEID $SLURMD_NODENAME $SLURM_JOB_NODELIST $(hostname)",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        r#"srun failed: {}
{}"#,
        String::from_utf8_lossy(&o.stderr),
        slurm.logs()
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let host = String::from_utf8_lossy(
        &std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    let want: Vec<String> = NODES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i} {n} n[1-3] {host}"))
        .collect();
    assert_eq!(lines, want);
}

/// The `accepted` event's scheduler ids.
fn scheduler_ids(events: &[Event]) -> SchedulerIds {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Accepted { scheduler, .. } => scheduler.clone(),
            _ => None,
        })
        .expect("an accepted event with the scheduler's ids")
}

/// A job over a local datastore (`store/` beside the job): input `data/` downloaded,
/// output uploaded to `results/{task_index}`.
fn identity_job(s: &Scratch) -> PathBuf {
    local_store(s);
    s.write("store/data/a.txt", "input a\n");
    s.write(
        "job.yaml",
        r#"name: who
command: [sh, -c, 'echo "task {task_index} of {task_count} run $STAGEHAND_RUN_ID" > "$1/who.txt"', sh, "${{outputs.out}}"]
inputs:
  data: {path: data, mode: download}
outputs:
  out: {path: "results/{task_index}", mode: upload, overwrite: true}
"#,
    )
}

pub(crate) fn sbatch_job_id(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    out.trim().split(';').next().unwrap_or_default().to_string()
}

/// Under Slurm the run id is `slurm-<job>_<task>`, `{task_index}`/`{task_count}` are
/// the array's, the `accepted` event carries the ids; a second attempt of the same task
/// (a requeue) finds its run folder and downloads nothing again.
#[test]
fn an_array_task_is_named_by_slurm_and_resumes_in_its_folder() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    let job = identity_job(&s);
    // The task's second attempt below runs after a first that succeeded; without
    // --keep-run-dir that success would have emptied the folder it resumes in.
    let script = format!(
        "{} run {} --keep-run-dir --events {}/events-$SLURM_ARRAY_TASK_ID.jsonl",
        bin().display(),
        job.display(),
        s.path().display()
    );
    let o = slurm
        .cmd("sbatch")
        .args(["--parsable", "--wait", "--array=0-2", "-o"])
        .arg(s.path().join("slurm-%a.out"))
        .arg("--wrap")
        .arg(&script)
        .in_scratch(&s)
        .current_dir(s.path())
        .output()
        .unwrap();
    let array = sbatch_job_id(&o);
    assert!(
        o.status.success(),
        r#"sbatch: {}
{:?}
{}"#,
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(s.path().join("slurm-0.out")),
        slurm.logs()
    );
    for t in 0..3u32 {
        let run_id = format!("slurm-{array}_{t}");
        assert_eq!(
            std::fs::read_to_string(s.path().join(format!("store/results/{t}/who.txt"))).unwrap(),
            format!("task {t} of 3 run {run_id}\n")
        );
        assert!(s.path().join("runs").join(&run_id).join("logs").is_dir());
        let events = read_events(&s.path().join(format!("events-{t}.jsonl")));
        let ids = scheduler_ids(&events);
        assert_eq!(ids.kind, "slurm");
        assert_eq!(ids.job_id.as_deref(), Some(array.as_str()));
        assert_eq!(
            (ids.array_task_id, ids.task_index, ids.task_count),
            (Some(t), t, 3)
        );
        assert!(ids.node.as_deref().is_some_and(|n| NODES.contains(&n)));
        assert!(events.iter().all(|e| e.run_id == run_id));
    }
    // Task 1 again, as a requeue starts it: the same ids, so the same folder, where its
    // input is already whole.
    let again = s.path().join("again.jsonl");
    let o = std::process::Command::new(bin())
        .arg("run")
        .arg(&job)
        .arg("--events")
        .arg(&again)
        .env("SLURM_JOB_ID", "9999")
        .env("SLURM_ARRAY_JOB_ID", &array)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .in_scratch(&s)
        .env_remove("SLURM_STEP_NUM_NODES")
        .output()
        .unwrap();
    expect_code(&o, 0);
    let events = read_events(&again);
    assert!(events
        .iter()
        .all(|e| e.run_id == format!("slurm-{array}_1")));
    let staged = stage_finished(&events, "data");
    assert_eq!((staged.files, staged.skipped_files), (0, 1));
}

/// The issue's acceptance test for sharded inputs: an sbatch array of 20 tasks over a
/// 200-file input on Azurite with `shard: by_file`. Every input file is processed by
/// exactly one task, and each task's output lands under its own `{task_index}` path,
/// byte-exact.
#[test]
fn an_array_of_20_tasks_processes_each_of_200_files_exactly_once() {
    let Some(slurm) = Slurm::start() else { return };
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    let src = s.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..200 {
        let body = format!("file {i}\n").repeat(1 + i % 7);
        std::fs::write(src.join(format!("f{i:03}.txt")), body).unwrap();
    }
    az.mkcontainer(&["data"]);
    az.upload_tree(&src, "data", "in");
    std::fs::remove_dir_all(&src).unwrap();
    az.workspace(&s, "workspace.yaml", "blob", "data", azurite::KEY_FROM_ENV);
    let job = s.write(
        "job.yaml",
        r#"name: shard
command: [sh, -c, 'cp -R "$1"/. "$2"/', sh, "${{inputs.data}}", "${{outputs.out}}"]
inputs:
  data: {path: in, mode: download, shard: by_file}
outputs:
  out: {path: "results/{task_index}", mode: upload}
"#,
    );
    let o = slurm
        .cmd("sbatch")
        .args(["--parsable", "--wait", "--array=0-19", "-o"])
        .arg(s.path().join("slurm-%a.out"))
        .arg("--wrap")
        .arg(format!("{} run {}", bin().display(), job.display()))
        .in_scratch(&s)
        .env("TEST_AZ_KEY", azurite::KEY)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        r#"sbatch: {}
{:?}"#,
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(s.path().join("slurm-0.out")),
    );
    let inputs = az.sha256s("data", "in/");
    assert_eq!(inputs.len(), 200);
    let outputs = az.sha256s("data", "results/");
    let mut seen = std::collections::BTreeMap::new();
    let mut per_task = [0usize; 20];
    for (name, sha) in &outputs {
        let rest = name.strip_prefix("results/").unwrap();
        let (task, file) = rest.split_once('/').unwrap();
        let task: usize = task.parse().unwrap();
        per_task[task] += 1;
        assert_eq!(
            Some(sha),
            inputs.get(&format!("in/{file}")),
            "{name} is not byte-exact"
        );
        assert!(
            seen.insert(file.to_string(), task).is_none(),
            "{file} was processed twice"
        );
    }
    assert_eq!(seen.len(), 200, "every file processed once");
    assert_eq!(per_task, [10; 20], "each task its own even slice");
}

/// A distributed job over a local datastore: input `data/` (three files) downloaded by
/// each node, every rank writes `rank<R>.txt` to output `out` (all nodes into
/// `results/`), and rendezvous.py checks the ranks' variables.
fn distributed_job(s: &Scratch, extra_env: &str) -> PathBuf {
    local_store(s);
    for f in ["a", "b", "c"] {
        s.write(&format!("store/data/{f}.txt"), &format!("{f}\n"));
    }
    std::fs::create_dir_all(s.path().join("verdict")).unwrap();
    s.write(
        "job.yaml",
        &format!(
            r#"name: ddp
command: [python3, "{script}", "{verdict}", "${{{{outputs.out}}}}"]
environment: {{{extra_env}}}
distribution: {{type: pytorch, process_count_per_instance: 2, instance_count: 3}}
inputs:
  data: {{path: data, mode: download}}
outputs:
  out: {{path: results, mode: upload}}
"#,
            script = repo().join("tests/fixtures/rendezvous.py").display(),
            verdict = s.path().join("verdict").display(),
        ),
    )
}

/// `srun -N 3 stagehand run job.yaml`, each node's events in `events-<node id>.jsonl`.
pub(crate) fn srun_agents(slurm: &Slurm, s: &Scratch, job: &Path) -> Output {
    slurm
        .cmd("srun")
        .args([
            "-N",
            "3",
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
            "bash",
            "-c",
        ])
        .arg(format!(
            "exec {} run {} --events {}/events-$SLURM_NODEID.jsonl",
            bin().display(),
            job.display(),
            s.path().display()
        ))
        .in_scratch(s)
        .current_dir(s.path())
        .output()
        .unwrap()
}

/// The processes still alive whose command line mentions `needle`.
pub(crate) fn survivors(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|st| {
            st.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
        if cmd.contains(needle) && !zombie {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// The issue's multi-node test: `srun -N 3` with pytorch distribution and two
/// processes per node. The six processes rendezvous over TCP at MASTER_ADDR:MASTER_PORT
/// and find their ranks distinct and consistent; each node downloaded the data once;
/// every node's outputs land in the one destination.
#[test]
fn three_nodes_of_two_processes_rendezvous_with_consistent_ranks() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    let job = distributed_job(&s, "");
    let o = srun_agents(&slurm, &s, &job);
    let verdict = std::fs::read_to_string(s.path().join("verdict/verdict.json"));
    assert!(
        o.status.success(),
        r#"srun: {}
verdict: {verdict:?}"#,
        String::from_utf8_lossy(&o.stderr)
    );
    let verdict: serde_json::Value = serde_json::from_str(&verdict.unwrap()).unwrap();
    assert_eq!(verdict["ok"], true, "{verdict:#}");
    let seen = verdict["seen"].as_array().unwrap();
    assert!(
        seen.iter().all(|r| r["MASTER_ADDR"] == "127.0.0.1"),
        "NodeAddr, not n1"
    );
    let mut nodes = Vec::new();
    for n in 0..3u32 {
        let events = read_events(&s.path().join(format!("events-{n}.jsonl")));
        assert_eq!(finished(&events).exit_code, 0);
        let ids = scheduler_ids(&events);
        nodes.push((ids.node_rank, ids.node_count));
        // Staged once for the node, not once per process.
        let stages: Vec<_> = events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::StageFinished { name, .. } if name == "data"))
            .collect();
        assert_eq!(stages.len(), 1);
        assert_eq!(stage_finished(&events, "data").files, 3);
    }
    assert_eq!(nodes, [(0, 3), (1, 3), (2, 3)]);
    let mut written: Vec<String> = std::fs::read_dir(s.path().join("store/results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "rank0.txt",
            "rank1.txt",
            "rank2.txt",
            "rank3.txt",
            "rank4.txt",
            "rank5.txt"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(s.path().join("store/results/rank3.txt")).unwrap(),
        "rank 3 on node 1\n"
    );
}

/// One process (rank 3, on node 1) exits 3: its node's agent stops its other process
/// and reports 3; srun stops the other nodes (`--kill-on-bad-exit=1`) and exits
/// non-zero; nothing of the job is left on any node.
#[test]
fn one_rank_exiting_3_stops_every_node_and_is_reported() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    let marker = s.path().join("verdict").display().to_string();
    let job = distributed_job(&s, "FAIL_RANK: '3', FAIL_CODE: '3'");
    let o = srun_agents(&slurm, &s, &job);
    assert!(!o.status.success(), "srun exits non-zero");
    let failing = read_events(&s.path().join("events-1.jsonl"));
    let f = finished(&failing);
    assert_eq!(f.exit_code, 3, "the failing node reports the first failure");
    assert_eq!(exited(&failing).exit_code, Some(3));
    assert!(
        wait_until(Duration::from_secs(20), POLL, || survivors(&marker)
            .is_empty()),
        "left running: {:?}",
        survivors(&marker)
    );
    assert!(!slurm.busy() || wait_until(Duration::from_secs(20), POLL, || !slurm.busy()));
}

/// The same job as an Azure ML v2 command job (`distribution` and
/// `resources.instance_count: 3`) plans and runs the same way under `srun -N 3`.
#[test]
fn an_azure_ml_v2_job_with_instance_count_3_runs_on_three_nodes() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    distributed_job(&s, "");
    let job = s.write(
        "aml-job.yml",
        &format!(
            r#"$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
command: python3 {script} {verdict} ${{{{outputs.out}}}}
inputs:
  data: {{type: uri_folder, path: "azureml://datastores/local/paths/data", mode: download}}
outputs:
  out: {{type: uri_folder, path: "azureml://datastores/local/paths/results", mode: upload}}
distribution: {{type: pytorch, process_count_per_instance: 2}}
resources: {{instance_count: 3, instance_type: Standard_NC6}}
compute: azureml:gpu-cluster
"#,
            script = repo().join("tests/fixtures/rendezvous.py").display(),
            verdict = s.path().join("verdict").display(),
        ),
    );
    let o = srun_agents(&slurm, &s, &job);
    let verdict = std::fs::read_to_string(s.path().join("verdict/verdict.json"));
    assert!(
        o.status.success(),
        r#"srun: {}
verdict: {verdict:?}"#,
        String::from_utf8_lossy(&o.stderr)
    );
    let verdict: serde_json::Value = serde_json::from_str(&verdict.unwrap()).unwrap();
    assert_eq!(verdict["ok"], true, "{verdict:#}");
    assert_eq!(
        std::fs::read_dir(s.path().join("store/results"))
            .unwrap()
            .count(),
        6
    );
    // A step of one node does not match instance_count: refused before staging (with
    // no scheduler at all, the three nodes would run on one machine instead).
    let o = slurm
        .cmd("srun")
        .args(["-N", "1", "--ntasks-per-node=1"])
        .arg(bin())
        .arg("run")
        .arg(&job)
        .arg("--events")
        .arg(s.path().join("alone.jsonl"))
        .in_scratch(&s)
        .current_dir(s.path())
        .output()
        .unwrap();
    let (_, err) = expect_code(&o, code::INVALID);
    assert!(
        err.contains("needs 3 node(s) but this Slurm step has 1"),
        "{err}"
    );
    let alone = read_events(&s.path().join("alone.jsonl"));
    assert!(
        !kinds(&alone).iter().any(|k| k == "stage_started"),
        "nothing staged"
    );
    assert_eq!(finished(&alone).exit_code, code::INVALID);
}

/// `scancel` mid-job: Slurm sends SIGTERM to the batch step's processes (the agent and
/// the job), the agent uploads the `upload_on: always` output within KillWait, records
/// the run as cancelled (130), and nothing of the job is left running.
#[test]
fn scancel_mid_job_uploads_the_checkpoint_and_reports_cancelled() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    let marker = format!("sleep-{}", std::process::id());
    let job = preempted_job(&s, &marker, 120);
    let events = s.path().join("events.jsonl");
    let o = slurm
        .cmd("sbatch")
        .args(["--parsable", "-o"])
        .arg(s.path().join("slurm.out"))
        .arg("--wrap")
        .arg(format!(
            "exec {} run {} --events {}",
            bin().display(),
            job.display(),
            events.display()
        ))
        .in_scratch(&s)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = sbatch_job_id(&o);
    assert!(
        wait_until(Duration::from_secs(30), POLL, || kinds(&read_events(
            &events
        ))
        .iter()
        .any(|k| k == "started")),
        "the job did not start: {:?}",
        std::fs::read_to_string(s.path().join("slurm.out"))
    );
    let o = slurm.run("scancel", &[&id]);
    assert!(o.status.success());
    assert!(
        wait_until(Duration::from_secs(30), POLL, || !slurm.busy()),
        "the job did not end"
    );
    let all = read_events(&events);
    let f = finished(&all);
    assert_eq!(
        (f.status, f.exit_code),
        (Status::Cancelled, code::CANCELLED)
    );
    assert_eq!(
        std::fs::read_to_string(s.path().join("store/ckpt/ckpt.txt")).unwrap(),
        "partial\n"
    );
    assert!(survivors(&marker).is_empty(), "{:?}", survivors(&marker));
}

/// `#SBATCH --signal=B:TERM@<secs>` before the time limit, through the shipped
/// `deploy/slurm/single.sbatch`: Slurm signals the batch shell (stagehand, exec'd),
/// which stops the job, uploads the `upload_on: always` output within the grace and
/// reports cancelled (130); the job ends on that signal, not on its time limit, and
/// nothing of it is left running.
///
/// Slurm's time limits are whole minutes and slurmctld looks at them periodically (no
/// slurm.conf setting sets that period; sbatch's manual warns the signal may come up to
/// 60 s early): with `--time=1` and `@55` the signal is due 5 s after the start and
/// came within ~30 s here, before the limit at 60 s.
#[test]
fn signal_before_the_time_limit_uploads_the_checkpoint_and_reports_cancelled() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    let marker = format!("sleep-signal-{}", std::process::id());
    let job = preempted_job(&s, &marker, 300);
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = slurm
        .cmd("sbatch")
        .args(["--parsable", "--time=1", "--signal=B:TERM@55"])
        .arg(repo().join("deploy/slurm/single.sbatch"))
        .arg(&job)
        .env("PATH", path)
        .in_scratch(&s)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = sbatch_job_id(&o);
    let events = s.path().join(format!("stagehand-{id}.events.jsonl"));
    assert!(
        wait_until(Duration::from_secs(90), POLL, || !slurm.busy()),
        "the job did not end: {:?}",
        std::fs::read_to_string(s.path().join(format!("stagehand-{id}.out")))
    );
    let all = read_events(&events);
    let kinds = kinds(&all);
    assert!(kinds.iter().any(|k| k == "started"), "{kinds:?}");
    let f = finished(&all);
    assert_eq!(
        (f.status, f.exit_code),
        (Status::Cancelled, code::CANCELLED),
        "{f:?}"
    );
    assert_eq!(
        std::fs::read_to_string(s.path().join("store/ckpt/ckpt.txt")).unwrap(),
        "partial\n"
    );
    // Ended by the early signal, within its grace: not killed at the time limit.
    let shown = slurm.run("scontrol", &["show", "job", &id]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("JobState=FAILED"), "{shown}");
    assert!(shown.contains("ExitCode=130:0"), "{shown}");
    assert!(survivors(&marker).is_empty(), "{:?}", survivors(&marker));
}

/// `scontrol requeue`: the job starts again with the same job id, so the same run id
/// and folder, and downloads nothing it already had.
#[test]
fn a_requeued_job_resumes_and_moves_no_input_bytes_again() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    local_store(&s);
    for f in ["a", "b", "c"] {
        s.write(&format!("store/data/{f}.bin"), &f.repeat(10_000));
    }
    // The first attempt waits to be requeued; the second ends at once.
    let job = s.write(
        "job.yaml",
        r#"name: requeued
command: [bash, -c, 'if [ -e "$STAGEHAND_RUN_DIR/attempted" ]; then exit 0; fi; touch "$STAGEHAND_RUN_DIR/attempted"; sleep 120']
kill_grace: 2s
inputs:
  data: {path: data, mode: download}
"#,
    );
    let o = slurm
        .cmd("sbatch")
        .args(["--parsable", "--requeue", "-o"])
        .arg(s.path().join("slurm.out"))
        .arg("--wrap")
        .arg(format!(
            "exec {} run {} --events {}/events-$SLURM_RESTART_COUNT.jsonl",
            bin().display(),
            job.display(),
            s.path().display()
        ))
        .in_scratch(&s)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = sbatch_job_id(&o);
    // Before a requeue SLURM_RESTART_COUNT is unset: the first attempt's events are
    // events-.jsonl.
    let first = s.path().join("events-.jsonl");
    assert!(wait_until(Duration::from_secs(30), POLL, || kinds(
        &read_events(&first)
    )
    .iter()
    .any(|k| k == "started")));
    let o = slurm.run("scontrol", &["requeue", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Slurm holds a requeued job back for a while (its BeginTime); a test need not
    // wait for that. Once it is pending again, let it begin now.
    let pending = || {
        String::from_utf8_lossy(&slurm.run("squeue", &["-h", "-j", &id, "-o", "%T"]).stdout)
            .contains("PENDING")
    };
    if wait_until(Duration::from_secs(30), Duration::from_millis(250), pending) {
        let jobid = format!("JobId={id}");
        let _ = slurm.run("scontrol", &["update", &jobid, "StartTime=now"]);
    }
    let second = s.path().join("events-1.jsonl");
    assert!(
        wait_until(Duration::from_secs(150), Duration::from_millis(250), || {
            kinds(&read_events(&second)).iter().any(|k| k == "finished")
        }),
        "the requeued job did not run again: {}",
        String::from_utf8_lossy(&slurm.run("squeue", &["-h", "-o", "%i %T %r"]).stdout)
    );
    let again = read_events(&second);
    assert_eq!(finished(&again).exit_code, 0);
    assert_eq!(finished(&again).bytes_downloaded, 0);
    let staged = stage_finished(&again, "data");
    assert_eq!((staged.files, staged.skipped_files), (0, 3));
    assert!(again.iter().all(|e| e.run_id == format!("slurm-{id}")));
    assert_eq!(stage_finished(&read_events(&first), "data").files, 3);
}

/// Two nodes of one job (`srun -N 2`) upload into the same destination, with
/// `overwrite: true`: each node's own file lands; `same.txt`, which both wrote with
/// different bytes, holds exactly one node's bytes, whole, and the other node reports
/// it by name and fails. Nodes of one job never replace each other's files.
#[test]
fn two_nodes_writing_the_same_file_keep_one_whole_copy_and_report_the_other() {
    let Some(slurm) = Slurm::start() else { return };
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    az.mkcontainer(&["shared"]);
    az.workspace(
        &s,
        "workspace.yaml",
        "blob",
        "shared",
        azurite::KEY_FROM_ENV,
    );
    let job = s.write(
        "job.yaml",
        r#"name: both
command: [bash, -c, 'head -c 3000000 /dev/zero | tr "\0" "$SLURM_NODEID" > "$1/same.txt"; echo "node $SLURM_NODEID" > "$1/node-$SLURM_NODEID.txt"', bash, "${{outputs.out}}"]
outputs:
  out: {path: results, mode: upload, overwrite: true}
"#,
    );
    let o = slurm
        .cmd("srun")
        .args(["-N", "2", "--ntasks-per-node=1", "bash", "-c"])
        .arg(format!(
            "exec {} run {} --events {}/events-$SLURM_NODEID.jsonl",
            bin().display(),
            job.display(),
            s.path().display()
        ))
        .in_scratch(&s)
        .env("TEST_AZ_KEY", azurite::KEY)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(!o.status.success(), "one node must fail");
    for n in 0..2 {
        assert_eq!(
            az.get("shared", &format!("results/node-{n}.txt")),
            format!("node {n}\n")
        );
    }
    let same = az.get("shared", "results/same.txt");
    assert_eq!(same.len(), 3_000_000, "whole");
    let winner = same.chars().next().unwrap();
    assert!(same.chars().all(|c| c == winner), "one node's bytes only");
    for n in 0..2u32 {
        let f = finished(&read_events(&s.path().join(format!("events-{n}.jsonl"))));
        if char::from_digit(n, 10) == Some(winner) {
            assert_eq!(f.exit_code, 0, "{:?}", f.error);
        } else {
            assert_ne!(f.exit_code, 0);
            let error = f.error.unwrap_or_default();
            assert!(
                error.contains("results/same.txt") && error.contains("another node"),
                "{error}"
            );
        }
    }
}

/// Issue 30: an S3 input with `shard: by_file` under an array of 2 tasks, each an
/// `srun` over the 3 nodes: the 6 (task, node) pairs each download their own files
/// from moto, and together every one of the 40 objects exactly once.
#[test]
fn an_s3_input_sharded_over_2_array_tasks_of_3_nodes_reads_each_object_once() {
    use crate::common::s3::{Moto, SECRET};
    let Some(slurm) = Slurm::start() else { return };
    let Some(m) = Moto::start() else { return };
    let s = Scratch::new();
    let src = s.path().join("src");
    for i in 0..40 {
        s.write(&format!("src/f{i:02}.txt"), &format!("object {i}\n"));
    }
    m.mkbucket(&["data"]);
    m.upload_tree(&src, "data", "in");
    s.write("workspace.yaml", &m.workspace_yaml("s3", "data"));
    let seen = s.path().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: s3shard
command: [sh, -c, 'cd "$1" && find . -type f | sort > "$2/$SLURM_ARRAY_TASK_ID-$SLURM_NODEID.txt"', sh, "${{{{inputs.data}}}}", "{}"]
inputs:
  data: {{path: in, mode: download, shard: by_file}}
"#,
            seen.display()
        ),
    );
    let o = slurm
        .cmd("sbatch")
        .args(["--parsable", "--wait", "--array=0-1", "-N", "3", "-o"])
        .arg(s.path().join("slurm-%a.out"))
        .arg("--wrap")
        .arg(format!(
            "srun -N 3 --ntasks-per-node=1 {} run {}",
            bin().display(),
            job.display()
        ))
        .in_scratch(&s)
        .env("TEST_S3_SECRET", SECRET)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        r#"sbatch: {}
{:?}"#,
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(s.path().join("slurm-0.out")),
    );
    let mut owner = std::collections::BTreeMap::new();
    for task in 0..2 {
        for node in 0..3 {
            let list = std::fs::read_to_string(seen.join(format!("{task}-{node}.txt")))
                .unwrap_or_else(|e| panic!("task {task} node {node} left no list: {e}"));
            let files: Vec<&str> = list.lines().collect();
            assert!(
                (6..=7).contains(&files.len()),
                "task {task} node {node} got {files:?}"
            );
            for f in files {
                let name = f.rsplit('/').next().unwrap();
                assert!(src.join(name).is_file(), "{f} is not one of the objects");
                assert!(
                    owner.insert(name.to_string(), (task, node)).is_none(),
                    "{f} was downloaded twice"
                );
            }
        }
    }
    assert_eq!(owner.len(), 40, "every object read once: {owner:?}");
}
