//! A small Azure Blob REST client: the handful of calls stagehand needs (list, head,
//! ranged get, put, put block, put block list, create container), each signed (Shared
//! Key), carrying a SAS, or a bearer token, and retried on transient failures under the
//! client's one [`RetryConfig`]. A call whose answer has a body reads the body inside
//! the retried attempt, so a connection that breaks mid-answer is retried like one that
//! breaks before it.
//!
//! Why not object_store's `MicrosoftAzure` for these calls: its listing refuses the
//! whole container when one blob name is not a clean path (so hostile names cannot be
//! named one by one), it does not expose a blob's Content-MD5, and its multipart upload
//! has no conditional create. object_store still provides the Entra ID token providers
//! (service principal, managed and workload identity), with their caching and refresh.
//!
//! How each request is authorised is [`super::credential`]'s; what a listing's answer
//! says, [`super::listing`]'s.
//!
//! Never put a URL with its query string, a header value or a response body in an error:
//! SAS tokens travel in the query string, and Azure echoes the string it signed.

use super::config::{Auth, AzureTarget};
use super::credential::Authorizer;
use super::listing::{parse_block_list, parse_list, ListPage};
use crate::retry::RetryConfig;
use crate::store::call::{self, request_error, transport, HttpError, POOL_IDLE};
use crate::store::pace::Pace;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use std::time::Duration;

/// The REST API version spoken (supported by Azure and by Azurite 3.x).
pub(super) const API_VERSION: &str = "2021-12-02";
/// The metadata a conditional create carries: an id of that upload, by which a retry
/// refused because the blob exists recognises a blob its own lost attempt created.
pub const UPLOAD_MARKER: &str = "x-ms-meta-stagehand_upload";

/// Characters left as they are in a blob's URL path (RFC 3986 unreserved, and `/`).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// Characters left as they are in a query value.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One container, reachable.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    target: AzureTarget,
    /// Signs each request, or adds the identity's token.
    authorizer: Authorizer,
    /// How every call is retried.
    retry: RetryConfig,
    /// How many of this client's requests may be in flight: fewer while the service
    /// says it is overloaded.
    pace: std::sync::Arc<Pace>,
}

/// A request body that can be sent again on a retry.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// Bytes in memory (block lists, small payloads).
    Bytes(Bytes),
    /// `len` bytes of a local file from `offset`, streamed from disk as they are sent:
    /// uploads hold no file in memory however large.
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Where the part starts.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    async fn into_reqwest(self) -> Result<Option<reqwest::Body>, HttpError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        Ok(match self {
            Body::Empty => None,
            Body::Bytes(b) => Some(reqwest::Body::from(b)),
            Body::File { path, offset, len } => {
                let mut f = tokio::fs::File::open(&path).await.map_err(|e| {
                    HttpError::Local(format!("cannot open {}: {e}", path.display()))
                })?;
                f.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| {
                        HttpError::Local(format!("cannot read {}: {e}", path.display()))
                    })?;
                let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 * 1024);
                Some(reqwest::Body::wrap_stream(stream))
            }
        })
    }
}

impl Client {
    /// A client for `target`, whose calls are retried under `retry`, with at most
    /// `requests` in flight (fewer while the service is overloaded). Builds the
    /// identity's token provider, if it signs in as one (no network call yet).
    pub fn new(
        target: AzureTarget,
        retry: RetryConfig,
        read_timeout: Duration,
        requests: usize,
    ) -> Result<Client, String> {
        // reqwest is built without a bundled TLS provider (ring is ours); installing it
        // twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            // A connection idle this long is not reused: a server closes idle ones
            // (Azurite after 5 s), and a request sent on one just as it closes fails
            // with "connection closed before message completed".
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(read_timeout)
            .http1_only()
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {}", transport(&e)))?;
        let authorizer = Authorizer::new(&target)?;
        Ok(Client {
            pace: std::sync::Arc::new(Pace::new(target.datastore.clone(), requests)),
            http,
            target,
            authorizer,
            retry,
        })
    }

    /// The same client (its connections and tokens shared) retrying under `retry`.
    pub fn with_retry(&self, retry: RetryConfig) -> Client {
        Client {
            retry,
            ..self.clone()
        }
    }

