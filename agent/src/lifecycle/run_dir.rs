//! The run folder across runs: which job owns the outputs in it, and what is removed
//! once a run has succeeded.
//!
//! A run id names a folder, and a folder holds outputs that the next run with that id
//! uploads. A requeued job (same spec, same id: Slurm's `slurm-<job>`) must find its
//! checkpoints there and resume; another job given the same `--run-id` must not upload
//! them as its own. So the folder names its job (`job.digest`: a digest of the job
//! spec), and a different job moves the earlier outputs aside, under `superseded/`,
//! rather than deleting them.
//!
//! After a successful run, its staged inputs (download copies) and uploaded outputs
//! are removed; logs, events and the records of what moved stay (`gc --older-than`
//! removes those later). Removal never leaves the run folder: a target must lie under
//! it through real folders (no symlink on the way), a symlink is removed as a link and
//! never followed, and a tree with a mount point in it (a bind, a FUSE mount that did
//! not come down) is left whole.

use crate::plan::{DataPlan, Loaded, Plan};
use stagehand_protocol::Mode;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use thiserror::Error;

/// The file naming the job that owns the run folder's outputs.
pub const JOB_FILE: &str = "job.digest";

/// Where another job's outputs are moved, under the run folder.
pub const SUPERSEDED: &str = "superseded";

/// Claiming or cleaning the run folder failed.
#[derive(Debug, Error)]
pub enum RunDirError {
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A path that is not inside the run folder through real folders.
    #[error("left {} in place: {why}", path.display())]
    Outside {
        /// The path.
        path: PathBuf,
        /// Why.
        why: &'static str,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError {
    let path = path.to_path_buf();
    move |source| RunDirError::Io {
        action,
        path,
        source,
    }
}

/// The digest naming a job: SHA-256 of its spec as resolved (JSON), hex.
pub fn digest(loaded: &Loaded) -> String {
    let json = serde_json::to_vec(&loaded.job.value).unwrap_or_default();
    crate::digest::sha256_hex(&json)
}

/// Names the job `digest` as the owner of the run folder's outputs. When another job
/// (or an agent that did not name one) owned them, this job's output paths under the
/// run folder and the record of uploads are moved to `superseded/<theirs>-<n>/`,
/// and that folder is returned, for a warning.
pub fn claim(plan: &Plan, digest: &str) -> Result<Option<PathBuf>, RunDirError> {
    let run_dir = &plan.run_dir;
    let file = run_dir.join(JOB_FILE);
    let theirs = std::fs::read_to_string(&file)
        .ok()
        .map(|t| t.trim().to_string());
    let mut aside = None;
    if theirs.as_deref() != Some(digest) {
        let mut present: Vec<PathBuf> = plan
            .outputs
            .iter()
            .map(|o| o.local_path.clone())
            .chain([run_dir.join(crate::transfer::record::FILE)])
            .filter(|p| inside(run_dir, p).is_ok() && std::fs::symlink_metadata(p).is_ok())
            .collect();
        present.sort();
        present.dedup();
        // A nested output moves with its parent.
        let mut tops: Vec<PathBuf> = Vec::new();
        for p in present {
            if !tops.iter().any(|t| p.starts_with(t)) {
                tops.push(p);
            }
        }
        if !tops.is_empty() {
            let name = theirs
                .as_deref()
                .map_or("unknown", |t| &t[..t.len().min(12)]);
            let base = run_dir.join(SUPERSEDED);
            let dir = (1..)
                .map(|n| base.join(format!("{name}-{n}")))
                .find(|d| std::fs::symlink_metadata(d).is_err())
                .unwrap_or_else(|| base.join(name));
            for p in tops {
                let rel = p.strip_prefix(run_dir).unwrap_or(&p);
                let to = dir.join(rel);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
                }
                std::fs::rename(&p, &to).map_err(io("cannot move aside", &p))?;
            }
            aside = Some(dir);
        }
    }
    if theirs.as_deref() != Some(digest) {
        crate::partial::write_file(&file, format!("{digest}\n").as_bytes())
            .map_err(io("cannot write", &file))?;
    }
    Ok(aside)
}

