//! Uploads to a bucket, streamed from disk so no file is held in memory: a file up to
//! the single-PUT size in one PUT, a larger one as a multipart upload (parts sent
//! concurrently, then one CompleteMultipartUpload; an upload that fails is aborted, so
//! no parts are left billed). `overwrite: false` sends `If-None-Match: *` on the PUT or
//! the Complete, so an existing object is never replaced where the service honours it
//! (AWS S3 since 2024, MinIO, moto; the README names those that do not). Such a create
//! carries an upload id in its metadata ([`MARKER`]), so a retry refused because the
//! object exists can tell its own lost attempt (success) from someone else's object.
//!
//! Never reads outside `src`, never puts a key in an error.

use super::client::{already_exists, Body};
use super::S3Store;
use crate::store::call::HttpError;
use crate::store::{Meter, StoreError};
use futures::stream::{self, TryStreamExt};
use reqwest::Method;
use std::path::Path;

/// The metadata header that names the upload which created an object.
const MARKER: &str = "x-amz-meta-stagehand-upload";

/// S3's smallest part (but the last) and most parts.
const MIN_PART: u64 = 5 << 20;
const MAX_PARTS: u64 = 10_000;

impl S3Store {
    /// Uploads `src` to `path`; with `overwrite == false` never replaces an object.
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
        let id = upload_id();
        let mut headers = vec![("content-type", crate::store::azure::content_type(path))];
        if !overwrite {
            headers.push((MARKER, id.clone()));
        }
        if size <= self.tuning.single_put_max {
            let body = Body::File {
                path: src.to_path_buf(),
                offset: 0,
                len: size,
            };
            let mut h = headers.clone();
            if !overwrite {
                h.push(("if-none-match", "*".into()));
            }
            let _permit = self.permit(path).await?;
            let r = self
                .client
                .run(|_| {
                    self.client
                        .send_once(&Method::PUT, Some(path), &[], &h, body.clone())
                })
                .await;
            self.settle(path, r.map(|_| ()), &id, overwrite).await?;
            meter.moved(size);
            return Ok(size);
        }
        self.multipart(src, path, size, &headers, overwrite, meter)
            .await?;
        Ok(size)
    }

    /// A conditional create that failed because the object exists: our own earlier
    /// attempt (its marker matches: done), or another's (already exists).
    async fn settle(
        &self,
        path: &str,
        r: Result<(), HttpError>,
        id: &str,
        overwrite: bool,
    ) -> Result<(), StoreError> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if !overwrite && already_exists(&e) => {
                let ours = self
                    .client
                    .send(Method::HEAD, Some(path), &[], &[], Body::Empty)
                    .await
                    .ok()
                    .and_then(|h| h.headers().get(MARKER)?.to_str().ok().map(str::to_string))
                    .is_some_and(|m| m == id);
                if ours {
                    Ok(())
                } else {
                    Err(self.error(path, e))
                }
            }
            Err(e) => Err(self.error(path, e)),
        }
    }

    /// A large file as a multipart upload.
    async fn multipart(
        &self,
        src: &Path,
        path: &str,
        size: u64,
        headers: &[(&'static str, String)],
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<(), StoreError> {
        let resp = self
            .client
            .send(
                Method::POST,
                Some(path),
                &[("uploads", String::new())],
                headers,
                Body::Empty,
            )
            .await
            .map_err(|e| self.error(path, e))?;
        let text = resp.text().await.unwrap_or_default();
        let upload = tag(&text, "UploadId").ok_or_else(|| StoreError::Remote {
            datastore: self.target().datastore.clone(),
            detail: format!("{path:?}: the service started a multipart upload without an UploadId"),
        })?;
        let r = self
            .parts_and_complete(src, path, size, &upload, overwrite, meter)
            .await;
        if r.is_err() {
            // Leave no parts behind; a failure to abort changes nothing for the caller.
            let _ = self
                .client
                .send(
                    Method::DELETE,
                    Some(path),
                    &[("uploadId", upload.clone())],
                    &[],
                    Body::Empty,
                )
                .await;
        }
        let id = headers
            .iter()
            .find(|(k, _)| *k == MARKER)
            .map_or(String::new(), |(_, v)| v.clone());
        match r {
            Err(Some(e)) => self.settle(path, Err(e), &id, overwrite).await,
            Err(None) => Err(self.error(
                path,
                HttpError::Local(format!("cannot read {}", src.display())),
            )),
            Ok(()) => Ok(()),
        }
    }

    /// Sends every part, then the Complete (conditional when `!overwrite`).
    async fn parts_and_complete(
        &self,
        src: &Path,
        path: &str,
        size: u64,
        upload: &str,
        overwrite: bool,
        meter: &dyn Meter,
    ) -> Result<(), Option<HttpError>> {
        let part = self
            .tuning
            .block_for(size)
            .max(MIN_PART)
            .max(size.div_ceil(MAX_PARTS));
        let n = size.div_ceil(part);
        let etags: Vec<(u64, String)> = stream::iter((1..=n).map(Ok))
            .map_ok(|k| async move {
                let offset = (k - 1) * part;
                let len = part.min(size - offset);
                let body = Body::File {
                    path: src.to_path_buf(),
                    offset,
                    len,
                };
                let q = [
                    ("partNumber", k.to_string()),
                    ("uploadId", upload.to_string()),
                ];
                let _permit = self.requests.acquire().await.map_err(|_| None)?;
                let resp = self
                    .client
                    .send(Method::PUT, Some(path), &q, &[], body)
                    .await
                    .map_err(Some)?;
                meter.moved(len);
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                Ok::<_, Option<HttpError>>((k, etag))
            })
            .try_buffer_unordered(self.tuning.blocks_per_file)
            .try_collect()
            .await?;
        let mut etags = etags;
        etags.sort();
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (k, e) in &etags {
            xml.push_str(&format!(
                "<Part><PartNumber>{k}</PartNumber><ETag>{}</ETag></Part>",
                e.replace('&', "&amp;").replace('"', "&quot;")
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let mut h = vec![("content-type", "application/xml".to_string())];
        if !overwrite {
            h.push(("if-none-match", "*".into()));
        }
        let body = Body::Bytes(xml.into());
        let resp = self
            .client
            .send(
                Method::POST,
                Some(path),
                &[("uploadId", upload.to_string())],
                &h,
                body,
            )
            .await
            .map_err(Some)?;
        // A Complete can fail after its 200 has been sent: the error is in the body.
        let text = resp.text().await.unwrap_or_default();
        if let Some(code) = text
            .contains("<Error>")
            .then(|| tag(&text, "Code"))
            .flatten()
        {
            return Err(Some(HttpError::Status {
                status: reqwest::StatusCode::INTERNAL_SERVER_ERROR,
                code: Some(code),
            }));
        }
        Ok(())
    }
}

/// The text of the first `<name>…</name>` in `xml`.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

/// A fresh id for one upload's marker.
fn upload_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
