//! Distributed jobs in their container (one container per rank): all nodes of a job on
//! one machine when no scheduler started it, and three nodes of the test Slurm cluster
//! whose six ranks meet over TCP, fail together and are cancelled cleanly. The image
//! (busybox running the host's Python through a read-only bind of `/usr`) is built here.

use crate::common::docker::{self, IMAGE_PYTHON};
use crate::common::slurm::Slurm;
use crate::common::*;
use crate::slurm::{local_store, sbatch_job_id, srun_agents, survivors};
use stagehand_protocol::events::{EventKind, Status};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A job name no other test run uses: its containers are found by it (the job label),
/// its processes by the fixtures' folder in the container, which carries it.
fn unique(tag: &str) -> String {
    format!("ddpc-{tag}-{}", std::process::id())
}

/// Input `data/` (three files) on the local datastore, and a job of 3 nodes × 2 ranks
/// of `rendezvous.py` in the Python image: the ranks meet over TCP at MASTER_ADDR, each
/// writes `rank<R>.txt` to output `out` (uploaded to `results/`), and rank 0 writes its
/// verdict there too. `env` is the job's `environment`.
fn container_job(s: &Scratch, name: &str, env: &str, upload_on: &str) -> PathBuf {
    local_store(s);
    for f in ["a", "b", "c"] {
        s.write(&format!("store/data/{f}.txt"), &format!("{f}\n"));
    }
    s.write(
        "job.yaml",
        &format!(
            r#"name: {name}
command: [/usr/bin/python3, /fixtures-{name}/rendezvous.py, "${{{{outputs.out}}}}", "${{{{outputs.out}}}}"]
environment: {{{env}}}
kill_grace: 1s
container:
  image: {IMAGE_PYTHON}
  pull: never
  env: [SLURMD_NODENAME]
  volumes: [{{host: /usr, container: /usr}}, {{host: {fixtures}, container: /fixtures-{name}}}]
distribution: {{type: pytorch, process_count_per_instance: 2, instance_count: 3}}
inputs:
  data: {{path: data, mode: download}}
outputs:
  out: {{path: results, mode: upload, upload_on: {upload_on}}}
"#,
            fixtures = repo().join("tests/fixtures").display(),
        ),
    )
}

