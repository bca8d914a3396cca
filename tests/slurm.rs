//! stagehand under a real Slurm cluster (three `slurmd` on this machine, started by
//! `common::slurm`): the cluster itself, scheduler identity, sharded inputs over an
//! array, multi-node distributed jobs.

use crate::common::slurm::{Slurm, NODES};

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
