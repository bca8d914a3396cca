//! The filesystem without the kernel: the inode table of a read-only view of one path
//! of a datastore ([`Core`]), and its operations as async methods, built on the
//! [`Store`](crate::store::Store) seam only, so it serves every store type the same way
//! and is tested without FUSE. The adapter that the kernel calls is `fuse.rs`; the
//! bytes of files come from the run's blocks (`blocks.rs`).
//!
//! Every store call has one limit on its time, its retries included: the mount hands
//! the store a short retry schedule of its own ([`FsConfig::retry`], through
//! [`crate::store::Store::retrying`]) and never retries around the store, whose retries
//! would multiply with its own. A store that fails or does not answer in time becomes
//! `EIO` for the reader (cause in the agent's log), never a hang.
//!
//! Folders are listed lazily, one level at a time, when first looked into, and kept
//! for the attribute TTL; a name looked up in a folder not yet listed is a single
//! `stat`. Inode numbers are stable for the life of the mount (nothing is forgotten:
//! a job's inputs are bounded, and the kernel may ask about any inode it has seen).
//!
//! This module must never write to a store: [`Core::open`] refuses anything but
//! reading.

use super::blocks::{BlockError, Blocks, Fetcher, ObjectId};
use super::readahead::Readahead;
use crate::retry::{RetryConfig, RetryCount};
use crate::store::{DynStore, Entry, ObjectMeta, StoreError};
use bytes::Bytes;
use fuser::{Errno, FileAttr, FileType, INodeNo, OpenAccMode, OpenFlags};
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// How the filesystem behaves.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// How long attributes and folder listings are trusted (and the kernel's TTL).
    pub attr_ttl: Duration,
    /// The limit on one store call, its retries included.
    pub op_timeout: Duration,
    /// How the store retries the mount's calls (fewer and sooner than a transfer's).
    pub retry: RetryConfig,
    /// The most blocks fetched ahead of a sequential reader.
    pub max_readahead_blocks: u64,
    /// Where the store calls' retries are counted: the input's count, scoped where the
    /// mount was made ([`Core::new`] takes it), so they reach the run's `finished`.
    pub retries: Option<Arc<RetryCount>>,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            attr_ttl: Duration::from_secs(60),
            op_timeout: Duration::from_secs(60),
            retry: RetryConfig::for_reader(),
            max_readahead_blocks: 32,
            retries: None,
        }
    }
}

/// A filesystem operation that failed, as the kernel will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    /// ENOENT.
    NotFound,
    /// ENOTDIR.
    NotDir,
    /// EISDIR.
    IsDir,
    /// EROFS.
    ReadOnly,
    /// EBADF: an unknown handle.
    BadHandle,
    /// EIO: the store failed or did not answer in time (already logged).
    Io,
}

impl FsError {
    /// The errno for the kernel.
    pub fn errno(&self) -> Errno {
        match self {
            FsError::NotFound => Errno::ENOENT,
            FsError::NotDir => Errno::ENOTDIR,
            FsError::IsDir => Errno::EISDIR,
            FsError::ReadOnly => Errno::EROFS,
            FsError::BadHandle => Errno::EBADF,
            FsError::Io => Errno::EIO,
        }
    }
}

impl From<BlockError> for FsError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::NotFound => FsError::NotFound,
            BlockError::Storage(_) => FsError::Io,
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    File(ObjectMeta),
    Dir(Option<Arc<Listing>>),
}

#[derive(Debug)]
struct Node {
    /// Path in the store.
    path: String,
    /// The folder it is in (0 for the root).
    parent: u64,
    kind: Kind,
    /// When `kind` was last read from the store.
    fetched: Instant,
}

/// One folder level, as listed.
#[derive(Debug)]
pub struct Listing {
    at: Instant,
    /// (name, inode, type), in the store's order.
    entries: Vec<(String, u64, FileType)>,
    by_name: HashMap<String, usize>,
}

#[derive(Default)]
struct Nodes {
    map: HashMap<u64, Node>,
    by_name: HashMap<(u64, String), u64>,
    next: u64,
}

impl Nodes {
    /// The inode of `name` in `parent`, created or updated with `kind`. A folder keeps
    /// its listing when it is seen again.
    fn intern(&mut self, parent: u64, name: &str, path: String, kind: Kind) -> u64 {
        if let Some(&ino) = self.by_name.get(&(parent, name.to_string())) {
            if let Some(n) = self.map.get_mut(&ino) {
                match (&mut n.kind, kind) {
                    (Kind::Dir(_), Kind::Dir(_)) => {}
                    (k, new) => *k = new,
                }
                n.fetched = Instant::now();
            }
            return ino;
        }
        self.next += 1;
        let ino = self.next;
        self.map.insert(
            ino,
            Node {
                path,
                parent,
                kind,
                fetched: Instant::now(),
            },
        );
        self.by_name.insert((parent, name.to_string()), ino);
        ino
    }
}

