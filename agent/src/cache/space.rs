//! What the cache holds and what may go: the bound counts the bytes only the cache
//! holds (entries no run folder links, half-fetched entries, and the mount's block
//! folders under `<cache>/mount/`), and eviction takes the least recently used entries
//! that nothing else links. An entry still hard-linked from a run folder is skipped:
//! removing the cache's name for it would free nothing.
//!
//! Beside the bound, a free-space floor: the cache never makes the file system's free
//! space drop below [`floor`], whatever the bound says.

use super::entry;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One entry, as eviction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryUse {
    /// Its key.
    pub key: String,
    /// Its bytes.
    pub size: u64,
    /// When it was last used (ms since the epoch).
    pub used_ms: u64,
    /// Names of its inode: 1 when only the cache holds it.
    pub links: u64,
}

/// What is in the cache's folder.
#[derive(Debug, Default)]
pub struct Usage {
    /// The entries.
    pub entries: Vec<EntryUse>,
    /// Bytes of entries being fetched (or left half-fetched by a dead agent).
    pub partial_bytes: u64,
    /// Bytes of the mount's block folders.
    pub mount_bytes: u64,
}

/// Whether `name` is an entry's key (its data file's name).
pub fn is_key(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Usage {
    /// Reads the entries of `dir` and the mount's folders under `mount`.
    pub fn scan(dir: &Path, mount: &Path) -> Usage {
        let mut u = Usage {
            mount_bytes: allocated_under(mount),
            ..Usage::default()
        };
        let Ok(rd) = std::fs::read_dir(dir) else {
            return u;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(m) = e.metadata() else { continue };
            if name.contains(".stagehand-partial-") {
                u.partial_bytes += m.blocks() * 512;
            } else if is_key(&name) {
                // The record is rewritten at every use: its mtime is the last use
                // (one stat, not a read, per entry).
                let used =
                    std::fs::metadata(entry::record_path(dir, &name)).unwrap_or_else(|_| m.clone());
                let used_ms =
                    used.mtime().max(0) as u64 * 1000 + used.mtime_nsec().max(0) as u64 / 1_000_000;
                u.entries.push(EntryUse {
                    key: name,
                    size: m.len(),
                    used_ms,
                    links: m.nlink(),
                });
            }
        }
        u
    }

    /// Bytes only the cache holds (what the bound counts).
    pub fn held(&self) -> u64 {
        let alone: u64 = self
            .entries
            .iter()
            .filter(|e| e.links <= 1)
            .map(|e| e.size)
            .sum();
        alone + self.partial_bytes + self.mount_bytes
    }

    /// Bytes of entries still linked from run folders.
    pub fn linked(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.links > 1)
            .map(|e| e.size)
            .sum()
    }
}

/// The entries to evict to free `need` bytes, least recently used first: only entries
/// nothing else links, never `keep`. Fewer than `need` when that is all there is.
pub fn victims<'a>(entries: &'a [EntryUse], need: u64, keep: &str) -> Vec<&'a EntryUse> {
    let mut free: Vec<&EntryUse> = entries
        .iter()
        .filter(|e| e.links <= 1 && e.key != keep)
        .collect();
    free.sort_by_key(|e| (e.used_ms, e.key.clone()));
    let mut freed = 0;
    free.into_iter()
        .take_while(|e| {
            let more = freed < need;
            freed += e.size;
            more
        })
        .collect()
}

/// Bytes allocated on disk under `dir` (sparse block files count what they hold).
pub fn allocated_under(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => allocated_under(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.blocks() * 512),
            _ => 0,
        })
        .sum()
}

/// (free bytes for this user, total bytes) of the file system holding `dir` (or, while
/// it does not exist yet, its nearest existing parent).
pub fn disk(dir: &Path) -> std::io::Result<(u64, u64)> {
    let there = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
    let s = nix::sys::statvfs::statvfs(there)?;
    let unit = s.fragment_size() as u64;
    Ok((s.blocks_available() as u64 * unit, s.blocks() as u64 * unit))
}

/// The free space the cache always leaves on its file system: 5% of it, at least
/// 256 MiB and at most 10 GiB.
pub fn floor(total: u64) -> u64 {
    (total / 20).clamp(256 << 20, 10 << 30)
}

/// The number a counter file holds; 0 when it is missing or unreadable.
pub fn read_count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Removes the entry `key` from `dir` (data, record); its lock holder calls this.
pub fn remove(dir: &Path, key: &str) {
    let _ = std::fs::remove_file(entry::data_path(dir, key));
    let _ = std::fs::remove_file(entry::record_path(dir, key));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(key: &str, size: u64, used_ms: u64, links: u64) -> EntryUse {
        EntryUse {
            key: key.into(),
            size,
            used_ms,
            links,
        }
    }

    fn keys(v: Vec<&EntryUse>) -> Vec<&str> {
        v.into_iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn eviction_takes_the_least_recently_used_first_and_only_what_is_needed() {
        let all = [
            e("new", 10, 300, 1),
            e("old", 10, 100, 1),
            e("mid", 10, 200, 1),
        ];
        assert_eq!(keys(victims(&all, 5, "")), ["old"]);
        assert_eq!(keys(victims(&all, 10, "")), ["old"]);
        assert_eq!(keys(victims(&all, 11, "")), ["old", "mid"]);
        assert_eq!(keys(victims(&all, 0, "")), Vec::<&str>::new());
        assert_eq!(keys(victims(&all, 100, "")), ["old", "mid", "new"]);
    }

    #[test]
    fn eviction_skips_linked_entries_and_the_one_being_served() {
        let all = [
            e("linked", 10, 1, 2),
            e("mine", 10, 2, 1),
            e("free", 10, 3, 1),
        ];
        assert_eq!(keys(victims(&all, 100, "mine")), ["free"]);
        let u = Usage {
            entries: all.to_vec(),
            partial_bytes: 5,
            mount_bytes: 7,
        };
        assert_eq!(u.held(), 10 + 10 + 5 + 7);
        assert_eq!(u.linked(), 10);
    }

    #[test]
    fn the_floor_is_five_percent_within_bounds() {
        assert_eq!(floor(1 << 30), 256 << 20);
        assert_eq!(floor(100 << 30), 5 << 30);
        assert_eq!(floor(1 << 40), 10 << 30);
    }

    #[test]
    fn a_scan_finds_entries_partials_and_mount_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("downloads");
        std::fs::create_dir_all(dir.path().join("mount/run-1")).unwrap();
        std::fs::create_dir_all(&d).unwrap();
        let key = "a".repeat(40);
        std::fs::write(d.join(&key), vec![1u8; 8192]).unwrap();
        std::fs::hard_link(d.join(&key), dir.path().join("link")).unwrap();
        std::fs::write(
            d.join(format!(".{}.stagehand-partial-resume", "b".repeat(40))),
            vec![1u8; 4096],
        )
        .unwrap();
        std::fs::write(dir.path().join("mount/run-1/blocks"), vec![1u8; 4096]).unwrap();
        std::fs::write(d.join(format!("{key}.lock")), b"").unwrap();
        let u = Usage::scan(&d, &dir.path().join("mount"));
        assert_eq!(u.entries.len(), 1);
        assert_eq!((u.entries[0].size, u.entries[0].links), (8192, 2));
        assert_eq!((u.partial_bytes, u.mount_bytes), (4096, 4096));
        assert_eq!(u.held(), 8192);
    }
}
