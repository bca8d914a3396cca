//! A range streamed as it arrives, for the mount ([`Store::read_range_stream`] of both
//! Azure stores): one GET handed over piece by piece, and when its answer breaks off, a
//! new GET for the rest, from the first byte that did not arrive.
//!
//! The resume after a cut lives here, in the store, rather than in the caller: the
//! GET's own retries and the resumes after a cut are then one schedule, one
//! [`Attempts`] under the store's one policy (its retries, backoff, and bound on time
//! counted from the last byte that arrived), as a download's are
//! (`AzureStore::fetch_range`). A caller that asked again for the rest itself would wrap
//! its own count around the store's retries, and the two would multiply. So the
//! caller's rule is simple: an error from the stream is final.
//!
//! Memory: one piece at a time, as hyper hands it over; nothing is held whole. This
//! module must never put a URL (which may carry a SAS) in an error.
//!
//! [`Store::read_range_stream`]: crate::store::Store::read_range_stream

use crate::retry::{Attempts, RetryConfig};
use crate::store::call::HttpError;
use crate::store::pace::Pace;
use crate::store::{ByteStream, StoreError};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The pieces of one answer, as they arrive.
type Answer = BoxStream<'static, Result<Bytes, HttpError>>;

/// One attempt at a GET of a range (no retry inside: the resume counts the attempts).
type Get = Box<dyn Fn(Range<u64>) -> BoxFuture<'static, Result<Answer, HttpError>> + Send>;

/// `range` of `path` as a stream of pieces: `get` makes one attempt at a GET of a
/// range, under a request slot of `requests` held until the stream ends, the attempts
/// and the resumes after a cut counted under `retry`. An empty range, or one that
/// starts at or past the end (416), reads nothing, as the trait says. A failure to get
/// the first answer is `error`'s (a missing object is then `NotFound`); a failure after
/// that ends the stream, naming the datastore and the object.
pub(crate) async fn stream_range<G, Fut>(
    requests: &Arc<Semaphore>,
    pace: &Arc<Pace>,
    retry: RetryConfig,
    (datastore, path): (&str, &str),
    range: Range<u64>,
    get: G,
    error: impl Fn(HttpError) -> StoreError,
) -> Result<ByteStream, StoreError>
where
    G: Fn(Range<u64>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<reqwest::Response, HttpError>> + Send + 'static,
{
    let pace = pace.clone();
    let get: Get = Box::new(move |r| {
        let (answer, pace) = (get(r), pace.clone());
        Box::pin(async move { Ok(pace.body(answer.await?)) })
    });
    resuming(requests, retry, (datastore, path), range, get, error).await
}

/// [`stream_range`] over any `get`.
async fn resuming(
    requests: &Arc<Semaphore>,
    retry: RetryConfig,
    (datastore, path): (&str, &str),
    range: Range<u64>,
    get: Get,
    error: impl Fn(HttpError) -> StoreError,
) -> Result<ByteStream, StoreError> {
    if range.end <= range.start {
        return Ok(stream::empty().boxed());
    }
    let permit = requests
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| error(HttpError::Transport("shutting down".into())))?;
    let mut read = Resuming {
        get,
        at: range.start,
        end: range.end,
        answer: None,
        attempts: retry.attempts(),
        datastore: datastore.to_string(),
        what: format!("{path:?}"),
    };
    match read.ask().await {
        Ok(()) => {}
        Err(e) if e.status() == Some(416) => return Ok(stream::empty().boxed()),
        Err(e) => return Err(error(e)),
    }
    Ok(stream::unfold((read, permit), next).boxed())
}

/// The next piece of the stream; the request slot is held as long as the stream is.
async fn next(
    (mut read, permit): (Resuming, OwnedSemaphorePermit),
) -> Option<(Result<Bytes, StoreError>, (Resuming, OwnedSemaphorePermit))> {
    let piece = read.next().await?.map_err(|e| StoreError::Remote {
        datastore: read.datastore.clone(),
        detail: format!("{}: {e}", read.what),
    });
    Some((piece, (read, permit)))
}

/// A streamed read and where it is.
struct Resuming {
    get: Get,
    /// The first byte not handed over yet.
    at: u64,
    end: u64,
    /// The answer being read; `None` once it ended or failed for good.
    answer: Option<Answer>,
    attempts: Attempts,
    datastore: String,
    /// The object, quoted, for errors and the log.
    what: String,
}

impl Resuming {
    /// A GET for the rest, `at..end`, attempted again while its failures are transient
    /// and the policy allows.
    async fn ask(&mut self) -> Result<(), HttpError> {
        loop {
            match (self.get)(self.at..self.end).await {
                Ok(answer) => {
                    self.answer = Some(answer);
                    return Ok(());
                }
                Err(e) => {
                    let what = format!("{}: {} at byte {}", self.datastore, self.what, self.at);
                    if !self
                        .attempts
                        .again_after(&what, &e, e.is_transient(), e.retry_after())
                        .await
                    {
                        return Err(e.after(&self.attempts));
                    }
                }
            }
        }
    }

