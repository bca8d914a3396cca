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
use crate::store::pace::{self, Pace};
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

/// How long an idle pooled connection is kept for reuse: less than servers keep one.
pub(crate) const POOL_IDLE: Duration = Duration::from_secs(4);

/// A failed call, before it is given a datastore and a path.
#[derive(Debug, Clone)]
pub enum HttpError {
    /// The service answered with an error status.
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// `x-ms-error-code`, when given.
        code: Option<String>,
    },
    /// The service answered with an error status and asked to be left alone this long
    /// (`Retry-After`): throttling (429, 503).
    Busy {
        /// The HTTP status.
        status: StatusCode,
        /// `x-ms-error-code`, when given.
        code: Option<String>,
        /// The wait asked for.
        retry_after: Duration,
    },
    /// A transient failure the retry policy gave up on: the last error, and what was
    /// tried. Not transient itself: whoever meets it must not retry it again.
    GaveUp {
        /// The last attempt's error.
        last: Box<HttpError>,
        /// "after N attempts over X s".
        tried: String,
    },
    /// No answer, or a broken one (connection, timeout, reset).
    Transport(String),
    /// An answer that arrived whole but cannot be read (a listing that is not the XML
    /// expected): a retry gets the same answer.
    Answer(String),
    /// The service's TLS certificate was refused: not retried, since a retry meets the
    /// same certificate.
    Untrusted(String),
    /// A local file to send could not be read.
    Local(String),
    /// No credential could be had (token endpoint unreachable, …).
    Credential(String),
}

impl HttpError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => {
                matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
            }
            HttpError::Transport(_) | HttpError::Busy { .. } => true,
            HttpError::GaveUp { .. }
            | HttpError::Credential(_)
            | HttpError::Local(_)
            | HttpError::Untrusted(_)
            | HttpError::Answer(_) => false,
        }
    }

    /// Whether the service says it is overloaded, so the whole client should send less
    /// ([`crate::store::pace`]): 429, 503, 500 `ServerBusy` or `OperationTimedOut`
    /// (Azure's answers when an account is over its limits), or no answer within the
    /// read timeout.
    pub fn throttles(&self) -> bool {
        match self {
            HttpError::Status { status, code } | HttpError::Busy { status, code, .. } => {
                match status.as_u16() {
                    429 | 503 => true,
                    500 => matches!(code.as_deref(), Some("ServerBusy" | "OperationTimedOut")),
                    _ => false,
                }
            }
            HttpError::Transport(e) => e.starts_with("timed out"),
            _ => false,
        }
    }

    /// The HTTP status, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } | HttpError::Busy { status, .. } => {
                Some(status.as_u16())
            }
            HttpError::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The service's error code, if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            HttpError::Status { code, .. } | HttpError::Busy { code, .. } => code.as_deref(),
            HttpError::GaveUp { last, .. } => last.code(),
            _ => None,
        }
    }

    /// Whether no answer came (the service could not be reached, or every attempt
    /// broke), rather than an answer saying no.
    pub fn unanswered(&self) -> bool {
        match self {
            HttpError::Transport(_) => true,
            HttpError::GaveUp { last, .. } => last.unanswered(),
            _ => false,
        }
    }

    /// The wait the service asked for before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// This error as the end of `attempts`: when the policy gave up on it, it says how
    /// many attempts were made over how long.
    pub fn after(self, attempts: &crate::retry::Attempts) -> HttpError {
        if attempts.exhausted() {
            HttpError::GaveUp {
                last: Box::new(self),
                tried: attempts.summary(),
            }
        } else {
            self
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Status {
                status,
                code: Some(c),
            } => write!(f, "the service answered {} ({c})", status.as_u16()),
            HttpError::Status { status, code: None } => {
                write!(f, "the service answered {}", status)
            }
            HttpError::Busy {
                status,
                code,
                retry_after,
            } => write!(
                f,
                "the service answered {}{} and asked for a wait of {}s",
                status.as_u16(),
                code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
                retry_after.as_secs()
            ),
            HttpError::GaveUp { last, tried } => write!(f, "{last}; gave up {tried}"),
            HttpError::Transport(e) | HttpError::Local(e) | HttpError::Answer(e) => {
                write!(f, "{e}")
            }
            HttpError::Credential(e) => write!(f, "cannot get a token: {e}"),
            HttpError::Untrusted(e) => write!(
                f,
                "the service's TLS certificate is not trusted ({e}); an endpoint with a certificate from a private authority needs that authority's certificate in SSL_CERT_FILE"
            ),
        }
    }
}

/// A transport error as text, without the URL (which may carry a SAS).
pub fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while reading the answer"
    } else {
        "request failed"
    };
    // The source chain says why (refused, reset, dns) and never holds the URL.
    let mut why = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        why = s.to_string();
        src = s.source();
    }
    if why.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {why}")
    }
}

/// A failed request as an error: [`HttpError::Untrusted`] when the service's certificate
/// was refused, [`HttpError::Transport`] otherwise.
pub fn request_error(e: &reqwest::Error) -> HttpError {
    match crate::store::http::get::untrusted(e) {
        Some(why) => HttpError::Untrusted(why),
        None => HttpError::Transport(transport(e)),
    }
}

/// Runs `op` (one attempt at a call, given its attempt number) under `retry`, retrying
/// the errors [`HttpError::is_transient`] says are worth it, waiting at least what a
/// `Retry-After` asks; a call that ran out of attempts or time is
/// [`HttpError::GaveUp`], saying how many it made over how long. Every HTTP store
/// client's calls go through it.
pub async fn run<T, F, Fut>(retry: &RetryConfig, datastore: &str, op: F) -> Result<T, HttpError>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T, HttpError>>,
{
    retry
        .run_with(
            datastore,
            HttpError::is_transient,
            HttpError::retry_after,
            op,
        )
        .await
        .map_err(|g| {
            if g.exhausted {
                HttpError::GaveUp {
                    tried: g.summary(),
                    last: Box::new(g.error),
                }
            } else {
                g.error
            }
        })
}

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
    /// policy ([`run`]).
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, HttpError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, HttpError>>,
    {
        run(&self.retry, &self.target.datastore, op).await
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
        let slot = self.pace.slot().await;
        slot.answer(self.answer(req.send().await))
    }

    /// A request's answer: the response when its status is a success.
    fn answer(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, HttpError> {
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
        Err(match pace::retry_after(resp.headers()) {
            Some(retry_after) => {
                self.pace.pause_for(retry_after);
                HttpError::Busy {
                    status,
                    code,
                    retry_after,
                }
            }
            None => HttpError::Status { status, code },
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_never_carry_the_url() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{port}/c/b?sv=2021&sig=SECRETSIGNATURE"
            ))
            .send()
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("SECRETSIGNATURE"),
            "reqwest changed: {e}"
        );
        let t = transport(&e);
        assert!(
            !t.contains("SECRETSIGNATURE") && !t.contains("127.0.0.1:"),
            "{t}"
        );
        assert!(t.starts_with("cannot connect"), "{t}");
    }
}