    /// How this client retries.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// Runs `op` (one attempt at a call, given its attempt number) under this client's
    /// policy ([`call::run`]).
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, HttpError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, HttpError>>,
    {
        call::run(&self.retry, &self.target.datastore, op).await
    }

    /// How many of this client's requests may be in flight, and the service's answers'
    /// bodies read so that a stall mid-body slows it ([`Pace::body`]).
    pub fn pace(&self) -> &std::sync::Arc<Pace> {
        &self.pace
    }

    /// The target this client reaches.
    pub fn target(&self) -> &AzureTarget {
        &self.target
    }

    /// `path` of the container (`""` = the container itself) as a URL path, encoded.
    fn url_path(&self, blob: Option<&str>) -> String {
        let base_path = self
            .target
            .service_url
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .unwrap_or_default();
        let mut p = format!(
            "{base_path}/{}",
            utf8_percent_encode(&self.target.container, PATH)
        );
        if let Some(b) = blob {
            p.push('/');
            p.push_str(&utf8_percent_encode(b, PATH).to_string());
        }
        p
    }

    /// The service URL's scheme and host, without path.
    fn origin(&self) -> &str {
        let u = &self.target.service_url;
        let after = u.find("://").map(|i| i + 3).unwrap_or(0);
        match u[after..].find('/') {
            Some(i) => &u[..after + i],
            None => u,
        }
    }

    /// Sends one request whose answer has no body worth reading, retrying transient
    /// failures. Returns the response only when its status is a success.
    pub async fn send(
        &self,
        method: Method,
        blob: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(&'static str, String)],
        body: Body,
    ) -> Result<reqwest::Response, HttpError> {
        self.run(|_| self.send_once(&method, blob, query, headers, body.clone()))
            .await
    }

    /// Sends one request, once: no retry. Returns the response only when its status is
    /// a success. For callers that retry under [`Client::run`] themselves, with the
    /// reading of the answer inside the attempt.
    pub async fn send_once(
        &self,
        method: &Method,
        blob: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(&'static str, String)],
        body: Body,
    ) -> Result<reqwest::Response, HttpError> {
        // Its place first, so its date and signature are made when it is sent.
        let slot = self.pace.slot().await;
        let path = self.url_path(blob);
        let mut q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
            .collect();
        if let Auth::Sas(sas) = &self.target.auth {
            q.push(sas.clone());
        }
        let url = if q.is_empty() {
            format!("{}{path}", self.origin())
        } else {
            format!("{}{path}?{}", self.origin(), q.join("&"))
        };
        let mut h = HeaderMap::new();
        let hv = |v: &str| {
            HeaderValue::from_str(v)
                .map_err(|_| HttpError::Transport("a header value is not valid".into()))
        };
        h.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        h.insert(
            "x-ms-date",
            hv(&httpdate::fmt_http_date(std::time::SystemTime::now()))?,
        );
        for (k, v) in extra {
            h.insert(HeaderName::from_static(k), hv(v)?);
        }
        let len = body.len() as usize;
        self.authorizer
            .authorize(&self.target, method, &path, query, len, &mut h)
            .await?;
        let mut req = self.http.request(method.clone(), &url).headers(h);
        let streamed = matches!(body, Body::File { .. });
        match body.into_reqwest().await? {
            // A streamed body has no length of its own: say it, or it goes chunked,
            // which Azure refuses.
            Some(b) if streamed => req = req.header("content-length", len.to_string()).body(b),
            Some(b) => req = req.body(b),
            None if *method == Method::PUT => req = req.header("content-length", "0"),
            None => {}
        }
        slot.answer(answer(req.send().await))
    }

    /// One GET of the bytes `start..end` and the version they must still be
    /// (`If-Match`), once: the caller retries, resuming where a broken answer stopped.
    pub async fn get_range_once(
        &self,
        blob: &str,
        etag: Option<&str>,
        start: u64,
        end: u64,
    ) -> Result<reqwest::Response, HttpError> {
        let mut headers = vec![("x-ms-range", format!("bytes={start}-{}", end - 1))];
        if let Some(e) = etag {
            headers.push(("if-match", quoted(e)));
        }
        self.send_once(&Method::GET, Some(blob), &[], &headers, Body::Empty)
            .await
    }

    /// The bytes `start..end` of a blob, the answer read whole inside each attempt.
    pub async fn read_range(&self, blob: &str, start: u64, end: u64) -> Result<Bytes, HttpError> {
        self.run(|_| async move {
            let r = self.get_range_once(blob, None, start, end).await?;
            self.pace.whole(r).await
        })
        .await
    }

    /// HEAD of one blob: size, ETag, Content-MD5, and metadata stagehand reads.
    pub async fn head(&self, blob: &str) -> Result<BlobProps, HttpError> {
        self.run(|_| self.head_once(blob)).await
    }

    /// [`Client::head`], once.
    pub async fn head_once(&self, blob: &str) -> Result<BlobProps, HttpError> {
        let r = self
            .send_once(&Method::HEAD, Some(blob), &[], &[], Body::Empty)
            .await?;
        let h = r.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(BlobProps {
            size: get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            etag: get("etag").map(|e| unquote(&e)),
            md5: get("content-md5").and_then(|m| decode_md5(&m)),
            is_folder: get("x-ms-meta-hdi_isfolder")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            upload: get(UPLOAD_MARKER),
        })
    }

    /// One page of a listing: blobs (and with a delimiter, sub-folder prefixes).
    pub async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max: usize,
    ) -> Result<ListPage, HttpError> {
        let max = max.to_string();
        let mut q: Vec<(&str, &str)> = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("maxresults", &max),
        ];
        if !prefix.is_empty() {
            q.push(("prefix", prefix));
        }
        if let Some(d) = delimiter {
            q.push(("delimiter", d));
        }
        if let Some(m) = marker {
            q.push(("marker", m));
        }
        if self.target.hierarchical {
            q.push(("include", "metadata"));
        }
        let q = &q;
        self.run(|_| async move {
            let r = self
                .send_once(&Method::GET, None, q, &[], Body::Empty)
                .await?;
            let body = self.pace.whole(r).await?;
            parse_list(&body)
                .map_err(|e| HttpError::Answer(format!("cannot read the listing: {e}")))
        })
        .await
    }

