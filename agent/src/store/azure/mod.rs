//! Azure Blob Storage and ADLS Gen2 datastores (ADLS Gen2 through its blob endpoint).
//!
//! Downloads are the hot path: a large blob is fetched as parallel ranged GETs, each
//! streamed into its place in the temporary file with positional writes. Every ranged
//! GET carries `If-Match` with the listed ETag, so a blob replaced mid-download fails
//! instead of mixing two versions. Memory stays bounded: each in-flight range holds at
//! most one write buffer. What is checked against the Content-MD5 is [`Md5Check`]'s
//! to say.
//!
//! Uploads stream from disk, so no file is ever held in memory: a small file goes up in
//! one Put Blob (the service computes its MD5), a large one as blocks staged concurrently
//! and committed with one block list carrying the file's MD5. `overwrite: false` sends
//! `If-None-Match: *`, so an existing blob is never replaced, whatever raced us; such a
//! create carries an upload id in its metadata ([`client::UPLOAD_MARKER`]), so that a
//! retry refused because the blob exists can tell a blob its own lost attempt made
//! (success) from someone else's (already exists).
//!
//! Every request is retried under the client's one policy ([`crate::retry`]); a broken
//! download, or a broken streamed read ([`range_stream`], the mount's), resumes from its
//! last byte under that same policy, never in a loop of retries wrapped around the
//! client's. Across restarts, a large download resumes inside the file from what its
//! record says is on disk ([`resume`]), and a large upload reuses the blocks an earlier
//! attempt staged (their ids derive from the file's identity and offset, and the
//! service lists the uncommitted ones).
//!
//! This module must never write outside the file it was given (and its `.ranges`
//! record), nor put a secret
//! (SAS query strings included) in an error.

pub mod client;
pub mod config;
mod md5_files;
pub(crate) mod range_stream;
mod read_in_order;
pub mod resume;

use md5_files::{Landing, Md5Files};
use read_in_order::ReadInOrder;

use super::{Advance, DynStore, Entry, Meter, ObjectMeta, Store, StoreError};
use crate::retry::RetryConfig;
use async_trait::async_trait;
use bytes::Bytes;
use client::{BlobProps, Body, Client, HttpError};
use config::{Auth, AzureTarget};
use futures::stream::{self, StreamExt, TryStreamExt};
use md5_many::{Digest, Md5};
use reqwest::Method;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Semaphore;

const MIB: u64 = 1 << 20;
/// The most blocks one block blob may have.
const MAX_BLOCKS: u64 = 50_000;

/// Tunables, with defaults measured against Azurite (scripts/bench blob). Each can be
/// overridden by an environment variable, for benchmarking.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Blobs larger than this are fetched as parallel ranges.
    pub range_threshold: u64,
    /// Size of one ranged GET; `None` = sized to the blob ([`Tuning::chunk_for`]).
    pub chunk: Option<u64>,
    /// Ranged GETs in flight for one blob.
    pub ranges_per_blob: usize,
    /// Requests in flight for the whole store.
    pub requests: usize,
    /// Files up to this size go up in one request.
    pub single_put_max: u64,
    /// Size of one staged block (raised for files too large for 50,000 of them,
    /// [`Tuning::block_for`]).
    pub block: u64,
    /// Blocks in flight for one file.
    pub blocks_per_file: usize,
    /// Which transfers are checked by MD5.
    pub md5: Md5Check,
    /// How every request is retried, and a broken download resumed.
    pub retry: RetryConfig,
    /// How long a request may wait for the next bytes of its answer before it counts as
    /// broken (and is retried): 60 s, or `STAGEHAND_AZURE_READ_TIMEOUT_MS`.
    pub read_timeout: std::time::Duration,
}

/// Which transfers are checked by MD5.
///
/// MD5 cannot be split: one blob's hash runs on one core, about 700 MB/s on the
/// machines we measure, slower than one node moves a large blob as parallel parts.
/// Many streams, though, hash side by side in SIMD lanes at several GB/s
/// ([`md5_files`]). So by default every blob that moves as one stream is checked end
/// to end, and a blob moved as parallel parts is checked part by part:
/// - down, by size and by its ETag on every range, as rclone's multi-thread and
///   blobfuse2's downloads are;
/// - up, by a Content-MD5 on every block, which the service verifies as it lands.
///
/// `all` adds the whole blob's MD5 to large blobs: hashed once downloaded, and computed
/// and stored as the blob's Content-MD5 on upload (as AzCopy's `--put-md5` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Md5Check {
    /// No MD5 at all (`STAGEHAND_AZURE_VERIFY_MD5=0`).
    Never,
    /// Blobs moved in one stream, and every block of the others (the default).
    Streamed,
    /// Every blob, large ones at the speed of one core hashing
    /// (`STAGEHAND_AZURE_VERIFY_MD5=all`).
    All,
}

impl Md5Check {
    /// The policy named by `STAGEHAND_AZURE_VERIFY_MD5`; unset or anything else is the
    /// default.
    fn named(setting: Option<&str>) -> Md5Check {
        match setting {
            Some("0" | "false" | "no" | "never") => Md5Check::Never,
            Some("all" | "always") => Md5Check::All,
            _ => Md5Check::Streamed,
        }
    }
}

impl Tuning {
    /// Defaults, adjusted by the agent's `STAGEHAND_AZURE_*` settings.
    pub fn from_settings() -> Tuning {
        Self::with(&crate::settings::get().azure)
    }

