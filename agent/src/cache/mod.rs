//! The node cache: one folder shared by every run and every agent on the node
//! (`STAGEHAND_CACHE_DIR`), so that the same blob read by twenty array tasks, a sweep
//! or a requeued job is fetched once. Download-mode inputs from Azure datastores land
//! in `<cache>/downloads/<key>` ([`key`]: store, object name, ETag, size) and appear in
//! the run folder as a reflink, a read-only hard link or a copy ([`link`]). The mount's
//! block folders (`<cache>/mount/<run id>`, bounded by the mount itself) count towards
//! the same bound.
//!
//! Invariants:
//! - An entry is used only under its lock ([`lock`]): fetched, checked, linked or
//!   evicted by one holder at a time; the others wait, and a dead holder leaves nothing
//!   held.
//! - An entry appears under its final name only whole: it is fetched under a temporary
//!   name (`partial.rs`; the resumable one for large objects, so a requeued job resumes
//!   it), made read-only and renamed, with no second pass over its bytes.
//! - An entry whose size or inode moved, or that was written or made writable since its
//!   record, is thrown away and fetched again, never served ([`entry`]; only an earlier
//!   agent's record, which holds a SHA-256, is hashed again instead): a job that writes
//!   through its hard link cannot change what the next job reads.
//! - The bytes only the cache holds stay under the bound ([`space`]), and the file
//!   system keeps its free-space floor; least recently used entries that no run folder
//!   links go first. An object that does not fit is fetched straight into the run
//!   folder, uncached.
//!
//! This module knows files, not stores: fetching is `stage::cached`'s.

pub mod entry;
pub mod key;
pub mod link;
pub mod lock;
pub mod space;

