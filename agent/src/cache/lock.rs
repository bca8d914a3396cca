//! The per-entry lock: an exclusive `flock` on `<key>.lock`. Whoever holds it may
//! fetch, check, link or evict that entry; everyone else who needs the entry waits. The
//! kernel releases a `flock` when its holder dies, so a killed agent never leaves an
//! entry locked (what it half-fetched stays, and the next holder resumes it).
//!
//! Lock files are removed with their entry (by its holder). A waiter that then gets the
//! lock holds it on a file no longer in the folder, so after locking it checks that the
//! path still names the file it locked, and otherwise starts over on the new one.

use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A held lock; dropping it releases the lock.
pub struct EntryLock {
    _held: Flock<File>,
    path: PathBuf,
}

impl std::fmt::Debug for EntryLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntryLock({})", self.path.display())
    }
}

impl EntryLock {
    /// Waits for the lock on `path` (created if missing) and takes it.
    pub fn wait(path: &Path) -> std::io::Result<EntryLock> {
        Self::take(path, FlockArg::LockExclusive).map(|l| l.expect("a blocking lock is taken"))
    }

    /// Takes the lock on `path` if nobody holds it; `None` when somebody does.
    pub fn try_take(path: &Path) -> std::io::Result<Option<EntryLock>> {
        Self::take(path, FlockArg::LockExclusiveNonblock)
    }

    /// Removes the lock file (its entry is gone); the lock is released on drop. A waiter
    /// that then gets this lock sees that the path names another file, or none, and
    /// locks afresh.
    pub fn remove_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn take(path: &Path, how: FlockArg) -> std::io::Result<Option<EntryLock>> {
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            let held = match Flock::lock(file, how) {
                Ok(h) => h,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, e)) => return Err(e.into()),
            };
            let mine = held.metadata()?;
            let named = std::fs::metadata(path).ok();
            if named.is_some_and(|n| n.ino() == mine.ino() && n.dev() == mine.dev()) {
                return Ok(Some(EntryLock {
                    _held: held,
                    path: path.to_path_buf(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn one_holder_at_a_time_and_a_waiter_gets_it_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.lock");
        let held = EntryLock::wait(&p).unwrap();
        // flock conflicts between open files, even in one process.
        assert!(EntryLock::try_take(&p).unwrap().is_none());
        let (tx, rx) = mpsc::channel();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            let l = EntryLock::wait(&p2).unwrap();
            tx.send(()).unwrap();
            l
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(held);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let second = waiter.join().unwrap();
        assert!(EntryLock::try_take(&p).unwrap().is_none());
        drop(second);
        assert!(EntryLock::try_take(&p).unwrap().is_some());
    }

    #[test]
    fn a_waiter_on_a_removed_lock_file_locks_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.lock");
        let held = EntryLock::wait(&p).unwrap();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || EntryLock::wait(&p2).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        held.remove_file();
        drop(held);
        let got = waiter.join().unwrap();
        // The waiter holds the file now at the path: nobody else can take it.
        assert!(p.exists());
        assert!(EntryLock::try_take(&p).unwrap().is_none());
        drop(got);
    }

    #[test]
    fn a_dead_holder_leaves_nothing_held() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.lock");
        // A child process takes the lock (its shell becomes `sleep`, holding the file) and
        // is killed.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "exec 9>\"$0\" && flock 9 && exec sleep 30"])
            .arg(&p)
            .spawn()
            .unwrap();
        let taken = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            EntryLock::try_take(&p).unwrap().is_none()
        });
        assert!(taken, "the child never took the lock");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(EntryLock::try_take(&p).unwrap().is_some());
    }
}
