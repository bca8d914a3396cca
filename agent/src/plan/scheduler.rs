//! Which scheduler started the agent (Slurm, a Kubernetes Indexed Job) and its ids for
//! this task, read from the environment the scheduler sets: the one place those
//! variables are read. From them come the default run id (`slurm-<job>[_<task>]`,
//! `k8s-[<job>-]<index>`: the same after a requeue, so the run resumes in its folder),
//! `{task_index}` and `{task_count}`, and the slice of a sharded input.
//!
//! A distributed job under a Kubernetes Indexed Job is one job over several pods, not
//! an array: each pod is a node (its completion index the node rank, the completions
//! the node count), and pod 0's stable name is where the processes meet
//! ([`pods_as_nodes`]).
//!
//! It must never guess: a variable that is set but malformed is an error, not a
//! default, since a wrong task index silently processes the wrong shard.

use stagehand_protocol::events::SchedulerIds;
use thiserror::Error;

/// A scheduler variable that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SchedulerError {
    /// Not a whole number.
    #[error("{var}={value:?} is not a whole number (set by the scheduler, or by hand?)")]
    NotANumber {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// An index past the count.
    #[error("{index_var}={index} is not below {count_var}={count}")]
    IndexPastCount {
        /// The index's variable.
        index_var: &'static str,
        /// The index.
        index: u32,
        /// The count's variable.
        count_var: &'static str,
        /// The count.
        count: u32,
    },
    /// A variable a multi-node job under Kubernetes needs is not set.
    #[error("{var} is not set: a distributed job under a Kubernetes Indexed Job needs it ({why})")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it is for, and where the manifest sets it.
        why: &'static str,
    },
}

/// Reads the scheduler's variables from the agent's environment, for a job that is
/// `distributed` (a `distribution` block) or not.
pub fn detect(distributed: bool) -> Result<Option<SchedulerIds>, SchedulerError> {
    let var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    match detect_from(var)? {
        Some(ids) if distributed => pods_as_nodes(ids, var).map(Some),
        ids => Ok(ids),
    }
}

/// A distributed job's ids under a Kubernetes Indexed Job: the pods are its nodes.
/// The completion index becomes the node rank and the completions
/// (`STAGEHAND_TASK_COUNT`) the node count; there is one task, so every pod has the
/// same run id (`k8s-<job>`). The nodes' names are the pods' stable host names,
/// `<job>-<index>.<subdomain>` (`STAGEHAND_K8S_JOB_NAME`, `STAGEHAND_K8S_SUBDOMAIN`:
/// the pod template's subdomain, a headless Service), in rank order: the first is
/// `MASTER_ADDR` (a Job of one pod needs neither name). Slurm's ids are returned as they are (`srun -N` already makes one
/// agent per node).
pub fn pods_as_nodes(
    ids: SchedulerIds,
    var: impl Fn(&str) -> Option<String>,
) -> Result<SchedulerIds, SchedulerError> {
    if ids.kind != "kubernetes" {
        return Ok(ids);
    }
    let need = |name: &'static str, why: &'static str| {
        var(name).ok_or(SchedulerError::Missing { var: name, why })
    };
    need(
        "STAGEHAND_TASK_COUNT",
        "the Job's completions: how many pods (nodes) the job spans",
    )?;
    // One pod is one node: its processes meet on it, and no name is needed.
    let nodelist = if ids.task_count > 1 {
        let job = need(
            "STAGEHAND_K8S_JOB_NAME",
            "the Job's name, pod 0's host name is <job>-0; set it from the label batch.kubernetes.io/job-name",
        )?;
        let subdomain = need(
            "STAGEHAND_K8S_SUBDOMAIN",
            "the pod template's subdomain, a headless Service, which makes pod 0 reachable as <job>-0.<subdomain>",
        )?;
        let hosts: Vec<String> = (0..ids.task_count)
            .map(|i| format!("{job}-{i}.{subdomain}"))
            .collect();
        Some(hosts.join(","))
    } else {
        None
    };
    Ok(SchedulerIds {
        array_task_id: None,
        task_index: 0,
        task_count: 1,
        node_rank: ids.task_index,
        node_count: ids.task_count,
        nodelist,
        ..ids
    })
}