/// What [`clean`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Files (and links) removed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// After a successful run: removes the download copies of its inputs and the outputs
/// in `uploaded` from the run folder. What cannot be removed safely is left, and said.
pub fn clean(plan: &Plan, uploaded: &[&DataPlan]) -> (Removed, Vec<RunDirError>) {
    let mut removed = Removed::default();
    let mut problems = Vec::new();
    let staged = plan.inputs.iter().filter(|d| d.mode == Mode::Download);
    for d in staged.chain(uploaded.iter().copied()) {
        let p = &d.local_path;
        // Outside the run folder (an absolute `path_on_compute`): not the run's to remove.
        if !p.starts_with(&plan.run_dir) || std::fs::symlink_metadata(p).is_err() {
            continue;
        }
        match inside(&plan.run_dir, p).and_then(|()| remove(p)) {
            Ok(r) => {
                removed.files += r.files;
                removed.bytes += r.bytes;
            }
            Err(e) => problems.push(e),
        }
    }
    (removed, problems)
}

/// Whether `p` lies strictly under `run_dir` through real folders: no `..`, and no
/// symlink between the two (which would make removing `p` remove something elsewhere).
fn inside(run_dir: &Path, p: &Path) -> Result<(), RunDirError> {
    let outside = |why| RunDirError::Outside {
        path: p.to_path_buf(),
        why,
    };
    let rel = p
        .strip_prefix(run_dir)
        .map_err(|_| outside("it is not in the run folder"))?;
    let parts: Vec<Component> = rel.components().collect();
    if parts.is_empty() || parts.iter().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(outside("it is not in the run folder"));
    }
    let mut at = run_dir.to_path_buf();
    for c in &parts[..parts.len() - 1] {
        at.push(c);
        let m = std::fs::symlink_metadata(&at).map_err(io("cannot read", &at))?;
        if !m.is_dir() {
            return Err(outside("a folder on its way is a link"));
        }
    }
    Ok(())
}

/// Removes `p` (a file, a link, or a folder and all in it) without following any
/// link; a folder with a mount point in it is left whole.
fn remove(p: &Path) -> Result<Removed, RunDirError> {
    let m = std::fs::symlink_metadata(p).map_err(io("cannot read", p))?;
    if !m.is_dir() {
        std::fs::remove_file(p).map_err(io("cannot remove", p))?;
        return Ok(Removed {
            files: 1,
            bytes: if m.is_file() { m.len() } else { 0 },
        });
    }
    let counted = count(p, m.dev())?;
    // remove_dir_all removes links as links and never follows them.
    std::fs::remove_dir_all(p).map_err(io("cannot remove", p))?;
    Ok(counted)
}

/// The files under the folder `dir` on device `dev`; an error at a mount point.
fn count(dir: &Path, dev: u64) -> Result<Removed, RunDirError> {
    let mut out = Removed::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io("cannot list", &d))? {
            let e = e.map_err(io("cannot list", &d))?;
            let path = e.path();
            let m = std::fs::symlink_metadata(&path).map_err(io("cannot read", &path))?;
            if m.is_dir() {
                if m.dev() != dev {
                    return Err(RunDirError::Outside {
                        path,
                        why: "something is mounted there",
                    });
                }
                stack.push(path);
            } else {
                out.files += 1;
                if m.is_file() {
                    out.bytes += m.len();
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link in the run folder is removed as a link: what it points to stays.
    #[test]
    fn removal_never_follows_a_link_out_of_the_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (run, elsewhere) = (dir.path().join("run"), dir.path().join("elsewhere"));
        std::fs::create_dir_all(run.join("inputs/x/sub")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("precious"), b"keep").unwrap();
        std::fs::write(run.join("inputs/x/sub/a"), b"abc").unwrap();
        std::os::unix::fs::symlink(&elsewhere, run.join("inputs/x/link")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, run.join("inputs/y")).unwrap();
        let r = remove(&run.join("inputs/x")).unwrap();
        assert_eq!(r, Removed { files: 2, bytes: 3 });
        assert!(!run.join("inputs/x").exists());
        assert_eq!(std::fs::read(elsewhere.join("precious")).unwrap(), b"keep");
        // A path reached through a link is refused, not removed.
        assert!(inside(&run, &run.join("inputs/y/precious")).is_err());
        assert!(inside(&run, &run.join("../elsewhere")).is_err());
        assert!(inside(&run, &run).is_err());
        assert!(inside(&run, &run.join("inputs/y")).is_ok());
        remove(&run.join("inputs/y")).unwrap();
        assert_eq!(std::fs::read(elsewhere.join("precious")).unwrap(), b"keep");
    }
}