/// The most files of a folder fetched ahead of a reader walking it.
const MAX_SCAN_AHEAD: usize = 64;

/// How the files of one folder are being opened.
#[derive(Debug, Default)]
struct DirScan {
    /// The index of the last file opened.
    last: Option<usize>,
    /// Files fetched ahead, while the walk is in order.
    window: usize,
    /// Entries below this index have been asked for.
    until: usize,
}

impl DirScan {
    /// Records the opening of entry `idx` of `len`; returns the entries to fetch ahead.
    fn on_open(&mut self, idx: usize, len: usize) -> std::ops::Range<usize> {
        // A folder between two files, or a file skipped, still counts as in order.
        let in_order = self.last.is_some_and(|l| idx > l && idx - l <= 4);
        self.last = Some(idx);
        if !in_order {
            self.window = 0;
            self.until = 0;
            return 0..0;
        }
        self.window = (self.window * 2).clamp(4, MAX_SCAN_AHEAD);
        let start = (idx + 1).max(self.until);
        let stop = (idx + 1 + self.window).min(len);
        if start >= stop {
            return 0..0;
        }
        self.until = stop;
        start..stop
    }
}

/// An open file: the object as it was when opened, so every read of one handle sees
/// one version.
pub struct OpenFile {
    object: Arc<ObjectId>,
    fetch: Fetcher,
    readahead: Mutex<Readahead>,
}

/// The shared state behind the FUSE methods; its async methods are the filesystem's
/// logic, testable without the kernel.
pub struct Core {
    store: DynStore,
    blocks: Arc<Blocks>,
    cfg: FsConfig,
    nodes: RwLock<Nodes>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
    /// Per folder, how its files are being opened (see [`Core::scan_ahead`]).
    scans: Mutex<HashMap<u64, DirScan>>,
    next_fh: AtomicU64,
    uid: u32,
    gid: u32,
    time: SystemTime,
    /// What the mount shows, for log lines: `datastore:path`.
    what: String,
    /// The store paths of names not shown ([`usable_name`]), each warned of once.
    hidden: Mutex<std::collections::HashSet<String>>,
}

impl Core {
    /// A view of `root_path` (a folder, or one file when `root` is a file) of `store`,
    /// whose calls retry under `cfg.retry`.
    pub fn new(
        store: DynStore,
        root_path: &str,
        root: Entry,
        blocks: Arc<Blocks>,
        mut cfg: FsConfig,
    ) -> Core {
        let store = crate::store::with_retry(&store, cfg.retry);
        // Reads come later, on tasks the FUSE threads spawn, outside any count's scope.
        cfg.retries = cfg.retries.or_else(RetryCount::current);
        let kind = match root {
            Entry::File(meta) => Kind::File(meta),
            _ => Kind::Dir(None),
        };
        let mut nodes = Nodes {
            next: INodeNo::ROOT.0,
            ..Default::default()
        };
        nodes.map.insert(
            INodeNo::ROOT.0,
            Node {
                path: root_path.to_string(),
                parent: 0,
                kind,
                fetched: Instant::now(),
            },
        );
        let what = format!("{}:{root_path}", store.name());
        Core {
            store,
            blocks,
            cfg,
            nodes: RwLock::new(nodes),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            scans: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            time: SystemTime::now(),
            what,
            hidden: Mutex::new(Default::default()),
        }
    }

    /// Says once per name that the store holds `path`, which the mount does not show.
    fn hide(&self, path: String) {
        let mut hidden = self.hidden.lock().unwrap_or_else(|e| e.into_inner());
        if hidden.insert(path.clone()) {
            tracing::warn!(
                "mount {}: {path:?} is not shown: its name holds a control character, a '/' or is '.' or '..', which a reader of the folder could take for something else; rename it in the store to read it",
                self.what
            );
        }
    }

    fn nodes_read(&self) -> std::sync::RwLockReadGuard<'_, Nodes> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn nodes_write(&self) -> std::sync::RwLockWriteGuard<'_, Nodes> {
        self.nodes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one store call (retrying inside the store) under the limit on its time;
    /// failures are logged here, once, with their cause, and become `EIO` (a missing
    /// object, `ENOENT`).
    async fn call<T, F, Fut>(&self, what: &str, path: &str, f: F) -> Result<T, FsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        store_call(&self.cfg, &self.what, what, path, f).await
    }

