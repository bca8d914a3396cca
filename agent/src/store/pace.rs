//! The pace of one store client: how many of its requests may be in flight at once,
//! lowered as a whole when the service says it is overloaded, and raised again as it
//! answers (AIMD, additive increase and multiplicative decrease, as TCP's congestion
//! control). Each request retries on its own ([`crate::retry`]); without a pace shared
//! by all of them, 20 array tasks hammering one throttled account keep sending at full
//! parallelism and fail together.
//!
//! - It starts at the store's request parallelism (`STAGEHAND_AZURE_REQUESTS`, 64).
//! - An answer that says "too busy" ([`HttpError::throttles`]: 429, 503, 500 with
//!   `ServerBusy` or `OperationTimedOut`, no answer within the read timeout) halves the
//!   requests permitted in flight, down to 1. Requests already in flight when it was
//!   halved do not halve it again: one burst of refusals is one signal, as TCP halves
//!   its window once per round trip, not once per lost packet.
//! - Each answer that is not "too busy" adds `1/limit`: about one more request in
//!   flight per round of answers at the current limit.
//!
//! - An answer whose body stops coming for the read timeout is "too busy" too
//!   ([`Pace::body`]), once per burst like the others: a service slowing down under load
//!   stalls answers mid-body as often as before their headers.
//! - A `Retry-After` ([`retry_after`]) holds every request of the client until it has
//!   passed ([`Pace::pause_for`]), not only the one refused: the service asked the
//!   account's client to wait, and 64 requests each waiting out their own refusal would
//!   hit it again together.
//!
//! A warning says when the limit drops to a new low; an info line when it is back at
//! full. A slot is held from sending a request until its answer's headers: the pace
//! counts requests the service must start on, not the bytes of answers it is streaming.
//!
//! This module must never hold a request back for good: the limit never goes below 1,
//! and every slot released wakes whoever waits.

use crate::store::call::{transport, HttpError};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use reqwest::header::HeaderMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The requests of one store client permitted in flight, adapted to the service's
/// answers.
#[derive(Debug)]
pub struct Pace {
    /// Who paces, for log lines (the datastore).
    name: String,
    /// The configured parallelism: the most permitted, and where it starts.
    full: usize,
    state: Mutex<State>,
    /// Woken when a slot is released or the limit rises.
    freed: Notify,
}

#[derive(Debug)]
struct State {
    /// Requests permitted in flight, between 1 and `full`; its whole part counts.
    limit: f64,
    in_flight: usize,
    /// Bumped at each decrease: a slot taken before it does not decrease again.
    epoch: u64,
    /// The lowest limit warned of since the pace was last at full.
    low: usize,
    /// Until when the service asked (`Retry-After`) to be left alone.
    paused_until: Option<Instant>,
}

impl State {
    fn permitted(&self) -> usize {
        (self.limit as usize).max(1)
    }
}

/// A request's place among those in flight: released when dropped. Say how its answer
/// went ([`Slot::answered`]) so the pace can adapt; a slot dropped unanswered (a
/// request cancelled, or failing for another reason) changes nothing.
#[derive(Debug)]
pub struct Slot<'a> {
    pace: &'a Pace,
    epoch: u64,
}

impl Pace {
    /// A pace starting at, and never above, `full` requests in flight (at least 1).
    pub fn new(name: impl Into<String>, full: usize) -> Pace {
        let full = full.max(1);
        Pace {
            name: name.into(),
            full,
            state: Mutex::new(State {
                limit: full as f64,
                in_flight: 0,
                epoch: 0,
                low: full,
                paused_until: None,
            }),
            freed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests permitted in flight now.
    pub fn permitted(&self) -> usize {
        self.state().permitted()
    }

    /// Waits out a pause the service asked for, then for a place among the requests in
    /// flight.
    pub async fn slot(&self) -> Slot<'_> {
        loop {
            let paused = self.state().paused_until;
            if let Some(at) = paused.filter(|at| *at > Instant::now()) {
                tokio::time::sleep_until(at).await;
                continue;
            }
            // Registered before the check, so a release between the check and the
            // wait is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.state();
                if s.in_flight < s.permitted() {
                    s.in_flight += 1;
                    return Slot {
                        pace: self,
                        epoch: s.epoch,
                    };
                }
            }
            freed.await;
        }
    }

    fn release(&self) {
        self.state().in_flight -= 1;
        self.freed.notify_waiters();
    }

