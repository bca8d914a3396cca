//! `stagehand gc`: removes what agents that died before their teardown (SIGKILL, OOM
//! killer, a lost node) left on this node. One function per kind of resource, each
//! deciding by the owner recorded with the resource (see `owner.rs`); `all` runs them
//! in the order that is safe (job processes and containers, then mounts, then run
//! folders).
//!
//! It must never remove what belongs to a live agent or to an agent on another host,
//! never kill a process by a pid alone (pids are reused: the start time must match),
//! and never follow a mount out of a run folder it deletes.

use crate::owner::{
    read_job_groups, JobGroup, Liveness, Owner, JOB_FILE, LABEL_JOB, LABEL_RUN_ID, RUN_DIR_FILE,
};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What `stagehand gc` may remove.
#[derive(Debug, Clone)]
pub struct Options {
    /// Report only; remove nothing.
    pub dry_run: bool,
    /// The folder holding run folders.
    pub runs_dir: PathBuf,
    /// Remove run folders of dead agents untouched for this long; `None` keeps them all.
    pub older_than: Option<Duration>,
}

/// What was done, one line per resource, for a person.
#[derive(Debug, Default)]
pub struct Report {
    /// Removed (or, in a dry run, would be).
    pub removed: Vec<String>,
    /// Left alone, with the reason, where the reason is worth saying.
    pub kept: Vec<String>,
    /// Could not be removed or checked.
    pub failed: Vec<String>,
}