    /// Defaults, adjusted by `knobs`.
    pub fn with(knobs: &crate::settings::AzureKnobs) -> Tuning {
        let num = |v: Option<u64>, d: u64| v.unwrap_or(d);
        Tuning {
            range_threshold: num(knobs.range_threshold_mib, 16) * MIB,
            chunk: knobs.chunk_mib.map(|v| v * MIB),
            ranges_per_blob: num(knobs.ranges, 16) as usize,
            requests: num(knobs.requests, 64) as usize,
            single_put_max: num(knobs.single_put_mib, 32) * MIB,
            block: num(knobs.block_mib, 32) * MIB,
            blocks_per_file: num(knobs.blocks, 16) as usize,
            md5: Md5Check::named(knobs.verify_md5.as_deref()),
            retry: RetryConfig::default(),
            read_timeout: std::time::Duration::from_millis(num(knobs.read_timeout_ms, 60_000)),
        }
    }

    /// The size of one block of a file of `size` bytes: [`Tuning::block`], or more
    /// when a blob may hold no more than 50,000 blocks (a file over 1.5 TiB at 32 MiB).
    /// Few large blocks also cost the service less: 1 GiB went up to Azurite in 3.3 s as
    /// 8 MiB blocks, 8 at a time, and in 3.0 s as 32 MiB blocks, 16 at a time.
    pub fn block_for(&self, size: u64) -> u64 {
        self.block
            .max(size.div_ceil(MAX_BLOCKS).div_ceil(MIB) * MIB)
    }

    /// The size of one ranged GET of a blob of `size` bytes: the blob split evenly
    /// over the ranges in flight, between 8 and 64 MiB. Few large ranges cost the
    /// service (Azurite above all) far less than many small ones: a 1 GiB blob as
    /// 16 × 64 MiB downloads in about two thirds of the time 128 × 8 MiB takes.
    /// A broken range resumes from its last byte, so a large one wastes nothing.
    pub fn chunk_for(&self, size: u64) -> u64 {
        self.chunk.unwrap_or_else(|| {
            size.div_ceil(self.ranges_per_blob as u64)
                .div_ceil(MIB)
                .clamp(8, 64)
                * MIB
        })
    }
}

/// How much a range task holds before it writes (and hands the bytes over to be hashed).
/// Small, because a blob hashed as it lands ([`Landing`]) holds its bytes until they are
/// hashed too: 32 downloads of 10 MiB blobs peaked at 120-145 MiB of RSS writing every
/// 1 MiB (with up to 2 MiB each waiting for the hash), under 80 MiB every 256 KiB (with
/// 1 MiB; now 256 KiB may wait). Writes are cut into [`WRITE_PIECE`]s anyway, so this
/// costs no system calls.
const WRITE_BUFFER: usize = 256 << 10;

/// Blobs up to this size are hashed on the spot, on one core: handing them to the
/// hashing thread costs them more than it saves.
const INLINE_MD5_MAX: u64 = 1 << 20;

/// The most one write to the page cache carries, aligned to its own size. The kernel
/// sizes page-cache folios by the write: writes of 1 MiB take 1 MiB folios, which must
/// come from large free blocks, and on a VM those are the blocks the guest has handed
/// back to the host (free page reporting), so each costs a host fault on first touch.
/// Writing 1 GiB after dropping the page cache took 0.30-0.40 s of system time in
/// 64-128 KiB writes, 0.85 s in 1 MiB writes (rclone writes 32 KiB: 0.38 s).
const WRITE_PIECE: usize = 128 << 10;

/// Received chunks not yet written (or written, not yet hashed).
#[derive(Default)]
struct Pending {
    chunks: Vec<Bytes>,
    len: usize,
}

/// Where downloaded bytes go to be hashed, in order.
enum Hash {
    /// Not hashed here (no Content-MD5, or hashed from the file once it is written).
    Skip,
    /// Hashed on the spot: small blobs, where handing them over would cost more.
    Inline(Md5),
    /// Handed over as they arrive, to be hashed beside other downloads ([`Md5Files`]).
    Landing(Landing),
}

impl Hash {
    /// Hashes the chunks of `pending` (written already) and empties it.
    async fn feed(&mut self, pending: &mut Pending) {
        let chunks = std::mem::take(&mut pending.chunks);
        pending.len = 0;
        match self {
            Hash::Skip => {}
            Hash::Inline(h) => chunks.iter().for_each(|c| h.update(c)),
            Hash::Landing(l) => l.feed(chunks).await,
        }
    }
}

/// An Azure Blob container (or ADLS Gen2 filesystem) used as a datastore.
pub struct AzureStore {
    client: Arc<Client>,
    tuning: Tuning,
    requests: Arc<Semaphore>,
    /// Hashes single-request downloads as they land, and uploads, many at once;
    /// started on first use.
    md5_files: Arc<tokio::sync::OnceCell<Md5Files>>,
}

impl AzureStore {
    /// Opens the datastore `name` (a resolved target), tuned by the environment. Makes
    /// no network call.
    pub fn open(target: AzureTarget) -> Result<AzureStore, StoreError> {
        Self::open_with(target, Tuning::from_settings())
    }

    /// Opens the datastore with explicit tuning.
    pub fn open_with(target: AzureTarget, tuning: Tuning) -> Result<AzureStore, StoreError> {
        let datastore = target.datastore.clone();
        let client = Client::new(target, tuning.retry, tuning.read_timeout)
            .map_err(|detail| StoreError::Config { datastore, detail })?;
        Ok(AzureStore {
            client: Arc::new(client),
            requests: Arc::new(Semaphore::new(tuning.requests)),
            tuning,
            md5_files: Arc::default(),
        })
    }