    /// Holds every request not yet sent for `wait` (at most
    /// [`crate::retry::RETRY_AFTER_MAX`]) from now, unless held longer already.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait.min(crate::retry::RETRY_AFTER_MAX);
        let mut s = self.state();
        if s.paused_until.is_none_or(|at| at < until) {
            s.paused_until = Some(until);
            drop(s);
            tracing::debug!(
                "{}: the service asked for a pause of {}s: every request waits",
                self.name,
                wait.as_secs()
            );
        }
    }

    /// `resp`'s body, its failures as [`HttpError`]s; a read that timed out mid-body
    /// lowers the pace as a refusal would, once per burst (counted from when the request
    /// was sent, [`Slot::answer`]): the service is slow, and more requests in flight
    /// only make it slower.
    pub fn body(
        self: &Arc<Pace>,
        resp: reqwest::Response,
    ) -> BoxStream<'static, Result<Bytes, HttpError>> {
        let epoch = match resp.extensions().get::<Sent>() {
            Some(Sent(epoch)) => *epoch,
            None => self.state().epoch,
        };
        let pace = self.clone();
        resp.bytes_stream()
            .map(move |piece| {
                piece.map_err(|e| {
                    let e = HttpError::Transport(transport(&e));
                    if e.throttles() {
                        pace.decrease(epoch);
                    }
                    e
                })
            })
            .boxed()
    }

    /// `resp`'s whole body, read as [`Pace::body`] reads it.
    pub async fn whole(self: &Arc<Pace>, resp: reqwest::Response) -> Result<Bytes, HttpError> {
        let mut body = self.body(resp);
        let mut all = bytes::BytesMut::new();
        while let Some(piece) = body.next().await {
            all.extend_from_slice(&piece?);
        }
        Ok(all.freeze())
    }

    /// Half as many requests in flight, unless the limit was halved since `epoch`
    /// (when the request that says so was sent).
    fn decrease(&self, epoch: u64) {
        let mut s = self.state();
        if epoch != s.epoch {
            return;
        }
        s.epoch += 1;
        s.limit = (s.limit / 2.0).max(1.0);
        let now = s.permitted();
        if now < s.low {
            s.low = now;
            drop(s);
            tracing::warn!(
                "{}: the service is throttling: at most {now} request{} in flight (of {}) until it keeps up",
                self.name,
                if now == 1 { "" } else { "s" },
                self.full
            );
        }
    }
}

/// How long an answer's `Retry-After` asks to wait: seconds, or an HTTP date (S3
/// compatible services send either; Azure sends seconds).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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

/// The pace's epoch when a request was sent, kept in its answer's extensions, so that a
/// stall of its body later counts in the right burst.
#[derive(Debug, Clone, Copy)]
struct Sent(u64);