/// Rank 0's verdict on what every rank told it over TCP.
fn verdict(s: &Scratch) -> serde_json::Value {
    let text = std::fs::read_to_string(s.path().join("store/results/verdict.json"))
        .expect("rank 0 wrote no verdict");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ok"], true, "{v:#}");
    v
}

/// The nodes the ranks said they ran on, sorted and deduplicated.
fn nodes_seen(v: &serde_json::Value) -> Vec<String> {
    let mut nodes: Vec<String> = v["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap_or_default().to_string())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// The names of the files uploaded under `store/<folder>`, sorted.
fn uploaded(s: &Scratch, folder: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.path().join("store").join(folder))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

const RANK_FILES: [&str; 6] = [
    "rank0.txt",
    "rank1.txt",
    "rank2.txt",
    "rank3.txt",
    "rank4.txt",
    "rank5.txt",
];

/// Started with no scheduler, a job of `instance_count: 3` runs all three nodes' ranks
/// here, in containers: six ranks meet at 127.0.0.1, the input is staged once, every
/// rank's output is uploaded once and every rank has its logs; no container is left.
/// A SIGKILLed agent's rank containers are found by `gc`; past the timeout every rank
/// is stopped and removed. The same job as host processes, and as an Azure ML v2 job
/// (`environment`, `distribution`, `resources.instance_count`), plan and run the same
/// way.
#[test]
fn a_three_node_job_runs_its_six_ranks_in_containers_on_this_machine() {
    if !docker::engine() {
        return;
    }
    docker::python_image();
    let s = Scratch::new();
    let name = unique("local");
    let job = container_job(&s, &name, "", "success");
    let (_, err) = expect_code(&s.run(&job), 0);
    assert!(err.contains("all 3 nodes on this machine"), "{err}");
    let v = verdict(&s);
    assert_eq!(
        nodes_seen(&v),
        ["simulated-0", "simulated-1", "simulated-2"]
    );
    assert!(v["seen"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["MASTER_ADDR"] == "127.0.0.1"));
    let mut want: Vec<&str> = RANK_FILES.to_vec();
    want.push("verdict.json");
    assert_eq!(uploaded(&s, "results"), want);
    let events = s.events();
    let stages = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::StageFinished { name, .. } if name == "data"))
        .count();
    assert_eq!(stages, 1, "staged once for the three simulated nodes");
    assert_eq!(finished(&events).exit_code, 0);
    for log in ["stdout.log", "stderr.log", "stdout.5.log", "stderr.5.log"] {
        assert!(s.run_dir().join("logs").join(log).exists(), "no {log}");
    }
    assert!(docker::containers_of_job(&name).is_empty());
    a_sigkilled_agents_rank_containers_are_found_by_gc();
    past_its_timeout_every_rank_container_is_stopped_and_removed();

    // As host processes: the same six ranks here.
    let host = Scratch::new();
    local_store(&host);
    for f in ["a", "b", "c"] {
        host.write(&format!("store/data/{f}.txt"), &format!("{f}\n"));
    }
    let job = host.write(
        "job.yaml",
        &format!(
            r#"name: ddp-host
command: [python3, "{script}", "${{{{outputs.out}}}}", "${{{{outputs.out}}}}"]
distribution: {{type: pytorch, process_count_per_instance: 2, instance_count: 3}}
inputs:
  data: {{path: data, mode: download}}
outputs:
  out: {{path: results, mode: upload}}
"#,
            script = repo().join("tests/fixtures/rendezvous.py").display(),
        ),
    );
    expect_code(&host.run(&job), 0);
    assert_eq!(nodes_seen(&verdict(&host)).len(), 3);

    // An Azure ML v2 job, as it is: its environment's image, three nodes here.
    let aml = Scratch::new();
    local_store(&aml);
    let job = aml.write(
        "aml-job.yml",
        &format!(
            r#"$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
command: echo "$RANK $NODE_RANK $LOCAL_RANK $WORLD_SIZE $MASTER_ADDR" > ${{{{outputs.out}}}}/rank$RANK.txt
environment: {{image: "{IMAGE_PYTHON}"}}
outputs:
  out: {{type: uri_folder, path: "azureml://datastores/local/paths/results", mode: upload}}
distribution: {{type: pytorch, process_count_per_instance: 2}}
resources: {{instance_count: 3, instance_type: Standard_NC6}}
compute: azureml:gpu-cluster
"#
        ),
    );
    let plan = stagehand(&["plan".as_ref(), job.as_os_str()]);
    let (text, _) = expect_code(&plan, 0);
    assert!(text.contains("runner     container"), "{text}");
    assert!(text.contains("all 3 nodes on this machine"), "{text}");
    expect_code(&aml.run(&job), 0);
    assert_eq!(uploaded(&aml, "results"), RANK_FILES);
    assert_eq!(
        std::fs::read_to_string(aml.path().join("store/results/rank3.txt")).unwrap(),
        "3 1 1 6 127.0.0.1\n"
    );
}

/// SIGKILL leaves the agent no chance to remove its six rank containers: `gc` finds
/// them by their labels, and no process of the job is left.
fn a_sigkilled_agents_rank_containers_are_found_by_gc() {
    let s = Scratch::new();
    let name = unique("kill");
    let job = container_job(&s, &name, "FAIL_RANK: '99'", "success");
    let mut child = s
        .run_cmd(&job)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), POLL, || s.saw("started")),
        "the ranks did not start"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    assert_eq!(docker::containers_of_job(&name).len(), 6);
    let (so, _) = expect_code(
        &std::process::Command::new(bin())
            .arg("gc")
            .output()
            .unwrap(),
        0,
    );
    let marker = format!("fixtures-{name}");
    assert!(
        wait_until(Duration::from_secs(20), POLL, || survivors(&marker)
            .is_empty()),
        "left running: {:?}",
        survivors(&marker)
    );
    assert!(
        docker::containers_of_job(&name).is_empty(),
        "gc left some: {so}"
    );
}

/// Past the job's timeout every rank is stopped (the stop signal, then SIGKILL after
/// `kill_grace`): the agent reports the timeout and leaves no container.
fn past_its_timeout_every_rank_container_is_stopped_and_removed() {
    let s = Scratch::new();
    let name = unique("timeout");
    let job = container_job(&s, &name, "FAIL_RANK: '99'", "success");
    let spec = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, format!("{spec}timeout: 3s\n")).unwrap();
    let o = s.run(&job);
    assert_eq!(o.status.code(), Some(code::TIMED_OUT), "{:?}", text(&o));
    assert!(docker::containers_of_job(&name).is_empty());
    assert!(survivors(&format!("fixtures-{name}")).is_empty());
}

