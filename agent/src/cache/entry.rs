//! One cache entry: the object's bytes in `<key>` (read-only) and its record in
//! `<key>.json`: where it came from, its size, and the inode, ctime and mtime the file
//! had after its last link was made, under the entry's lock.
//!
//! An entry is served only when it is whole and unchanged. The check is cheap: the same
//! size, inode and ctime as recorded (any write, chmod or link through any name of the
//! inode moves its ctime, and nothing but the entry's lock holder links it). A moved
//! ctime with the same mtime on a file nobody may write is a link made or removed (a
//! run folder cleaned up, or a run's link deleted): the bytes are as they were.
//! Anything else (written, or made writable) and the entry is thrown away and fetched
//! again.
//!
//! No hash of the bytes is taken when an entry is fetched: it would be a second pass
//! over every byte (a 1 GiB blob took half again as long through the cache as without
//! it), and it would only ever decide the case "made writable, or written, yet the same
//! bytes", which a job that chmods its input causes and nothing else, and which costs
//! one fetch again. The bytes an entry holds are the bytes fetched because the fetch
//! wrote them under a temporary name, made them read-only and renamed them under the
//! lock, and from then on only a write (which moves the mtime) or a chmod (which leaves
//! the file writable) can change them; both fail the check. Records of older agents
//! carry a SHA-256 (`sha256`): such an entry that fails the cheap check is hashed again
//! once and kept when its bytes match. A writer that restores the old mtime by hand
//! (`touch -d`) and the read-only mode after writing through a hard link is not caught;
//! writing goes through a chmod first, and a reflink or copy gives the job a file of
//! its own.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What is recorded beside an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// The store (its [`crate::store::Store::cache_identity`]).
    pub store: String,
    /// The object's path in the store.
    pub path: String,
    /// Its version (ETag).
    pub version: String,
    /// Its size.
    pub size: u64,
    /// SHA-256 of the bytes, hex, in the records of earlier agents, which hashed every
    /// entry; empty (and not written) since: see the module's comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// The entry file's inode after the last link was made.
    pub ino: u64,
    /// Its ctime (ns) then.
    pub ctime_ns: i128,
    /// Its mtime (ns) then (0 in records of agents before it: they hash again once).
    #[serde(default)]
    pub mtime_ns: i128,
    /// When a run last used it (ms since the epoch): the eviction order.
    pub used_ms: u64,
}

/// What a check of an entry found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Whole and unchanged since it was recorded.
    Good,
    /// Its bytes were hashed again against an older agent's recorded SHA-256 and are
    /// the same (something touched the inode).
    Rehashed,
    /// Missing, another size, or other bytes: not to be served.
    Bad,
}

/// The paths of the entry `key` in `dir`.
pub fn data_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(key)
}

/// The record's path.
pub fn record_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