    fn attr_of(&self, ino: u64, kind: &Kind) -> FileAttr {
        let (ftype, size, perm, nlink) = match kind {
            Kind::File(m) => (FileType::RegularFile, m.size, 0o444, 1),
            Kind::Dir(_) => (FileType::Directory, 0, 0o555, 2),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.time,
            mtime: self.time,
            ctime: self.time,
            crtime: self.time,
            kind: ftype,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 128 * 1024,
            flags: 0,
        }
    }

    /// The attributes of `ino`, read again from the store once older than the TTL.
    pub async fn getattr(&self, ino: u64) -> Result<FileAttr, FsError> {
        let (path, kind, stale) = {
            let nodes = self.nodes_read();
            let n = nodes.map.get(&ino).ok_or(FsError::NotFound)?;
            (
                n.path.clone(),
                n.kind.clone(),
                n.fetched.elapsed() > self.cfg.attr_ttl,
            )
        };
        if let (Kind::File(_), true) = (&kind, stale) {
            let store = self.store.clone();
            let entry = self.call("stat", &path, || {
                let (s, p) = (store.clone(), path.clone());
                async move { s.stat(&p).await }
            });
            if let Entry::File(meta) = entry.await? {
                let kind = Kind::File(meta);
                let mut nodes = self.nodes_write();
                if let Some(n) = nodes.map.get_mut(&ino) {
                    n.kind = kind.clone();
                    n.fetched = Instant::now();
                }
                return Ok(self.attr_of(ino, &kind));
            }
            return Err(FsError::NotFound);
        }
        Ok(self.attr_of(ino, &kind))
    }

    /// How long the kernel may trust attributes and entries.
    pub fn attr_ttl(&self) -> Duration {
        self.cfg.attr_ttl
    }

    /// The attributes without any store call, when known.
    pub fn known_attr(&self, ino: u64) -> Option<FileAttr> {
        let nodes = self.nodes_read();
        let n = nodes.map.get(&ino)?;
        if matches!(n.kind, Kind::File(_)) && n.fetched.elapsed() > self.cfg.attr_ttl {
            return None;
        }
        Some(self.attr_of(ino, &n.kind))
    }

    /// The listing of folder `ino`, fresh or kept.
    pub async fn listing(&self, ino: u64) -> Result<Arc<Listing>, FsError> {
        let path = {
            let nodes = self.nodes_read();
            let n = nodes.map.get(&ino).ok_or(FsError::NotFound)?;
            match &n.kind {
                Kind::File(_) => return Err(FsError::NotDir),
                Kind::Dir(Some(l)) if l.at.elapsed() <= self.cfg.attr_ttl => return Ok(l.clone()),
                Kind::Dir(_) => n.path.clone(),
            }
        };
        let store = self.store.clone();
        let (files, dirs) = self
            .call("list", &path, || {
                let (s, p) = (store.clone(), path.clone());
                async move { s.list_dir(&p).await }
            })
            .await?;
        let mut nodes = self.nodes_write();
        let mut entries = Vec::with_capacity(files.len() + dirs.len());
        let mut by_name = HashMap::with_capacity(files.len() + dirs.len());
        for d in dirs {
            if !usable_name(&d) {
                self.hide(stagehand_protocol::path::join(&path, &d));
                continue;
            }
            if by_name.contains_key(&d) {
                continue;
            }
            let child = nodes.intern(
                ino,
                &d,
                stagehand_protocol::path::join(&path, &d),
                Kind::Dir(None),
            );
            by_name.insert(d.clone(), entries.len());
            entries.push((d, child, FileType::Directory));
        }
        for f in files {
            let name = f.path.rsplit('/').next().unwrap_or("").to_string();
            if !usable_name(&name) {
                self.hide(f.path.clone());
                continue;
            }
            // A folder and an object of the same name: the folder wins (as in blobfuse2).
            if by_name.contains_key(&name) {
                continue;
            }
            let child = nodes.intern(ino, &name, f.path.clone(), Kind::File(f));
            by_name.insert(name.clone(), entries.len());
            entries.push((name, child, FileType::RegularFile));
        }
        // In name order (the order of a blob listing, and of `sort`), so that "the next
        // file" means the same to a reader walking the folder and to `scan_ahead`.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.0.clone(), i))
            .collect();
        let listing = Arc::new(Listing {
            at: Instant::now(),
            entries,
            by_name,
        });
        if let Some(n) = nodes.map.get_mut(&ino) {
            n.kind = Kind::Dir(Some(listing.clone()));
            n.fetched = Instant::now();
        }
        Ok(listing)
    }

