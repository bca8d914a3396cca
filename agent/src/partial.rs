//! Partial files: where a file is written before it is complete. Every writer that
//! lands a file under a final name (downloads, the download manifest, the local store's
//! uploads) writes it under a name from here, in the same folder, and renames it once
//! it is whole, so no file under its final name is ever partial.
//!
//! The names are marked (`.NAME.stagehand-partial-PID-N`) so that a person, or a later
//! clean-up, can tell them from data. This module never renames over a path it was not
//! asked to.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary name beside `dest`, unique within this process, marked as partial.
pub fn temp_name(dest: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let base = dest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(
        ".{base}.stagehand-partial-{}-{n}",
        std::process::id()
    ))
}

/// The temporary name beside `dest` of a download that can resume inside the file: the
/// same in every run (no pid), so that the next run finds what this one left
/// (`.NAME.stagehand-partial-resume`).
pub fn resume_name(dest: &Path) -> PathBuf {
    let base = dest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{base}.stagehand-partial-resume"))
}

/// Whether `p` is a resumable partial file's name ([`resume_name`]): what it holds may
/// be kept by the next run.
pub fn is_resume_name(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".stagehand-partial-resume"))
}

/// Writes `bytes` to `dest` whole or not at all: beside it under a temporary name, then
/// renamed over it. A reader sees the old file or the new one, never half of one.
pub fn write_file(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = TempFile::beside(dest);
    std::fs::write(tmp.path(), bytes)?;
    tmp.persist(dest)
}

/// A temporary file that is deleted unless it was renamed into place (or, for a
/// resumable one, kept for the next run).
pub struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    /// A new temporary name beside `dest` (nothing is created yet).
    pub fn beside(dest: &Path) -> TempFile {
        TempFile {
            path: temp_name(dest),
            kept: false,
        }
    }

    /// The resumable temporary name beside `dest` ([`resume_name`]): kept when dropped,
    /// since what it holds is the next run's head start; [`TempFile::discard`] removes it.
    pub fn resumable(dest: &Path) -> TempFile {
        TempFile {
            path: resume_name(dest),
            kept: true,
        }
    }

    /// Removes the file now, whatever kind it is.
    pub fn discard(mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.kept = true;
    }

    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `dest`, replacing what was there.
    pub fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, dest)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Deletes temporary files (`.NAME.stagehand-partial-PID-N`) left by a process that is
/// gone, in `dir` (and below it when `recursive`). Files of live processes are kept:
/// another download may be writing them.
pub fn remove_stale(dir: &Path, recursive: bool) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if ft.is_dir() {
            if recursive {
                remove_stale(&e.path(), true);
            }
            continue;
        }
        let Some((_, tail)) = name.rsplit_once(".stagehand-partial-") else {
            continue;
        };
        let Some(pid) = tail.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() as i32
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if name.starts_with('.') && !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unpersisted_file_is_removed_and_a_persisted_one_lands() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("data.bin");
        let t = TempFile::beside(&dest);
        std::fs::write(t.path(), b"half").unwrap();
        let name = t.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".data.bin.stagehand-partial-"), "{name}");
        drop(t);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let t = TempFile::beside(&dest);
        std::fs::write(t.path(), b"whole").unwrap();
        t.persist(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
