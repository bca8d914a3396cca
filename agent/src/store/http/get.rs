//! GETs of one file over plain HTTP(S), shared by the web-file store and the Hugging
//! Face Hub store: what a server says of a file (a HEAD, or a one-byte ranged GET where
//! HEAD is refused), a whole file written to a local file (resumed with a ranged GET
//! and `If-Range` after a cut when the server allows ranges, started over when it does
//! not, hashed with SHA-256 as it lands and checked against the size and hash expected),
//! and a range streamed (cut from a whole answer when the server ignores `Range`).
//!
//! Never retries outside [`crate::retry`]; never puts a URL's query (a signature) or a
//! token in an error or a log line.

use crate::retry::RetryConfig;
use crate::store::azure::download::allocate;
use crate::store::azure::resume::{Ranges, SAVE_EVERY};
use crate::store::{Advance, ByteStream, Meter, ObjectMeta, StoreError};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::StatusCode;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// An HTTP client for one store: its connections, its retry policy, the bearer token
/// it sends (if any) and the name its errors carry.
#[derive(Clone)]
pub struct WebClient {
    http: reqwest::Client,
    retry: RetryConfig,
    token: Option<String>,
    datastore: String,
}

/// What a server says of a file before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Its length.
    pub size: u64,
    /// `ETag`, as sent.
    pub etag: Option<String>,
    /// `Last-Modified`, as sent.
    pub last_modified: Option<String>,
    /// Whether the server answers a `Range` with the range (`Accept-Ranges: bytes`).
    pub ranges: bool,
}

impl Probe {
    /// What pins the file's bytes: a strong ETag, else `Last-Modified` (sent back in
    /// `If-Range`, so a resumed read never splices two versions).
    pub fn validator(&self) -> Option<String> {
        self.etag
            .clone()
            .filter(|e| !e.starts_with("W/"))
            .or_else(|| self.last_modified.clone())
    }
}

/// What a downloaded file must be.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Its length, when known before the GET.
    pub size: Option<u64>,
    /// Its SHA-256 (hex, lowercase), when published or given.
    pub sha256: Option<String>,
    /// Where that hash comes from, for the error (`the input's sha256:`).
    pub sha256_from: &'static str,
    /// Sent in `If-Range` when a cut download resumes.
    pub validator: Option<String>,
}

