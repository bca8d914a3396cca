//! The processes of a distributed job on this node: where they meet (the first node's
//! address as Slurm knows it, `NodeAddr`, since node names need not resolve; under
//! Kubernetes pod 0's stable host name) and each
//! one's variables, as Azure ML gives them (PyTorch's `MASTER_ADDR`…`LOCAL_WORLD_SIZE`,
//! TensorFlow's `TF_CONFIG`, Open MPI's `OMPI_COMM_WORLD_*`).
//!
//! It must never start or stop a process: the process runner starts one per local rank
//! (the container runner one container per rank) and the supervisor (`supervise_all`)
//! owns them.

use crate::plan::DistributionPlan;
use stagehand_protocol::job::DistributionKind;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the job's processes meet: every node's address, in node-rank order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    /// The nodes' addresses; the first is `MASTER_ADDR`.
    pub node_addrs: Vec<String>,
}

impl Rendezvous {
    /// The first node's address.
    pub fn master_addr(&self) -> &str {
        self.node_addrs.first().map_or("127.0.0.1", String::as_str)
    }
}

/// Finds every node's address: `scontrol show hostnames` for the names, then
/// `scontrol show node` for each one's `NodeAddr`. Without a node list (one node, no
/// scheduler) it is this machine; where scontrol cannot answer, the names themselves.
pub async fn resolve(d: &DistributionPlan) -> Rendezvous {
    // Every node simulated here: they all are this machine.
    if d.on_one_machine {
        return Rendezvous {
            node_addrs: vec!["127.0.0.1".into(); d.nodes as usize],
        };
    }
    // Names the scheduler gave (Kubernetes pods' stable host names) resolve in DNS.
    if !d.node_hosts.is_empty() {
        return Rendezvous {
            node_addrs: d.node_hosts.clone(),
        };
    }
    let Some(list) = &d.nodelist else {
        return Rendezvous {
            node_addrs: vec!["127.0.0.1".into()],
        };
    };
    let names = match scontrol(&["show", "hostnames", list]).await {
        Some(out) => out.split_whitespace().map(str::to_string).collect(),
        None => vec![list.clone()],
    };
    let mut node_addrs = Vec::with_capacity(names.len());
    for name in names {
        let addr = scontrol(&["show", "node", &name])
            .await
            .and_then(|out| node_addr(&out))
            .unwrap_or_else(|| {
                tracing::warn!("cannot read node {name}'s NodeAddr from scontrol; using its name");
                name.clone()
            });
        node_addrs.push(addr);
    }
    Rendezvous { node_addrs }
}

/// `scontrol ARGS`' output, or `None` when it cannot run, fails or hangs.
async fn scontrol(args: &[&str]) -> Option<String> {
    let run = tokio::process::Command::new("scontrol")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .ok()?
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `NodeAddr=…` of `scontrol show node` output.
fn node_addr(out: &str) -> Option<String> {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("NodeAddr="))
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

/// One process this agent starts: its place in the job and its variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRank {
    /// Its place among the processes this agent starts, from 0: it names its logs
    /// (`stdout.log` for 0, `stdout.<index>.log` for the others).
    pub index: u32,
    /// Its rank in the whole job (`RANK`), when the job is distributed.
    pub rank: Option<u32>,
    /// Its node's rank (`NODE_RANK`), when the job is distributed.
    pub node: Option<u32>,
    /// The variables it gets on top of the plan's.
    pub env: BTreeMap<String, String>,
}