    /// The resolved target.
    pub fn target(&self) -> &AzureTarget {
        self.client.target()
    }

    /// The REST client, for `datastore check`.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Turns a failed call on `path` into a store error that names the datastore and
    /// the container, and never carries a secret.
    pub fn error(&self, path: &str, e: HttpError) -> StoreError {
        let t = self.target();
        let datastore = t.datastore.clone();
        let what = if path.is_empty() {
            format!("container {:?} at {}", t.container, t.service_url)
        } else {
            format!(
                "{path:?} in container {:?} at {}",
                t.container, t.service_url
            )
        };
        match (e.status(), e.code()) {
            (Some(401 | 403), code) => {
                let hint = match (code, &t.auth) {
                    (Some("AuthorizationPermissionMismatch" | "AuthorizationResourceTypeMismatch"), _) => {
                        "the credentials are valid but lack the permission for this operation (SAS permissions, or the identity's role: Storage Blob Data Reader/Contributor)"
                    }
                    (_, Auth::SharedKey(_)) => "the account key does not match the account; check credentials.account_key",
                    (_, Auth::Sas(_)) => "the SAS token was refused (expired, wrong account or container, or missing permissions); check credentials.sas_token",
                    (_, Auth::Identity(_)) => "the identity was refused; check its role assignment on the container",
                    (_, Auth::Anonymous) => "it cannot be read anonymously, the container is not public; register its account and container as a datastore with credentials in the workspace",
                };
                StoreError::Auth { datastore, detail: format!("{e} for {what}: {hint}") }
            }
            (_, Some("ContainerNotFound")) => StoreError::Remote {
                datastore,
                detail: format!("container {:?} does not exist at {} (`stagehand datastore check {} --create-if-not-exists` creates it)", t.container, t.service_url, t.datastore),
            },
            // A private container answers an anonymous request as if nothing were there.
            (Some(404), Some("ResourceNotFound")) if matches!(t.auth, Auth::Anonymous) => StoreError::Auth {
                datastore,
                detail: format!("{what} cannot be read anonymously: it does not exist, or the container is not public; register its account and container as a datastore with credentials in the workspace"),
            },
            (Some(404), _) => StoreError::NotFound { datastore, path: path.to_string() },
            (_, Some("Md5Mismatch")) => StoreError::Remote {
                datastore,
                detail: format!("{what}: {e}: the bytes that arrived do not match the MD5 sent with them; the file changed while it was being uploaded, or was damaged on the way. Nothing was committed; upload it again"),
            },
            (Some(409 | 412), Some("BlobAlreadyExists" | "ConditionNotMet")) => StoreError::AlreadyExists { datastore, path: path.to_string() },
            (_, _) if matches!(e, HttpError::Credential(_)) => StoreError::Auth { datastore, detail: format!("{e} (authentication for {what})") },
            _ => StoreError::Remote { datastore, detail: format!("{what}: {e}") },
        }
    }

    fn meta(path: String, p: &BlobProps) -> ObjectMeta {
        ObjectMeta {
            path,
            size: p.size,
            version: p.etag.clone(),
            md5: p.md5,
        }
    }

    /// A listing that failed, its retries spent: which listing, which page (and after
    /// which name), for how long it was tried, and what the service said, since a
    /// listing failing on every attempt is often one blob the service cannot list.
    fn list_error(
        &self,
        prefix: &str,
        page: usize,
        marker: Option<&str>,
        started: std::time::Instant,
        e: HttpError,
    ) -> StoreError {
        if matches!(e.status(), Some(401 | 403)) || e.code() == Some("ContainerNotFound") {
            return self.error(prefix, e);
        }
        let t = self.target();
        let after = marker.map_or(String::new(), |m| format!(", after marker {m:?}"));
        let hint = if matches!(e.status(), Some(500..=599)) {
            "; a listing that fails on every attempt may hold a blob name the service cannot list (control characters): list a narrower prefix to find it"
        } else {
            ""
        };
        StoreError::Remote {
            datastore: t.datastore.clone(),
            detail: format!(
                "listing the blobs under {prefix:?} (page {page}{after}) in container {:?} at {} failed after {:.1} s of retries: {e}{hint}",
                t.container,
                t.service_url,
                started.elapsed().as_secs_f64()
            ),
        }
    }

    /// Every blob whose name starts with `prefix` (no delimiter), page by page.
    async fn list_all(&self, prefix: &str) -> Result<Vec<(String, BlobProps)>, StoreError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for n in 1.. {
            let started = std::time::Instant::now();
            let page = self
                .client
                .list_page(prefix, None, marker.as_deref(), 5000)
                .await
                .map_err(|e| self.list_error(prefix, n, marker.as_deref(), started, e))?;
            out.extend(page.blobs.into_iter().filter(|(_, p)| !p.is_folder));
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        Ok(out)
    }