    /// The next piece: from the answer, or after a cut, from the answer to a new GET
    /// for the rest. `None` at the end, and after a failure.
    async fn next(&mut self) -> Option<Result<Bytes, HttpError>> {
        loop {
            let e = match self.answer.as_mut()?.next().await {
                Some(Ok(piece)) => {
                    if !piece.is_empty() {
                        self.at += piece.len() as u64;
                        self.attempts.progressed();
                    }
                    return Some(Ok(piece));
                }
                Some(Err(e)) => e,
                None => {
                    self.answer = None;
                    return None;
                }
            };
            self.answer = None;
            if self.at >= self.end {
                return None;
            }
            let what = format!(
                "{}: {} broke off at byte {}",
                self.datastore, self.what, self.at
            );
            if !self.attempts.again(&what, &e, e.is_transient()).await {
                return Some(Err(e.after(&self.attempts)));
            }
            if let Err(e) = self.ask().await {
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn data(size: u64) -> Bytes {
        (0..size)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into()
    }

    fn retry(max_retries: u32) -> RetryConfig {
        RetryConfig {
            max_retries,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            retry_timeout: Duration::from_secs(10),
        }
    }

    /// A GET over `content` that answers in pieces of 1000 bytes and records the
    /// ranges asked for; the answers listed in `cut` (by their number) break off after
    /// `after` bytes.
    fn get(
        content: Bytes,
        cut: &'static [usize],
        after: usize,
        asked: Arc<Mutex<Vec<Range<u64>>>>,
    ) -> Get {
        Box::new(move |r: Range<u64>| {
            let n = {
                let mut a = asked.lock().unwrap();
                a.push(r.clone());
                a.len() - 1
            };
            let b = content.slice(r.start as usize..r.end as usize);
            let mut out = Vec::new();
            let mut at = 0usize;
            while at < b.len() {
                if cut.contains(&n) && at >= after {
                    out.push(Err(HttpError::Transport("connection reset".into())));
                    break;
                }
                let len = 1000.min(b.len() - at);
                out.push(Ok(b.slice(at..at + len)));
                at += len;
            }
            Box::pin(async move { Ok(stream::iter(out).boxed()) })
        })
    }

    fn remote(e: HttpError) -> StoreError {
        StoreError::Remote {
            datastore: "d".into(),
            detail: e.to_string(),
        }
    }

    async fn collect(s: ByteStream) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(piece) = s.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_breaks_off_is_resumed_where_it_broke() {
        let content = data(40_000);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Semaphore::new(1));
        let g = get(content.clone(), &[0], 10_000, asked.clone());
        let s = resuming(&requests, retry(2), ("d", "p"), 5..40_000, g, remote)
            .await
            .unwrap();
        assert_eq!(collect(s).await.unwrap(), content[5..]);
        // Asked again from the first byte that did not arrive.
        assert_eq!(*asked.lock().unwrap(), vec![5..40_000, 10_005..40_000]);
        assert_eq!(requests.available_permits(), 1, "the slot is given back");
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_count_against_the_one_policy_and_the_last_one_ends_the_stream() {
        let content = data(40_000);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Semaphore::new(1));
        let g = get(content, &[0, 1, 2, 3], 2_000, asked.clone());
        let s = resuming(&requests, retry(2), ("d", "p"), 0..40_000, g, remote)
            .await
            .unwrap();
        let e = collect(s).await.unwrap_err();
        assert!(e.to_string().contains("\"p\": connection reset"), "{e}");
        // The first answer and two resumes, each from where the last one broke.
        assert_eq!(
            *asked.lock().unwrap(),
            vec![0..40_000, 2_000..40_000, 4_000..40_000]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_answer_is_retried_and_its_failure_is_the_calls() {
        let requests = Arc::new(Semaphore::new(1));
        let calls = Arc::new(Mutex::new(0));
        let counted = calls.clone();
        let g: Get = Box::new(move |_| {
            *counted.lock().unwrap() += 1;
            Box::pin(async {
                Err(HttpError::Status {
                    status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
                    code: None,
                })
            })
        });
        let r = resuming(&requests, retry(2), ("d", "p"), 0..10, g, remote).await;
        assert!(r.is_err());
        assert_eq!(
            *calls.lock().unwrap(),
            3,
            "the first attempt and two retries"
        );
        // Past the end: nothing to read, not an error.
        let g: Get = Box::new(|_| {
            Box::pin(async {
                Err(HttpError::Status {
                    status: reqwest::StatusCode::RANGE_NOT_SATISFIABLE,
                    code: None,
                })
            })
        });
        let s = resuming(&requests, retry(2), ("d", "p"), 50..60, g, remote)
            .await
            .unwrap();
        assert_eq!(collect(s).await.unwrap(), Vec::<u8>::new());
    }
}
