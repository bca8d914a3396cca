//! One HTTP call of a store client (Azure Blob and ADLS, Azure Files, S3): what it can
//! fail with ([`HttpError`]), how a failed request reads ([`transport`],
//! [`request_error`], [`untrusted`]), and the one loop that retries it ([`run`]). Each
//! client speaks its own service; what a failure means and how it is retried is the
//! same for all of them, so it lives here, below them.
//!
//! Never put a URL in an error: a SAS travels in the query string, and a presigned
//! request's signature too.

use crate::retry::RetryConfig;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::Duration;

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

    /// An answer's error status as an error: [`HttpError::Busy`] when its headers say
    /// when to come back (`Retry-After`), else [`HttpError::Status`]. `code` is the
    /// service's error code (Azure's `x-ms-error-code`, S3's `<Code>`).
    pub fn refused(status: StatusCode, code: Option<String>, headers: &HeaderMap) -> HttpError {
        match retry_after(headers) {
            Some(retry_after) => HttpError::Busy {
                status,
                code,
                retry_after,
            },
            None => HttpError::Status { status, code },
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

/// How long an answer's `Retry-After` asks to wait: seconds, or an HTTP date (S3
/// compatible services send either; Azure sends seconds).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// A failed request as an error: [`HttpError::Untrusted`] when the service's certificate
/// was refused, [`HttpError::Transport`] otherwise.
pub fn request_error(e: &reqwest::Error) -> HttpError {
    match untrusted(e) {
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

/// What the TLS verifier said when it refused the server's certificate, if that is why
/// `e` failed (rustls's error travels inside nested `io::Error`s, whose `source()`
/// skips what they wrap).
pub fn untrusted(e: &reqwest::Error) -> Option<String> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(mut s) = src {
        while let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            s = inner;
        }
        if let Some(rustls::Error::InvalidCertificate(why)) = s.downcast_ref::<rustls::Error>() {
            return Some(format!("{why:?}"));
        }
        src = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", " 7 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(110) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(
            "retry-after",
            "Thu, 01 Jan 1970 00:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a date passed: no wait"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

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
