//! How a cache entry appears in a run folder without a second copy of its bytes: a
//! reflink (the `FICLONE` ioctl: a copy-on-write clone, on btrfs, XFS, bcachefs…), else a
//! hard link (same file system), else a copy (another file system, or a link refused).
//!
//! A reflink and a copy are the run's own file: a job that writes into it changes
//! nothing in the cache. A hard link shares the entry's inode: the entry is read-only
//! (0444), and a job that makes it writable and writes through it changes the inode's
//! ctime, which the next user of the entry checks ([`super::entry`]).
//!
//! The file lands under a temporary name beside `dest` and is renamed into place
//! (`partial.rs`): nothing partial under a final name.

use crate::partial::TempFile;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How an entry was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// A copy-on-write clone.
    Reflink,
    /// A hard link to the entry.
    HardLink,
    /// A plain copy.
    Copy,
}

/// Places the entry `entry` at `dest` (whose folder exists), replacing what is there.
pub fn place(entry: &Path, dest: &Path) -> std::io::Result<Placed> {
    let tmp = TempFile::beside(dest);
    let how = match reflink(entry, tmp.path()) {
        Ok(()) => Placed::Reflink,
        Err(_) => {
            let _ = std::fs::remove_file(tmp.path());
            match std::fs::hard_link(entry, tmp.path()) {
                Ok(()) => Placed::HardLink,
                Err(_) => {
                    std::fs::copy(entry, tmp.path())?;
                    Placed::Copy
                }
            }
        }
    };
    // A rename between two links of one inode does nothing (POSIX) and would leave the
    // temporary link behind: `dest` already is the entry.
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    };
    if how == Placed::HardLink && same(entry, dest) {
        return Ok(how);
    }
    tmp.persist(dest)?;
    Ok(how)
}

/// Clones `src` into the new file `dest` (`FICLONE`); an error where the file system
/// cannot (EOPNOTSUPP, EXDEV, EINVAL).
fn reflink(src: &Path, dest: &Path) -> std::io::Result<()> {
    let from = std::fs::File::open(src)?;
    let to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    // SAFETY: FICLONE takes the source descriptor as its argument; both descriptors are
    // open for the duration of the call.
    let r = unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let perm = from.metadata()?.permissions();
    to.set_permissions(perm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_entry_lands_whole_and_read_only_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("entry");
        std::fs::write(&entry, b"bytes").unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        let dest = dir.path().join("run/data.bin");
        std::fs::write(&dest, b"old").unwrap();
        let how = place(&entry, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"bytes");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o222, 0, "{how:?} left {mode:o}");
        // Again onto itself (a hard link to the same entry): still one file there.
        place(&entry, &dest).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("run")).unwrap().count(),
            1
        );
    }
}