    /// The answer to a lookup when it needs no store call (the folder's listing is
    /// fresh), else `None`.
    pub fn lookup_known(&self, parent: u64, name: &str) -> Option<Result<FileAttr, FsError>> {
        if !usable_name(name) {
            return Some(Err(FsError::NotFound));
        }
        let nodes = self.nodes_read();
        let Some(n) = nodes.map.get(&parent) else {
            return Some(Err(FsError::NotFound));
        };
        match &n.kind {
            Kind::File(_) => Some(Err(FsError::NotDir)),
            Kind::Dir(Some(l)) if l.at.elapsed() <= self.cfg.attr_ttl => {
                let Some(&i) = l.by_name.get(name) else {
                    return Some(Err(FsError::NotFound));
                };
                let ino = l.entries[i].1;
                Some(match nodes.map.get(&ino) {
                    Some(child) => Ok(self.attr_of(ino, &child.kind)),
                    None => Err(FsError::NotFound),
                })
            }
            Kind::Dir(_) => None,
        }
    }

    /// Finds `name` in folder `parent`: from its listing when fresh, else one `stat`.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<FileAttr, FsError> {
        if !usable_name(name) {
            return Err(FsError::NotFound);
        }
        let path = {
            let nodes = self.nodes_read();
            let n = nodes.map.get(&parent).ok_or(FsError::NotFound)?;
            match &n.kind {
                Kind::File(_) => return Err(FsError::NotDir),
                Kind::Dir(Some(l)) if l.at.elapsed() <= self.cfg.attr_ttl => {
                    let &i = l.by_name.get(name).ok_or(FsError::NotFound)?;
                    let ino = l.entries[i].1;
                    let child = nodes.map.get(&ino).ok_or(FsError::NotFound)?;
                    return Ok(self.attr_of(ino, &child.kind));
                }
                Kind::Dir(_) => stagehand_protocol::path::join(&n.path, name),
            }
        };
        let store = self.store.clone();
        let entry = self
            .call("stat", &path, || {
                let (s, p) = (store.clone(), path.clone());
                async move { s.stat(&p).await }
            })
            .await?;
        let kind = match entry {
            Entry::File(m) => Kind::File(m),
            Entry::Dir => Kind::Dir(None),
            Entry::Missing => return Err(FsError::NotFound),
        };
        let mut nodes = self.nodes_write();
        let ino = nodes.intern(parent, name, path, kind);
        let kind = nodes
            .map
            .get(&ino)
            .map(|n| n.kind.clone())
            .ok_or(FsError::NotFound)?;
        Ok(self.attr_of(ino, &kind))
    }

    /// Opens file `ino` for reading; returns the handle.
    pub fn open(&self, ino: u64, flags: OpenFlags) -> Result<u64, FsError> {
        if flags.acc_mode() != OpenAccMode::O_RDONLY
            || flags.0 & (libc::O_TRUNC | libc::O_APPEND | libc::O_CREAT) != 0
        {
            return Err(FsError::ReadOnly);
        }
        let meta = {
            let nodes = self.nodes_read();
            match &nodes.map.get(&ino).ok_or(FsError::NotFound)?.kind {
                Kind::File(m) => m.clone(),
                Kind::Dir(_) => return Err(FsError::IsDir),
            }
        };
        let object = Arc::new(ObjectId {
            datastore: self.store.name().to_string(),
            path: meta.path,
            version: meta.version,
            size: meta.size,
        });
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let file = Arc::new(OpenFile {
            fetch: self.fetcher(object.path.clone()),
            object,
            readahead: Mutex::new(Readahead::default()),
        });
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, file);
        self.scan_ahead(ino);
        Ok(fh)
    }

    /// Read-ahead across files: when the files of a folder are opened one after the
    /// other in name order (`find | sort | xargs cat`, a loader walking its shards),
    /// the next small files are fetched before they are opened, in a window that grows
    /// while the walk goes on. Small files are otherwise bound by one request's latency
    /// each. Needs the runtime's context.
    fn scan_ahead(&self, ino: u64) {
        let bs = self.blocks.block_size();
        let targets: Vec<ObjectMeta> = {
            let nodes = self.nodes_read();
            let Some(node) = nodes.map.get(&ino) else {
                return;
            };
            let Some(Kind::Dir(Some(listing))) = nodes.map.get(&node.parent).map(|p| &p.kind)
            else {
                return;
            };
            let name = node.path.rsplit('/').next().unwrap_or("");
            let Some(&idx) = listing.by_name.get(name) else {
                return;
            };
            let range = {
                let mut scans = self.scans.lock().unwrap_or_else(|e| e.into_inner());
                let scan = scans.entry(node.parent).or_default();
                scan.on_open(idx, listing.entries.len())
            };
            listing.entries[range]
                .iter()
                .filter_map(|(_, child, _)| match &nodes.map.get(child)?.kind {
                    Kind::File(m) if m.size > 0 && m.size <= bs => Some(m.clone()),
                    _ => None,
                })
                .collect()
        };
        for meta in targets {
            let fetch = self.fetcher(meta.path.clone());
            let object = Arc::new(ObjectId {
                datastore: self.store.name().to_string(),
                path: meta.path,
                version: meta.version,
                size: meta.size,
            });
            self.blocks.prefetch(&object, 0..1, &fetch);
        }
    }

    /// Closes a file handle.
    pub fn release(&self, fh: u64) {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh);
    }

    /// How the blocks fetch a range of `path`: a streamed GET under the mount's retry
    /// schedule (the store resumes a broken answer under it) and time limit (for the
    /// answer's start, then for each piece: [`FsConfig::op_timeout`] is longer than the
    /// schedule's bound on time, so a resume inside the store fits in it). A failure is
    /// logged here and is final: the reader gets EIO.
    fn fetcher(&self, path: String) -> Fetcher {
        let store = self.store.clone();
        let cfg = self.cfg.clone();
        let what = self.what.clone();
        Arc::new(move |range: std::ops::Range<u64>| {
            let (store, cfg, what, path) = (store.clone(), cfg.clone(), what.clone(), path.clone());
            async move {
                let label = format!("read bytes {}..{}", range.start, range.end);
                let pieces = store_call(&cfg, &what, &label, &path, || {
                    let (s, p, r) = (store.clone(), path.clone(), range.clone());
                    async move { s.read_range_stream(&p, r).await }
                })
                .await
                .map_err(|e| match e {
                    FsError::NotFound => BlockError::NotFound,
                    _ => BlockError::Storage("the store failed; see the agent's log".into()),
                })?;
                let limit = cfg.op_timeout;
                let pieces = futures::stream::unfold(Some(pieces), move |pieces| {
                    let (what, path, label) = (what.clone(), path.clone(), label.clone());
                    async move {
                        let mut pieces = pieces?;
                        let why = match tokio::time::timeout(limit, pieces.next()).await {
                            Ok(None) => return None,
                            Ok(Some(Ok(piece))) => return Some((Ok(piece), Some(pieces))),
                            Ok(Some(Err(e))) => e.to_string(),
                            Err(_) => format!("no byte for {}s", limit.as_secs_f64()),
                        };
                        tracing::warn!("mount {what}: {label} of {path:?} broke off: {why}");
                        let e = BlockError::Storage("the store failed; see the agent's log".into());
                        Some((Err(e), None))
                    }
                });
                Ok(pieces.boxed())
            }
            .boxed()
        })
    }

    /// Reads `size` bytes at `offset` through handle `fh`, and starts read-ahead when
    /// the handle reads sequentially.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        let (file, range) = self.begin_read(fh, offset, size)?;
        self.finish_read(&file, range).await
    }

    /// The first half of a read, which never waits: finds the handle, clamps the range
    /// to the object, and starts read-ahead. Needs the runtime's context.
    pub fn begin_read(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Result<(Arc<OpenFile>, std::ops::Range<u64>), FsError> {
        let file = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let object = &file.object;
        let end = offset.saturating_add(size as u64).min(object.size);
        if offset < end {
            let ahead = file
                .readahead
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .on_read(
                    offset,
                    end,
                    self.blocks.block_size(),
                    self.blocks.block_count(object),
                    self.cfg.max_readahead_blocks.min(self.blocks.max_ahead()),
                    self.blocks.blocks_per_run(),
                );
            if !ahead.is_empty() {
                self.blocks.prefetch(object, ahead, &file.fetch);
            }
        }
        Ok((file, offset..end.max(offset)))
    }

    /// The bytes, when they are kept already (most reads of a sequential reader):
    /// from memory, or read from the block's file, so only where blocking is allowed.
    /// A block on disk is read into `buf` (see [`super::blocks::Blocks::read_now`]).
    pub fn read_now<'b>(
        &self,
        file: &OpenFile,
        range: std::ops::Range<u64>,
        buf: &'b mut Vec<u8>,
    ) -> Option<super::blocks::Kept<'b>> {
        self.blocks.read_now(&file.object, range, buf)
    }

    /// The second half of a read: the bytes, fetched if need be.
    pub async fn finish_read(
        &self,
        file: &OpenFile,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, FsError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        Ok(self.blocks.read(&file.object, range, &file.fetch).await?)
    }

    /// Opens folder `ino`: the listing every `readdir` of this handle pages through.
    pub async fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        let listing = self.listing(ino).await?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, listing);
        Ok(fh)
    }

    /// The entries of an open folder from `offset` on: (next offset, inode, type, name).
    /// Offsets 1 and 2 are `.` and `..`.
    pub fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
    ) -> Result<Vec<(u64, u64, FileType, String)>, FsError> {
        let listing = self
            .dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let mut out = Vec::new();
        let all = [
            (ino, FileType::Directory, ".".to_string()),
            (ino, FileType::Directory, "..".to_string()),
        ]
        .into_iter()
        .chain(listing.entries.iter().map(|(n, i, t)| (*i, *t, n.clone())));
        for (i, (child, t, name)) in all.enumerate().skip(offset as usize) {
            out.push((i as u64 + 1, child, t, name));
        }
        Ok(out)
    }

    /// Closes a folder handle.
    pub fn releasedir(&self, fh: u64) {
        self.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh);
    }
}

