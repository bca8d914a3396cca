//! Downloads from a bucket: an object up to the range threshold in one GET, a larger one
//! as parallel ranged GETs, each streamed into its place in the file with positional
//! writes and resumed across restarts from its record (`azure::resume`, which keys on
//! the object's path, size and ETag). Every GET carries `If-Match` with the listed
//! ETag, so an object replaced mid-download fails instead of mixing two versions. A
//! broken range resumes from its last byte written, under the client's one retry
//! policy.
//!
//! S3 keeps no MD5 of the whole object for a multipart upload (its ETag is not one), so
//! nothing is hashed here: the node cache hashes what it keeps (`cache::entry`).
//!
//! Never writes outside `dest` (and its `.ranges` record).

use super::S3Store;
use crate::store::azure::{allocate, resume};
use crate::store::call::HttpError;
use crate::store::{Advance, Meter, ObjectMeta, StoreError};
use bytes::BytesMut;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How much a range holds before it writes.
const WRITE_BUFFER: usize = 256 << 10;

impl S3Store {
    /// Writes `object` to the new file `dest` (or on into what an earlier run left
    /// there, when its record says so) and returns its size.
    pub(super) async fn download_to(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        let ranged = object.size > self.tuning.range_threshold;
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
            meter.moved(ranges.as_ref().map_or(0, resume::Ranges::on_disk));
        } else {
            allocate(&file, object.size)
                .map_err(|e| StoreError::io("cannot make room for", dest, e))?;
            if let Some(r) = &ranges {
                r.start();
            }
        }
        if !ranged {
            let advance = Advance::from(meter, 0);
            self.fetch_range(object, 0..object.size, &file, dest, &|p| advance.at(p))
                .await?;
            return Ok(object.size);
        }
        let chunk = self.tuning.chunk_for(object.size);
        let todo: Vec<(usize, Range<u64>)> = (0..object.size.div_ceil(chunk))
            .map(|i| {
                let r = i * chunk..((i + 1) * chunk).min(object.size);
                let done = ranges.as_ref().map_or(0, |d| d.done(i as usize));
                (i as usize, r.start + done.min(r.end - r.start)..r.end)
            })
            .filter(|(_, r)| !r.is_empty())
            .collect();
        let (file, ranges_ref) = (&file, ranges.as_ref());
        stream::iter(todo.into_iter().map(Ok))
            .try_for_each_concurrent(self.tuning.ranges_per_blob, |(i, r)| {
                let first = i as u64 * chunk;
                let end = r.end;
                let advance = Advance::from(meter, r.start);
                async move {
                    let written = move |pos: u64| {
                        if let Some(d) = ranges_ref {
                            d.advance(i, pos - first, pos == end);
                        }
                        advance.at(pos);
                    };
                    self.fetch_range(object, r, file, dest, &written).await
                }
            })
            .await?;
        if let Some(r) = ranges {
            r.finish();
        }
        Ok(object.size)
    }

    /// Fetches `range` of `obj` into `file` at the same offsets, resuming after a
    /// broken answer from the last byte written, under the client's retry policy (its
    /// bound on time counts from the last byte that arrived).
    async fn fetch_range(
        &self,
        obj: &ObjectMeta,
        range: Range<u64>,
        file: &std::fs::File,
        dest: &Path,
        written: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StoreError> {
        let mut pos = range.start;
        let mut attempts = self.client.retry().attempts();
        while pos < range.end {
            let before = pos;
            let Err(e) = self
                .fetch_from(obj, pos..range.end, file, dest, &mut pos, written)
                .await?
            else {
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

    /// One GET of `range` into `file`, advancing `pos` past every byte written. The
    /// outer error is local; the inner one the service's or the connection's.
    async fn fetch_from(
        &self,
        obj: &ObjectMeta,
        range: Range<u64>,
        file: &std::fs::File,
        dest: &Path,
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
        let mut body = self.client.pace().body(resp);
        let mut buf = BytesMut::with_capacity(WRITE_BUFFER);
        let mut failure = None;
        let write = |buf: &mut BytesMut, pos: &mut u64| -> Result<(), StoreError> {
            file.write_all_at(buf, *pos)
                .map_err(|e| StoreError::io("cannot write", dest, e))?;
            *pos += buf.len() as u64;
            buf.clear();
            written(*pos);
            Ok(())
        };
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    let room = (range.end - *pos) as usize - buf.len();
                    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if buf.len() >= WRITE_BUFFER {
                        write(&mut buf, pos)?;
                    }
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                None => break,
            }
        }
        write(&mut buf, pos)?;
        if *pos < range.end {
            let e =
                failure.unwrap_or_else(|| HttpError::Transport("the answer ended early".into()));
            return Ok(Err(e));
        }
        Ok(Ok(()))
    }
}
