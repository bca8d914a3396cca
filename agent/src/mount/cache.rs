//! The block cache behind every mount of a run: objects are read in fixed-size blocks,
//! each fetched once with one ranged GET and then served from memory (the last few
//! blocks) or from a bounded folder on local disk (everything else, least recently
//! used first out).
//!
//! Defaults (see the README): blocks of [`DEFAULT_BLOCK_SIZE`]; the disk part in
//! `<node cache>/mount/<run id>` (`settings::Settings::cache_dir`), at most [`DEFAULT_CACHE_SIZE`]
//! and never more than half the free space of its filesystem when the first mount is
//! made (`STAGEHAND_CACHE_SIZE`, 0 turns the disk part off). The folder belongs to the
//! run and is removed when the run's mounts are torn down.
//!
//! Two readers of the same block share one fetch. A reader drives the fetch it waits
//! for itself (no extra task hop on the way to the first byte); a prefetch runs as its
//! own task. Memory is bounded: at most [`MEM_BYTES`] of completed blocks are kept in
//! RAM, plus those in flight, whose number the fetch semaphore bounds. Blocks smaller
//! than [`DISK_MIN_BLOCK`] (small objects) are kept in memory only: fetching one again
//! costs one request, while writing each to disk costs a file, and the kernel's page
//! cache keeps them anyway.

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::Semaphore;

/// The size of one block: one ranged GET, one cache file.
pub const DEFAULT_BLOCK_SIZE: u64 = 2 * 1024 * 1024;
/// The disk cache's default bound.
pub const DEFAULT_CACHE_SIZE: u64 = 4 * 1024 * 1024 * 1024;
/// Bytes of completed blocks kept in memory (besides the disk copy).
pub const MEM_BYTES: u64 = 32 * 1024 * 1024;
/// Blocks smaller than this are not written to the disk cache.
pub const DISK_MIN_BLOCK: u64 = 64 * 1024;
/// The most bytes one read-ahead GET asks for.
pub const DEFAULT_MAX_RUN: u64 = 16 * 1024 * 1024;
/// Ranged GETs in flight at once, over all mounts of the run.
pub const DEFAULT_FETCH_CONCURRENCY: usize = 8;

/// A read through the cache that failed. Cloneable, because one failed fetch answers
/// every reader that waited for it.
#[derive(Debug, Clone, Error)]
pub enum CacheError {
    /// The object is gone.
    #[error("the object no longer exists")]
    NotFound,
    /// The store failed or did not answer (the cause has been logged).
    #[error("{0}")]
    Storage(Arc<str>),
}

/// Which object a block belongs to. The version is part of it, so a changed object is
/// never served from the blocks of its old content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId {
    /// Datastore name.
    pub datastore: String,
    /// Path in the datastore.
    pub path: String,
    /// ETag or equivalent.
    pub version: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