/// A store call under the limit on its time; see [`Core::call`]. It is made once: the
/// store retries inside it, on the mount's schedule.
async fn store_call<T, F, Fut>(
    cfg: &FsConfig,
    mount: &str,
    what: &str,
    path: &str,
    f: F,
) -> Result<T, FsError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let call = f();
    let counted = async {
        match &cfg.retries {
            Some(count) => count.clone().counting(call).await,
            None => call.await,
        }
    };
    let why = match tokio::time::timeout(cfg.op_timeout, counted).await {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(StoreError::NotFound { .. })) => return Err(FsError::NotFound),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {}s", cfg.op_timeout.as_secs_f64()),
    };
    tracing::error!("mount {mount}: {what} of {path:?} failed, the reader gets EIO: {why}");
    Err(FsError::Io)
}

/// Whether a name from the store can be shown in a folder: not a path, and no control
/// character (a newline in a name splits it in two for `ls | while read`, an escape
/// sequence rewrites the terminal); downloads refuse the same names
/// (`stagehand_protocol::path::object_name`).
fn usable_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::blocks::BlockConfig;
    use crate::store::local::LocalStore;
    use crate::store::Store;
    use async_trait::async_trait;
    use std::ops::Range;
    use std::path::Path;

    fn blocks(dir: &Path) -> Arc<Blocks> {
        Blocks::new(BlockConfig {
            dir: dir.join("blocks"),
            capacity: 1 << 20,
            block_size: 4096,
            fetch_concurrency: 4,
            mem_bytes: 1 << 20,
            max_run: 4 * 4096,
        })
        .unwrap()
    }

    async fn local_core(tmp: &Path) -> Core {
        let root = tmp.join("store");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::write(root.join("data/a.txt"), "hello").unwrap();
        std::fs::write(
            root.join("data/sub/big.bin"),
            (0..20_000u32).map(|i| (i % 256) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        let store: DynStore = Arc::new(LocalStore::open("local", &root).unwrap());
        let entry = store.stat("data").await.unwrap();
        Core::new(store, "data", entry, blocks(tmp), FsConfig::default())
    }

    /// The root folder's names, sorted, and the handle they were read through.
    async fn root_names(core: &Core) -> (u64, Vec<String>) {
        let fh = core.opendir(1).await.unwrap();
        let mut names: Vec<String> = core
            .readdir(1, fh, 0)
            .unwrap()
            .into_iter()
            .map(|e| e.3)
            .collect();
        names.sort();
        (fh, names)
    }

    #[tokio::test]
    async fn names_with_control_characters_are_not_shown() {
        let tmp = tempfile::tempdir().unwrap();
        let core = local_core(tmp.path()).await;
        let data = tmp.path().join("store/data");
        std::fs::write(data.join("new\nline.txt"), "x").unwrap();
        std::fs::write(data.join("esc\x1b[2Jape.txt"), "x").unwrap();
        std::fs::create_dir(data.join("tab\tdir")).unwrap();
        let (_, names) = root_names(&core).await;
        assert_eq!(names, [".", "..", "a.txt", "sub"]);
        assert!(matches!(
            core.lookup(1, "new\nline.txt").await,
            Err(FsError::NotFound)
        ));
        let hidden = core.hidden.lock().unwrap().len();
        assert_eq!(hidden, 3, "each name is warned of");
    }

    #[tokio::test]
    async fn lists_looks_up_and_reads_a_local_store() {
        let tmp = tempfile::tempdir().unwrap();
        let core = local_core(tmp.path()).await;
        let (fh, names) = root_names(&core).await;
        assert_eq!(names, [".", "..", "a.txt", "sub"]);
        // Paging: from offset 3 on, only the last entry.
        assert_eq!(core.readdir(1, fh, 3).unwrap().len(), 1);
        let sub = core.lookup(1, "sub").await.unwrap();
        assert_eq!(sub.kind, FileType::Directory);
        // Not listed yet: answered by a stat.
        let big = core.lookup(sub.ino.0, "big.bin").await.unwrap();
        assert_eq!(big.size, 20_000);
        assert_eq!(core.lookup(sub.ino.0, "nope").await, Err(FsError::NotFound));
        let fh = core.open(big.ino.0, OpenFlags(libc::O_RDONLY)).unwrap();
        let got = core.read(fh, 4000, 200).await.unwrap();
        assert_eq!(
            got.to_vec(),
            (4000..4200u32).map(|i| (i % 256) as u8).collect::<Vec<_>>()
        );
        assert_eq!(core.read(fh, 19_990, 100).await.unwrap().len(), 10);
        assert_eq!(core.read(fh, 30_000, 100).await.unwrap().len(), 0);
        core.release(fh);
        assert_eq!(core.read(fh, 0, 1).await, Err(FsError::BadHandle));
    }

    #[test]
    fn walking_a_folder_in_order_fetches_the_next_files_ahead() {
        let mut d = DirScan::default();
        assert_eq!(d.on_open(0, 100), 0..0);
        assert_eq!(d.on_open(1, 100), 2..6);
        assert_eq!(d.on_open(2, 100), 6..11);
        assert_eq!(d.on_open(3, 100), 11..20);
        // Out of order: nothing, and the window starts again.
        assert_eq!(d.on_open(50, 100), 0..0);
        assert_eq!(d.on_open(40, 100), 0..0);
        assert_eq!(d.on_open(41, 100), 42..46);
        // Never past the end.
        assert_eq!(d.on_open(99, 100), 0..0);
    }

    #[tokio::test]
    async fn opening_for_writing_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let core = local_core(tmp.path()).await;
        let a = core.lookup(1, "a.txt").await.unwrap();
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
            assert_eq!(core.open(a.ino.0, OpenFlags(flags)), Err(FsError::ReadOnly));
        }
        assert_eq!(FsError::ReadOnly.errno(), Errno::EROFS);
    }

    /// A store whose reads fail or never answer, counting them, and keeping the retry
    /// policy it was asked to use.
    #[derive(Default)]
    struct Broken {
        hang: bool,
        reads: AtomicU64,
        asked: Mutex<Option<RetryConfig>>,
    }

    #[async_trait]
    impl Store for Broken {
        async fn check(&self, _create: bool) -> Result<crate::store::Checked, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn name(&self) -> &str {
            "broken"
        }
        async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
            Ok(Entry::File(ObjectMeta {
                path: path.into(),
                size: 10,
                version: None,
                md5: None,
            }))
        }
        async fn list(&self, _: &str) -> Result<Vec<ObjectMeta>, StoreError> {
            Ok(vec![])
        }
        async fn list_dir(&self, _: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
            Err(StoreError::Remote {
                datastore: "broken".into(),
                detail: "503 Service Unavailable".into(),
            })
        }
        async fn read_range(&self, _: &str, _: Range<u64>) -> Result<Bytes, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.hang {
                std::future::pending::<()>().await;
            }
            Err(StoreError::Remote {
                datastore: "broken".into(),
                detail: "connection reset".into(),
            })
        }
        async fn read_range_stream(
            &self,
            path: &str,
            range: Range<u64>,
        ) -> Result<crate::store::ByteStream, StoreError> {
            // Fails (or hangs) as `read_range` does, before the first piece.
            let whole = self.read_range(path, range).await?;
            Ok(futures::stream::once(async move { Ok(whole) }).boxed())
        }
        async fn download_metered(
            &self,
            _: &ObjectMeta,
            _: &Path,
            _: &dyn crate::store::Meter,
        ) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn upload_metered(
            &self,
            _: &Path,
            _: &str,
            _: bool,
            _: &dyn crate::store::Meter,
        ) -> Result<u64, StoreError> {
            unreachable!()
        }
        fn retrying(&self, retry: RetryConfig) -> Option<DynStore> {
            *self.asked.lock().unwrap() = Some(retry);
            None
        }
    }

    #[tokio::test]
    async fn storage_failures_and_silence_become_eio() {
        let tmp = tempfile::tempdir().unwrap();
        for hang in [false, true] {
            let cfg = FsConfig {
                op_timeout: Duration::from_millis(50),
                ..FsConfig::default()
            };
            let store: DynStore = Arc::new(Broken {
                hang,
                ..Broken::default()
            });
            let core = Core::new(
                store.clone(),
                "dir",
                Entry::Dir,
                blocks(&tmp.path().join(format!("{hang}"))),
                cfg.clone(),
            );
            assert_eq!(core.opendir(1).await, Err(FsError::Io));
            let f = core.lookup(1, "f").await.unwrap();
            let fh = core.open(f.ino.0, OpenFlags(libc::O_RDONLY)).unwrap();
            let started = Instant::now();
            assert_eq!(core.read(fh, 0, 10).await, Err(FsError::Io));
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }

    /// The store retries on the mount's schedule, and the mount never retries around
    /// it: a failed read is one store call, whose error the reader gets at once.
    #[tokio::test]
    async fn the_mount_hands_its_schedule_to_the_store_and_never_retries_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let broken = Arc::new(Broken::default());
        let store: DynStore = broken.clone();
        let cfg = FsConfig::default();
        let core = Core::new(store, "dir", Entry::Dir, blocks(tmp.path()), cfg.clone());
        assert_eq!(
            *broken.asked.lock().unwrap(),
            Some(RetryConfig::for_reader())
        );
        let f = core.lookup(1, "f").await.unwrap();
        let fh = core.open(f.ino.0, OpenFlags(libc::O_RDONLY)).unwrap();
        assert_eq!(core.read(fh, 0, 10).await, Err(FsError::Io));
        assert_eq!(
            broken.reads.load(Ordering::SeqCst),
            1,
            "store calls for one read"
        );
    }
}

