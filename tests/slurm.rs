//! stagehand under a real Slurm cluster (three `slurmd` on this machine, started by
//! `common::slurm`): the cluster itself, scheduler identity, sharded inputs over an
//! array, multi-node distributed jobs.

use crate::common::azurite::{self, Azurite};
use crate::common::slurm::{Slurm, NODES};
use crate::common::*;
use stagehand_protocol::events::SchedulerIds;
use std::path::PathBuf;
use std::process::Output;

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
        "srun failed: {}\n{}",
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
    s.write(
        "workspace.yaml",
        "datastores:\n  local: {type: local, root: store}\ndefault_datastore: local\n",
    );
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

fn sbatch_job_id(o: &Output) -> String {
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
    let script = format!(
        "{} run {} --events {}/events-$SLURM_ARRAY_TASK_ID.jsonl",
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
        .env("STAGEHAND_RUNS_DIR", s.path().join("runs"))
        .env_remove("STAGEHAND_WORKSPACE")
        .current_dir(s.path())
        .output()
        .unwrap();
    let array = sbatch_job_id(&o);
    assert!(
        o.status.success(),
        "sbatch: {}\n{:?}\n{}",
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
        .env_remove("STAGEHAND_WORKSPACE")
        .env("SLURM_JOB_ID", "9999")
        .env("SLURM_ARRAY_JOB_ID", &array)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .env("STAGEHAND_RUNS_DIR", s.path().join("runs"))
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
        .env("STAGEHAND_RUNS_DIR", s.path().join("runs"))
        .env("TEST_AZ_KEY", azurite::KEY)
        .env_remove("STAGEHAND_WORKSPACE")
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "sbatch: {}\n{:?}",
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
