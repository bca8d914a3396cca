//! Downloads from a blob container: a blob up to the range threshold in one GET, hashed
//! as it lands when it has a Content-MD5 ([`Hash`]); a larger one as parallel ranged
//! GETs, each streamed into its place in the file with positional writes, and resumed
//! across restarts from its record ([`resume`]). Every ranged GET carries `If-Match`
//! with the listed ETag, so a blob replaced mid-download fails instead of mixing two
//! versions. A broken range resumes from its last byte written, under the client's one
//! retry policy. (The mount's streamed read of a range is `range_stream.rs`.)
//!
//! Never writes outside `dest` (and its `.ranges` record).

use super::md5_files::Landing;
use super::tuning::Md5Check;
use super::{resume, AzureStore};
use crate::store::call::HttpError;
use crate::store::{Advance, Meter, ObjectMeta, StoreError};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use md5_many::{Digest, Md5};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

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
    /// Handed over as they arrive, to be hashed beside other downloads
    /// ([`Md5Files`](super::md5_files::Md5Files)).
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

impl AzureStore {
    /// Writes `object` to the new file `dest` (or on into what an earlier run left
    /// there, when its record says so) and returns its size.
    pub(super) async fn download_to(
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
        if ranged {
            self.download_ranges(object, file, dest, ranges.as_ref(), meter)
                .await?;
            if let Some(r) = ranges {
                r.finish();
            }
        } else {
            self.download_whole(object, &file, dest, meter).await?;
        }
        Ok(object.size)
    }

    /// A blob up to the range threshold, in one GET. With a Content-MD5 to check, its
    /// bytes are hashed as they land: on the spot when it is small, beside other
    /// downloads ([`Md5Files`](super::md5_files::Md5Files)) otherwise.
    async fn download_whole(
        &self,
        object: &ObjectMeta,
        file: &std::fs::File,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<(), StoreError> {
        let advance = Advance::from(meter, 0);
        let written = |pos: u64| advance.at(pos);
        match object.md5 {
            None => {
                self.fetch_range(object, 0..object.size, file, &mut Hash::Skip, &written)
                    .await?
            }
            Some(want) if object.size <= INLINE_MD5_MAX => {
                let mut h = Hash::Inline(Md5::new());
                self.fetch_range(object, 0..object.size, file, &mut h, &written)
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
                self.fetch_range(object, 0..object.size, file, &mut h, &written)
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
        Ok(())
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
            if !attempts
                .again_after(&what, &e, e.is_transient(), e.retry_after())
                .await
            {
                return Err(self.error(&obj.path, e.after(&attempts)));
            }
        }
        attempts.succeeded(&format!("{}: {:?}", self.target().datastore, obj.path));
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
        let mut body = self.client.pace().body(resp);
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
                    failure = Some(e);
                    break;
                }
                None => break,
            }
        }
        *pos = self.flush(file, *pos, &mut pending, &obj.path)?;
        written(*pos);
        hash.feed(&mut pending).await;
        if *pos < range.end {
            let e =
                failure.unwrap_or_else(|| HttpError::Transport("the answer ended early".into()));
            return Ok(Err(e));
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