/// The processes this agent starts: one with no variables of its own, or for a
/// distributed job one per rank of its node (of every node, on one machine), each with
/// its variables (`rank_env`). Says where they meet in the log.
pub async fn local_ranks(plan: &crate::plan::Plan) -> Vec<LocalRank> {
    let Some(d) = &plan.distribution else {
        return vec![LocalRank {
            index: 0,
            rank: None,
            node: None,
            env: BTreeMap::new(),
        }];
    };
    let meet = resolve(d).await;
    if d.on_one_machine {
        tracing::info!(
            "distributed {}: all {} nodes on this machine (no scheduler), {} process(es) each, rendezvous {}:{}",
            d.kind.as_str(),
            d.nodes,
            d.per_node,
            meet.master_addr(),
            d.master_port
        );
    } else {
        tracing::info!(
            "distributed {}: node {} of {}, {} process(es) here, rendezvous {}:{}",
            d.kind.as_str(),
            d.node_rank,
            d.nodes,
            d.per_node,
            meet.master_addr(),
            d.master_port
        );
    }
    let mut ranks = Vec::with_capacity(d.local_processes() as usize);
    for node in d.local_nodes() {
        for local in 0..d.per_node {
            ranks.push(LocalRank {
                index: ranks.len() as u32,
                rank: Some(node * d.per_node + local),
                node: Some(node),
                env: rank_env(d, &meet, node, local, &plan.environment),
            });
        }
    }
    ranks
}

/// The variables of process `local` of node `node`. Variables the spec's own
/// `environment` sets are left as the spec has them.
pub fn rank_env(
    d: &DistributionPlan,
    meet: &Rendezvous,
    node: u32,
    local: u32,
    spec_env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let rank = node * d.per_node + local;
    let world = d.world_size();
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        if !spec_env.contains_key(k) {
            env.insert(k.to_string(), v);
        }
    };
    set("MASTER_ADDR", meet.master_addr().to_string());
    set("MASTER_PORT", d.master_port.to_string());
    set("WORLD_SIZE", world.to_string());
    set("RANK", rank.to_string());
    set("LOCAL_RANK", local.to_string());
    set("NODE_RANK", node.to_string());
    set("GROUP_RANK", node.to_string());
    set("LOCAL_WORLD_SIZE", d.per_node.to_string());
    match d.kind {
        DistributionKind::Pytorch => {}
        DistributionKind::Mpi => {
            set("OMPI_COMM_WORLD_RANK", rank.to_string());
            set("OMPI_COMM_WORLD_SIZE", world.to_string());
            set("OMPI_COMM_WORLD_LOCAL_RANK", local.to_string());
            set("OMPI_COMM_WORLD_LOCAL_SIZE", d.per_node.to_string());
            set("OMPI_COMM_WORLD_NODE_RANK", node.to_string());
            set("PMI_RANK", rank.to_string());
            set("PMI_SIZE", world.to_string());
        }
        DistributionKind::Tensorflow => set("TF_CONFIG", tf_config(d, meet, rank)),
    }
    env
}

