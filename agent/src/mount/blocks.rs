//! The blocks behind every mount of a run: objects are read in fixed-size blocks, each
//! fetched once and then served from a bounded folder on local disk (least recently
//! used first out) or, for small objects and when there is no disk part, from a bounded
//! memory part. (The node cache, `crate::cache`, is another thing: whole downloaded
//! files shared by runs. This folder lives under its root and goes with the run.)
//!
//! Defaults (see the README): blocks of [`DEFAULT_BLOCK_SIZE`]; the disk part in
//! `<node cache>/mount/<run id>` (`settings::Settings::cache_dir`), at most
//! [`DEFAULT_DISK_CAPACITY`] and never more than half the free space of its filesystem
//! when the first mount is made (`STAGEHAND_CACHE_SIZE`, 0 turns the disk part off). The
//! folder belongs to the run and is removed when the run's mounts are torn down.
//!
//! Memory is what this module is careful about, because the agent's resident memory is
//! taken from the job's (a 1 GiB sequential read once peaked at 190 MiB):
//! - A fetch streams its answer ([`crate::store::Store::read_range_stream`]): one GET
//!   covers a run of up to [`DEFAULT_MAX_RUN`] bytes (per-request cost dominates small
//!   ranges), but only the block being received is held, and each block is written to
//!   its file as soon as it is whole. So the bytes in flight are at most one block per
//!   fetch, [`DEFAULT_FETCH_CONCURRENCY`] fetches, whatever the run length.
//! - A block on disk is read from its file for each read (the kernel's page cache keeps
//!   it hot, and that memory is the kernel's to reclaim, not the agent's): there is no
//!   RAM copy of large blocks.
//! - Blocks smaller than [`DISK_MIN_BLOCK`] (small objects) are kept in memory only:
//!   fetching one again costs one request, while writing each to disk costs a file.
//!   So are all blocks when there is no disk part (capacity 0, or the disk failed).
//!   At most [`MEM_BYTES`] of them are kept, oldest out first; read-ahead is then
//!   limited to half of that, so what it fetches is still there when the reader comes.
//!
//! Two readers of the same block share one fetch; every fetch runs as its own task,
//! which hands each block to its waiters as soon as the block is whole.
//!
//! A fetch never retries. When a streamed answer breaks off mid-block, the store itself
//! asks again for the rest, from the first byte that did not arrive, so the block being
//! received just goes on filling (`store::azure::range_stream`): the store's one retry policy
//! then counts the GET's retries and the resumes together. A count of resumes here, on
//! top of the store's retries of each resumed GET, was a second policy whose attempts
//! multiplied with the first's. An error from the stream is final: the blocks not yet
//! whole fail, and the next read of them fetches again.

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{BoxStream, StreamExt};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::Semaphore;

/// The size of one block: one file on disk, the unit a fetch hands over.
pub const DEFAULT_BLOCK_SIZE: u64 = 2 * 1024 * 1024;
/// The disk part's default bound.
pub const DEFAULT_DISK_CAPACITY: u64 = 4 * 1024 * 1024 * 1024;
/// Bytes of completed blocks kept in memory: small objects, or every block when there
/// is no disk part.
pub const MEM_BYTES: u64 = 16 * 1024 * 1024;
/// Blocks smaller than this are not written to disk.
pub const DISK_MIN_BLOCK: u64 = 64 * 1024;
/// The most bytes one read-ahead GET asks for.
pub const DEFAULT_MAX_RUN: u64 = 16 * 1024 * 1024;
/// Ranged GETs in flight at once, over all mounts of the run.
pub const DEFAULT_FETCH_CONCURRENCY: usize = 8;

/// A read of blocks that failed. Cloneable, because one failed fetch answers
/// every reader that waited for it.
#[derive(Debug, Clone, Error)]
pub enum BlockError {
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

/// Where a fetched block went.
#[derive(Debug, Clone)]
enum Block {
    /// Kept in memory.
    Mem(Bytes),
    /// Written to its file (which may have been evicted since).
    Disk,
}

type Fetch = Shared<BoxFuture<'static, Result<Block, BlockError>>>;

/// A fetch's promise to the waiters of one block.
type Promise = oneshot::Sender<Result<Block, BlockError>>;

#[derive(Default)]
struct State {
    /// Blocks in flight, and completed blocks kept in memory.
    mem: HashMap<BlockKey, Fetch>,
    /// Completed blocks in memory with their sizes, oldest first.
    mem_done: VecDeque<(BlockKey, u64)>,
    mem_bytes: u64,
    /// Blocks on disk: their length, last use, and generation (a number never
    /// reused: which file an open file of [`State::open`] belongs to).
    disk: HashMap<BlockKey, (u64, u64, u64)>,
    /// Files of blocks on disk kept open (most recently opened last, at most
    /// [`OPEN_FILES`]), with their generations: a sequential reader reads one block
    /// in many reads, and opening its file for each was most of a read's cost. An
    /// evicted or replaced block's file is closed here at once, so it neither pins
    /// disk space nor serves a stale copy.
    open: VecDeque<(BlockKey, u64, Arc<std::fs::File>)>,
    generation: u64,
    /// Last use → block, for eviction.
    disk_lru: BTreeMap<u64, BlockKey>,
    disk_used: u64,
    tick: u64,
}

impl State {
    /// Marks a block on disk as just used; whether it is on disk.
    fn touch_disk(&mut self, key: &BlockKey) -> bool {
        self.tick += 1;
        let tick = self.tick;
        let Some((_, used, _)) = self.disk.get_mut(key) else {
            return false;
        };
        let old = std::mem::replace(used, tick);
        self.disk_lru.remove(&old);
        self.disk_lru.insert(tick, key.clone());
        true
    }