#[cfg(test)]
mod readahead_tests {
    use super::*;
    use crate::mount::blocks::BlockConfig;
    use crate::store::Store;
    use async_trait::async_trait;
    use std::ops::Range;
    use std::path::Path;
    use std::sync::atomic::AtomicU64;

    /// A store of one object that counts the bytes read from it.
    struct Counting {
        data: Bytes,
        fetched: Arc<AtomicU64>,
    }

    #[async_trait]
    impl Store for Counting {
        async fn check(&self, _create: bool) -> Result<crate::store::Checked, StoreError> {
            unimplemented!("not used by these tests")
        }
        fn name(&self) -> &str {
            "counting"
        }
        async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
            Ok(Entry::File(ObjectMeta {
                path: path.into(),
                size: self.data.len() as u64,
                version: None,
                md5: None,
            }))
        }
        async fn list(&self, _: &str) -> Result<Vec<ObjectMeta>, StoreError> {
            Ok(vec![])
        }
        async fn list_dir(&self, _: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
            Ok((vec![], vec![]))
        }
        async fn read_range(&self, _: &str, r: Range<u64>) -> Result<Bytes, StoreError> {
            self.fetched.fetch_add(r.end - r.start, Ordering::SeqCst);
            Ok(self.data.slice(r.start as usize..r.end as usize))
        }
        async fn read_range_stream(
            &self,
            _: &str,
            r: Range<u64>,
        ) -> Result<crate::store::ByteStream, StoreError> {
            self.fetched.fetch_add(r.end - r.start, Ordering::SeqCst);
            let pieces: Vec<_> = (r.start..r.end)
                .step_by(1024)
                .map(|at| {
                    Ok(self
                        .data
                        .slice(at as usize..(at + 1024).min(r.end) as usize))
                })
                .collect();
            Ok(futures::stream::iter(pieces).boxed())
        }
        async fn download_metered(
            &self,
            _: &ObjectMeta,
            _: &Path,
            _: &dyn crate::store::Meter,
        ) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn upload_metered(
            &self,
            _: &Path,
            _: &str,
            _: bool,
            _: &dyn crate::store::Meter,
        ) -> Result<u64, StoreError> {
            unreachable!()
        }
    }

    /// Without a disk part, read-ahead must not run further ahead than memory keeps
    /// blocks: each block fetched ahead and evicted unread was fetched twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sequential_reader_without_a_disk_part_fetches_each_byte_once() {
        let tmp = tempfile::tempdir().unwrap();
        let bs = 4096u64;
        let size = 64 * bs;
        let fetched = Arc::new(AtomicU64::new(0));
        let store: DynStore = Arc::new(Counting {
            data: (0..size)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into(),
            fetched: fetched.clone(),
        });
        let blocks = Blocks::new(BlockConfig {
            dir: tmp.path().join("c"),
            capacity: 0,
            block_size: bs,
            fetch_concurrency: 8,
            mem_bytes: 16 * bs,
            max_run: 8 * bs,
        })
        .unwrap();
        let entry = store.stat("f").await.unwrap();
        let core = Core::new(store, "f", entry, blocks, FsConfig::default());
        let fh = core.open(1, OpenFlags(libc::O_RDONLY)).unwrap();
        let mut off = 0;
        while off < size {
            let b = core.read(fh, off, 1024).await.unwrap();
            assert_eq!(b.len(), 1024);
            off += 1024;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            size,
            "bytes fetched for a {size}-byte object"
        );
    }
}