/// `TF_CONFIG`: every process a worker, on its node's address and a port of its own
/// above the rendezvous port.
fn tf_config(d: &DistributionPlan, meet: &Rendezvous, rank: u32) -> String {
    let workers: Vec<String> = (0..d.world_size())
        .map(|r| {
            let node = (r / d.per_node) as usize;
            let addr = meet
                .node_addrs
                .get(node)
                .map_or_else(|| meet.master_addr(), String::as_str);
            format!("{addr}:{}", u32::from(d.master_port) + 1 + r)
        })
        .collect();
    serde_json::json!({
        "cluster": {"worker": workers},
        "task": {"type": "worker", "index": rank},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: DistributionKind, node_rank: u32) -> DistributionPlan {
        DistributionPlan {
            kind,
            nodes: 3,
            node_rank,
            per_node: 2,
            nodelist: Some("n[1-3]".into()),
            master_port: 20041,
            node_hosts: Vec::new(),
            on_one_machine: false,
        }
    }

    #[tokio::test]
    async fn pods_meet_at_pod_zeros_stable_name_without_asking_slurm() {
        let mut d = plan(DistributionKind::Pytorch, 2);
        d.node_hosts = vec!["ddp-0.ddp".into(), "ddp-1.ddp".into(), "ddp-2.ddp".into()];
        let meet = resolve(&d).await;
        assert_eq!(meet.master_addr(), "ddp-0.ddp");
        let e = rank_env(&d, &meet, d.node_rank, 1, &BTreeMap::new());
        assert_eq!(
            (e["MASTER_ADDR"].as_str(), e["RANK"].as_str()),
            ("ddp-0.ddp", "5")
        );
    }

    fn meet() -> Rendezvous {
        Rendezvous {
            node_addrs: vec!["10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.3".into()],
        }
    }

    #[test]
    fn every_process_of_a_pytorch_job_has_its_own_rank_and_the_same_rendezvous() {
        let mut ranks = Vec::new();
        for node in 0..3 {
            for local in 0..2 {
                let e = rank_env(
                    &plan(DistributionKind::Pytorch, node),
                    &meet(),
                    node,
                    local,
                    &BTreeMap::new(),
                );
                assert_eq!(e["MASTER_ADDR"], "10.0.0.1");
                assert_eq!(e["MASTER_PORT"], "20041");
                assert_eq!(e["WORLD_SIZE"], "6");
                assert_eq!(e["LOCAL_WORLD_SIZE"], "2");
                assert_eq!(e["NODE_RANK"], node.to_string());
                assert_eq!(e["LOCAL_RANK"], local.to_string());
                ranks.push(e["RANK"].parse::<u32>().unwrap());
                assert!(!e.contains_key("TF_CONFIG"));
            }
        }
        assert_eq!(ranks, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_specs_own_variables_win() {
        let mine = BTreeMap::from([("MASTER_PORT".to_string(), "1234".to_string())]);
        let e = rank_env(&plan(DistributionKind::Pytorch, 0), &meet(), 0, 0, &mine);
        assert!(!e.contains_key("MASTER_PORT"));
    }

    #[test]
    fn tensorflow_gets_a_cluster_of_workers_and_its_index() {
        let e = rank_env(
            &plan(DistributionKind::Tensorflow, 1),
            &meet(),
            1,
            1,
            &BTreeMap::new(),
        );
        let tf: serde_json::Value = serde_json::from_str(&e["TF_CONFIG"]).unwrap();
        assert_eq!(
            tf["task"],
            serde_json::json!({"type": "worker", "index": 3})
        );
        let workers = tf["cluster"]["worker"].as_array().unwrap();
        assert_eq!(workers.len(), 6);
        assert_eq!(workers[3], "10.0.0.2:20045");
    }

    #[test]
    fn mpi_gets_open_mpis_names() {
        let e = rank_env(
            &plan(DistributionKind::Mpi, 2),
            &meet(),
            2,
            1,
            &BTreeMap::new(),
        );
        assert_eq!(e["OMPI_COMM_WORLD_RANK"], "5");
        assert_eq!(e["OMPI_COMM_WORLD_LOCAL_RANK"], "1");
        assert_eq!(e["PMI_SIZE"], "6");
    }

    #[tokio::test]
    async fn on_one_machine_every_nodes_ranks_start_here_and_meet_at_localhost() {
        let mut d = plan(DistributionKind::Tensorflow, 0);
        d.on_one_machine = true;
        d.nodelist = None;
        let meet = resolve(&d).await;
        assert_eq!(meet.node_addrs, ["127.0.0.1"; 3]);
        let e = rank_env(&d, &meet, 2, 1, &BTreeMap::new());
        assert_eq!(
            (
                e["RANK"].as_str(),
                e["NODE_RANK"].as_str(),
                e["LOCAL_RANK"].as_str()
            ),
            ("5", "2", "1")
        );
        assert_eq!((d.local_nodes(), d.local_processes()), (0..3, 6));
        d.on_one_machine = false;
        assert_eq!((d.local_nodes(), d.local_processes()), (0..1, 2));
    }

    #[test]
    fn node_addr_is_read_from_scontrol_show_node() {
        let out = "NodeName=n1 Arch=x86_64 CoresPerSocket=1\n   NodeAddr=127.0.0.1 NodeHostName=localhost Version=22.05.8\n";
        assert_eq!(node_addr(out).as_deref(), Some("127.0.0.1"));
        assert_eq!(node_addr("NodeName=n1"), None);
    }
}