/// The URL without its query, for messages.
pub fn bare(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

impl WebClient {
    /// A client whose errors name `datastore`, sending `token` as a bearer token.
    pub fn new(datastore: &str, token: Option<String>) -> Result<WebClient, StoreError> {
        // reqwest is built without a bundled TLS provider (ring is ours); installing it
        // twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .http1_only()
            .build()
            .map_err(|e| StoreError::Config {
                datastore: datastore.to_string(),
                detail: format!("cannot start the HTTP client: {e}"),
            })?;
        Ok(WebClient {
            http,
            retry: RetryConfig::default(),
            token,
            datastore: datastore.to_string(),
        })
    }

    /// The same client retrying under `retry`.
    pub fn with_retry(&self, retry: RetryConfig) -> WebClient {
        WebClient {
            retry,
            ..self.clone()
        }
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.get(url);
        if let Some(t) = &self.token {
            // Sent to this host only: reqwest drops it on a redirect to another one
            // (the Hub's CDN), as huggingface_hub does.
            req = req.bearer_auth(t);
        }
        req
    }

    /// The JSON at `url`, with the `Link: <…>; rel="next"` that pages it, if any.
    pub async fn json(&self, url: &str) -> Result<(serde_json::Value, Option<String>), StoreError> {
        self.retry
            .run(bare(url), is_transient, |_| async move {
                let resp = self
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| self.transport(url, e))?;
                let resp = self.ok(url, resp)?;
                let next = next_link(resp.headers());
                let body = resp.bytes().await.map_err(|e| self.transport(url, e))?;
                let v = serde_json::from_slice(&body).map_err(|e| StoreError::Remote {
                    datastore: self.datastore.clone(),
                    detail: format!("{} answered with no JSON it should have: {e}", bare(url)),
                })?;
                Ok((v, next))
            })
            .await
    }

    /// What the server says of the file at `url`: a HEAD, or, where HEAD is refused
    /// or says no length, the first byte by a ranged GET.
    pub async fn probe(&self, url: &str) -> Result<Probe, StoreError> {
        self.retry
            .run(bare(url), is_transient, |_| async move {
                let mut req = self.http.head(url);
                if let Some(t) = &self.token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.map_err(|e| self.transport(url, e))?;
                if resp.status().is_success() {
                    if let Some(size) = length(resp.headers()) {
                        return Ok(probe_of(resp.headers(), size));
                    }
                } else if !matches!(resp.status().as_u16(), 403 | 405 | 501) {
                    self.ok(url, resp)?;
                }
                let resp = self
                    .get(url)
                    .header(header::RANGE, "bytes=0-0")
                    .send()
                    .await
                    .map_err(|e| self.transport(url, e))?;
                let resp = self.ok(url, resp)?;
                let h = resp.headers();
                let size = match resp.status() {
                    StatusCode::PARTIAL_CONTENT => total_of(h),
                    _ => length(h),
                };
                let size = size.ok_or_else(|| StoreError::Remote {
                    datastore: self.datastore.clone(),
                    detail: format!("{} says no length for the file; stagehand reads only files whose length the server gives", bare(url)),
                })?;
                let mut p = probe_of(h, size);
                p.ranges |= resp.status() == StatusCode::PARTIAL_CONTENT;
                Ok(p)
            })
            .await
    }

    /// The file at `url` written to the new file `dest`, resumed after a cut (or
    /// started over where the server ignores ranges), checked against `expect`.
    ///
    /// Where `dest` is a resumable partial file ([`crate::partial::resume_name`]) of an
    /// object with a version, its progress is recorded beside it (the record Azure's
    /// downloads keep, pinned to the version, size and boot), so that a run killed
    /// half-way leaves the next one what it wrote: the next one hashes that part again
    /// and asks only for the rest (`Range`, with `If-Range` on the validator).
    pub async fn download(
        &self,
        url: &str,
        object: &ObjectMeta,
        expect: &Expect,
        dest: &Path,
        meter: &dyn Meter,
    ) -> Result<u64, StoreError> {
        let io = |e| StoreError::io("write", dest, e);
        let open_record = || Ranges::open(dest, object, object.size.max(1));
        let mut record = crate::partial::is_resume_name(dest)
            .then(open_record)
            .flatten();
        let mut written = record.as_ref().map_or(0, Ranges::on_disk);
        let std_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(written == 0)
            .open(dest)
            .map_err(|e| StoreError::io("cannot create", dest, e))?;
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        if let Some(r) = &record {
            if written == 0 {
                // Its whole length now, so that a full disk fails here, and so that the
                // record's check of the length finds it after a kill.
                allocate(&std_file, object.size)
                    .map_err(|e| StoreError::io("cannot make room for", dest, e))?;
                r.start();
            }
        }
        let mut file = tokio::fs::File::from_std(std_file);
        if written > 0 {
            hash_prefix(&mut file, written, &mut hash)
                .await
                .map_err(|e| StoreError::io("read", dest, e))?;
            meter.moved(written);
            tracing::info!(
                "{}: {}: resuming with {written} of {} bytes already on disk",
                self.datastore,
                bare(url),
                object.size
            );
        }
        let advance = Advance::from(meter, written);
        let mut attempts = self.retry.attempts();
        loop {
            let mut req = self.get(url);
            if written > 0 {
                req = req.header(header::RANGE, format!("bytes={written}-"));
                if let Some(v) = &expect.validator {
                    req = req.header(header::IF_RANGE, v.as_str());
                }
            }
            let outcome = match req.send().await {
                Err(e) => Err(self.transport(url, e)),
                Ok(resp) if written > 0 && resp.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                    break;
                }
                Ok(resp) => match self.ok(url, resp) {
                    Err(e) => Err(e),
                    Ok(resp) => {
                        if resp.status() != StatusCode::PARTIAL_CONTENT && written > 0 {
                            // No range (or the file changed, by If-Range): start over.
                            file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
                            written = 0;
                            hash = ring::digest::Context::new(&ring::digest::SHA256);
                            if let Some(r) = record.take() {
                                r.finish();
                                record = open_record();
                                if let Some(r) = &record {
                                    r.start();
                                }
                            }
                        }
                        let before = written;
                        let mut into = Into {
                            file: &mut file,
                            hash: &mut hash,
                            written: &mut written,
                            advance: &advance,
                            record: record.as_ref(),
                        };
                        let r = self.body_into(url, resp, &mut into).await;
                        if written > before {
                            attempts.progressed();
                        }
                        r
                    }
                },
            };
            match outcome {
                Ok(()) => break,
                Err(e) => {
                    if !attempts.again(bare(url), &e, is_transient(&e)).await {
                        return Err(e);
                    }
                }
            }
        }
        file.flush().await.map_err(io)?;
        // A restart from the first byte may leave a longer file behind it.
        file.set_len(written).await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        let checked = self.check(url, expect, written, hash);
        if let Some(r) = record {
            // Whole (or whole and wrong, which the next run fetches again): the record
            // goes.
            r.finish();
        }
        checked.map(|()| written)
    }

    /// One answer's body written at `into`'s position, hashed, counted and recorded.
    async fn body_into(
        &self,
        url: &str,
        resp: reqwest::Response,
        into: &mut Into<'_, '_>,
    ) -> Result<(), StoreError> {
        let io = |e| StoreError::io("write", Path::new(bare(url)), e);
        let mut body = resp.bytes_stream();
        let mut saved = std::time::Instant::now();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transport(url, e))?;
            into.file.write_all(&chunk).await.map_err(io)?;
            into.hash.update(&chunk);
            *into.written += chunk.len() as u64;
            into.advance.at(*into.written);
            if let Some(r) = into.record.filter(|_| saved.elapsed() >= SAVE_EVERY) {
                // Only what the file holds is recorded: the writes first.
                into.file.flush().await.map_err(io)?;
                r.advance(0, *into.written, true);
                saved = std::time::Instant::now();
            }
        }
        if let Some(r) = into.record {
            into.file.flush().await.map_err(io)?;
            r.advance(0, *into.written, true);
        }
        Ok(())
    }

    fn check(
        &self,
        url: &str,
        expect: &Expect,
        written: u64,
        hash: ring::digest::Context,
    ) -> Result<(), StoreError> {
        if let Some(size) = expect.size.filter(|s| *s != written) {
            return Err(StoreError::Remote {
                datastore: self.datastore.clone(),
                detail: format!("{}: {written} bytes arrived, the file has {size}; it changed while it was read, or the server cut it", bare(url)),
            });
        }
        let got = crate::digest::hex(hash.finish().as_ref());
        match &expect.sha256 {
            Some(want) if !want.eq_ignore_ascii_case(&got) => Err(StoreError::Remote {
                datastore: self.datastore.clone(),
                detail: format!("{}: the bytes read have SHA-256 {got}, {} says {want}; the file is not the one expected (fix the hash, or the URL)", bare(url), expect.sha256_from),
            }),
            _ => Ok(()),
        }
    }

    /// The bytes `range` of the file at `url` as they arrive; cut from the whole
    /// answer when the server ignores `Range`.
    pub async fn range_stream(
        &self,
        url: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, StoreError> {
        if range.start >= range.end {
            return Ok(futures::stream::empty().boxed());
        }
        let resp = self
            .retry
            .run(bare(url), is_transient, |_| async move {
                let resp = self
                    .get(url)
                    .header(
                        header::RANGE,
                        format!("bytes={}-{}", range.start, range.end - 1),
                    )
                    .send()
                    .await
                    .map_err(|e| self.transport(url, e))?;
                if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
                    return Ok(None);
                }
                self.ok(url, resp).map(Some)
            })
            .await?;
        let Some(resp) = resp else {
            return Ok(futures::stream::empty().boxed());
        };
        let skip = if resp.status() == StatusCode::PARTIAL_CONTENT {
            0
        } else {
            range.start
        };
        let want = range.end - range.start;
        let (this, url) = (self.clone(), url.to_string());
        let mut at = 0u64;
        let stream = resp
            .bytes_stream()
            .map(move |c| c.map_err(|e| this.transport(&url, e)))
            .filter_map(move |c| {
                let out = c.map(|chunk| {
                    let (from, len) = (at, chunk.len() as u64);
                    at += len;
                    let lo = skip.saturating_sub(from).min(len);
                    let hi = (skip + want).saturating_sub(from).min(len);
                    chunk.slice(lo as usize..hi.max(lo) as usize)
                });
                futures::future::ready(match out {
                    Ok(b) if b.is_empty() => None,
                    other => Some(other),
                })
            })
            .boxed();
        Ok(stream)
    }

    /// [`WebClient::range_stream`], gathered.
    pub async fn range(&self, url: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let mut s = self.range_stream(url, range).await?;
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(Bytes::from(out))
    }

    /// A 2xx answer, or its status as a [`StoreError`].
    fn ok(&self, url: &str, resp: reqwest::Response) -> Result<reqwest::Response, StoreError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let datastore = self.datastore.clone();
        let at = bare(url).to_string();
        Err(match status.as_u16() {
            404 | 410 => StoreError::NotFound {
                datastore,
                path: at,
            },
            401 | 403 => StoreError::Auth {
                datastore,
                detail: format!(
                    "{at} refused the request (HTTP {status}){}",
                    if self.token.is_some() {
                        "; the token given may not reach it"
                    } else {
                        "; if it needs a token, give one (HF_TOKEN for the Hugging Face Hub)"
                    }
                ),
            },
            _ => StoreError::Remote {
                datastore,
                detail: format!("{at} answered HTTP {status}"),
            },
        })
    }

    fn transport(&self, url: &str, e: reqwest::Error) -> StoreError {
        if let Some(reason) = crate::store::call::untrusted(&e) {
            return StoreError::Untrusted {
                datastore: self.datastore.clone(),
                url: bare(url).to_string(),
                reason,
            };
        }
        // reqwest's Display names the URL with its query: say only the cause.
        let e = e.without_url();
        let mut cause = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            cause = format!("{cause}: {s}");
            src = s.source();
        }
        StoreError::Remote {
            datastore: self.datastore.clone(),
            detail: format!("{}: {TRANSPORT}{cause}", bare(url)),
        }
    }
}

