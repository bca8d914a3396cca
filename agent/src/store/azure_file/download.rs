//! Downloads from a share: a file over the range threshold as parallel ranged GETs,
//! each written at its own offset of the temporary file; a smaller one in one GET.
//! A range whose connection breaks resumes from its last byte written.
//!
//! Get File has no `If-Match`, so a file replaced mid-download is caught otherwise:
//! every answer must carry the ETag the listing gave and the size it gave (in
//! `Content-Range`), or the download fails instead of mixing two versions.
//!
//! Never writes outside `dest`.

use super::FileShareStore;
use crate::store::azure::client;
use crate::store::azure::Md5Check;
use crate::store::call::HttpError;
use crate::store::{Advance, Meter, ObjectMeta, StoreError};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Bytes gathered before one positional write.
const WRITE_BUFFER: usize = 1 << 20;

/// Writes `obj` to the new file `dest` and returns its size.
pub(super) async fn download(
    store: &FileShareStore,
    obj: &ObjectMeta,
    dest: &Path,
    meter: &dyn Meter,
) -> Result<u64, StoreError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(true)
        .open(dest)
        .map_err(|e| StoreError::io("cannot create", dest, e))?;
    if obj.size == 0 {
        return Ok(0);
    }
    crate::store::azure::allocate(&file, obj.size)
        .map_err(|e| StoreError::io("cannot make room for", dest, e))?;
    let file = Arc::new(file);
    let t = &store.tuning;
    let chunk = if obj.size > t.range_threshold {
        t.chunk_for(obj.size)
    } else {
        obj.size
    };
    let ranges: Vec<Range<u64>> = (0..obj.size.div_ceil(chunk))
        .map(|i| i * chunk..((i + 1) * chunk).min(obj.size))
        .collect();
    stream::iter(ranges.into_iter().map(Ok))
        .try_for_each_concurrent(t.ranges_per_blob, |r| {
            let file = &file;
            async move { fetch_range(store, obj, r, file, dest, meter).await }
        })
        .await?;
    if let (Some(want), true) = (obj.md5, t.md5 != Md5Check::Never) {
        let got = md5_of_file(file, obj.size)
            .await
            .map_err(|e| StoreError::io("cannot read", dest, e))?;
        if got != want {
            return Err(StoreError::Remote {
                datastore: store.target().datastore.clone(),
                detail: format!("{:?} arrived with an MD5 other than its Content-MD5: the copy is corrupt and was discarded", obj.path),
            });
        }
    }
    Ok(obj.size)
}

/// Fetches `range` of `obj` into `file` at the same offsets, resuming a broken answer
/// from the last byte written.
async fn fetch_range(
    store: &FileShareStore,
    obj: &ObjectMeta,
    range: Range<u64>,
    file: &std::fs::File,
    dest: &Path,
    meter: &dyn Meter,
) -> Result<(), StoreError> {
    let advance = Advance::from(meter, range.start);
    let mut pos = range.start;
    let mut attempts = store.client.retry().attempts();
    while pos < range.end {
        let before = pos;
        // One GET at a time: a refused or lost GET and a cut answer are retries of the
        // same range under the one policy (`attempts`), never a retry loop inside one.
        let got = {
            let _permit = store.permit(&obj.path).await?;
            store
                .share()
                .get_range_once(&obj.path, pos, range.end)
                .await
        };
        let resp = match got {
            Ok(r) => r,
            Err(e) => {
                let what = format!("{}: {:?} at byte {pos}", store.target().datastore, obj.path);
                let (transient, asked) = (e.is_transient(), e.retry_after());
                if attempts.again_after(&what, &e, transient, asked).await {
                    continue;
                }
                let e = match attempts.exhausted() {
                    true => HttpError::GaveUp {
                        tried: attempts.summary(),
                        last: Box::new(e),
                    },
                    false => e,
                };
                return Err(store.error(&obj.path, e));
            }
        };
        same_version(store, obj, &resp)?;
        let mut body = store.client.pace().body(resp);
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
        let mut failure = None;
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    let room = (range.end - pos) as usize - buf.len();
                    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if buf.len() >= WRITE_BUFFER {
                        pos = write_at(file, pos, &mut buf, dest)?;
                        advance.at(pos);
                    }
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                None => break,
            }
        }
        pos = write_at(file, pos, &mut buf, dest)?;
        advance.at(pos);
        if pos < range.end {
            // A resumed GET is a retry like any other, under the client's one policy;
            // its bound on time counts from the last byte that arrived.
            if pos > before {
                attempts.progressed();
            }
            let e =
                failure.unwrap_or_else(|| HttpError::Transport("the answer ended early".into()));
            let what = format!("{}: {:?} at byte {pos}", store.target().datastore, obj.path);
            if !attempts.again(&what, &e, true).await {
                return Err(store.error(&obj.path, e));
            }
        }
    }
    Ok(())
}

/// Fails when the answer is of another version of the file than the one listed: its
/// ETag or its total size (`Content-Range: bytes a-b/SIZE`) differ.
fn same_version(
    store: &FileShareStore,
    obj: &ObjectMeta,
    resp: &reqwest::Response,
) -> Result<(), StoreError> {
    let h = resp.headers();
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    let etag = get("etag").map(client::unquote);
    let total = get("content-range")
        .and_then(|r| r.rsplit_once('/'))
        .and_then(|(_, t)| t.trim().parse::<u64>().ok());
    let etag_moved = matches!((&obj.version, &etag), (Some(a), Some(b)) if a != b);
    let size_moved = total.is_some_and(|t| t != obj.size);
    if etag_moved || size_moved {
        return Err(StoreError::Remote {
            datastore: store.target().datastore.clone(),
            detail: format!(
                "{:?} changed while it was being downloaded; nothing was kept, run again",
                obj.path
            ),
        });
    }
    Ok(())
}

/// Writes `buf` at `pos`, empties it, and returns the position after it.
fn write_at(
    file: &std::fs::File,
    pos: u64,
    buf: &mut Vec<u8>,
    dest: &Path,
) -> Result<u64, StoreError> {
    file.write_all_at(buf, pos)
        .map_err(|e| StoreError::io("cannot write", dest, e))?;
    let next = pos + buf.len() as u64;
    buf.clear();
    Ok(next)
}

/// The MD5 of the first `size` bytes of `file`, read back on a blocking thread.
async fn md5_of_file(file: Arc<std::fs::File>, size: u64) -> std::io::Result<[u8; 16]> {
    tokio::task::spawn_blocking(move || {
        use md5_many::{Digest, Md5};
        let mut h = Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < size {
            let want = buf.len().min((size - at) as usize);
            let n = file.read_at(&mut buf[..want], at)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            h.update(&buf[..n]);
            at += n as u64;
        }
        Ok(<[u8; 16]>::from(h.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}
