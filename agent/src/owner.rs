//! Who owns what the agent leaves on the node (a container, a run folder, a mount): the
//! agent's pid, the time that process started, the boot it ran in and the host name.
//! `stagehand gc` uses it to tell leftovers of a dead agent from resources in use.
//!
//! It must never call an owner gone on a doubt: the pid alone is not enough (pids are
//! reused), so the start time must match too, and an owner on another host is unknown,
//! never gone.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The container label prefix of every stagehand label.
pub const LABEL_PREFIX: &str = "io.stagehand.";
/// Label: the run id (present on every container stagehand creates).
pub const LABEL_RUN_ID: &str = "io.stagehand.run_id";
/// Label: the job's name.
pub const LABEL_JOB: &str = "io.stagehand.job";
/// Label: the run folder on the node.
pub const LABEL_RUN_DIR: &str = "io.stagehand.run_dir";
/// Label: a distributed job's rank (`RANK`) that the container runs (one container per
/// rank); absent on a one-process job's container.
pub const LABEL_RANK: &str = "io.stagehand.rank";
/// Label: the node rank (`NODE_RANK`) of a distributed job's container.
pub const LABEL_NODE_RANK: &str = "io.stagehand.node_rank";
const LABEL_PID: &str = "io.stagehand.agent.pid";
const LABEL_START: &str = "io.stagehand.agent.start";
const LABEL_BOOT: &str = "io.stagehand.agent.boot_id";
const LABEL_HOST: &str = "io.stagehand.agent.host";

/// The file in a run folder that names the agent that owns it.
pub const RUN_DIR_FILE: &str = "agent.json";

/// The file in a run folder that names the job's process groups (one per local rank)
/// while it runs, so that `stagehand gc` can kill what a SIGKILLed agent (and its
/// guardians) left.
pub const JOB_FILE: &str = "job.json";

/// The groups recorded in a `job.json`: a list, or the single group that agents before
/// distributed jobs wrote.
pub fn read_job_groups(path: &std::path::Path) -> Option<Vec<JobGroup>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Recorded {
        Many(Vec<JobGroup>),
        One(JobGroup),
    }
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Recorded::Many(v) => Some(v),
        Recorded::One(g) => Some(vec![g]),
    }
}

/// A job's process group, identified across pid reuse and reboots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobGroup {
    /// The group's id (its leader's pid).
    pub pgid: i32,
    /// When its leader started, in clock ticks after boot.
    pub start: u64,
    /// The kernel's boot id when it ran.
    pub boot_id: String,
}

/// One agent process, identified across pid reuse and reboots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its process id.
    pub pid: u32,
    /// When it started, in clock ticks after boot (field 22 of /proc/PID/stat).
    pub start: u64,
    /// The kernel's boot id when it ran.
    pub boot_id: String,
    /// The host's name.
    pub host: String,
}

/// Whether an owner still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// It runs: leave its resources alone.
    Alive,
    /// It is gone (exited, or its host rebooted since): its resources are leftovers.
    Gone,
    /// Cannot tell (another host): keep, and say why.
    Unknown(String),
}

impl Owner {
    /// This agent.
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: crate::linux::stat(pid).map_or(0, |s| s.start_time),
            boot_id: crate::linux::boot_id(),
            host: crate::linux::hostname(),
        }
    }

    /// Whether this owner still runs, judged from this host.
    pub fn liveness(&self) -> Liveness {
        let here = Owner::current();
        if self.boot_id == here.boot_id && !self.boot_id.is_empty() {
            match crate::linux::stat(self.pid) {
                Some(s) if s.start_time == self.start => Liveness::Alive,
                _ => Liveness::Gone,
            }
        } else if self.host == here.host && !self.host.is_empty() {
            Liveness::Gone
        } else {
            Liveness::Unknown(format!(
                "its agent ran on host {:?}, not this one ({:?})",
                self.host, here.host
            ))
        }
    }

    /// Container labels that record this owner.
    pub fn labels(&self) -> Vec<(String, String)> {
        vec![
            (LABEL_PID.into(), self.pid.to_string()),
            (LABEL_START.into(), self.start.to_string()),
            (LABEL_BOOT.into(), self.boot_id.clone()),
            (LABEL_HOST.into(), self.host.clone()),
        ]
    }

    /// The owner recorded in container labels, when they are all there.
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Owner> {
        Some(Owner {
            pid: labels.get(LABEL_PID)?.parse().ok()?,
            start: labels.get(LABEL_START)?.parse().ok()?,
            boot_id: labels.get(LABEL_BOOT)?.clone(),
            host: labels.get(LABEL_HOST)?.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_files_hold_every_rank_and_older_single_groups_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOB_FILE);
        let g = |pgid| JobGroup {
            pgid,
            start: 7,
            boot_id: "b".into(),
        };
        std::fs::write(&path, serde_json::to_vec(&vec![g(1), g(2)]).unwrap()).unwrap();
        assert_eq!(read_job_groups(&path), Some(vec![g(1), g(2)]));
        std::fs::write(&path, serde_json::to_vec(&g(3)).unwrap()).unwrap();
        assert_eq!(read_job_groups(&path), Some(vec![g(3)]));
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(read_job_groups(&path), None);
    }

    #[test]
    fn this_agent_is_alive_and_round_trips_through_labels() {
        let me = Owner::current();
        assert!(me.start > 0);
        assert_eq!(me.liveness(), Liveness::Alive);
        let labels: HashMap<String, String> = me.labels().into_iter().collect();
        assert_eq!(Owner::from_labels(&labels), Some(me));
    }

    #[test]
    fn a_reused_pid_or_a_reboot_is_gone_and_another_host_unknown() {
        let me = Owner::current();
        assert_eq!(
            Owner {
                start: me.start + 1,
                ..me.clone()
            }
            .liveness(),
            Liveness::Gone
        );
        assert_eq!(
            Owner {
                boot_id: "old-boot".into(),
                ..me.clone()
            }
            .liveness(),
            Liveness::Gone
        );
        assert!(matches!(
            Owner {
                boot_id: "x".into(),
                host: "elsewhere".into(),
                ..me
            }
            .liveness(),
            Liveness::Unknown(_)
        ));
    }
}