/// Where one download writes: its file (at the position reached), its hash, its count,
/// its meter and its record.
struct Into<'a, 'm> {
    file: &'a mut tokio::fs::File,
    hash: &'a mut ring::digest::Context,
    written: &'a mut u64,
    advance: &'a Advance<'m>,
    record: Option<&'a Ranges>,
}

/// The first `len` bytes of `file` into `hash`, leaving `file` at `len`.
async fn hash_prefix(
    file: &mut tokio::fs::File,
    len: u64,
    hash: &mut ring::digest::Context,
) -> std::io::Result<()> {
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// How a transport failure's detail starts, so that [`is_transient`] knows it.
const TRANSPORT: &str = "connection failed: ";

/// What may succeed if tried again: a connection that failed or broke, a 5xx or a 429.
fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Remote { detail, .. } => {
            detail.contains(TRANSPORT)
                || detail.contains("answered HTTP 5")
                || detail.contains("answered HTTP 429")
        }
        _ => false,
    }
}

fn text(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

fn length(h: &HeaderMap) -> Option<u64> {
    text(h, header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}

/// `Content-Range: bytes 0-0/1234` → 1234.
fn total_of(h: &HeaderMap) -> Option<u64> {
    text(h, header::CONTENT_RANGE)?
        .rsplit('/')
        .next()?
        .parse()
        .ok()
}

fn probe_of(h: &HeaderMap, size: u64) -> Probe {
    Probe {
        size,
        etag: text(h, header::ETAG),
        last_modified: text(h, header::LAST_MODIFIED),
        ranges: text(h, header::ACCEPT_RANGES).is_some_and(|v| v.eq_ignore_ascii_case("bytes")),
    }
}

/// `Link: <url>; rel="next"` → url.
fn next_link(h: &HeaderMap) -> Option<String> {
    let link = text(h, header::LINK)?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}