    /// Block `key`'s generation on disk and its open file, if kept.
    fn opened(&self, key: &BlockKey) -> Option<(u64, Option<Arc<std::fs::File>>)> {
        let &(_, _, generation) = self.disk.get(key)?;
        let file = self
            .open
            .iter()
            .rev()
            .find(|(k, g, _)| *g == generation && k == key)
            .map(|(_, _, f)| f.clone());
        Some((generation, file))
    }

    /// Stops keeping block `key`'s file open; the file to close (outside the lock).
    fn close(&mut self, key: &BlockKey) -> Option<Arc<std::fs::File>> {
        let at = self.open.iter().position(|(k, _, _)| k == key)?;
        self.open.remove(at).map(|(_, _, f)| f)
    }

    /// Removes block `key` from the disk part; its open file, to close outside the lock.
    fn forget(&mut self, key: &BlockKey) -> Option<Arc<std::fs::File>> {
        if let Some((l, tick, _)) = self.disk.remove(key) {
            self.disk_used -= l;
            self.disk_lru.remove(&tick);
        }
        self.close(key)
    }
}

/// Files of blocks on disk kept open at once (see [`State::open`]).
const OPEN_FILES: usize = 8;

/// What [`Blocks::read_now`] answers: a kept block's bytes, or what was read from its
/// file into the caller's buffer.
pub enum Kept<'a> {
    /// A slice of a block kept in memory.
    Mem(Bytes),
    /// Read from the block's file.
    Read(&'a [u8]),
}

impl std::ops::Deref for Kept<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Kept::Mem(b) => b,
            Kept::Read(b) => b,
        }
    }
}

/// Bytes of a block bound for disk written at a time: what a fetch holds of it.
const WRITE_BATCH: usize = 256 * 1024;

/// Where the bytes of the block being received go.
enum Sink {
    /// Its file, as they arrive.
    Disk(BlockWriter),
    /// Memory: a buffer of the block's size (a piece is a slice of the connection's
    /// read buffer, which a small block kept as it is would pin whole).
    Mem(BytesMut),
}

impl Sink {
    async fn push(&mut self, piece: Bytes) -> std::io::Result<()> {
        match self {
            Sink::Disk(w) => w.push(piece).await,
            Sink::Mem(block) => {
                block.extend_from_slice(&piece);
                Ok(())
            }
        }
    }
}

/// A block's file being written: beside its final name (`.partial`), a batch at a
/// time, and renamed once whole. Dropped unfinished, it removes what it wrote.
struct BlockWriter {
    blocks: Arc<Blocks>,
    path: PathBuf,
    file: Option<std::fs::File>,
    batch: Vec<Bytes>,
    batch_len: usize,
    done: bool,
}

impl BlockWriter {
    fn partial(&self) -> PathBuf {
        self.path.with_extension("partial")
    }

    async fn push(&mut self, piece: Bytes) -> std::io::Result<()> {
        self.batch_len += piece.len();
        self.batch.push(piece);
        if self.batch_len >= WRITE_BATCH {
            self.write(false).await?;
        }
        Ok(())
    }

