//! Stale mounts: an agent killed with SIGKILL cannot unmount, and its FUSE mounts stay
//! in the mount table, answering "Transport endpoint is not connected". The next agent
//! start, and `stagehand gc`, call [`cleanup`] to detach them.
//!
//! Our mounts are recognised by their source, `stagehand:<run id>:<agent pid>`. A mount
//! whose agent is still alive is never touched (another job may be running on this
//! node), and the check never reads through a mount, so a hung one cannot hang us.

use super::FSNAME_PREFIX;
use std::path::{Path, PathBuf};

/// One of our FUSE mounts, as the mount table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurMount {
    /// `stagehand:<run id>:<pid>`.
    pub source: String,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The run it belongs to.
    pub run_id: String,
    /// The agent that made it.
    pub pid: Option<i32>,
}

/// Our mounts in a mount table in the format of /proc/self/mounts.
pub fn parse(table: &str) -> Vec<OurMount> {
    ours(crate::linux::parse_mounts(table))
}

/// The FUSE mounts whose source carries our prefix.
fn ours(table: Vec<crate::linux::Mount>) -> Vec<OurMount> {
    let mut out = Vec::new();
    for m in table {
        if !(m.fstype == "fuse" || m.fstype.starts_with("fuse.")) {
            continue;
        }
        let Some(rest) = m.source.strip_prefix(FSNAME_PREFIX) else {
            continue;
        };
        let (run_id, pid) = match rest.rsplit_once(':') {
            Some((run, pid)) => (run.to_string(), pid.parse().ok()),
            None => (rest.to_string(), None),
        };
        out.push(OurMount {
            mountpoint: m.mountpoint,
            source: m.source.clone(),
            run_id,
            pid,
        });
    }
    out
}

/// Whether the agent that made `m` is gone (then the mount is stale). Any live process
/// with that pid counts as the agent: a reused pid leaves a stale mount in place, which
/// is better than detaching a live one.
pub fn is_stale(m: &OurMount) -> bool {
    let Some(pid) = m.pid.filter(|p| *p > 0) else {
        return true;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => true,
        // Alive (EPERM: alive, another user's).
        _ => false,
    }
}

/// Our mounts whose agent is gone (only those under `under`, when given).
/// A mount table that cannot be read is an error naming it.
pub fn find_stale(under: Option<&Path>) -> std::io::Result<Vec<OurMount>> {
    let table = crate::linux::mounts().map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot read /proc/self/mounts: {e}"))
    })?;
    Ok(ours(table)
        .into_iter()
        .filter(|m| under.is_none_or(|u| m.mountpoint.starts_with(u)) && is_stale(m))
        .collect())
}

/// Detaches one stale mount; whether it is gone.
pub fn detach(m: &OurMount) -> bool {
    super::detach(&m.mountpoint, None)
}

/// Detaches every stale mount of ours (only those under `under`, when given) and
/// returns the mount points detached and the failures.
pub fn cleanup(under: Option<&Path>) -> (Vec<PathBuf>, Vec<String>) {
    let found = match find_stale(under) {
        Ok(f) => f,
        Err(e) => return (vec![], vec![e.to_string()]),
    };
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for m in found {
        if detach(&m) {
            tracing::info!(
                "detached the stale mount {} of run {} (its agent is gone)",
                m.mountpoint.display(),
                m.run_id
            );
            done.push(m.mountpoint);
        } else {
            failed.push(format!(
                "cannot detach the stale mount {} of run {}",
                m.mountpoint.display(),
                m.run_id
            ));
        }
    }
    (done, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_mounts_only() {
        let table = "\
proc /proc proc rw,nosuid 0 0
stagehand:20261126T0300-abc:4242 /runs/r1/inputs/train/data fuse rw,nosuid,nodev,relatime,user_id=0,group_id=0,allow_other 0 0
stagehand:odd\\040run:77 /runs/with\\040space fuse.stagehand ro 0 0
sshfs#host:/x /mnt/x fuse.sshfs rw 0 0
stagehand:notfuse /x ext4 rw 0 0
";
        let got = parse(table);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].run_id, "20261126T0300-abc");
        assert_eq!(got[0].pid, Some(4242));
        assert_eq!(
            got[0].mountpoint,
            PathBuf::from("/runs/r1/inputs/train/data")
        );
        assert_eq!(got[1].run_id, "odd run");
        assert_eq!(got[1].mountpoint, PathBuf::from("/runs/with space"));
    }

    #[test]
    fn our_own_mounts_are_never_stale_and_dead_agents_are() {
        let me = OurMount {
            source: String::new(),
            mountpoint: "/x".into(),
            run_id: "r".into(),
            pid: Some(std::process::id() as i32),
        };
        assert!(!is_stale(&me));
        // A process that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id() as i32;
        child.wait().unwrap();
        assert!(is_stale(&OurMount {
            pid: Some(dead),
            ..me.clone()
        }));
        // Pid 0 is no agent.
        assert!(is_stale(&OurMount {
            pid: Some(0),
            ..me.clone()
        }));
        assert!(is_stale(&OurMount { pid: None, ..me }));
    }
}