/// The job's containers and processes on every node are gone, and the cluster idle.
fn assert_nothing_left(slurm: &Slurm, name: &str) {
    let marker = format!("fixtures-{name}");
    assert!(
        wait_until(Duration::from_secs(20), POLL, || survivors(&marker)
            .is_empty()
            && docker::containers_of_job(name).is_empty()),
        "left behind: {:?} {:?}",
        survivors(&marker),
        docker::containers_of_job(name)
    );
    assert!(!slurm.busy() || wait_until(Duration::from_secs(20), POLL, || !slurm.busy()));
}

/// The issue's test on the cluster: `srun -N 3 --ntasks-per-node=1 stagehand run` of a
/// pytorch job of 2 ranks per node in containers. The six ranks meet over TCP at
/// MASTER_ADDR and agree on their ranks; every node's output lands. Then rank 3 exits
/// 3: its node stops its other rank and reports 3, srun stops the others, and nothing
/// of the job is left. Then `scancel` mid-run: every node reports cancelled (130) after
/// uploading its `upload_on: always` output, and nothing is left.
#[test]
fn three_nodes_of_two_ranks_in_containers_meet_fail_together_and_cancel_cleanly() {
    if !docker::engine() {
        return;
    }
    let Some(slurm) = Slurm::start() else { return };
    docker::python_image();

    let s = Scratch::new();
    let name = unique("meet");
    let job = container_job(&s, &name, "", "success");
    let o = srun_agents(&slurm, &s, &job);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = verdict(&s);
    assert_eq!(nodes_seen(&v).len(), 3, "one pair of ranks on each node");
    let mut want: Vec<&str> = RANK_FILES.to_vec();
    want.push("verdict.json");
    assert_eq!(uploaded(&s, "results"), want);
    for n in 0..3 {
        let events = read_events(&s.path().join(format!("events-{n}.jsonl")));
        assert_eq!(finished(&events).exit_code, 0);
    }
    assert_nothing_left(&slurm, &name);

    let s = Scratch::new();
    let name = unique("fail");
    let job = container_job(&s, &name, "FAIL_RANK: '3', FAIL_CODE: '3'", "success");
    let o = srun_agents(&slurm, &s, &job);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "srun exits non-zero");
    assert!(err.contains("task 1: Exited with exit code 3"), "{err}");
    let failing = read_events(&s.path().join("events-1.jsonl"));
    assert_eq!(
        finished(&failing).exit_code,
        3,
        "rank 3's code is its node's"
    );
    assert_nothing_left(&slurm, &name);

    let s = Scratch::new();
    let name = unique("cancel");
    let job = container_job(&s, &name, "FAIL_RANK: '99'", "always");
    let id = sbatch_three_agents(&slurm, &s, &job);
    // Every rank has written its file (and sleeps): cancel now.
    let written = || {
        walk(&s.path().join("runs"))
            .iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with("rank"))
            })
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(60), POLL, || written() == 6),
        "the ranks did not start: {:?}",
        std::fs::read_to_string(s.path().join("slurm.out"))
    );
    assert!(slurm.run("scancel", &[&id]).status.success());
    assert!(
        wait_until(Duration::from_secs(30), POLL, || !slurm.busy()),
        "the job did not end"
    );
    for n in 0..3 {
        let f = finished(&read_events(&s.path().join(format!("events-{n}.jsonl"))));
        assert_eq!(
            (f.status, f.exit_code),
            (Status::Cancelled, code::CANCELLED),
            "node {n}"
        );
    }
    assert_eq!(uploaded(&s, "results"), RANK_FILES, "uploaded on cancel");
    assert_nothing_left(&slurm, &name);
}

/// `sbatch -N 3` of `srun -N 3 stagehand run JOB` (events in `events-<node>.jsonl`);
/// the Slurm job's id.
fn sbatch_three_agents(slurm: &Slurm, s: &Scratch, job: &Path) -> String {
    let o = slurm
        .cmd("sbatch")
        .args(["--parsable", "-N", "3", "-o"])
        .arg(s.path().join("slurm.out"))
        .arg("--wrap")
        .arg(format!(
            "srun -N 3 --ntasks-per-node=1 bash -c 'exec {} run {} --events {}/events-$SLURM_NODEID.jsonl'",
            bin().display(),
            job.display(),
            s.path().display()
        ))
        .in_scratch(s)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sbatch_job_id(&o)
}