impl Slot<'_> {
    /// The request's answer came: [`Slot::answered`], and a response keeps when it was
    /// sent, for [`Pace::body`].
    pub fn answer(
        self,
        mut answer: Result<reqwest::Response, HttpError>,
    ) -> Result<reqwest::Response, HttpError> {
        if let Ok(r) = &mut answer {
            r.extensions_mut().insert(Sent(self.epoch));
        }
        self.answered(&answer);
        answer
    }

    /// The request's answer came: `Ok` (or an error that is not throttling) raises the
    /// limit a little, throttling halves it.
    pub fn answered<T>(self, answer: &Result<T, HttpError>) {
        match answer {
            Err(e) if e.throttles() => self.throttled(),
            _ => self.succeeded(),
        }
    }

    /// The service answered: one more request in flight per round of answers.
    pub fn succeeded(self) {
        let pace = self.pace;
        let (rose, full) = {
            let mut s = pace.state();
            let before = s.permitted();
            s.limit = (s.limit + 1.0 / s.limit).min(pace.full as f64);
            let full = s.permitted() == pace.full && s.low < pace.full;
            if full {
                s.low = pace.full;
            }
            (s.permitted() > before, full)
        };
        if full {
            tracing::info!(
                "{}: the service keeps up again: back at {} requests in flight",
                pace.name,
                pace.full
            );
        }
        if rose {
            pace.freed.notify_waiters();
        }
    }

    /// The service said it is overloaded: half as many requests in flight, unless the
    /// limit was already halved since this request was sent.
    pub fn throttled(self) {
        self.pace.decrease(self.epoch);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.pace.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use std::sync::Arc;

    fn busy(status: u16, code: Option<&str>) -> Result<(), HttpError> {
        Err(HttpError::Status {
            status: StatusCode::from_u16(status).unwrap(),
            code: code.map(str::to_string),
        })
    }

    #[tokio::test]
    async fn starts_full_and_halves_once_per_burst_of_refusals_down_to_one() {
        let pace = Pace::new("t", 64);
        assert_eq!(pace.permitted(), 64);
        // Ten requests in flight, all refused: one halving, not ten.
        let mut slots = Vec::new();
        for _ in 0..10 {
            slots.push(pace.slot().await);
        }
        for s in slots {
            s.answered(&busy(503, None));
        }
        assert_eq!(pace.permitted(), 32);
        // Each later refusal, sent after the last halving, halves again, to 1.
        for want in [16, 8, 4, 2, 1, 1] {
            pace.slot().await.answered(&busy(429, None));
            assert_eq!(pace.permitted(), want);
        }
    }

    #[tokio::test]
    async fn only_what_says_too_busy_slows_it() {
        let pace = Pace::new("t", 8);
        for answer in [
            busy(500, None),
            busy(500, Some("InternalError")),
            busy(404, None),
            busy(412, Some("ConditionNotMet")),
            Err(HttpError::Transport(
                "request failed: connection reset".into(),
            )),
            Ok(()),
        ] {
            pace.slot().await.answered(&answer);
            assert_eq!(pace.permitted(), 8, "{answer:?}");
        }
        for answer in [
            busy(500, Some("ServerBusy")),
            busy(500, Some("OperationTimedOut")),
            busy(503, Some("SlowDown")),
            Err(HttpError::Busy {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: None,
                retry_after: std::time::Duration::from_secs(1),
            }),
            Err(HttpError::Transport(
                "timed out: operation timed out".into(),
            )),
        ] {
            let pace = Pace::new("t", 8);
            pace.slot().await.answered(&answer);
            assert_eq!(pace.permitted(), 4, "{answer:?}");
        }
    }

    #[tokio::test]
    async fn answers_raise_it_by_about_one_a_round_back_to_full_and_no_further() {
        let pace = Pace::new("t", 16);
        for _ in 0..3 {
            pace.slot().await.answered(&busy(503, None));
        }
        assert_eq!(pace.permitted(), 2);
        // Each answer adds 1/limit: from 2 back to 16 takes a round of answers at each
        // limit on the way, about (16² - 2²) / 2.
        let mut answers = 0;
        while pace.permitted() < 16 {
            pace.slot().await.succeeded();
            answers += 1;
            assert!(answers < 1000, "never back at full");
        }
        assert!((110..=140).contains(&answers), "{answers} answers");
        for _ in 0..100 {
            pace.slot().await.succeeded();
        }
        assert_eq!(pace.permitted(), 16, "never above full");
    }

    #[tokio::test]
    async fn a_request_waits_for_a_slot_and_gets_it_when_one_is_released() {
        let pace = Arc::new(Pace::new("t", 2));
        pace.slot().await.answered(&busy(503, None));
        assert_eq!(pace.permitted(), 1);
        let first = pace.slot().await;
        let waiting = {
            let pace = pace.clone();
            tokio::spawn(async move {
                let _s = pace.slot().await;
            })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a second request went past a limit of 1"
        );
        drop(first);
        waiting.await.unwrap();
        // Slots released unanswered change nothing.
        assert_eq!(pace.permitted(), 1);
    }

    #[tokio::test]
    async fn many_requests_through_a_small_limit_all_finish() {
        let pace = Arc::new(Pace::new("t", 4));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let pace = pace.clone();
                tokio::spawn(async move {
                    let slot = pace.slot().await;
                    tokio::task::yield_now().await;
                    if i % 3 == 0 {
                        slot.answered(&busy(503, None));
                    } else {
                        slot.succeeded();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let s = pace.state();
        assert_eq!(s.in_flight, 0);
        assert!(s.permitted() >= 1 && s.permitted() <= 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_request_not_yet_sent_and_only_that_long() {
        let pace = Pace::new("t", 8);
        let start = Instant::now();
        pace.pause_for(Duration::from_secs(3));
        // A shorter pause asked for later does not cut the longer one short.
        pace.pause_for(Duration::from_secs(1));
        let _a = pace.slot().await;
        assert_eq!(start.elapsed().as_secs(), 3);
        let _b = pace.slot().await;
        assert_eq!(start.elapsed().as_secs(), 3, "the pause is over");
        // A service asking for an hour is waited for at most the retry policy's bound.
        pace.pause_for(Duration::from_secs(3600));
        let _c = pace.slot().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(3) + crate::retry::RETRY_AFTER_MAX
        );
    }

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
    async fn answers_that_stall_mid_body_halve_it_once_per_burst() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A server that sends the headers and half of each body, then nothing more.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello";
                    s.write_all(head).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(60)).await;
                });
            }
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .read_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let pace = Arc::new(Pace::new("t", 8));
        let url = format!("http://{addr}/");
        let get = || async {
            let slot = pace.slot().await;
            slot.answer(Ok(http.get(&url).send().await.unwrap()))
                .unwrap()
        };
        // Three requests sent before any stall: one burst, one halving.
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(get().await);
        }
        for resp in answers {
            let e = pace.whole(resp).await.unwrap_err();
            assert!(e.throttles(), "{e}");
        }
        assert_eq!(pace.permitted(), 4);
        // A stall of a request sent after the halving halves again.
        let resp = get().await;
        let mut body = pace.body(resp);
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"hello");
        assert!(body.next().await.unwrap().is_err());
        assert_eq!(pace.permitted(), 2);
    }
}