    /// Fetches `range` of `obj` into `file` at the same offsets, resuming after a broken
    /// connection from the last byte written, under the client's retry policy (a resumed
    /// GET is a retry like any other; its bound on time counts from the last byte that
    /// arrived, so a slow range that keeps moving is never cut off). `hash` sees the
    /// bytes in order.
    async fn fetch_range(
        &self,
        obj: &ObjectMeta,
        range: Range<u64>,
        file: &std::fs::File,
        hash: &mut Hash,
        written: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StoreError> {
        let mut pos = range.start;
        let mut attempts = self.client.retry().attempts();
        while pos < range.end {
            let before = pos;
            let broken = self
                .fetch_from(obj, pos..range.end, file, hash, &mut pos, written)
                .await?;
            let Err(e) = broken else {
                continue;
            };
            if pos > before {
                attempts.progressed();
            }
            let what = format!("{}: {:?} at byte {pos}", self.target().datastore, obj.path);
            if !attempts.again(&what, &e, e.is_transient()).await {
                return Err(self.error(&obj.path, e));
            }
        }
        Ok(())
    }

    /// One GET of `range` into `file`, advancing `pos` past every byte written (and
    /// telling `written` the new position). The
    /// outer error is local (the file cannot be written); the inner one is the
    /// service's or the connection's, which [`AzureStore::fetch_range`] may retry.
    async fn fetch_from(
        &self,
        obj: &ObjectMeta,
        range: Range<u64>,
        file: &std::fs::File,
        hash: &mut Hash,
        pos: &mut u64,
        written: &(dyn Fn(u64) + Sync),
    ) -> Result<Result<(), HttpError>, StoreError> {
        let _permit = self.permit(&obj.path).await?;
        let resp = match self
            .client
            .get_range_once(&obj.path, obj.version.as_deref(), range.start, range.end)
            .await
        {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        // Chunks as hyper hands them over, written with one pwritev per megabyte: no copy
        // into an intermediate buffer.
        let mut pending = Pending::default();
        let mut body = resp.bytes_stream();
        let mut failure = None;
        loop {
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    let room = (range.end - *pos) as usize - pending.len;
                    chunk.truncate(room);
                    pending.len += chunk.len();
                    pending.chunks.push(chunk);
                    if pending.len >= WRITE_BUFFER {
                        *pos = self.flush(file, *pos, &mut pending, &obj.path)?;
                        written(*pos);
                        hash.feed(&mut pending).await;
                    }
                }
                Some(Err(e)) => {
                    failure = Some(client::transport(&e));
                    break;
                }
                None => break,
            }
        }
        *pos = self.flush(file, *pos, &mut pending, &obj.path)?;
        written(*pos);
        hash.feed(&mut pending).await;
        if *pos < range.end {
            let why = failure.unwrap_or_else(|| "the answer ended early".into());
            return Ok(Err(HttpError::Transport(why)));
        }
        Ok(Ok(()))
    }

    /// Writes the pending chunks at `pos` and returns the new position; the chunks stay
    /// in `pending` for the hash. Each `pwritev` covers at most one aligned
    /// [`WRITE_PIECE`], without copying the chunks into a buffer.
    fn flush(
        &self,
        file: &std::fs::File,
        pos: u64,
        pending: &mut Pending,
        path: &str,
    ) -> Result<u64, StoreError> {
        let total = pending.len;
        let (mut idx, mut skip, mut done) = (0usize, 0usize, 0usize);
        while done < total {
            let at = pos + done as u64;
            let mut want = (total - done).min(WRITE_PIECE - (at % WRITE_PIECE as u64) as usize);
            let mut slices = Vec::with_capacity(16);
            for (k, b) in pending.chunks[idx..].iter().enumerate() {
                let b = if k == 0 { &b[skip..] } else { &b[..] };
                let b = &b[..b.len().min(want)];
                want -= b.len();
                slices.push(std::io::IoSlice::new(b));
                if want == 0 {
                    break;
                }
            }
            let n = match nix::sys::uio::pwritev(file, &slices, at as i64) {
                Ok(0) => Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                Ok(n) => Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => Err(std::io::Error::from(e)),
            }
            .map_err(|e| StoreError::Remote {
                datastore: self.target().datastore.clone(),
                detail: format!("cannot write {path:?} to disk: {e}"),
            })?;
            done += n;
            let mut left = n;
            while left > 0 {
                let avail = pending.chunks[idx].len() - skip;
                if left >= avail {
                    left -= avail;
                    idx += 1;
                    skip = 0;
                } else {
                    skip += left;
                    left = 0;
                }
            }
        }
        Ok(pos + total as u64)
    }

    fn md5_mismatch(&self, obj: &ObjectMeta) -> StoreError {
        StoreError::Remote {
            datastore: self.target().datastore.clone(),
            detail: format!("{:?} arrived with an MD5 other than its Content-MD5: the copy is corrupt and was discarded", obj.path),
        }
    }

    /// A large blob: parallel ranges, then the MD5 (when asked for) read back from the
    /// page cache. With `ranges`, what an earlier attempt left on disk is kept and
    /// progress is recorded as it lands.
    async fn download_ranges(
        &self,
        obj: &ObjectMeta,
        file: Arc<std::fs::File>,
        dest: &Path,
        ranges: Option<&resume::Ranges>,
        meter: &dyn Meter,
    ) -> Result<(), StoreError> {
        let chunk = self.tuning.chunk_for(obj.size);
        let n = obj.size.div_ceil(chunk);
        let todo: Vec<(usize, Range<u64>)> = (0..n)
            .map(|i| (i as usize, i * chunk..((i + 1) * chunk).min(obj.size)))
            .map(|(i, r)| {
                (
                    i,
                    r.start + ranges.map_or(0, |d| d.done(i)).min(r.end - r.start)..r.end,
                )
            })
            .filter(|(_, r)| !r.is_empty())
            .collect();
        stream::iter(todo.into_iter().map(Ok))
            .try_for_each_concurrent(self.tuning.ranges_per_blob, |(i, r)| {
                let file = &file;
                let first = i as u64 * chunk;
                let end = r.end;
                let advance = Advance::from(meter, r.start);
                let written = move |pos: u64| {
                    if let Some(d) = ranges {
                        d.advance(i, pos - first, pos == end);
                    }
                    advance.at(pos);
                };
                async move {
                    self.fetch_range(obj, r, file, &mut Hash::Skip, &written)
                        .await
                }
            })
            .await?;
        if let Some(want) = obj.md5 {
            if self.md5_of(file, 0..obj.size, dest, None).await? != want {
                return Err(self.md5_mismatch(obj));
            }
        }
        Ok(())
    }

