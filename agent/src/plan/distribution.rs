//! A distributed job's place in its allocation: how many nodes, which one this is, how
//! many processes it starts and the port they meet on. Decided from the spec's
//! `distribution` and the scheduler's ids; an allocation that does not match
//! `instance_count` is refused here, before any data moves. Started by no scheduler, a
//! job of N > 1 nodes runs every node's ranks on this machine (`on_one_machine`): the
//! local dry run of a multi-node job.
//!
//! It must never resolve an address or run a program: the first node's address is
//! found at launch (`run::ranks`), so `plan` stays free of side effects.

use super::*;
use stagehand_protocol::job::{Distribution, DistributionKind};

/// The lowest port a job's processes meet on; a job's is this plus its id modulo
/// [`PORT_SPAN`], so jobs that share a node (ids differing by less than the span) do not
/// collide.
pub const PORT_BASE: u16 = 20000;
/// How many ports job ids spread over.
pub const PORT_SPAN: u16 = 10000;

/// A distributed job, as this node's agent runs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributionPlan {
    /// The framework whose variables each process gets.
    pub kind: DistributionKind,
    /// Nodes running an agent for the job.
    pub nodes: u32,
    /// This node's place among them, from 0.
    pub node_rank: u32,
    /// Processes this node starts.
    pub per_node: u32,
    /// The nodes in the scheduler's notation (`n[1-3]`), when it gives them; the
    /// first is the rendezvous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodelist: Option<String>,
    /// The rendezvous port (`MASTER_PORT`).
    pub master_port: u16,
    /// Every node's stable host name in node-rank order, when the scheduler names them
    /// (a Kubernetes Indexed Job's pods: `<job>-<index>.<subdomain>`); the first is
    /// `MASTER_ADDR`. Empty under Slurm, whose node addresses are found at launch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_hosts: Vec<String>,
    /// Every node runs on this machine (no scheduler, `instance_count` > 1): this
    /// agent starts the ranks of nodes 0..`nodes`, which meet at 127.0.0.1.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub on_one_machine: bool,
}

impl DistributionPlan {
    /// Processes in the whole job.
    pub fn world_size(&self) -> u32 {
        self.nodes * self.per_node
    }

    /// The nodes whose ranks this agent starts: its own, or all of them on one machine.
    pub fn local_nodes(&self) -> std::ops::Range<u32> {
        if self.on_one_machine {
            0..self.nodes
        } else {
            self.node_rank..self.node_rank + 1
        }
    }

    /// The processes this agent starts.
    pub fn local_processes(&self) -> u32 {
        self.local_nodes().len() as u32 * self.per_node
    }
}

/// The plan of `spec`'s distribution for the task `scheduler` names; a problem when
/// the allocation has another number of nodes than `instance_count`.
pub(super) fn distribution_plan(
    loaded: &Loaded,
    d: &Distribution,
    scheduler: Option<&SchedulerIds>,
) -> Result<DistributionPlan, Problem> {
    let (nodes, node_rank) = scheduler.map_or((1, 0), |s| (s.node_count, s.node_rank));
    // Outside a scheduler there is no allocation to match: the nodes are simulated here.
    let on_one_machine = scheduler.is_none() && d.instance_count.is_some_and(|n| n > 1);
    let nodes = match d.instance_count {
        Some(n) if on_one_machine => n,
        _ => nodes,
    };
    if let Some(want) = d.instance_count.filter(|&n| n != nodes) {
        let message = match scheduler.map(|s| s.kind.as_str()) {
            Some("kubernetes") => format!("the job needs {want} node(s) but this Indexed Job has {nodes} pod(s) (STAGEHAND_TASK_COUNT): set the Job's completions and parallelism, and STAGEHAND_TASK_COUNT, to {want} (nothing was staged)"),
            Some("slurm") => format!("the job needs {want} node(s) but this Slurm step has {nodes}: start it as `srun -N {want} --ntasks-per-node=1 stagehand run …` (nothing was staged)"),
            _ => format!("the job needs {want} node(s) but stagehand was started on {nodes}: start it as `srun -N {want} --ntasks-per-node=1 stagehand run …`, or as a Kubernetes Indexed Job of {want} pods (nothing was staged)"),
        };
        return Err(loaded.job.problem("distribution.instance_count", message));
    }
    let job_id = scheduler
        .and_then(|s| s.own_job_id.as_deref().or(s.job_id.as_deref()))
        .and_then(|j| j.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(DistributionPlan {
        kind: d.kind,
        nodes,
        node_rank,
        per_node: d.process_count_per_instance.max(1),
        nodelist: scheduler.and_then(|s| s.nodelist.clone()),
        master_port: master_port(job_id),
        node_hosts: match scheduler {
            Some(s) if s.kind == "kubernetes" => s
                .nodelist
                .iter()
                .flat_map(|l| l.split(','))
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        },
        on_one_machine,
    })
}

/// The rendezvous port of job `job_id`.
pub fn master_port(job_id: u64) -> u16 {
    PORT_BASE + (job_id % u64::from(PORT_SPAN)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_jobs_meet_on_different_ports() {
        assert_eq!(master_port(0), 20000);
        assert_eq!(master_port(41), 20041);
        assert_ne!(master_port(41), master_port(42));
        assert!((PORT_BASE..PORT_BASE + PORT_SPAN).contains(&master_port(123_456_789)));
    }
}