/// Reads the scheduler's variables through `var`: Slurm when `SLURM_JOB_ID` is set,
/// else Kubernetes when `JOB_COMPLETION_INDEX` is, else none.
pub fn detect_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<SchedulerIds>, SchedulerError> {
    let num = |name: &'static str| -> Result<Option<u32>, SchedulerError> {
        var(name)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| SchedulerError::NotANumber {
                        var: name,
                        value: v,
                    })
            })
            .transpose()
    };
    if let Some(own) = var("SLURM_JOB_ID") {
        let task = num("SLURM_ARRAY_TASK_ID")?;
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let task_index = task.map_or(0, |t| t.saturating_sub(min) / step);
        let task_count = num("SLURM_ARRAY_TASK_COUNT")?.unwrap_or(1).max(1);
        // One agent per node of a step (`srun -N 3 stagehand run`); a batch script's
        // agent runs on the first node only, whatever the allocation.
        let node_count = num("SLURM_STEP_NUM_NODES")?.unwrap_or(1).max(1);
        let node_rank = if var("SLURM_STEP_NUM_NODES").is_some() {
            num("SLURM_NODEID")?.unwrap_or(0)
        } else {
            0
        };
        let ids = SchedulerIds {
            kind: "slurm".into(),
            job_id: Some(var("SLURM_ARRAY_JOB_ID").unwrap_or_else(|| own.clone())),
            array_task_id: task,
            own_job_id: Some(own),
            task_index,
            task_count,
            node_rank,
            node_count,
            node: var("SLURMD_NODENAME"),
            nodelist: var("SLURM_STEP_NODELIST").or_else(|| var("SLURMD_NODENAME")),
        };
        return checked(ids, "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT").map(Some);
    }
    if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let ids = SchedulerIds {
            kind: "kubernetes".into(),
            job_id: var("STAGEHAND_K8S_JOB_NAME"),
            array_task_id: Some(index),
            own_job_id: None,
            task_index: index,
            task_count: num("STAGEHAND_TASK_COUNT")?.unwrap_or(index + 1).max(1),
            node_rank: 0,
            node_count: 1,
            node: var("STAGEHAND_K8S_NODE_NAME"),
            nodelist: None,
        };
        return checked(ids, "JOB_COMPLETION_INDEX", "STAGEHAND_TASK_COUNT").map(Some);
    }
    Ok(None)
}

fn checked(
    ids: SchedulerIds,
    index_var: &'static str,
    count_var: &'static str,
) -> Result<SchedulerIds, SchedulerError> {
    if ids.task_index >= ids.task_count {
        return Err(SchedulerError::IndexPastCount {
            index_var,
            index: ids.task_index,
            count_var,
            count: ids.task_count,
        });
    }
    if ids.node_rank >= ids.node_count {
        return Err(SchedulerError::IndexPastCount {
            index_var: "SLURM_NODEID",
            index: ids.node_rank,
            count_var: "SLURM_STEP_NUM_NODES",
            count: ids.node_count,
        });
    }
    Ok(ids)
}