    /// The hashing thread, started on first use.
    async fn md5_files(&self, path: &Path) -> Result<&Md5Files, StoreError> {
        self.md5_files
            .get_or_try_init(|| async { Md5Files::start() })
            .await
            .map_err(|e| StoreError::io("cannot start hashing", path, e))
    }

    /// The MD5 of the bytes `range` of `file`, hashed beside whatever else is being
    /// hashed ([`Md5Files`]).
    async fn md5_of(
        &self,
        file: Arc<std::fs::File>,
        range: Range<u64>,
        path: &Path,
        cached: Option<Arc<std::sync::atomic::AtomicU64>>,
    ) -> Result<[u8; 16], StoreError> {
        self.md5_files(path)
            .await?
            .digest(file, range, cached)
            .await
            .map_err(|e| StoreError::io("cannot read", path, e))
    }

    /// A small file in one Put Blob, streamed from disk. The service computes and keeps
    /// its Content-MD5 itself.
    async fn put_single(
        &self,
        src: &Path,
        path: &str,
        size: u64,
        overwrite: bool,
    ) -> Result<(), StoreError> {
        let headers = vec![
            ("x-ms-blob-type", "BlockBlob".to_string()),
            ("x-ms-blob-content-type", content_type(path)),
        ];
        let _permit = self.permit(path).await?;
        let body = Body::File {
            path: src.to_path_buf(),
            offset: 0,
            len: size,
        };
        self.create(path, &[], headers, body, size, overwrite).await
    }