/// The lock file's path.
pub fn lock_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.lock"))
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ctime_ns(m: &std::fs::Metadata) -> i128 {
    m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

impl EntryRecord {
    /// Reads the record of `key`; `None` when missing or unreadable (the entry is then
    /// thrown away).
    pub fn load(dir: &Path, key: &str) -> Option<EntryRecord> {
        let bytes = std::fs::read(record_path(dir, key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the record (beside, then renamed).
    pub fn save(&self, dir: &Path, key: &str) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::partial::write_file(&record_path(dir, key), &bytes)
    }

    /// Records the entry file's inode and ctime as they are now, and its use now: called
    /// under the entry's lock, after linking it.
    pub fn stamp(&mut self, data: &Path) -> std::io::Result<()> {
        let m = std::fs::metadata(data)?;
        self.ino = m.ino();
        self.ctime_ns = ctime_ns(&m);
        self.mtime_ns = mtime_ns(&m);
        self.used_ms = now_ms();
        Ok(())
    }

    /// Checks the entry's file `data` against this record (see the module's comment).
    /// A rehash that matches makes the file read-only again; the caller stamps and saves.
    pub fn check(&self, data: &Path) -> Verdict {
        let Ok(m) = std::fs::metadata(data) else {
            return Verdict::Bad;
        };
        if m.len() != self.size {
            return Verdict::Bad;
        }
        if m.ino() == self.ino && ctime_ns(&m) == self.ctime_ns {
            return Verdict::Good;
        }
        let writable = m.mode() & 0o222 != 0;
        if m.ino() == self.ino && mtime_ns(&m) == self.mtime_ns && !writable {
            return Verdict::Good;
        }
        if self.sha256.is_empty() {
            // Nothing to prove the bytes by: the cache never serves what it cannot.
            return Verdict::Bad;
        }
        match crate::digest::sha256_file(data) {
            Ok(h) if h == self.sha256 => {
                let _ = make_read_only(data);
                Verdict::Rehashed
            }
            _ => Verdict::Bad,
        }
    }
}

/// Clears every write bit of `path`.
pub fn make_read_only(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry as an earlier agent recorded it, with the SHA-256 of its bytes.
    fn entry(dir: &Path, bytes: &[u8]) -> EntryRecord {
        let data = data_path(dir, "k");
        std::fs::write(&data, bytes).unwrap();
        let sha256 = crate::digest::sha256_file(&data).unwrap();
        recorded(dir, bytes, sha256)
    }

    /// An entry as this agent records it: no hash.
    fn fresh(dir: &Path, bytes: &[u8]) -> EntryRecord {
        recorded(dir, bytes, String::new())
    }

    fn recorded(dir: &Path, bytes: &[u8], sha256: String) -> EntryRecord {
        let data = data_path(dir, "k");
        std::fs::write(&data, bytes).unwrap();
        make_read_only(&data).unwrap();
        let mut r = EntryRecord {
            store: "blob:x".into(),
            path: "f".into(),
            version: "v".into(),
            size: bytes.len() as u64,
            sha256,
            ino: 0,
            ctime_ns: 0,
            mtime_ns: 0,
            used_ms: 0,
        };
        r.stamp(&data).unwrap();
        r.save(dir, "k").unwrap();
        r
    }

    #[test]
    fn an_untouched_entry_is_good_and_a_changed_one_is_bad() {
        let dir = tempfile::tempdir().unwrap();
        let r = entry(dir.path(), b"0123456789");
        let data = data_path(dir.path(), "k");
        assert_eq!(EntryRecord::load(dir.path(), "k").unwrap(), r);
        assert_eq!(r.check(&data), Verdict::Good);
        // Same size, other bytes, written through the inode (as a job through a hard
        // link would, after chmod +w).
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&data, b"0123456780").unwrap();
        assert_eq!(r.check(&data), Verdict::Bad);
        std::fs::write(&data, b"short").unwrap();
        assert_eq!(r.check(&data), Verdict::Bad);
        std::fs::remove_file(&data).unwrap();
        assert_eq!(r.check(&data), Verdict::Bad);
    }

    /// A run folder cleaned up unlinks its hard link: the ctime moves, nothing else.
    #[test]
    fn a_link_made_or_removed_is_good_without_hashing_again() {
        let dir = tempfile::tempdir().unwrap();
        let r = entry(dir.path(), b"0123456789");
        let data = data_path(dir.path(), "k");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let link = dir.path().join("run-link");
        std::fs::hard_link(&data, &link).unwrap();
        std::fs::remove_file(&link).unwrap();
        let m = std::fs::metadata(&data).unwrap();
        assert_ne!(ctime_ns(&m), r.ctime_ns, "the link moved the ctime");
        assert_eq!(r.check(&data), Verdict::Good);
    }

    #[test]
    fn an_earlier_agents_entry_touched_with_the_same_bytes_is_rehashed_and_made_read_only_again() {
        let dir = tempfile::tempdir().unwrap();
        let r = entry(dir.path(), b"0123456789");
        let data = data_path(dir.path(), "k");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(r.check(&data), Verdict::Rehashed);
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
    }

    /// A fresh entry has no hash: whatever fails the cheap check is never served, even
    /// when the bytes might be the same, and a link made or removed still costs nothing.
    #[test]
    fn a_fresh_entry_written_or_made_writable_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let r = fresh(dir.path(), b"0123456789");
        let data = data_path(dir.path(), "k");
        let json = std::fs::read_to_string(record_path(dir.path(), "k")).unwrap();
        assert!(!json.contains("sha256"), "{json}");
        assert_eq!(EntryRecord::load(dir.path(), "k").unwrap(), r);
        assert_eq!(r.check(&data), Verdict::Good);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let link = dir.path().join("run-link");
        std::fs::hard_link(&data, &link).unwrap();
        std::fs::remove_file(&link).unwrap();
        assert_eq!(r.check(&data), Verdict::Good);
        // Made writable: the bytes cannot be proven, so the entry is not served.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(r.check(&data), Verdict::Bad);
        // Written with the same size and made read-only again: the mtime moved.
        std::fs::write(&data, b"0123456780").unwrap();
        make_read_only(&data).unwrap();
        assert_eq!(r.check(&data), Verdict::Bad);
    }
}