/// The run id a scheduler's task gets by default: the same for every attempt of the
/// task (a requeue, a retried pod) and for every node of a multi-node job.
pub fn run_id(ids: &SchedulerIds) -> String {
    match ids.kind.as_str() {
        "slurm" => {
            let job = ids.job_id.as_deref().unwrap_or("job");
            match ids.array_task_id {
                Some(t) => format!("slurm-{job}_{t}"),
                None => format!("slurm-{job}"),
            }
        }
        _ => match (&ids.job_id, ids.array_task_id) {
            (Some(job), Some(i)) => format!("k8s-{job}-{i}"),
            (None, Some(i)) => format!("k8s-{i}"),
            (Some(job), None) => format!("k8s-{job}"),
            (None, None) => "k8s".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<SchedulerIds>, SchedulerError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        detect_from(|k| m.get(k).cloned())
    }

    #[test]
    fn no_scheduler_no_ids() {
        assert_eq!(env(&[("HOME", "/root")]), Ok(None));
    }

    #[test]
    fn a_plain_slurm_job() {
        let ids = env(&[("SLURM_JOB_ID", "42"), ("SLURMD_NODENAME", "n1")])
            .unwrap()
            .unwrap();
        assert_eq!(run_id(&ids), "slurm-42");
        assert_eq!((ids.task_index, ids.task_count), (0, 1));
        assert_eq!((ids.node_rank, ids.node_count), (0, 1));
        assert_eq!(ids.node.as_deref(), Some("n1"));
    }

    #[test]
    fn an_array_task_is_named_by_the_array_and_its_task() {
        let ids = env(&[
            ("SLURM_JOB_ID", "57"),
            ("SLURM_ARRAY_JOB_ID", "50"),
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "20"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(run_id(&ids), "slurm-50_7");
        assert_eq!(ids.own_job_id.as_deref(), Some("57"));
        assert_eq!((ids.task_index, ids.task_count), (7, 20));
    }

    #[test]
    fn task_index_counts_from_the_arrays_first_task_by_its_step() {
        // --array=1-39:2 → tasks 1, 3, …, 39: twenty tasks, the 7th is index 6.
        let ids = env(&[
            ("SLURM_JOB_ID", "9"),
            ("SLURM_ARRAY_JOB_ID", "8"),
            ("SLURM_ARRAY_TASK_ID", "13"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "20"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((ids.task_index, ids.task_count), (6, 20));
        assert_eq!(run_id(&ids), "slurm-8_13");
    }

    #[test]
    fn a_step_over_nodes_gives_each_agent_its_node_rank() {
        let ids = env(&[
            ("SLURM_JOB_ID", "3"),
            ("SLURM_STEP_NUM_NODES", "3"),
            ("SLURM_NODEID", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((ids.node_rank, ids.node_count), (2, 3));
        assert_eq!(run_id(&ids), "slurm-3", "the same run id on every node");
        // A batch script runs on the first node whatever SLURM_NODEID says elsewhere.
        let batch = env(&[("SLURM_JOB_ID", "3"), ("SLURM_NODEID", "0")])
            .unwrap()
            .unwrap();
        assert_eq!((batch.node_rank, batch.node_count), (0, 1));
    }

    #[test]
    fn a_kubernetes_indexed_job() {
        let ids = env(&[
            ("JOB_COMPLETION_INDEX", "4"),
            ("STAGEHAND_K8S_JOB_NAME", "train"),
            ("STAGEHAND_TASK_COUNT", "10"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(run_id(&ids), "k8s-train-4");
        assert_eq!((ids.task_index, ids.task_count), (4, 10));
        let bare = env(&[("JOB_COMPLETION_INDEX", "0")]).unwrap().unwrap();
        assert_eq!(run_id(&bare), "k8s-0");
    }

    fn pods(pairs: &[(&str, &str)]) -> Result<SchedulerIds, SchedulerError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ids = detect_from(|k| m.get(k).cloned())?.unwrap();
        pods_as_nodes(ids, |k| m.get(k).cloned())
    }

    #[test]
    fn a_distributed_job_under_an_indexed_job_makes_each_pod_a_node_of_one_run() {
        let pod = |index: &str| {
            pods(&[
                ("JOB_COMPLETION_INDEX", index),
                ("STAGEHAND_K8S_JOB_NAME", "ddp"),
                ("STAGEHAND_K8S_SUBDOMAIN", "ddp-svc"),
                ("STAGEHAND_TASK_COUNT", "3"),
            ])
            .unwrap()
        };
        let (first, last) = (pod("0"), pod("2"));
        assert_eq!((last.node_rank, last.node_count), (2, 3));
        assert_eq!(
            (last.task_index, last.task_count),
            (0, 1),
            "one task, not an array"
        );
        assert_eq!(last.array_task_id, None);
        assert_eq!(run_id(&first), "k8s-ddp");
        assert_eq!(
            run_id(&last),
            run_id(&first),
            "the same run id on every pod"
        );
        assert_eq!(
            last.nodelist.as_deref(),
            Some("ddp-0.ddp-svc,ddp-1.ddp-svc,ddp-2.ddp-svc")
        );
        // Slurm's ids are already per node.
        let slurm = env(&[("SLURM_JOB_ID", "3")]).unwrap().unwrap();
        assert_eq!(pods_as_nodes(slurm.clone(), |_| None), Ok(slurm));
    }

    #[test]
    fn a_distributed_job_under_an_indexed_job_needs_the_pods_names_and_count() {
        let full = [
            ("JOB_COMPLETION_INDEX", "1"),
            ("STAGEHAND_K8S_JOB_NAME", "ddp"),
            ("STAGEHAND_K8S_SUBDOMAIN", "ddp"),
            ("STAGEHAND_TASK_COUNT", "3"),
        ];
        for missing in [
            "STAGEHAND_K8S_JOB_NAME",
            "STAGEHAND_K8S_SUBDOMAIN",
            "STAGEHAND_TASK_COUNT",
        ] {
            let some: Vec<_> = full
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = pods(&some).unwrap_err();
            assert!(matches!(err, SchedulerError::Missing { var, .. } if var == missing));
            assert!(
                err.to_string()
                    .starts_with(&format!("{missing} is not set")),
                "{err}"
            );
        }
        // A Job of one pod needs no names: its processes meet on it.
        let one = pods(&[("JOB_COMPLETION_INDEX", "0"), ("STAGEHAND_TASK_COUNT", "1")]).unwrap();
        assert_eq!(
            (one.node_rank, one.node_count, one.nodelist.clone()),
            (0, 1, None)
        );
        assert_eq!(
            run_id(&one),
            "k8s",
            "no index in the run id: it is not an array"
        );
    }

    /// A PyTorch job over 3 nodes of 2 processes each (the folder holds its spec).
    fn three_node_job() -> (tempfile::TempDir, crate::plan::Loaded) {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.yaml");
        std::fs::write(
            &job,
            "name: d\ncommand: [x]\ndistribution: {type: pytorch, process_count_per_instance: 2, instance_count: 3}\n",
        )
        .unwrap();
        let loaded = crate::plan::load(&job, None).unwrap();
        (dir, loaded)
    }

    #[test]
    fn a_kubernetes_pod_of_a_distributed_job_plans_its_node_and_pod_zero_as_master() {
        let (_dir, loaded) = three_node_job();
        let pod = |count: &str| {
            pods(&[
                ("JOB_COMPLETION_INDEX", "1"),
                ("STAGEHAND_K8S_JOB_NAME", "ddp"),
                ("STAGEHAND_K8S_SUBDOMAIN", "ddp"),
                ("STAGEHAND_TASK_COUNT", count),
            ])
            .ok()
        };
        let plan = crate::plan::build_with(&loaded, None, None, pod("3")).unwrap();
        assert_eq!(plan.run_id, "k8s-ddp");
        assert!(
            plan.run_dir.ends_with("k8s-ddp-node1"),
            "each pod its own folder"
        );
        let d = plan.distribution.as_ref().unwrap();
        assert_eq!((d.node_rank, d.nodes, d.world_size()), (1, 3, 6));
        assert_eq!(d.node_hosts[0], "ddp-0.ddp", "pod 0 is MASTER_ADDR");
        assert_eq!(d.node_hosts.len(), 3);
        let err = crate::plan::build_with(&loaded, None, None, pod("2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs 3 node(s) but this Indexed Job has 2 pod(s)"),
            "{err}"
        );
        assert!(err.contains("completions"), "{err}");
    }

    #[test]
    fn every_node_of_every_array_task_gets_its_own_slice() {
        let slice = |task: &str, node: &str| {
            let ids = env(&[
                ("SLURM_JOB_ID", "1"),
                ("SLURM_ARRAY_TASK_ID", task),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
                ("SLURM_STEP_NUM_NODES", "3"),
                ("SLURM_NODEID", node),
            ])
            .unwrap();
            let s = crate::plan::shard_slice(ids.as_ref());
            (s.index, s.count)
        };
        assert_eq!(slice("0", "0"), (0, 6));
        assert_eq!(slice("0", "2"), (2, 6));
        assert_eq!(slice("1", "0"), (3, 6));
        assert_eq!(slice("1", "2"), (5, 6));
        assert_eq!(crate::plan::shard_slice(None).count, 1);
    }

    #[test]
    fn malformed_variables_are_refused_not_guessed() {
        assert_eq!(
            env(&[("SLURM_JOB_ID", "1"), ("SLURM_ARRAY_TASK_ID", "x")]),
            Err(SchedulerError::NotANumber {
                var: "SLURM_ARRAY_TASK_ID",
                value: "x".into()
            })
        );
        let past = env(&[("JOB_COMPLETION_INDEX", "5"), ("STAGEHAND_TASK_COUNT", "5")]);
        assert!(matches!(past, Err(SchedulerError::IndexPastCount { .. })));
        assert_eq!(
            past.unwrap_err().to_string(),
            "JOB_COMPLETION_INDEX=5 is not below STAGEHAND_TASK_COUNT=5"
        );
    }

    #[test]
    fn a_plan_under_an_array_task_fills_its_placeholders_and_names_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("workspace.yaml"),
            "datastores:\n  local: {type: local, root: store}\ndefault_datastore: local\n",
        )
        .unwrap();
        std::fs::write(
            d.join("job.yaml"),
            r#"name: t
command: [run, "--part={task_index}/{task_count}", "{other}"]
inputs:
  x: {path: "shards/{task_index}", mode: download}
  all: {path: "all", mode: download, shard: by_file}
outputs:
  o: {path: "out/{task_index}-of-{task_count}/{run_id}", mode: upload}
"#,
        )
        .unwrap();
        let loaded = crate::plan::load(&d.join("job.yaml"), None).unwrap();
        let ids = env(&[
            ("SLURM_JOB_ID", "57"),
            ("SLURM_ARRAY_JOB_ID", "50"),
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "20"),
        ])
        .unwrap();
        let plan = crate::plan::build_with(&loaded, None, Some(&d.join("run")), ids).unwrap();
        assert_eq!(plan.run_id, "slurm-50_7");
        assert_eq!(plan.command[1..], ["--part=7/20", "{other}"]);
        let input = |n: &str| plan.inputs.iter().find(|d| d.name == n).unwrap();
        assert_eq!(input("x").path, "shards/7");
        assert_eq!(input("x").slice, None);
        assert_eq!(
            input("all").slice,
            Some(stagehand_protocol::shard::Slice {
                index: 7,
                count: 20
            })
        );
        assert_eq!(plan.outputs[0].path, "out/7-of-20/slurm-50_7");
        assert_eq!(plan.environment["STAGEHAND_TASK_INDEX"], "7");
        assert!(crate::plan::render_text(&plan).contains(
            "scheduler  slurm job 50, array task 7: task 7 of 20, node this node (0 of 1)"
        ));
        // An explicit --run-id wins over the scheduler's.
        let mine = crate::plan::build_with(&loaded, Some("mine"), None, plan.scheduler.clone());
        assert_eq!(mine.unwrap().run_id, "mine");
    }

    #[test]
    fn an_allocation_of_another_size_than_instance_count_is_refused_before_staging() {
        let (_dir, loaded) = three_node_job();
        let step = |nodes: &str, node: &str| {
            env(&[
                ("SLURM_JOB_ID", "41"),
                ("SLURM_STEP_NUM_NODES", nodes),
                ("SLURM_NODEID", node),
                ("SLURM_STEP_NODELIST", "n[1-3]"),
            ])
            .unwrap()
        };
        let err = crate::plan::build_with(&loaded, None, None, step("2", "1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs 3 node(s) but this Slurm step has 2"),
            "{err}"
        );
        assert!(err.contains("srun -N 3"), "{err}");
        let plan = crate::plan::build_with(&loaded, None, None, step("3", "2")).unwrap();
        let d = plan.distribution.as_ref().unwrap();
        assert_eq!(
            (d.node_rank, d.nodes, d.per_node, d.world_size()),
            (2, 3, 2, 6)
        );
        assert_eq!(d.master_port, 20041);
        assert!(
            plan.run_dir.ends_with("slurm-41-node2"),
            "each node its own folder"
        );
        assert!(crate::plan::render_text(&plan).contains("distributed pytorch: node 2 of 3"));
    }

    #[test]
    fn outside_a_scheduler_every_node_runs_on_this_machine() {
        let (_dir, loaded) = three_node_job();
        let plan = crate::plan::build_with(&loaded, None, None, None).unwrap();
        let d = plan.distribution.as_ref().unwrap();
        assert!(d.on_one_machine);
        assert_eq!(
            (d.node_rank, d.nodes, d.local_processes(), d.world_size()),
            (0, 3, 6, 6)
        );
        let text = crate::plan::render_text(&plan);
        assert!(
            text.contains("distributed pytorch: all 3 nodes on this machine (no scheduler), 2 process(es) each, 6 in all; they meet at 127.0.0.1"),
            "{text}"
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["distribution"]["on_one_machine"], true);
    }
}