    /// The blocks staged for `blob` and not yet committed (Get Block List,
    /// `blocklisttype=uncommitted`): their ids and sizes. None staged (or no blob) is an
    /// empty list.
    pub async fn uncommitted_blocks(&self, blob: &str) -> Result<Vec<(String, u64)>, HttpError> {
        let q = &[("comp", "blocklist"), ("blocklisttype", "uncommitted")];
        self.run(|_| async move {
            let body = match self
                .send_once(&Method::GET, Some(blob), q, &[], Body::Empty)
                .await
            {
                Ok(r) => self.pace.whole(r).await?,
                Err(e) if e.status() == Some(404) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            parse_block_list(&body)
                .map_err(|e| HttpError::Answer(format!("cannot read the block list: {e}")))
        })
        .await
    }

    /// Creates the container; an existing one is fine.
    pub async fn create_container(&self) -> Result<bool, HttpError> {
        match self
            .send(
                Method::PUT,
                None,
                &[("restype", "container")],
                &[],
                Body::Empty,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(HttpError::Status { status, .. }) if status == StatusCode::CONFLICT => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// What a HEAD says about a blob.
#[derive(Debug, Clone)]
pub struct BlobProps {
    /// Size in bytes.
    pub size: u64,
    /// ETag, unquoted.
    pub etag: Option<String>,
    /// Content-MD5.
    pub md5: Option<[u8; 16]>,
    /// An ADLS Gen2 folder marker.
    pub is_folder: bool,
    /// The [`UPLOAD_MARKER`] of the conditional create that made it (from a HEAD only).
    pub upload: Option<String>,
}

fn quoted(etag: &str) -> String {
    format!("\"{}\"", unquote(etag))
}

pub(crate) fn unquote(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

/// A base64 Content-MD5 as bytes.
pub fn decode_md5(b64: &str) -> Option<[u8; 16]> {
    use base64::Engine;
    let v = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    v.try_into().ok()
}

/// Bytes as base64.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A request's answer: the response when its status is a success.
fn answer(sent: Result<reqwest::Response, reqwest::Error>) -> Result<reqwest::Response, HttpError> {
    let resp = sent.map_err(|e| request_error(&e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let code = resp
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Err(HttpError::refused(status, code, resp.headers()))
}