/// Runs every kind of clean-up.
pub async fn all(opts: &Options) -> Report {
    let mut report = Report::default();
    jobs(opts, &mut report);
    containers(opts, &mut report).await;
    // Before run folders: a run folder with a mount under it is never deleted (see
    // `remove_tree`).
    mounts(opts, &mut report);
    run_folders(opts, &mut report);
    report
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Removes containers labelled by stagehand whose agent is gone.
pub async fn containers(opts: &Options, report: &mut Report) {
    let docker = match crate::run::engine::connect().await {
        Ok(d) => d,
        Err(e) => {
            report.kept.push(format!("containers not checked: {e}"));
            return;
        }
    };
    let filters = HashMap::from([("label", vec![LABEL_RUN_ID])]);
    let list = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let found = match docker.list_containers(Some(list)).await {
        Ok(l) => l,
        Err(e) => {
            report.failed.push(format!("cannot list containers: {e}"));
            return;
        }
    };
    for c in found {
        let id = c.id.unwrap_or_default();
        let labels = c.labels.unwrap_or_default();
        let what = format!(
            "container {} (run {}, job {})",
            short(&id),
            labels.get(LABEL_RUN_ID).map(String::as_str).unwrap_or("?"),
            labels.get(LABEL_JOB).map(String::as_str).unwrap_or("?")
        );
        let Some(owner) = Owner::from_labels(&labels) else {
            report.kept.push(format!("{what}: no agent recorded on it"));
            continue;
        };
        match owner.liveness() {
            Liveness::Alive => {}
            Liveness::Unknown(why) => report.kept.push(format!("{what}: {why}")),
            Liveness::Gone if opts.dry_run => report.removed.push(format!(
                "{what}: its agent (pid {}) is gone (dry run)",
                owner.pid
            )),
            Liveness::Gone => match crate::run::container::remove(&docker, &id).await {
                Ok(()) => report
                    .removed
                    .push(format!("{what}: its agent (pid {}) is gone", owner.pid)),
                Err(e) => report.failed.push(format!("{what}: cannot remove: {e}")),
            },
        }
    }
}

/// Kills the process groups of jobs whose agent is gone (recorded in `job.json` of the
/// run folders in `runs_dir`), when the guardian that should have killed them did not.
/// A group is killed only when it is still the one recorded: same boot, and its leader
/// runs with the recorded start time or has exited leaving only later processes.
pub fn jobs(opts: &Options, report: &mut Report) {
    let Ok(entries) = std::fs::read_dir(&opts.runs_dir) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let Some(groups) = read_job_groups(&dir.join(JOB_FILE)) else {
            continue;
        };
        let owner: Option<Owner> = std::fs::read(dir.join(RUN_DIR_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let what = |g: &JobGroup| format!("job processes (group {}) of {}", g.pgid, dir.display());
        let why_kept = match owner.as_ref().map(Owner::liveness) {
            Some(Liveness::Gone) => None,
            Some(Liveness::Alive) => continue,
            Some(Liveness::Unknown(why)) => Some(why),
            None => Some("no agent recorded".to_string()),
        };
        if let Some(why) = why_kept {
            report
                .kept
                .extend(groups.iter().map(|g| format!("{}: {why}", what(g))));
            continue;
        }
        let mut all_gone = true;
        for group in &groups {
            all_gone &= kill_orphan_group(group, &what(group), opts, report);
        }
        if all_gone && !opts.dry_run {
            let _ = std::fs::remove_file(dir.join(JOB_FILE));
        }
    }
}

/// Kills one recorded group of a job whose agent is gone, if it is still the group that
/// was recorded (same boot, same leader or only later processes). Whether the group is
/// gone now.
fn kill_orphan_group(group: &JobGroup, what: &str, opts: &Options, report: &mut Report) -> bool {
    let here = group.boot_id == crate::linux::boot_id()
        && crate::run::guard::same_group(group.pgid, group.start)
        && crate::linux::group_alive(group.pgid);
    if !here {
        // Gone already (or the pgid is another group's now): only the record is left.
        return true;
    }
    if opts.dry_run {
        report
            .removed
            .push(format!("{what}: its agent is gone (dry run)"));
        false
    } else if crate::run::guard::kill_group(group.pgid, group.start) {
        report
            .removed
            .push(format!("{what}: its agent is gone; killed"));
        true
    } else {
        report.failed.push(format!("{what}: cannot kill it"));
        false
    }
}

/// Detaches stagehand's FUSE mounts whose agent is gone, wherever they are (a run
/// folder may live outside `runs_dir`); see `mount::stale`.
pub fn mounts(opts: &Options, report: &mut Report) {
    use crate::mount::stale;
    let found = match stale::find_stale(None) {
        Ok(f) => f,
        Err(e) => {
            report.failed.push(format!("mounts not checked: {e}"));
            return;
        }
    };
    for m in found {
        let what = format!("mount {} (run {})", m.mountpoint.display(), m.run_id);
        let pid = m.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
        if opts.dry_run {
            report
                .removed
                .push(format!("{what}: its agent (pid {pid}) is gone (dry run)"));
        } else if stale::detach(&m) {
            report
                .removed
                .push(format!("{what}: its agent (pid {pid}) is gone; detached"));
        } else {
            report.failed.push(format!("{what}: cannot detach it"));
        }
    }
}

/// The latest time anything the run wrote changed.
fn last_touched(dir: &Path) -> Option<SystemTime> {
    [
        dir.to_path_buf(),
        dir.join(RUN_DIR_FILE),
        dir.join("logs/stdout.log"),
        dir.join("logs/stderr.log"),
    ]
    .iter()
    .filter_map(|p| std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok())
    .max()
}

/// Removes run folders whose agent is gone and that nothing touched for `older_than`.
pub fn run_folders(opts: &Options, report: &mut Report) {
    let Some(age) = opts.older_than else { return };
    let Ok(entries) = std::fs::read_dir(&opts.runs_dir) else {
        return;
    };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let dir = e.path();
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let what = format!("run folder {}", dir.display());
        let owner: Option<Owner> = std::fs::read(dir.join(RUN_DIR_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if owner.is_none() && !dir.join("logs").is_dir() {
            continue; // Not a run folder.
        }
        match owner.as_ref().map(Owner::liveness) {
            Some(Liveness::Alive) => continue,
            Some(Liveness::Unknown(why)) => {
                report.kept.push(format!("{what}: {why}"));
                continue;
            }
            Some(Liveness::Gone) | None => {}
        }
        let idle = last_touched(&dir)
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        if idle < age {
            continue;
        }
        let why = format!(
            "unused for {}",
            humantime::format_duration(Duration::from_secs(idle.as_secs()))
        );
        if opts.dry_run {
            report.removed.push(format!("{what}: {why} (dry run)"));
            continue;
        }
        match remove_tree(&dir) {
            Ok(()) => report.removed.push(format!("{what}: {why}")),
            Err(e) => report.failed.push(format!("{what}: {e}")),
        }
    }
}

/// Why a folder tree could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read`, `list` or `remove`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another filesystem is mounted inside the tree.
    #[error("{} is a mount point; unmount it first", path.display())]
    MountPoint {
        /// The mount point.
        path: PathBuf,
    },
}

/// Deletes a folder tree, refusing to descend into another filesystem: a mount left
/// under a run folder (a FUSE view of a datastore) must be unmounted, not emptied.
pub fn remove_tree(dir: &Path) -> Result<(), RemoveError> {
    let dev = std::fs::symlink_metadata(dir)
        .map_err(io("read", dir))?
        .dev();
    fn walk(p: &Path, dev: u64) -> Result<(), RemoveError> {
        let meta = std::fs::symlink_metadata(p).map_err(io("read", p))?;
        if meta.dev() != dev {
            return Err(RemoveError::MountPoint {
                path: p.to_path_buf(),
            });
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(p).map_err(io("list", p))? {
                walk(&e.map_err(io("list", p))?.path(), dev)?;
            }
            std::fs::remove_dir(p).map_err(io("remove", p))
        } else {
            std::fs::remove_file(p).map_err(io("remove", p))
        }
    }
    walk(dir, dev)
}

/// The error of `action` on `path`, for `map_err`.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RemoveError {
    let path = path.to_path_buf();
    move |source| RemoveError::Io {
        action,
        path,
        source,
    }
}

/// Prints what `gc` did; 70 when something could not be removed.
pub(crate) fn print_report(report: &Report) -> i32 {
    let mut lines: Vec<String> = report
        .removed
        .iter()
        .map(|r| format!("removed {r}"))
        .collect();
    lines.extend(report.kept.iter().map(|k| format!("kept {k}")));
    if report.removed.is_empty() && report.failed.is_empty() {
        lines.push("nothing to remove".into());
    }
    for f in &report.failed {
        let _ = crate::console::errln(&format!("stagehand: {f}"));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    match (super::printed(&text), report.failed.is_empty()) {
        (0, true) => 0,
        (0, false) => crate::outcome::Failure::Internal.exit_code(),
        (code, _) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_folder(root: &Path, name: &str, owner: &Owner) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(d.join("logs")).unwrap();
        std::fs::write(d.join("logs/stdout.log"), "x").unwrap();
        std::fs::write(d.join(RUN_DIR_FILE), serde_json::to_vec(owner).unwrap()).unwrap();
        d
    }

    #[test]
    fn old_run_folders_of_dead_agents_go_and_live_ones_stay() {
        let root = tempfile::tempdir().unwrap();
        let me = Owner::current();
        let live = run_folder(root.path(), "live", &me);
        let dead = run_folder(
            root.path(),
            "dead",
            &Owner {
                start: me.start + 1,
                ..me.clone()
            },
        );
        let other = root.path().join("not-a-run");
        std::fs::create_dir_all(&other).unwrap();
        let opts = Options {
            dry_run: false,
            runs_dir: root.path().into(),
            older_than: Some(Duration::ZERO),
        };
        let mut report = Report::default();
        run_folders(&opts, &mut report);
        assert!(live.exists() && other.exists());
        assert!(!dead.exists(), "{report:?}");
        assert_eq!(report.removed.len(), 1);
    }

    #[test]
    fn without_older_than_no_run_folder_is_touched() {
        let root = tempfile::tempdir().unwrap();
        let me = Owner::current();
        let dead = run_folder(
            root.path(),
            "dead",
            &Owner {
                start: me.start + 1,
                ..me
            },
        );
        let opts = Options {
            dry_run: false,
            runs_dir: root.path().into(),
            older_than: None,
        };
        run_folders(&opts, &mut Report::default());
        assert!(dead.exists());
    }
}