impl ObjectId {
    /// A file-name-safe digest of the id (128 bits from two keyed SipHashes).
    fn digest(&self) -> String {
        let mut out = String::with_capacity(32);
        for salt in [0x5354_4147u64, 0x4548_414eu64] {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            salt.hash(&mut h);
            self.hash(&mut h);
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BlockKey {
    object: Arc<ObjectId>,
    index: u64,
}

type Fetch = Shared<BoxFuture<'static, Result<Bytes, CacheError>>>;

#[derive(Default)]
struct State {
    /// Blocks in flight or recently fetched.
    mem: HashMap<BlockKey, Fetch>,
    /// Completed blocks in memory with their sizes, oldest first.
    mem_done: VecDeque<(BlockKey, u64)>,
    mem_bytes: u64,
    /// Blocks on disk: their length and last use.
    disk: HashMap<BlockKey, (u64, u64)>,
    /// Last use → block, for eviction.
    disk_lru: BTreeMap<u64, BlockKey>,
    disk_used: u64,
    tick: u64,
}

/// How a cache is set up.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The folder for blocks on disk (created; removed by [`BlockCache::remove`]).
    pub dir: PathBuf,
    /// Bytes on disk at most; 0 keeps nothing on disk.
    pub capacity: u64,
    /// Block size in bytes.
    pub block_size: u64,
    /// Ranged GETs in flight at once.
    pub fetch_concurrency: usize,
    /// Bytes of completed blocks kept in memory.
    pub mem_bytes: u64,
    /// The most bytes one read-ahead GET asks for (consecutive blocks are fetched
    /// together up to this: per-request overhead dominates small ranges).
    pub max_run: u64,
}

/// A block cache shared by all mounts of a run.
pub struct BlockCache {
    cfg: CacheConfig,
    state: Mutex<State>,
    fetches: Arc<Semaphore>,
    disk_failed: AtomicBool,
    /// Set by [`BlockCache::remove`]: late blocks are no longer written.
    closed: AtomicBool,
    /// Disk writes under way, which [`BlockCache::remove`] waits for.
    writing: std::sync::atomic::AtomicUsize,
}

/// How a missing block is fetched: the object's bytes `range`.
pub type Fetcher =
    Arc<dyn Fn(Range<u64>) -> BoxFuture<'static, Result<Bytes, CacheError>> + Send + Sync>;

impl BlockCache {
    /// A cache in `cfg.dir`, created now.
    pub fn new(mut cfg: CacheConfig) -> std::io::Result<Arc<BlockCache>> {
        cfg.block_size = cfg.block_size.max(4096);
        if cfg.capacity > 0 {
            std::fs::create_dir_all(&cfg.dir)?;
        }
        let fetches = Arc::new(Semaphore::new(cfg.fetch_concurrency.max(1)));
        Ok(Arc::new(BlockCache {
            cfg,
            state: Mutex::new(State::default()),
            fetches,
            disk_failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            writing: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    /// The block size.
    pub fn block_size(&self) -> u64 {
        self.cfg.block_size
    }

    /// The folder blocks are kept in.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Bytes of blocks on disk now.
    pub fn disk_used(&self) -> u64 {
        self.lock().disk_used
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many blocks one read-ahead GET may cover.
    pub fn blocks_per_run(&self) -> u64 {
        (self.cfg.max_run / self.cfg.block_size).max(1)
    }

    /// How many blocks ahead of a reader may be fetched without one of them falling out
    /// of the cache before the reader gets to it: any number while blocks go to disk;
    /// without the disk part (capacity 0, or the disk failed), half of what memory holds
    /// (memory is evicted in order of arrival, and blocks fetched together arrive in any
    /// order). Beyond that, a block fetched ahead is evicted unread and fetched again.
    pub fn max_ahead(&self) -> u64 {
        if self.cfg.capacity >= self.cfg.block_size && !self.disk_failed.load(Ordering::Relaxed) {
            u64::MAX
        } else {
            (self.cfg.mem_bytes / self.cfg.block_size / 2).max(1)
        }
    }

    /// The number of blocks of an object.
    pub fn blocks(&self, object: &ObjectId) -> u64 {
        object.size.div_ceil(self.cfg.block_size)
    }

    fn block_range(&self, key: &BlockKey) -> Range<u64> {
        let start = key.index * self.cfg.block_size;
        start..(start + self.cfg.block_size).min(key.object.size)
    }

    fn block_file(&self, key: &BlockKey) -> PathBuf {
        self.cfg
            .dir
            .join(format!("{}-{}", key.object.digest(), key.index))
    }

    /// The bytes `range` of `object`, from memory, disk, or the store.
    pub async fn read(
        self: &Arc<Self>,
        object: &Arc<ObjectId>,
        range: Range<u64>,
        fetch: &Fetcher,
    ) -> Result<Bytes, CacheError> {
        let end = range.end.min(object.size);
        if range.start >= end {
            return Ok(Bytes::new());
        }
        let bs = self.cfg.block_size;
        let (first, last) = (range.start / bs, (end - 1) / bs);
        if first == last {
            return self
                .read_in_block(object, first, range.start..end, fetch)
                .await;
        }
        // Rare (reads are at most a block long): a read across a boundary.
        let mut out = BytesMut::with_capacity((end - range.start) as usize);
        for index in first..=last {
            let (bstart, bend) = (index * bs, ((index + 1) * bs).min(end));
            let part = self
                .read_in_block(object, index, range.start.max(bstart)..bend, fetch)
                .await?;
            out.extend_from_slice(&part);
        }
        Ok(out.freeze())
    }

    /// Starts fetching blocks `blocks` of `object` unless cached; does not wait.
    /// Consecutive missing blocks are fetched together, up to `max_run` bytes a GET.
    pub fn prefetch(self: &Arc<Self>, object: &Arc<ObjectId>, blocks: Range<u64>, fetch: &Fetcher) {
        let per_run = (self.cfg.max_run / self.cfg.block_size).max(1) as usize;
        let mut st = self.lock();
        let mut run = Vec::new();
        for index in blocks {
            let key = BlockKey {
                object: object.clone(),
                index,
            };
            if st.mem.contains_key(&key) || st.disk.contains_key(&key) {
                self.launch(&mut st, std::mem::take(&mut run), fetch);
                continue;
            }
            run.push(key);
            if run.len() == per_run {
                self.launch(&mut st, std::mem::take(&mut run), fetch);
            }
        }
        self.launch(&mut st, run, fetch);
    }

    /// Fetches the consecutive blocks `run` with one GET, each block's future driven
    /// by a task (nobody waits for a prefetch yet). The caller holds the state lock.
    fn launch(self: &Arc<Self>, st: &mut State, run: Vec<BlockKey>, fetch: &Fetcher) {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return;
        };
        if run.len() == 1 {
            let f = self.start_fetch(st, first.clone(), fetch);
            tokio::spawn(f);
            return;
        }
        let range = self.block_range(first).start..self.block_range(last).end;
        let (me, fetch) = (self.clone(), fetch.clone());
        let whole = async move { me.fetch_exact(&fetch, range).await }
            .boxed()
            .shared();
        let base = self.block_range(first).start;
        for key in run {
            let r = self.block_range(&key);
            let part = (r.start - base) as usize..(r.end - base) as usize;
            let (me, whole, k) = (self.clone(), whole.clone(), key.clone());
            let f: Fetch = async move {
                let got = whole.await.map(|all| all.slice(part));
                me.settle(k, got)
            }
            .boxed()
            .shared();
            st.mem.insert(key, f.clone());
            tokio::spawn(f);
        }
    }

    /// Reads `range` (absolute offsets, all inside block `index`).
    async fn read_in_block(
        self: &Arc<Self>,
        object: &Arc<ObjectId>,
        index: u64,
        range: Range<u64>,
        fetch: &Fetcher,
    ) -> Result<Bytes, CacheError> {
        let key = BlockKey {
            object: object.clone(),
            index,
        };
        let base = index * self.cfg.block_size;
        let local = (range.start - base) as usize..(range.end - base) as usize;
        let in_mem = self.lock().mem.get(&key).cloned();
        if let Some(f) = in_mem {
            let block = f.await?;
            return slice(&block, local);
        }
        let on_disk = {
            let mut st = self.lock();
            if st.disk.contains_key(&key) {
                st.tick += 1;
                let tick = st.tick;
                if let Some((_, used)) = st.disk.get_mut(&key) {
                    let old = std::mem::replace(used, tick);
                    st.disk_lru.remove(&old);
                    st.disk_lru.insert(tick, key.clone());
                }
                Some(self.block_file(&key))
            } else {
                None
            }
        };
        if let Some(file) = on_disk {
            let len = local.len();
            let at = local.start as u64;
            let read = tokio::task::spawn_blocking(move || {
                let f = std::fs::File::open(&file)?;
                let mut buf = vec![0u8; len];
                f.read_exact_at(&mut buf, at)?;
                Ok::<_, std::io::Error>(Bytes::from(buf))
            })
            .await;
            match read {
                Ok(Ok(b)) => return Ok(b),
                // Evicted meanwhile, or the disk failed: fetch it again.
                Ok(Err(e)) => {
                    tracing::debug!(
                        "cache block {} unreadable ({e}); fetching it again",
                        key.index
                    );
                    self.forget_disk(&key);
                }
                Err(e) => {
                    return Err(CacheError::Storage(
                        format!("cache worker failed: {e}").into(),
                    ))
                }
            }
        }
        let f = {
            let mut st = self.lock();
            match st.mem.get(&key).cloned() {
                Some(f) => f,
                None => self.start_fetch(&mut st, key, fetch),
            }
        };
        let block = f.await?;
        slice(&block, local)
    }

    /// Registers the fetch of `key` (the caller holds the state lock) and returns it;
    /// whoever awaits it drives it.
    fn start_fetch(self: &Arc<Self>, st: &mut State, key: BlockKey, fetch: &Fetcher) -> Fetch {
        let range = self.block_range(&key);
        let me = self.clone();
        let fetch = fetch.clone();
        let k = key.clone();
        let f: Fetch = async move {
            let got = me.fetch_exact(&fetch, range).await;
            me.settle(k, got)
        }
        .boxed()
        .shared();
        st.mem.insert(key, f.clone());
        f
    }

    /// Keeps a block that arrived, or forgets a failed fetch of it: failures are not
    /// remembered, so the next read tries again.
    fn settle(
        self: &Arc<Self>,
        k: BlockKey,
        got: Result<Bytes, CacheError>,
    ) -> Result<Bytes, CacheError> {
        match got {
            Ok(bytes) => {
                self.completed(k, bytes.clone());
                Ok(bytes)
            }
            Err(e) => {
                self.lock().mem.remove(&k);
                Err(e)
            }
        }
    }

    /// Fetches exactly `range` under the cap on GETs in flight; fewer bytes than asked
    /// for is an error.
    async fn fetch_exact(&self, fetch: &Fetcher, range: Range<u64>) -> Result<Bytes, CacheError> {
        let permit = self.fetches.clone().acquire_owned().await;
        let got = fetch(range.clone()).await;
        drop(permit);
        match got {
            Ok(b) if b.len() as u64 == range.end - range.start => Ok(b),
            Ok(b) => Err(CacheError::Storage(
                format!(
                    "asked for bytes {}..{} and received {} bytes",
                    range.start,
                    range.end,
                    b.len()
                )
                .into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// The bytes `range` of `object` if they are in memory now, without waiting.
    pub fn read_now(&self, object: &Arc<ObjectId>, range: Range<u64>) -> Option<Bytes> {
        let end = range.end.min(object.size);
        if range.start >= end {
            return Some(Bytes::new());
        }
        let bs = self.cfg.block_size;
        let index = range.start / bs;
        if (end - 1) / bs != index {
            return None;
        }
        let key = BlockKey {
            object: object.clone(),
            index,
        };
        let block = match self.lock().mem.get(&key)?.peek()? {
            Ok(b) => b.clone(),
            Err(_) => return None,
        };
        let base = index * bs;
        slice(&block, (range.start - base) as usize..(end - base) as usize).ok()
    }

    /// A block arrived: keep it in memory (evicting the oldest) and, unless small,
    /// write it to disk in the background.
    fn completed(self: &Arc<Self>, key: BlockKey, bytes: Bytes) {
        let len = bytes.len() as u64;
        {
            let mut st = self.lock();
            st.mem_done.push_back((key.clone(), len));
            st.mem_bytes += len;
            while st.mem_bytes > self.cfg.mem_bytes {
                let Some((old, l)) = st.mem_done.pop_front() else {
                    break;
                };
                st.mem_bytes -= l;
                st.mem.remove(&old);
            }
        }
        if self.cfg.capacity < self.cfg.block_size
            || len < DISK_MIN_BLOCK.min(self.cfg.block_size)
            || self.disk_failed.load(Ordering::Relaxed)
            || self.closed.load(Ordering::Relaxed)
        {
            return;
        }
        let me = self.clone();
        self.writing.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            me.write_to_disk(key, bytes).await;
            me.writing.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn write_to_disk(self: &Arc<Self>, key: BlockKey, bytes: Bytes) {
        let path = self.block_file(&key);
        let len = bytes.len() as u64;
        let written = tokio::task::spawn_blocking(move || {
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            // The run is over and the folder gone: nothing to say.
            Ok(Err(_)) if self.closed.load(Ordering::Relaxed) => return,
            Ok(Err(e)) => {
                if !self.disk_failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the mount cache in {} cannot be written ({e}); blocks are fetched again when needed",
                        self.cfg.dir.display()
                    );
                }
                return;
            }
            Err(_) => return,
        }
        let evict = {
            let mut st = self.lock();
            st.tick += 1;
            let tick = st.tick;
            if let Some((old_len, old_tick)) = st.disk.insert(key.clone(), (len, tick)) {
                st.disk_used -= old_len;
                st.disk_lru.remove(&old_tick);
            }
            st.disk_lru.insert(tick, key);
            st.disk_used += len;
            let mut evict = Vec::new();
            while st.disk_used > self.cfg.capacity {
                let Some((_, victim)) = st.disk_lru.pop_first() else {
                    break;
                };
                if let Some((l, _)) = st.disk.remove(&victim) {
                    st.disk_used -= l;
                }
                evict.push(self.block_file(&victim));
            }
            evict
        };
        if !evict.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                for p in evict {
                    let _ = std::fs::remove_file(p);
                }
            })
            .await;
        }
    }

    fn forget_disk(&self, key: &BlockKey) {
        let mut st = self.lock();
        if let Some((l, tick)) = st.disk.remove(key) {
            st.disk_used -= l;
            st.disk_lru.remove(&tick);
        }
    }

    /// Deletes the cache folder and everything in it.
    /// Blocks until the disk writes under way have ended (a few seconds at most).
    pub fn remove(&self) -> std::io::Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        for _ in 0..500 {
            if self.writing.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        {
            let mut st = self.lock();
            *st = State::default();
        }
        match std::fs::remove_dir_all(&self.cfg.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn slice(block: &Bytes, local: Range<usize>) -> Result<Bytes, CacheError> {
    if local.end > block.len() {
        return Err(CacheError::Storage(
            format!(
                "block of {} bytes is shorter than the read of {local:?}",
                block.len()
            )
            .into(),
        ));
    }
    Ok(block.slice(local))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn object(size: u64) -> Arc<ObjectId> {
        Arc::new(ObjectId {
            datastore: "d".into(),
            path: "p".into(),
            version: Some("1".into()),
            size,
        })
    }

    fn data(size: u64) -> Bytes {
        (0..size)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into()
    }

    /// A fetcher over `content` that counts its calls.
    fn counting(content: Bytes, calls: Arc<AtomicUsize>) -> Fetcher {
        Arc::new(move |r: Range<u64>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let b = content.slice(r.start as usize..r.end as usize);
            async move { Ok(b) }.boxed()
        })
    }

    fn cache(dir: &Path, capacity: u64) -> Arc<BlockCache> {
        BlockCache::new(CacheConfig {
            dir: dir.join("c"),
            capacity,
            block_size: 4096,
            fetch_concurrency: 4,
            mem_bytes: 8 * 4096,
            max_run: 4096,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn reads_are_exact_across_block_boundaries() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cache(tmp.path(), 1 << 20);
        let content = data(10_000);
        let calls = Arc::new(AtomicUsize::new(0));
        let f = counting(content.clone(), calls.clone());
        let o = object(10_000);
        for r in [0..10, 4090..4100, 0..10_000, 9_999..10_000, 8192..9000] {
            assert_eq!(
                c.read(&o, r.clone(), &f).await.unwrap(),
                content.slice(r.start as usize..r.end as usize)
            );
        }
        assert_eq!(c.read(&o, 10_000..10_100, &f).await.unwrap().len(), 0);
        assert_eq!(c.read(&o, 9_990..20_000, &f).await.unwrap().len(), 10);
        // 3 blocks, each fetched once.
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_disk_part_stays_within_its_bound_and_serves_evicted_memory_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cache(tmp.path(), 5 * 4096);
        let size = 40 * 4096;
        let content = data(size);
        let calls = Arc::new(AtomicUsize::new(0));
        let f = counting(content.clone(), calls.clone());
        let o = object(size);
        for i in 0..40u64 {
            c.read(&o, i * 4096..i * 4096 + 100, &f).await.unwrap();
            // The disk copy is written in the background.
            let key = BlockKey {
                object: o.clone(),
                index: i,
            };
            for _ in 0..500 {
                if c.lock().disk.contains_key(&key) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert!(c.disk_used() <= 5 * 4096);
        }
        let files = std::fs::read_dir(c.dir()).unwrap().count();
        assert!(files <= 5, "{files} files on disk");
        assert_eq!(calls.load(Ordering::SeqCst), 40);
        // Block 34 fell out of memory (8 kept) but is on disk: no new fetch.
        let got = c.read(&o, 34 * 4096 + 5..34 * 4096 + 50, &f).await.unwrap();
        assert_eq!(got, content.slice(34 * 4096 + 5..34 * 4096 + 50));
        assert_eq!(calls.load(Ordering::SeqCst), 40);
        c.remove().unwrap();
        assert!(!c.dir().exists());
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_fetch_and_prefetch_fills_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cache(tmp.path(), 0);
        let content = data(3 * 4096);
        let calls = Arc::new(AtomicUsize::new(0));
        let f = counting(content.clone(), calls.clone());
        let o = object(3 * 4096);
        c.prefetch(&o, 1..3, &f);
        let (a, b) = tokio::join!(c.read(&o, 0..10, &f), c.read(&o, 5..20, &f));
        assert_eq!(a.unwrap(), content.slice(0..10));
        assert_eq!(b.unwrap(), content.slice(5..20));
        c.read(&o, 4096..8192, &f).await.unwrap();
        c.read(&o, 8192..8200, &f).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn read_ahead_fetches_consecutive_blocks_with_one_request_each_run() {
        let tmp = tempfile::tempdir().unwrap();
        let c = BlockCache::new(CacheConfig {
            dir: tmp.path().join("c"),
            capacity: 1 << 20,
            block_size: 4096,
            fetch_concurrency: 4,
            mem_bytes: 1 << 20,
            max_run: 4 * 4096,
        })
        .unwrap();
        let size = 10 * 4096 - 100;
        let content = data(size);
        let calls = Arc::new(AtomicUsize::new(0));
        let f = counting(content.clone(), calls.clone());
        let o = object(size);
        // Block 2 is cached already: runs 0..2, 3..7, 7..10 (the last one short).
        c.read(&o, 2 * 4096..2 * 4096 + 1, &f).await.unwrap();
        c.prefetch(&o, 0..10, &f);
        let all = c.read(&o, 0..size, &f).await.unwrap();
        assert_eq!(all, content);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_reported_and_retried_on_the_next_read() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cache(tmp.path(), 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        let n = calls.clone();
        let f: Fetcher = Arc::new(move |r: Range<u64>| {
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    Err(CacheError::Storage("boom".into()))
                } else {
                    Ok(Bytes::from(vec![7u8; (r.end - r.start) as usize]))
                }
            }
            .boxed()
        });
        let o = object(100);
        assert!(matches!(
            c.read(&o, 0..10, &f).await,
            Err(CacheError::Storage(_))
        ));
        assert_eq!(
            c.read(&o, 0..10, &f).await.unwrap(),
            Bytes::from(vec![7u8; 10])
        );
    }

    #[tokio::test]
    async fn a_short_answer_from_the_store_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cache(tmp.path(), 1 << 20);
        let f: Fetcher =
            Arc::new(|_r: Range<u64>| async { Ok(Bytes::from_static(b"abc")) }.boxed());
        let o = object(100);
        assert!(matches!(
            c.read(&o, 0..10, &f).await,
            Err(CacheError::Storage(_))
        ));
    }
}
