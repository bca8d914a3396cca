//! One file on a web server, as a read-only store: an input's `http(s)://` URL that no
//! Azure account serves. The store holds that one file under its name (the URL's last
//! segment); it is pinned by the server's `ETag` (else `Last-Modified`) and length, or
//! by the `sha256:` the input gives, which the download is checked against.
//!
//! Never writes to the server (an upload is refused); never shows the URL's query,
//! which may be a signature.

pub mod get;

use crate::store::{ByteStream, Checked, DynStore, Entry, Meter, ObjectMeta, Store, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use get::{bare, Expect, Probe, WebClient};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// A web file as a store.
pub struct WebStore {
    name: String,
    url: String,
    /// The file's name: the URL's last segment.
    file: String,
    sha256: Option<String>,
    client: WebClient,
    probe: Arc<tokio::sync::OnceCell<Probe>>,
}

impl WebStore {
    /// The file at `url`, named `name` in errors, expected to hash to `sha256` if given.
    pub fn open(name: &str, url: &str, sha256: Option<&str>) -> Result<WebStore, StoreError> {
        let file = bare(url)
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .and_then(|(_, p)| p.rsplit('/').next())
            .filter(|f| !f.is_empty())
            .ok_or_else(|| StoreError::Config {
                datastore: name.to_string(),
                detail: format!("{:?} names no file", bare(url)),
            })?;
        Ok(WebStore {
            name: name.to_string(),
            url: url.to_string(),
            file: file.to_string(),
            sha256: sha256.map(str::to_ascii_lowercase),
            client: WebClient::new(name, None)?,
            probe: Arc::default(),
        })
    }

    async fn probe(&self) -> Result<&Probe, StoreError> {
        self.probe
            .get_or_try_init(|| self.client.probe(&self.url))
            .await
    }

    async fn meta(&self) -> Result<ObjectMeta, StoreError> {
        let p = self.probe().await?;
        Ok(ObjectMeta {
            path: self.file.clone(),
            size: p.size,
            version: match &self.sha256 {
                Some(h) => Some(format!("sha256:{h}")),
                None => p.validator(),
            },
            md5: None,
        })
    }

    fn is_file(&self, path: &str) -> bool {
        path.trim_matches('/') == self.file
    }

    fn missing(&self, path: &str) -> StoreError {
        StoreError::NotFound {
            datastore: self.name.clone(),
            path: path.to_string(),
        }
    }
}

/// What refuses every write to a read-only store.
pub fn read_only(datastore: &str, what: &str) -> StoreError {
    StoreError::Config {
        datastore: datastore.to_string(),
        detail: format!("{what} is read-only: stagehand never writes to it; send outputs to a datastore of the workspace"),
    }
}

#[async_trait]
impl Store for WebStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn stat(&self, path: &str) -> Result<Entry, StoreError> {
        if path.trim_matches('/').is_empty() {
            return Ok(Entry::Dir);
        }
        if !self.is_file(path) {
            return Ok(Entry::Missing);
        }
        match self.meta().await {
            Ok(m) => Ok(Entry::File(m)),
            Err(StoreError::NotFound { .. }) => Ok(Entry::Missing),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        if prefix.trim_matches('/').is_empty() || self.is_file(prefix) {
            return Ok(vec![self.meta().await?]);
        }
        Ok(Vec::new())
    }

    async fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StoreError> {
        if prefix.trim_matches('/').is_empty() {
            return Ok((vec![self.meta().await?], Vec::new()));
        }
        Ok((Vec::new(), Vec::new()))
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if !self.is_file(path) {
            return Err(self.missing(path));
        }
        self.client.range(&self.url, range).await
    }

    async fn read_range_stream(
        &self,
        path: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, StoreError> {
        if !self.is_file(path) {
            return Err(self.missing(path));
        }
        self.client.range_stream(&self.url, range).await
    }

    async fn download_metered(
        &self,
        object: &ObjectMeta,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        if !self.is_file(&object.path) {
            return Err(self.missing(&object.path));
        }
        let p = self.probe().await?;
        let expect = Expect {
            size: Some(p.size),
            sha256: self.sha256.clone(),
            sha256_from: "the input's sha256:",
            validator: p.ranges.then(|| p.validator()).flatten(),
        };
        self.client
            .download(&self.url, object, &expect, dest, meter)
            .await
    }

    async fn upload_metered(
        &self,
        _src: &Path,
        _path: &str,
        _overwrite: bool,
        _meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        Err(read_only(
            &self.name,
            &format!("the web file {}", bare(&self.url)),
        ))
    }

    async fn check(&self, _create: bool) -> Result<Checked, StoreError> {
        let p = self.probe().await?;
        Ok(Checked {
            reached: format!(
                "{} answers: {} bytes, {}, pinned by {}",
                bare(&self.url),
                p.size,
                if p.ranges {
                    "ranged reads"
                } else {
                    "no ranged reads (a cut download starts over)"
                },
                match (&self.sha256, p.validator()) {
                    (Some(_), _) => "the input's sha256",
                    (None, Some(_)) => "its ETag or Last-Modified and length",
                    (None, None) => "nothing (never cached)",
                }
            ),
            created: None,
        })
    }

    fn cache_identity(&self) -> Option<String> {
        // The query names the resource too (`?file=x`) but may be a signature that
        // changes: it counts by its hash, never as text.
        Some(match self.url.split_once('?') {
            Some((u, q)) => format!("web:{u}?{}", &crate::digest::sha256_hex(q.as_bytes())[..16]),
            None => format!("web:{}", self.url),
        })
    }

    fn retrying(&self, retry: crate::retry::RetryConfig) -> Option<DynStore> {
        Some(Arc::new(WebStore {
            client: self.client.with_retry(retry),
            name: self.name.clone(),
            url: self.url.clone(),
            file: self.file.clone(),
            sha256: self.sha256.clone(),
            probe: self.probe.clone(),
        }))
    }
}