    /// Sends the request that makes the blob at `path` (a Put Blob, or a Put Block List
    /// of `size` bytes), retried. With `overwrite == false` it is a conditional create
    /// (`If-None-Match: *`) carrying a fresh upload id: a retry refused because the
    /// blob exists succeeds when the blob there carries that id and `size`, since then
    /// only the earlier attempt's answer was lost, not its effect. Anything else there
    /// is [`StoreError::AlreadyExists`].
    async fn create(
        &self,
        path: &str,
        query: &[(&str, &str)],
        mut headers: Vec<(&'static str, String)>,
        body: Body,
        size: u64,
        overwrite: bool,
    ) -> Result<(), StoreError> {
        let upload = (!overwrite).then(upload_id);
        if let Some(id) = &upload {
            headers.push(("if-none-match", "*".into()));
            headers.push((client::UPLOAD_MARKER, id.clone()));
        }
        let (headers, body, upload) = (&headers, &body, &upload);
        self.client
            .run(|attempt| async move {
                let sent = self
                    .client
                    .send_once(&Method::PUT, Some(path), query, headers, body.clone())
                    .await;
                match (sent, upload) {
                    (Ok(_), _) => Ok(()),
                    (Err(e), Some(id)) if attempt > 0 && already_exists(&e) => {
                        let there = self.client.head_once(path).await?;
                        if there.upload.as_deref() == Some(id) && there.size == size {
                            tracing::debug!(
                                "{}: {path:?} was created by an attempt whose answer was lost",
                                self.target().datastore
                            );
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }
                    (Err(e), _) => Err(e),
                }
            })
            .await
            .map_err(|e| self.error(path, e))
    }

    /// Stages the blocks of `src`, in order, several at a time, each with its own
    /// Content-MD5: the service checks every block as it lands (a block damaged on the
    /// way, or a file changing under the upload, is refused rather than committed), and
    /// a block without one costs the service a CRC64 instead, which Azurite computes in
    /// JavaScript: 1 GiB of blocks took it 11.6 s with no Content-MD5, 2.4 s with.
    /// A block already in `staged` under its id with its size is not sent again.
    /// Returns the blocks' ids, in order.
    async fn stage_blocks(
        &self,
        src: &Path,
        file: &Arc<std::fs::File>,
        path: &str,
        size: u64,
        staged: &std::collections::HashMap<String, u64>,
        meter: &dyn Meter,
    ) -> Result<Vec<String>, StoreError> {
        let block = self.tuning.block_for(size);
        let n = size.div_ceil(block);
        let window = block * self.tuning.blocks_per_file as u64;
        let in_order = &ReadInOrder::start(file.clone(), size, window);
        let tag =
            &block_tag(file, path, block).map_err(|e| StoreError::io("cannot read", src, e))?;
        let ids_held = std::sync::Mutex::new(vec![String::new(); n as usize]);
        let reused_held = std::sync::atomic::AtomicU64::new(0);
        let (ids, reused) = (&ids_held, &reused_held);
        stream::iter((0..n).map(Ok))
            .try_for_each_concurrent(self.tuning.blocks_per_file, |i| async move {
                let offset = i * block;
                let len = block.min(size - offset);
                in_order.started(offset + len);
                read_ahead(file, offset, len);
                let md5 = match self.tuning.md5 {
                    Md5Check::Never => None,
                    _ => Some(
                        self.md5_of(
                            file.clone(),
                            offset..offset + len,
                            src,
                            Some(in_order.progress()),
                        )
                        .await?,
                    ),
                };
                let id = block_id(md5.as_ref(), tag, i);
                ids.lock().unwrap_or_else(|e| e.into_inner())[i as usize] = id.clone();
                if staged.get(&id) == Some(&len) {
                    reused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    meter.moved(len);
                    return Ok(());
                }
                let headers: Vec<(&'static str, String)> = md5
                    .map(|m| ("content-md5", client::b64(&m)))
                    .into_iter()
                    .collect();
                let body = Body::File {
                    path: src.to_path_buf(),
                    offset,
                    len,
                };
                let _permit = self.permit(path).await?;
                self.client
                    .send(
                        Method::PUT,
                        Some(path),
                        &[("comp", "block"), ("blockid", &id)],
                        &headers,
                        body,
                    )
                    .await
                    .map(|_| meter.moved(len))
                    .map_err(|e| self.error(path, e))
            })
            .await?;
        let reused = reused_held.into_inner();
        if reused > 0 {
            tracing::info!(
                "{}: {path:?}: {reused} of {n} blocks were already staged by an earlier attempt",
                self.target().datastore
            );
        }
        Ok(ids_held.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// A large file as blocks streamed from disk, several at once, committed by one
    /// block list. With [`Md5Check::All`] the list carries the whole file's MD5, hashed
    /// while the blocks go up (a block blob has no Content-MD5 unless the client gives
    /// it); it costs a core for 1.5 s per GiB, so by default only the blocks are hashed.
    /// Blocks an earlier, interrupted attempt staged are reused ([`block_id`]).
    async fn put_blocks(
        &self,
        src: &Path,
        path: &str,
        size: u64,
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<(), StoreError> {
        let file = std::fs::File::open(src).map_err(|e| StoreError::io("cannot read", src, e))?;
        let file = Arc::new(file);
        let staged = self.staged(path).await;
        let whole = async {
            match self.tuning.md5 {
                Md5Check::All => self
                    .md5_of(file.clone(), 0..size, src, None)
                    .await
                    .map(Some),
                _ => Ok(None),
            }
        };
        let (ids, md5) = tokio::join!(
            self.stage_blocks(src, &file, path, size, &staged, meter),
            whole
        );
        let ids = ids?;
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in &ids {
            xml.push_str(&format!("<Latest>{id}</Latest>"));
        }
        xml.push_str("</BlockList>");
        let mut headers = vec![("x-ms-blob-content-type", content_type(path))];
        if let Some(md5) = md5? {
            headers.push(("x-ms-blob-content-md5", client::b64(&md5)));
        }
        let body = Body::Bytes(Bytes::from(xml));
        self.create(
            path,
            &[("comp", "blocklist")],
            headers,
            body,
            size,
            overwrite,
        )
        .await
    }

    /// The blocks an earlier attempt staged for `path` and did not commit, by id. A
    /// failure to ask costs only the resume: nothing is reused.
    async fn staged(&self, path: &str) -> std::collections::HashMap<String, u64> {
        match self.client.uncommitted_blocks(path).await {
            Ok(blocks) => blocks.into_iter().collect(),
            Err(e) => {
                tracing::debug!("{}: {path:?}: no block list: {e}", self.target().datastore);
                Default::default()
            }
        }
    }

    /// A slot among the store's requests in flight.
    async fn permit(&self, path: &str) -> Result<tokio::sync::SemaphorePermit<'_>, StoreError> {
        self.requests
            .acquire()
            .await
            .map_err(|_| self.error(path, HttpError::Transport("shutting down".into())))
    }
}

/// Reserves the whole file on disk before a byte arrives. A full disk then fails here,
/// at once and naming the file, instead of half-way; and ranges landing at scattered
/// offsets fill blocks that already exist, where ext4 would otherwise allocate them page
/// by page as they arrive. Filesystems without `fallocate` get a sparse file.
pub(crate) fn allocate(file: &std::fs::File, size: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = i64::try_from(size).map_err(std::io::Error::other)?;
    match nix::fcntl::fallocate(
        file.as_raw_fd(),
        nix::fcntl::FallocateFlags::empty(),
        0,
        len,
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP) => file.set_len(size),
        Err(e) => Err(e.into()),
    }
}

/// Asks the kernel to start reading `len` bytes of `file` at `offset` into the page
/// cache. The blocks of an upload are read at scattered offsets through one descriptor,
/// which defeats the kernel's own readahead: from a cold cache, 1 GiB went up in 4.2 s
/// without this hint, 3.6-3.7 s with it. Only a hint. The in-order reader
/// ([`ReadInOrder`]) does not replace it: with the reader, 4 alternating cold uploads of
/// 1 GiB took 2.87-3.17 s with the hint and 3.01-3.28 s without, at twice the system
/// time (1.03-1.10 s against 0.43-0.59 s).
fn read_ahead(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    let _ = nix::fcntl::posix_fadvise(
        file.as_raw_fd(),
        offset,
        len,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
    );
}

/// The id of block `i`: its content's MD5 and its index, so that a re-run of an
/// interrupted upload (even of a file the job wrote anew, byte for byte the same) finds
/// the blocks already staged and sends only the others; without an MD5 (checks turned
/// off), the file's identity `tag` and the index. One length for every id of a blob, as
/// Azure requires.
fn block_id(md5: Option<&[u8; 16]>, tag: &str, i: u64) -> String {
    let name = match md5 {
        Some(m) => m.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        None => tag.to_string(),
    };
    client::b64(format!("{name}-{i:08}").as_bytes())
}

/// A name for one file's upload when blocks carry no MD5: a hash of the file's identity
/// (device, inode, size, modification time), the blob's name and the block size, as 32
/// hex digits (the length of an MD5's). The same file going to the same name gets the
/// same ids in every run.
fn block_tag(file: &std::fs::File, path: &str, block: u64) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    let identity = format!(
        "{}:{}:{}:{}.{}:{block}:{path}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    Ok(digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Whether the service refused a conditional create because the blob exists.
fn already_exists(e: &HttpError) -> bool {
    matches!(e.status(), Some(409 | 412))
        && matches!(e.code(), Some("BlobAlreadyExists" | "ConditionNotMet"))
}

/// A fresh id for one conditional create (128 random bits, as hex).
fn upload_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// The content type for a blob name, by its extension.
pub fn content_type(path: &str) -> String {
    mime_guess::from_path(path)
        .first_or_octet_stream()
        .essence_str()
        .to_string()
}

/// The account's service cannot be reached at all: what to check.
pub(crate) fn unreachable(t: &AzureTarget, why: &str) -> StoreError {
    StoreError::Remote {
        datastore: t.datastore.clone(),
        detail: format!(
            "cannot reach {}: {why}; check the endpoint and protocol, and that this machine can reach the storage account",
            t.service_url
        ),
    }
}

#[async_trait]
impl Store for AzureStore {
    fn name(&self) -> &str {
        &self.target().datastore
    }

    fn cache_identity(&self) -> Option<String> {
        let t = self.target();
        Some(format!(
            "blob:{}/{}",
            crate::store::azure::config::without_port(&t.service_url),
            t.container
        ))
    }

    async fn check(&self, create: bool) -> Result<crate::store::Checked, StoreError> {
        let t = self.target();
        let mut created = None;
        let mut r = self.client.list_page("", None, None, 1).await;
        if create && matches!(&r, Err(e) if e.code() == Some("ContainerNotFound")) {
            r = match self.client.create_container().await {
                Ok(_) => {
                    created = Some(format!("container {:?}", t.container));
                    self.client.list_page("", None, None, 1).await
                }
                Err(e) => Err(e),
            };
        }
        match r {
            Ok(_) => Ok(crate::store::Checked {
                reached: format!(
                    "container {:?} of account {} at {} can be listed",
                    t.container, t.account, t.service_url
                ),
                created,
            }),
            Err(HttpError::Transport(why)) => Err(unreachable(t, &why)),
            Err(e) => Err(self.error("", e)),
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
        if path.is_empty() {
            // The container itself: check that it is there (and that we may list it).
            self.client
                .list_page("", None, None, 1)
                .await
                .map_err(|e| self.error("", e))?;
            return Ok(Entry::Dir);
        }
        match self.client.head(path).await {
            Ok(p) if !p.is_folder => return Ok(Entry::File(Self::meta(path.to_string(), &p))),
            Ok(_) => {}
            Err(e) if e.status() == Some(404) && e.code() != Some("ContainerNotFound") => {}
            // HEAD answers carry no error code; a 404 may mean a missing container, which
            // the listing below reports precisely.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(self.error(path, e)),
        }
        let page = self
            .client
            .list_page(&format!("{path}/"), None, None, 1)
            .await
            .map_err(|e| self.error(path, e))?;
        Ok(if page.blobs.is_empty() {
            Entry::Missing
        } else {
            Entry::Dir
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let p = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Ok(self
            .list_all(&p)
            .await?
            .into_iter()
            .map(|(name, props)| Self::meta(name, &props))
            .collect())
    }

    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        let p = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        let mut marker: Option<String> = None;
        for n in 1.. {
            let started = std::time::Instant::now();
            let page = self
                .client
                .list_page(&p, Some("/"), marker.as_deref(), 5000)
                .await
                .map_err(|e| self.list_error(&p, n, marker.as_deref(), started, e))?;
            for (name, props) in page.blobs {
                if props.is_folder {
                    let d = name[p.len().min(name.len())..].to_string();
                    if !d.is_empty() {
                        dirs.push(d);
                    }
                } else {
                    files.push(Self::meta(name, &props));
                }
            }
            for d in page.prefixes {
                let d = d
                    .get(p.len()..)
                    .unwrap_or("")
                    .trim_end_matches('/')
                    .to_string();
                if !d.is_empty() && !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        Ok((files, dirs))
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        let _permit = self.permit(path).await?;
        match self.client.read_range(path, range.start, range.end).await {
            Ok(b) => Ok(b),
            // The range starts at or past the end: nothing there, as the trait says.
            Err(e) if e.status() == Some(416) => Ok(Bytes::new()),
            Err(e) => Err(self.error(path, e)),
        }
    }

    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<crate::store::ByteStream, StoreError> {
        // One attempt a GET: the stream counts the attempts and the resumes after a
        // cut together, under this client's policy.
        let (client, blob) = (self.client.clone(), path.to_string());
        let get = move |r: Range<u64>| {
            let (client, blob) = (client.clone(), blob.clone());
            async move { client.get_range_once(&blob, None, r.start, r.end).await }
        };
        let error = |e| self.error(path, e);
        let (retry, datastore) = (*self.client.retry(), &self.target().datastore);
        range_stream::stream_range(&self.requests, retry, (datastore, path), range, get, error)
            .await
    }

    async fn download_metered(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        let ranged = object.size > self.tuning.range_threshold;
        let verify = match self.tuning.md5 {
            Md5Check::Never => false,
            Md5Check::Streamed => !ranged,
            Md5Check::All => true,
        };
        let unverified;
        let object = if verify {
            object
        } else {
            unverified = ObjectMeta {
                md5: None,
                ..object.clone()
            };
            &unverified
        };
        // A large blob resumes from what an earlier run left in `dest`, when its record
        // says so; anything else starts `dest` over.
        let ranges = ranged
            .then(|| resume::Ranges::open(dest, object, self.tuning.chunk_for(object.size)))
            .flatten();
        let resumed = ranges.as_ref().is_some_and(|r| r.on_disk() > 0);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create(true)
            .truncate(!resumed)
            .open(dest)
            .map_err(|e| StoreError::io("cannot create", dest, e))?;
        if object.size == 0 {
            return Ok(0);
        }
        if resumed {
            // What an earlier run left is there: the file's progress starts past it.
            meter.moved(ranges.as_ref().map_or(0, resume::Ranges::on_disk));
            tracing::info!(
                "{}: {:?}: resuming with {} of {} bytes already on disk",
                self.target().datastore,
                object.path,
                ranges.as_ref().map_or(0, resume::Ranges::on_disk),
                object.size
            );
        } else {
            allocate(&file, object.size)
                .map_err(|e| StoreError::io("cannot make room for", dest, e))?;
            if let Some(r) = &ranges {
                r.start();
            }
        }
        let file = Arc::new(file);
        let advance = Advance::from(meter, 0);
        let written = |pos: u64| advance.at(pos);
        if !ranged {
            match object.md5 {
                None => {
                    self.fetch_range(object, 0..object.size, &file, &mut Hash::Skip, &written)
                        .await?
                }
                Some(want) if object.size <= INLINE_MD5_MAX => {
                    let mut h = Hash::Inline(Md5::new());
                    self.fetch_range(object, 0..object.size, &file, &mut h, &written)
                        .await?;
                    let Hash::Inline(h) = h else { unreachable!() };
                    if <[u8; 16]>::from(h.finalize()) != want {
                        return Err(self.md5_mismatch(object));
                    }
                }
                Some(want) => {
                    let landing = self
                        .md5_files(dest)
                        .await?
                        .landing(object.size)
                        .map_err(|e| StoreError::io("cannot start hashing", dest, e))?;
                    let mut h = Hash::Landing(landing);
                    self.fetch_range(object, 0..object.size, &file, &mut h, &written)
                        .await?;
                    let Hash::Landing(landing) = h else {
                        unreachable!()
                    };
                    let got = landing
                        .digest()
                        .await
                        .map_err(|e| StoreError::io("cannot hash", dest, e))?;
                    if got != want {
                        return Err(self.md5_mismatch(object));
                    }
                }
            }
        } else {
            self.download_ranges(object, file, dest, ranges.as_ref(), meter)
                .await?;
            if let Some(r) = ranges {
                r.finish();
            }
        }
        Ok(object.size)
    }

    fn retrying(&self, retry: RetryConfig) -> Option<DynStore> {
        Some(Arc::new(AzureStore {
            client: Arc::new(self.client.with_retry(retry)),
            tuning: Tuning {
                retry,
                ..self.tuning
            },
            requests: self.requests.clone(),
            md5_files: self.md5_files.clone(),
        }))
    }

    async fn upload_metered(
        &self,
        src: &Path,
        path: &str,
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        let size = std::fs::metadata(src)
            .map_err(|e| StoreError::io("cannot read", src, e))?
            .len();
        if size <= self.tuning.single_put_max {
            // One request: it counts once the service has it.
            self.put_single(src, path, size, overwrite).await?;
            meter.moved(size);
        } else {
            self.put_blocks(src, path, size, overwrite, meter).await?;
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_refused_for_its_md5_says_why() {
        let target = config::AzureTarget {
            datastore: "az".into(),
            account: "acct".into(),
            container: "box".into(),
            service_url: "http://127.0.0.1:1/acct".into(),
            auth: Auth::SharedKey(b"key".to_vec()),
            hierarchical: false,
        };
        let store = AzureStore::open_with(target, Tuning::from_settings()).unwrap();
        let e = store.error(
            "model.bin",
            HttpError::Status {
                status: reqwest::StatusCode::BAD_REQUEST,
                code: Some("Md5Mismatch".into()),
            },
        );
        let text = e.to_string();
        assert!(
            text.contains("model.bin") && text.contains("changed while it was being uploaded"),
            "{text}"
        );
    }

    #[test]
    fn blocks_grow_only_for_files_too_large_for_50000() {
        let t = Tuning {
            block: 32 * MIB,
            ..Tuning::from_settings()
        };
        assert_eq!(t.block_for(MIB), 32 * MIB);
        assert_eq!(t.block_for(1 << 30), 32 * MIB);
        assert_eq!(t.block_for(32 * MIB * MAX_BLOCKS), 32 * MIB);
        for size in [32 * MIB * MAX_BLOCKS + 1, 2 << 40, (4 << 40) + 12345] {
            let b = t.block_for(size);
            assert!(b > 32 * MIB && b.is_multiple_of(MIB), "{size}: {b}");
            assert!(size.div_ceil(b) <= MAX_BLOCKS, "{size}: {b}");
        }
    }
}