    /// Writes the batch (creating the file first), and renames the file when `last`.
    async fn write(&mut self, last: bool) -> std::io::Result<()> {
        use std::io::Write;
        let batch = std::mem::take(&mut self.batch);
        self.batch_len = 0;
        let (file, partial, path) = (self.file.take(), self.partial(), self.path.clone());
        let file = tokio::task::spawn_blocking(move || {
            let mut f = match file {
                Some(f) => f,
                None => std::fs::File::create(&partial)?,
            };
            for piece in &batch {
                f.write_all(piece)?;
            }
            if last {
                std::fs::rename(&partial, &path)?;
            }
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.file = Some(file);
        Ok(())
    }

    async fn finish(mut self) -> std::io::Result<()> {
        self.write(true).await?;
        self.done = true;
        Ok(())
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(self.partial());
        }
        self.blocks.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a run's blocks are kept.
#[derive(Debug, Clone)]
pub struct BlockConfig {
    /// The folder for blocks on disk (created; removed by [`Blocks::remove`]).
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

/// The blocks of the objects read through the mounts of a run, shared by all of them.
pub struct Blocks {
    cfg: BlockConfig,
    state: Mutex<State>,
    fetches: Arc<Semaphore>,
    disk_failed: AtomicBool,
    /// Set by [`Blocks::remove`]: late blocks are no longer written.
    closed: AtomicBool,
    /// Disk writes under way, which [`Blocks::remove`] waits for.
    writing: std::sync::atomic::AtomicUsize,
}

/// The bytes of a range as they arrive, in order.
pub type Pieces = BoxStream<'static, Result<Bytes, BlockError>>;

/// How missing blocks are fetched: the object's bytes `range`, streamed. An error
/// after some pieces is final: the store has resumed what it could
/// ([`crate::store::Store::read_range_stream`]), and the blocks not whole yet fail.
pub type Fetcher =
    Arc<dyn Fn(Range<u64>) -> BoxFuture<'static, Result<Pieces, BlockError>> + Send + Sync>;

impl Blocks {
    /// Blocks kept in `cfg.dir`, created now.
    pub fn new(mut cfg: BlockConfig) -> std::io::Result<Arc<Blocks>> {
        cfg.block_size = cfg.block_size.max(4096);
        if cfg.capacity > 0 {
            std::fs::create_dir_all(&cfg.dir)?;
        }
        let fetches = Arc::new(Semaphore::new(cfg.fetch_concurrency.max(1)));
        Ok(Arc::new(Blocks {
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

    /// Bytes of completed blocks in memory now.
    pub fn mem_used(&self) -> u64 {
        self.lock().mem_bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many blocks one read-ahead GET may cover.
    pub fn blocks_per_run(&self) -> u64 {
        (self.cfg.max_run / self.cfg.block_size).max(1)
    }

    /// Whether blocks of `len` bytes go to disk now.
    fn to_disk(&self, len: u64) -> bool {
        self.cfg.capacity >= self.cfg.block_size
            && len >= DISK_MIN_BLOCK.min(self.cfg.block_size)
            && !self.disk_failed.load(Ordering::Relaxed)
            && !self.closed.load(Ordering::Relaxed)
    }

    /// How many blocks ahead of a reader may be fetched without one of them falling out
    /// of memory or disk before the reader gets to it: any number while blocks go to disk;
    /// without the disk part (capacity 0, or the disk failed), half of what memory holds
    /// (memory is evicted in order of arrival). Beyond that, a block fetched ahead is
    /// evicted unread and fetched again.
    pub fn max_ahead(&self) -> u64 {
        if self.cfg.capacity >= self.cfg.block_size && !self.disk_failed.load(Ordering::Relaxed) {
            u64::MAX
        } else {
            (self.cfg.mem_bytes / self.cfg.block_size / 2).max(1)
        }
    }

    /// The number of blocks of an object.
    pub fn block_count(&self, object: &ObjectId) -> u64 {
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
    ) -> Result<Bytes, BlockError> {
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

    /// Starts fetching blocks `blocks` of `object` unless kept already; does not wait.
    /// Consecutive missing blocks are fetched together, up to `max_run` bytes a GET.
    /// Needs the runtime's context.
    pub fn prefetch(self: &Arc<Self>, object: &Arc<ObjectId>, blocks: Range<u64>, fetch: &Fetcher) {
        let per_run = self.blocks_per_run() as usize;
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

    /// Registers the consecutive blocks `run` as in flight and starts the task that
    /// fetches them with one GET. The caller holds the state lock.
    fn launch(self: &Arc<Self>, st: &mut State, run: Vec<BlockKey>, fetch: &Fetcher) {
        if run.is_empty() {
            return;
        }
        let mut promises = VecDeque::with_capacity(run.len());
        for key in run {
            let (tx, rx) = oneshot::channel();
            let f: Fetch = rx
                .map(|got| {
                    got.unwrap_or_else(|_| {
                        Err(BlockError::Storage("the fetch was abandoned".into()))
                    })
                })
                .boxed()
                .shared();
            st.mem.insert(key.clone(), f);
            promises.push_back((key, tx));
        }
        tokio::spawn(self.clone().drive(promises, fetch.clone()));
    }

    /// Fetches the consecutive blocks of `promises` with one GET, and hands each block
    /// over as soon as it is whole. A block bound for disk is written to its file as it
    /// arrives, a batch at a time; one kept in memory is held until whole. The answer is
    /// asked for again only when the disk fails under a block (the bytes already
    /// written are lost with it), never after a failure of the store's.
    async fn drive(self: Arc<Self>, mut promises: VecDeque<(BlockKey, Promise)>, fetch: Fetcher) {
        let _permit = self.fetches.clone().acquire_owned().await;
        let (Some((first, _)), Some((last, _))) = (promises.front(), promises.back()) else {
            return;
        };
        let (mut at, end) = (self.block_range(first).start, self.block_range(last).end);
        // The block being received: where its bytes go, and how many have come.
        let mut sink: Option<Sink> = None;
        let mut have = 0u64;
        while at < end {
            let mut answer = match fetch(at..end).await {
                Ok(a) => a,
                Err(e) => return self.fail(promises, e),
            };
            let mut broke = None;
            let mut disk_failed = false;
            'answer: while let Some(piece) = answer.next().await {
                let mut piece = match piece {
                    Ok(p) => p,
                    Err(e) => {
                        broke = Some(e);
                        break;
                    }
                };
                while !piece.is_empty() {
                    let Some((key, _)) = promises.front() else {
                        break 'answer;
                    };
                    let size = {
                        let r = self.block_range(key);
                        r.end - r.start
                    };
                    let current = sink.get_or_insert_with(|| self.sink_for(key, size));
                    let part = piece.split_to(((size - have) as usize).min(piece.len()));
                    have += part.len() as u64;
                    at += part.len() as u64;
                    if let Err(e) = current.push(part).await {
                        self.disk_failed(&e);
                        disk_failed = true;
                        break 'answer;
                    }
                    if have < size {
                        continue;
                    }
                    let Some((key, promise)) = promises.pop_front() else {
                        break 'answer;
                    };
                    let block = match self.settle(&key, &mut sink, size).await {
                        Ok(block) => block,
                        Err(e) => {
                            self.disk_failed(&e);
                            promises.push_front((key, promise));
                            disk_failed = true;
                            break 'answer;
                        }
                    };
                    let _ = promise.send(Ok(block));
                    have = 0;
                }
            }
            drop(answer);
            if disk_failed {
                // The block being received starts over, in memory this time.
                at -= have;
                have = 0;
                sink = None;
                continue;
            }
            if promises.is_empty() {
                return;
            }
            // The store resumed what it could: a failure is final.
            let e = broke.unwrap_or_else(|| {
                BlockError::Storage(
                    format!("the store's answer ended at byte {at}, before byte {end}").into(),
                )
            });
            return self.fail(promises, e);
        }
    }

    /// Where the bytes of block `key` (`size` bytes) go as they arrive.
    fn sink_for(self: &Arc<Self>, key: &BlockKey, size: u64) -> Sink {
        if self.to_disk(size) {
            self.writing.fetch_add(1, Ordering::SeqCst);
            Sink::Disk(BlockWriter {
                blocks: self.clone(),
                path: self.block_file(key),
                file: None,
                batch: Vec::new(),
                batch_len: 0,
                done: false,
            })
        } else {
            Sink::Mem(BytesMut::with_capacity(size as usize))
        }
    }

    /// The first failure to write the disk part turns it off for the rest of the run.
    fn disk_failed(&self, e: &std::io::Error) {
        if !self.closed.load(Ordering::Relaxed) && !self.disk_failed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the mount's block folder {} cannot be written ({e}); blocks are kept in memory only (at most {} MiB) and fetched again when needed",
                self.cfg.dir.display(),
                self.cfg.mem_bytes >> 20
            );
        }
    }

    /// Fails the blocks of `promises`: failures are not remembered, so the next read
    /// tries again.
    fn fail(&self, promises: VecDeque<(BlockKey, Promise)>, e: BlockError) {
        {
            let mut st = self.lock();
            for (key, _) in &promises {
                st.mem.remove(key);
            }
        }
        for (_, promise) in promises {
            let _ = promise.send(Err(e.clone()));
        }
    }

    /// Block `key` has arrived whole in `sink`: its file is completed and registered
    /// (the least recently used evicted), or it is kept in memory, the oldest evicted.
    async fn settle(
        self: &Arc<Self>,
        key: &BlockKey,
        sink: &mut Option<Sink>,
        len: u64,
    ) -> std::io::Result<Block> {
        match sink.take() {
            Some(Sink::Disk(w)) => {
                w.finish().await?;
                self.on_disk(key, len).await;
                Ok(Block::Disk)
            }
            Some(Sink::Mem(block)) => Ok(self.keep_in_memory(key.clone(), block.freeze())),
            None => Ok(self.keep_in_memory(key.clone(), Bytes::new())),
        }
    }

    /// Keeps a block in memory, evicting the oldest beyond the bound.
    fn keep_in_memory(&self, key: BlockKey, bytes: Bytes) -> Block {
        let len = bytes.len() as u64;
        let mut st = self.lock();
        st.mem_done.push_back((key, len));
        st.mem_bytes += len;
        while st.mem_bytes > self.cfg.mem_bytes {
            let Some((old, l)) = st.mem_done.pop_front() else {
                break;
            };
            st.mem_bytes -= l;
            st.mem.remove(&old);
        }
        Block::Mem(bytes)
    }

    /// Registers a block whose file is complete, evicting the least recently used
    /// beyond the bound, and forgets it in memory: readers read the file from now on.
    async fn on_disk(&self, key: &BlockKey, len: u64) {
        let (evict, closed) = {
            let mut st = self.lock();
            st.tick += 1;
            st.generation += 1;
            let (tick, generation) = (st.tick, st.generation);
            let mut closed = Vec::new();
            if let Some((old_len, old_tick, _)) =
                st.disk.insert(key.clone(), (len, tick, generation))
            {
                st.disk_used -= old_len;
                st.disk_lru.remove(&old_tick);
                closed.extend(st.close(key));
            }
            st.disk_lru.insert(tick, key.clone());
            st.disk_used += len;
            st.mem.remove(key);
            let mut evict = Vec::new();
            while st.disk_used > self.cfg.capacity {
                let Some((_, victim)) = st.disk_lru.pop_first() else {
                    break;
                };
                if let Some((l, _, _)) = st.disk.remove(&victim) {
                    st.disk_used -= l;
                }
                closed.extend(st.close(&victim));
                evict.push(self.block_file(&victim));
            }
            (evict, closed)
        };
        // Closed before their files are removed: nothing here pins an evicted block.
        drop(closed);
        if !evict.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                for p in evict {
                    let _ = std::fs::remove_file(p);
                }
            })
            .await;
        }
    }

    /// Reads `out.len()` bytes at `at` (an offset in the block) from block `key`'s
    /// file, `opened` being its generation on disk and its file if kept open
    /// ([`State::opened`]). A file opened here is kept open while that generation is
    /// still the one on disk. A file that cannot be read (evicted meanwhile) is
    /// forgotten, so the next read fetches the block again. Blocks.
    fn read_file(
        &self,
        key: &BlockKey,
        opened: (u64, Option<Arc<std::fs::File>>),
        at: u64,
        out: &mut [u8],
    ) -> std::io::Result<()> {
        let (generation, file) = opened;
        let mut read = |f: &std::fs::File| f.read_exact_at(out, at);
        let got = match file {
            Some(f) => read(&f),
            None => match std::fs::File::open(self.block_file(key)) {
                Err(e) => Err(e),
                Ok(f) => {
                    let got = read(&f);
                    if got.is_ok() {
                        self.keep_open(key, generation, f);
                    }
                    got
                }
            },
        };
        if got.is_err() {
            // Only this generation: a block fetched again since is left alone.
            let closed = {
                let mut st = self.lock();
                if st.disk.get(key).map(|e| e.2) == Some(generation) {
                    st.forget(key)
                } else {
                    None
                }
            };
            drop(closed);
        }
        got
    }

    /// Keeps block `key`'s file `f` open for the next reads while `generation` is
    /// still the one on disk (else the block was evicted or replaced meanwhile).
    fn keep_open(&self, key: &BlockKey, generation: u64, f: std::fs::File) {
        let closed = {
            let mut st = self.lock();
            let current = st.disk.get(key).map(|e| e.2) == Some(generation);
            if !current || st.open.iter().any(|(k, _, _)| k == key) {
                None
            } else {
                st.open.push_back((key.clone(), generation, Arc::new(f)));
                if st.open.len() > OPEN_FILES {
                    st.open.pop_front()
                } else {
                    None
                }
            }
        };
        drop(closed);
    }

    /// Reads `local` (offsets in the block) from block `key`'s file into a new buffer,
    /// unless the block has left the disk part. Blocks.
    fn read_file_new(&self, key: &BlockKey, local: Range<usize>) -> std::io::Result<Bytes> {
        let opened = self.lock().opened(key).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "evicted from the disk part")
        })?;
        let mut buf = BytesMut::zeroed(local.len());
        self.read_file(key, opened, local.start as u64, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Reads `range` (absolute offsets, all inside block `index`).
    async fn read_in_block(
        self: &Arc<Self>,
        object: &Arc<ObjectId>,
        index: u64,
        range: Range<u64>,
        fetch: &Fetcher,
    ) -> Result<Bytes, BlockError> {
        let key = BlockKey {
            object: object.clone(),
            index,
        };
        let base = index * self.cfg.block_size;
        let local = (range.start - base) as usize..(range.end - base) as usize;
        // A block evicted between its arrival and this read is fetched again, once.
        for _ in 0..2 {
            let pending = {
                let mut st = self.lock();
                match st.mem.get(&key).cloned() {
                    Some(f) => Some(f),
                    None if st.touch_disk(&key) => None,
                    None => {
                        self.launch(&mut st, vec![key.clone()], fetch);
                        st.mem.get(&key).cloned()
                    }
                }
            };
            if let Some(f) = pending {
                match f.await? {
                    Block::Mem(block) => return slice(&block, local),
                    Block::Disk => {}
                }
            }
            let (me, k, l) = (self.clone(), key.clone(), local.clone());
            match tokio::task::spawn_blocking(move || me.read_file_new(&k, l)).await {
                Ok(Ok(b)) => return Ok(b),
                // Evicted meanwhile: fetch it again.
                Ok(Err(e)) => {
                    tracing::debug!("block {} unreadable ({e}); fetching it again", key.index);
                }
                Err(e) => {
                    return Err(BlockError::Storage(
                        format!("the block reader failed: {e}").into(),
                    ))
                }
            }
        }
        Err(BlockError::Storage(
            "a block of the mount was evicted twice before it could be read".into(),
        ))
    }

    /// The bytes `range` of `object` if they are kept now (in memory, or on disk:
    /// then read from the file, so call this where blocking is allowed, as on the
    /// FUSE session's threads), without waiting for a fetch.
    ///
    /// A block on disk is read into `buf` (grown when too small, never shrunk: the
    /// caller keeps one per thread, so a read allocates and zeroes nothing).
    pub fn read_now<'b>(
        &self,
        object: &Arc<ObjectId>,
        range: Range<u64>,
        buf: &'b mut Vec<u8>,
    ) -> Option<Kept<'b>> {
        let end = range.end.min(object.size);
        if range.start >= end {
            return Some(Kept::Mem(Bytes::new()));
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
        let base = index * bs;
        let local = (range.start - base) as usize..(end - base) as usize;
        let opened = {
            let mut st = self.lock();
            if let Some(f) = st.mem.get(&key) {
                return match f.peek()? {
                    Ok(Block::Mem(b)) => slice(b, local).ok().map(Kept::Mem),
                    _ => None,
                };
            }
            if !st.touch_disk(&key) {
                return None;
            }
            st.opened(&key)?
        };
        if buf.len() < local.len() {
            buf.resize(local.len(), 0);
        }
        let out = &mut buf[..local.len()];
        self.read_file(&key, opened, local.start as u64, out)
            .ok()
            .map(|()| Kept::Read(out))
    }

    /// Deletes the block folder and everything in it.
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

fn slice(block: &Bytes, local: Range<usize>) -> Result<Bytes, BlockError> {
    if local.end > block.len() {
        return Err(BlockError::Storage(
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

    /// An answer of one piece.
    fn whole(b: Bytes) -> Pieces {
        futures::stream::once(async move { Ok(b) }).boxed()
    }

    /// A fetcher over `content` that counts its calls and answers in one piece.
    fn counting(content: Bytes, calls: Arc<AtomicUsize>) -> Fetcher {
        Arc::new(move |r: Range<u64>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let b = content.slice(r.start as usize..r.end as usize);
            async move { Ok(whole(b)) }.boxed()
        })
    }

    /// A fetcher over `content` that answers in pieces of `piece` bytes and records
    /// the ranges asked for; the first answer breaks off after `break_after` bytes (a
    /// failure the store could not resume).
    fn in_pieces(
        content: Bytes,
        piece: usize,
        break_after: Option<u64>,
        asked: Arc<Mutex<Vec<Range<u64>>>>,
    ) -> Fetcher {
        Arc::new(move |r: Range<u64>| {
            let first = {
                let mut a = asked.lock().unwrap();
                a.push(r.clone());
                a.len() == 1
            };
            let b = content.slice(r.start as usize..r.end as usize);
            let mut out: Vec<Result<Bytes, BlockError>> = Vec::new();
            let mut at = 0usize;
            while at < b.len() {
                if first && break_after.is_some_and(|n| at as u64 >= n) {
                    out.push(Err(BlockError::Storage("connection reset".into())));
                    break;
                }
                let n = piece.min(b.len() - at);
                out.push(Ok(b.slice(at..at + n)));
                at += n;
            }
            async move { Ok(futures::stream::iter(out).boxed()) }.boxed()
        })
    }

    /// Blocks of 4 KiB and 1 MiB on disk, with these fetches, memory and runs.
    fn blocks_with(dir: &Path, fetches: usize, mem_bytes: u64, max_run: u64) -> Arc<Blocks> {
        Blocks::new(BlockConfig {
            dir: dir.join("c"),
            capacity: 1 << 20,
            block_size: 4096,
            fetch_concurrency: fetches,
            mem_bytes,
            max_run,
        })
        .unwrap()
    }

    fn blocks(dir: &Path, capacity: u64) -> Arc<Blocks> {
        Blocks::new(BlockConfig {
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
        let c = blocks(tmp.path(), 1 << 20);
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
        let c = blocks(tmp.path(), 5 * 4096);
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
        // Blocks on disk are not held in memory; block 36 is read from its file, and
        // block 34, evicted, is fetched again.
        assert_eq!(c.mem_used(), 0);
        let got = c.read(&o, 36 * 4096 + 5..36 * 4096 + 50, &f).await.unwrap();
        assert_eq!(got, content.slice(36 * 4096 + 5..36 * 4096 + 50));
        assert_eq!(calls.load(Ordering::SeqCst), 40);
        let got = c.read(&o, 34 * 4096 + 5..34 * 4096 + 50, &f).await.unwrap();
        assert_eq!(got, content.slice(34 * 4096 + 5..34 * 4096 + 50));
        assert_eq!(calls.load(Ordering::SeqCst), 41);
        c.remove().unwrap();
        assert!(!c.dir().exists());
    }

    /// Waits until block `index` of `o` is registered on disk (written in the
    /// background after its readers were answered).
    async fn on_disk_soon(c: &Blocks, o: &Arc<ObjectId>, index: u64) {
        let key = BlockKey {
            object: o.clone(),
            index,
        };
        for _ in 0..500 {
            if c.lock().disk.contains_key(&key) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("block {index} never reached the disk part");
    }

    fn open_blocks(c: &Blocks) -> Vec<u64> {
        c.lock().open.iter().map(|(k, _, _)| k.index).collect()
    }

    #[tokio::test]
    async fn read_now_keeps_a_block_file_open_and_closes_it_when_the_block_is_evicted() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks(tmp.path(), 2 * 4096);
        let size = 4 * 4096;
        let content = data(size);
        let calls = Arc::new(AtomicUsize::new(0));
        let f = counting(content.clone(), calls.clone());
        let o = object(size);
        let mut buf = Vec::new();
        c.read(&o, 0..1, &f).await.unwrap();
        on_disk_soon(&c, &o, 0).await;
        // Many reads of block 0 through one open file, each byte-exact.
        for r in [0..100u64, 100..4096, 7..9, 0..4096] {
            let got = c.read_now(&o, r.clone(), &mut buf).unwrap();
            assert_eq!(&*got, &content[r.start as usize..r.end as usize]);
        }
        assert_eq!(open_blocks(&c), [0]);
        // Blocks 1 and 2 push block 0 out of the disk part: its file is closed and
        // gone, and read_now no longer serves it.
        for i in 1..3u64 {
            c.read(&o, i * 4096..i * 4096 + 1, &f).await.unwrap();
            on_disk_soon(&c, &o, i).await;
        }
        assert!(!open_blocks(&c).contains(&0), "{:?}", open_blocks(&c));
        assert!(c.read_now(&o, 0..100, &mut buf).is_none());
        // Fetched again, it is read from its new file, right.
        let n = calls.load(Ordering::SeqCst);
        assert_eq!(c.read(&o, 10..20, &f).await.unwrap(), content.slice(10..20));
        assert_eq!(calls.load(Ordering::SeqCst), n + 1);
        on_disk_soon(&c, &o, 0).await;
        let got = c.read_now(&o, 4000..4096, &mut buf).unwrap();
        assert_eq!(&*got, &content[4000..4096]);
        // Never more files open than blocks on disk, nor than OPEN_FILES.
        assert!(open_blocks(&c).len() <= 2, "{:?}", open_blocks(&c));
        c.remove().unwrap();
    }

    #[tokio::test]
    async fn a_block_file_removed_under_an_open_reader_is_fetched_again_not_served() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks(tmp.path(), 1 << 20);
        let size = 2 * 4096;
        let content = data(size);
        let calls = Arc::new(AtomicUsize::new(0));
        let f = counting(content.clone(), calls.clone());
        let o = object(size);
        let mut buf = Vec::new();
        c.read(&o, 0..1, &f).await.unwrap();
        on_disk_soon(&c, &o, 0).await;
        assert!(c.read_now(&o, 0..10, &mut buf).is_some());
        // Someone truncates the block's file: the read fails short, the block is
        // forgotten (its open file closed), and the next read fetches it again.
        let key = BlockKey {
            object: o.clone(),
            index: 0,
        };
        std::fs::File::create(c.block_file(&key)).unwrap();
        assert!(c.read_now(&o, 0..10, &mut buf).is_none());
        assert!(open_blocks(&c).is_empty());
        assert_eq!(
            c.read(&o, 0..4096, &f).await.unwrap(),
            content.slice(0..4096)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_fetch_and_prefetch_fills_the_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks(tmp.path(), 0);
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
        let c = blocks_with(tmp.path(), 4, 1 << 20, 4 * 4096);
        let size = 10 * 4096 - 100;
        let content = data(size);
        let calls = Arc::new(AtomicUsize::new(0));
        let f = counting(content.clone(), calls.clone());
        let o = object(size);
        // Block 2 is kept already: runs 0..2, 3..7, 7..10 (the last one short).
        c.read(&o, 2 * 4096..2 * 4096 + 1, &f).await.unwrap();
        c.prefetch(&o, 0..10, &f);
        let all = c.read(&o, 0..size, &f).await.unwrap();
        assert_eq!(all, content);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_reported_and_retried_on_the_next_read() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks(tmp.path(), 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        let n = calls.clone();
        let f: Fetcher = Arc::new(move |r: Range<u64>| {
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    Err(BlockError::Storage("boom".into()))
                } else {
                    Ok(whole(Bytes::from(vec![7u8; (r.end - r.start) as usize])))
                }
            }
            .boxed()
        });
        let o = object(100);
        assert!(matches!(
            c.read(&o, 0..10, &f).await,
            Err(BlockError::Storage(_))
        ));
        assert_eq!(
            c.read(&o, 0..10, &f).await.unwrap(),
            Bytes::from(vec![7u8; 10])
        );
    }

    #[tokio::test]
    async fn a_short_answer_from_the_store_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks(tmp.path(), 1 << 20);
        let f: Fetcher =
            Arc::new(|_r: Range<u64>| async { Ok(whole(Bytes::from_static(b"abc"))) }.boxed());
        let o = object(100);
        assert!(matches!(
            c.read(&o, 0..10, &f).await,
            Err(BlockError::Storage(_))
        ));
    }

    #[tokio::test]
    async fn a_run_answered_in_odd_pieces_lands_in_the_right_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks_with(tmp.path(), 2, 8 * 4096, 8 * 4096);
        let size = 20 * 4096 + 77;
        let content = data(size);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let f = in_pieces(content.clone(), 1000, None, asked.clone());
        let o = object(size);
        c.prefetch(&o, 0..c.block_count(&o), &f);
        let all = c.read(&o, 0..size, &f).await.unwrap();
        assert_eq!(all, content);
        // Three runs of at most 8 blocks, one request each.
        assert_eq!(
            asked.lock().unwrap().len(),
            3,
            "{:?}",
            asked.lock().unwrap()
        );
        // Every whole block went to disk: only the short tail is held in memory.
        assert_eq!(c.mem_used(), 77);
    }

    #[tokio::test]
    async fn an_answer_that_breaks_off_fails_the_blocks_not_whole_and_keeps_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks_with(tmp.path(), 2, 8 * 4096, 8 * 4096);
        let size = 8 * 4096;
        let content = data(size);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let f = in_pieces(content.clone(), 1000, Some(10_000), asked.clone());
        let o = object(size);
        c.prefetch(&o, 0..8, &f);
        // The store resumed what it could: its failure is final for the block it broke
        // in, which no fetch here asks for again...
        assert!(matches!(
            c.read(&o, 8192..8200, &f).await,
            Err(BlockError::Storage(_))
        ));
        assert_eq!(asked.lock().unwrap().len(), 1);
        // ...but the blocks whole before the break are kept, and the next read of the
        // others fetches them.
        assert_eq!(c.read(&o, 0..size, &f).await.unwrap(), content);
        let asked = asked.lock().unwrap().clone();
        assert_eq!(asked[0], 0..size);
        assert!(asked[1..].iter().all(|r| r.start >= 8192), "{asked:?}");
    }

    #[tokio::test]
    async fn without_a_disk_part_memory_holds_at_most_its_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks(tmp.path(), 0);
        let size = 64 * 4096;
        let content = data(size);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let f = in_pieces(content.clone(), 1500, None, asked);
        let o = object(size);
        for i in 0..64u64 {
            let r = i * 4096..(i + 1) * 4096;
            let got = c.read(&o, r.clone(), &f).await.unwrap();
            assert_eq!(got, content.slice(r.start as usize..r.end as usize));
            assert!(c.mem_used() <= 8 * 4096, "{} bytes in memory", c.mem_used());
        }
        assert!(
            !c.dir().exists(),
            "nothing goes to disk without a disk part"
        );
    }

    #[tokio::test]
    async fn when_the_disk_fails_blocks_are_kept_in_memory_and_read_right() {
        let tmp = tempfile::tempdir().unwrap();
        let c = blocks_with(tmp.path(), 2, 1 << 20, 4 * 4096);
        // The folder is gone: the first block's file cannot be made.
        std::fs::remove_dir_all(c.dir()).unwrap();
        let size = 8 * 4096;
        let content = data(size);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let f = in_pieces(content.clone(), 1000, None, asked.clone());
        let o = object(size);
        c.prefetch(&o, 0..8, &f);
        assert_eq!(c.read(&o, 0..size, &f).await.unwrap(), content);
        assert_eq!(c.disk_used(), 0);
        assert_eq!(c.mem_used(), size);
        // No more read-ahead than memory holds from now on.
        assert_eq!(c.max_ahead(), 128);
    }
}