use entry::{EntryRecord, Verdict};
use lock::EntryLock;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The bound when `STAGEHAND_CACHE_SIZE` is unset: 20 GiB (under the free-space floor
/// too).
pub const DEFAULT_SIZE: u64 = 20 << 30;

/// The node cache could not be used.
#[derive(Debug, Error)]
pub enum CacheError {
    /// A knob's value cannot be read.
    #[error("{name}={value:?} is not a size; write bytes or a size such as 20GiB or 500MB, or 0 to turn the node cache off")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A file operation in the cache failed.
    #[error("node cache: {action} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl CacheError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> CacheError {
        CacheError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The node cache's folder and bound.
#[derive(Debug, Clone)]
pub struct NodeCache {
    root: PathBuf,
    dir: PathBuf,
    bound: u64,
    budget: Arc<Mutex<Option<Budget>>>,
}

/// What this process last measured of the cache, and what it has added since: room is
/// made from it without reading the whole folder for every object (a download of
/// 10,000 small files would read it 10,000 times). Measured again when it is older than
/// [`REMEASURE`] (other agents add entries too) or says there is no room.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Bytes the cache alone holds.
    held: u64,
    /// Free bytes on its file system.
    free: u64,
    /// The free space to keep.
    floor: u64,
    /// When measured.
    at: Instant,
}

/// The evictions counter's file in the entries' folder: written beside and renamed,
/// under `.space.lock`, so it survives the agents that add to it.
const EVICTIONS: &str = ".evictions";

/// How long a measure of the cache is trusted.
const REMEASURE: Duration = Duration::from_secs(2);

/// The bound `STAGEHAND_CACHE_SIZE` names, or the default.
pub fn bound_from(setting: &crate::settings::CacheSize) -> Result<u64, CacheError> {
    match setting.get() {
        Ok(n) => Ok(n.unwrap_or(DEFAULT_SIZE)),
        Err(v) => Err(CacheError::Setting {
            name: "STAGEHAND_CACHE_SIZE",
            value: v.to_string(),
        }),
    }
}

impl NodeCache {
    /// The cache the settings name; `None` when its bound is 0 (turned off).
    pub fn from_settings() -> Result<Option<NodeCache>, CacheError> {
        let s = crate::settings::get();
        let bound = bound_from(&s.cache_size)?;
        Ok((bound > 0).then(|| NodeCache::at(&s.cache_dir, bound)))
    }

    /// The cache in `root` bounded at `bound` bytes (nothing is created yet).
    pub fn at(root: &Path, bound: u64) -> NodeCache {
        NodeCache {
            root: root.to_path_buf(),
            dir: root.join("downloads"),
            bound,
            budget: Arc::default(),
        }
    }

    /// The folder of the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bound in bytes.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// What the cache holds now.
    pub fn usage(&self) -> space::Usage {
        space::Usage::scan(&self.dir, &self.root.join("mount"))
    }

    /// Waits for the lock of the entry `key` (blocking: call off the runtime's workers),
    /// calling `busy` first when another holder has it (another run fetching it).
    pub fn lock(&self, key: &str, busy: impl FnOnce()) -> Result<EntryLock, CacheError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| CacheError::io("cannot create", &self.dir, e))?;
        let p = entry::lock_path(&self.dir, key);
        let io = |e| CacheError::io("cannot lock", &p, e);
        match EntryLock::try_take(&p).map_err(io)? {
            Some(held) => Ok(held),
            None => {
                busy();
                EntryLock::wait(&p).map_err(io)
            }
        }
    }

    /// The entry `key`'s file (fetched by the lock holder under a temporary name beside
    /// it, then renamed here).
    pub fn data_path(&self, key: &str) -> PathBuf {
        entry::data_path(&self.dir, key)
    }

    /// Serves the entry `key` at `dest` when it is there and good (under its lock):
    /// `Some` with how it was placed; `None` when there is nothing good to serve (a bad
    /// entry is thrown away, and says so in the log).
    pub fn lookup(
        &self,
        _held: &EntryLock,
        key: &str,
        dest: &Path,
    ) -> Result<Option<link::Placed>, CacheError> {
        let data = self.data_path(key);
        if !data.exists() {
            return Ok(None);
        }
        let verdict = EntryRecord::load(&self.dir, key).map(|r| (r.check(&data), r));
        let mut record = match verdict {
            Some((Verdict::Good | Verdict::Rehashed, r)) => r,
            Some((Verdict::Bad, r)) => {
                tracing::warn!(
                    "node cache: the entry of {:?} ({}) changed on disk since it was fetched; fetching it again",
                    r.path,
                    data.display()
                );
                space::remove(&self.dir, key);
                return Ok(None);
            }
            None => {
                space::remove(&self.dir, key);
                return Ok(None);
            }
        };
        let how = link::place(&data, dest).map_err(|e| CacheError::io("cannot link", dest, e))?;
        self.stamp_and_save(&mut record, key)?;
        Ok(Some(how))
    }

    /// Takes the whole file the lock holder fetched to [`NodeCache::data_path`] in as the
    /// entry `key` (the object of `record`): made read-only, placed at `dest`, recorded
    /// (not hashed: the record's inode and times are what keep it, see [`entry`]). Until
    /// recorded it is not served (a lookup throws away an entry without a record).
    pub fn admit(
        &self,
        _held: &EntryLock,
        key: &str,
        mut record: EntryRecord,
        dest: &Path,
    ) -> Result<link::Placed, CacheError> {
        let data = self.data_path(key);
        entry::make_read_only(&data)
            .map_err(|e| CacheError::io("cannot make read-only", &data, e))?;
        let how = link::place(&data, dest).map_err(|e| CacheError::io("cannot link", dest, e))?;
        self.stamp_and_save(&mut record, key)?;
        Ok(how)
    }

    fn stamp_and_save(&self, record: &mut EntryRecord, key: &str) -> Result<(), CacheError> {
        let data = self.data_path(key);
        record
            .stamp(&data)
            .map_err(|e| CacheError::io("cannot read", &data, e))?;
        let path = entry::record_path(&self.dir, key);
        record
            .save(&self.dir, key)
            .map_err(|e| CacheError::io("cannot write", &path, e))
    }

    /// Makes room for `need` more bytes (the entry `key`, being fetched): evicts least
    /// recently used entries until the bound and the free-space floor both hold.
    /// `false` when they cannot (the object is then fetched uncached). One agent makes
    /// room at a time (`.space.lock`).
    pub fn make_room(&self, need: u64, key: &str) -> Result<bool, CacheError> {
        if need > self.bound {
            return Ok(false);
        }
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = budget.as_mut().filter(|b| b.at.elapsed() < REMEASURE) {
            if b.held + need <= self.bound && b.free >= b.floor + need {
                b.held += need;
                b.free -= need;
                return Ok(true);
            }
        }
        let (room, measured) = self.evict_for(need, key)?;
        *budget = Some(measured);
        Ok(room)
    }

    /// Measures the cache (under `.space.lock`) and evicts until `need` more bytes fit;
    /// whether they do, and the measure with them counted.
    fn evict_for(&self, need: u64, key: &str) -> Result<(bool, Budget), CacheError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| CacheError::io("cannot create", &self.dir, e))?;
        let p = self.dir.join(".space.lock");
        let _one = EntryLock::wait(&p).map_err(|e| CacheError::io("cannot lock", &p, e))?;
        // Small objects' temporaries of killed agents (large ones keep their resumable
        // name for the next fetch, and count as being fetched).
        crate::partial::remove_stale(&self.dir, false);
        let usage = self.usage();
        let disk = |dir: &Path| space::disk(dir).map_err(|e| CacheError::io("cannot stat", dir, e));
        let (free, total) = disk(&self.dir)?;
        let floor = space::floor(total);
        let over = (usage.held() + need).saturating_sub(self.bound);
        let short = (floor + need).saturating_sub(free);
        let want = over.max(short);
        let (mut freed, mut evicted) = (0, 0);
        for v in space::victims(&usage.entries, want, key) {
            if freed >= want {
                break;
            }
            let bytes = self.evict(&v.key);
            freed += bytes;
            evicted += u64::from(bytes > 0);
        }
        if evicted > 0 {
            self.count_evictions(evicted);
        }
        let room = freed >= want;
        let added = if room { need } else { 0 };
        let budget = Budget {
            held: (usage.held() + added).saturating_sub(freed),
            free: (free + freed).saturating_sub(added),
            floor,
            at: Instant::now(),
        };
        Ok((room, budget))
    }

    /// Entries evicted to make room since the cache's folder was made, by every agent
    /// on the node (the node metrics' counter).
    pub fn evictions(&self) -> u64 {
        space::read_count(&self.dir.join(EVICTIONS))
    }

    /// Adds `n` to the evictions counter; called under `.space.lock`, so agents never
    /// lose each other's counts. A counter that cannot be written is a warning: the
    /// eviction itself stands.
    fn count_evictions(&self, n: u64) {
        let p = self.dir.join(EVICTIONS);
        let total = space::read_count(&p).saturating_add(n);
        if let Err(e) = crate::partial::write_file(&p, format!("{total}\n").as_bytes()) {
            tracing::warn!("node cache: cannot count evictions in {}: {e}", p.display());
        }
    }

    /// Removes the entry `key` unless it is in use (locked, or linked from a run
    /// folder); the bytes freed.
    pub fn evict(&self, key: &str) -> u64 {
        let Ok(Some(held)) = EntryLock::try_take(&entry::lock_path(&self.dir, key)) else {
            return 0;
        };
        let data = self.data_path(key);
        let size = match std::fs::metadata(&data) {
            Ok(m) if std::os::unix::fs::MetadataExt::nlink(&m) <= 1 => m.len(),
            _ => return 0,
        };
        tracing::info!("node cache: evicting {} ({} bytes)", data.display(), size);
        space::remove(&self.dir, key);
        held.remove_file();
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// An entry of `size` bytes, last used `age_s` seconds ago.
    fn put(c: &NodeCache, key: &str, size: usize, age_s: u64) {
        std::fs::create_dir_all(c.dir()).unwrap();
        std::fs::write(c.data_path(key), vec![1u8; size]).unwrap();
        let record = entry::record_path(c.dir(), key);
        std::fs::write(&record, b"{}").unwrap();
        let at = SystemTime::now() - Duration::from_secs(age_s);
        std::fs::File::options()
            .write(true)
            .open(&record)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    fn key(c: char) -> String {
        c.to_string().repeat(40)
    }

    #[test]
    fn room_is_made_from_the_least_recently_used_entries_nothing_links() {
        let dir = tempfile::tempdir().unwrap();
        let c = NodeCache::at(dir.path(), 10_000);
        put(&c, &key('a'), 4000, 300);
        put(&c, &key('b'), 4000, 200);
        put(&c, &key('c'), 4000, 100);
        // The oldest is still linked from a run folder: it stays, and frees nothing.
        std::fs::hard_link(c.data_path(&key('a')), dir.path().join("run-link")).unwrap();
        assert!(c.make_room(5000, &key('n')).unwrap());
        assert!(c.data_path(&key('a')).exists());
        assert!(
            !c.data_path(&key('b')).exists(),
            "b was the oldest unlinked entry"
        );
        assert!(c.data_path(&key('c')).exists());
        // More than the bound never fits; nothing is evicted for it.
        assert!(!c.make_room(10_001, &key('n')).unwrap());
        assert!(c.data_path(&key('c')).exists());
    }

    #[test]
    fn an_entry_being_fetched_or_linked_is_not_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let c = NodeCache::at(dir.path(), 5000);
        put(&c, &key('a'), 4000, 100);
        let held = c.lock(&key('a'), || {}).unwrap();
        assert_eq!(c.evict(&key('a')), 0);
        assert!(!c.make_room(4000, &key('n')).unwrap());
        drop(held);
        assert_eq!(c.evictions(), 0);
        assert!(c.make_room(4000, &key('n')).unwrap());
        assert!(!c.data_path(&key('a')).exists());
        assert_eq!(c.evictions(), 1, "counted once it was evicted");
        // Another agent's view of the same folder sees the same count.
        assert_eq!(NodeCache::at(dir.path(), 5000).evictions(), 1);
    }
}
