//! Uploads to a blob container, streamed from disk so that no file is ever held in
//! memory: a small file in one Put Blob (the service computes its MD5), a large one as
//! blocks staged several at a time, each with its Content-MD5, then committed by one
//! block list. `overwrite: false` sends `If-None-Match: *`, so an existing blob is never
//! replaced, whatever raced us; such a create carries an upload id in its metadata
//! ([`client::UPLOAD_MARKER`]), so that a retry refused because the blob exists can
//! tell a blob its own lost attempt made (success) from someone else's (already
//! exists). A large upload reuses the blocks an earlier attempt staged: their ids derive
//! from the blocks' content (or the file's identity) and offset, and the service lists
//! the uncommitted ones.
//!
//! Reads only `src`; never writes to the local disk.

use super::client::{self, Body};
use super::read_in_order::ReadInOrder;
use super::tuning::Md5Check;
use super::AzureStore;
use crate::store::call::HttpError;
use crate::store::{Meter, StoreError};
use bytes::Bytes;
use futures::stream::{self, TryStreamExt};
use reqwest::Method;
use std::path::Path;
use std::sync::Arc;

impl AzureStore {
    /// Uploads `src` to `path` and returns its size.
    pub(super) async fn upload_from(
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
