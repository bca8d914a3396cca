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
//! - An answer whose body stops coming for the read timeout is "too busy" too
//!   ([`Pace::body`]), once per burst like the others: a service slowing down under load
//!   stalls answers mid-body as often as before their headers.
//! - Requests wait for their place first come, first served (a fair semaphore): under a
//!   limit of 1, a request retried after a refusal queues behind those already waiting,
//!   and none waits for ever while others overtake it.
//!
//! A `Retry-After` is the refused request's own wait ([`crate::retry`]), not a pause of
//! the whole client: the limit already falls to a few requests in flight, and a pause of
//! every request at each refusal would, under a service refusing a share of the answers
//! (30 % in the array trial), send one round per pause and starve requests waiting
//! their turn past the 3-minute bound on a call. Azure's SDKs honour it per
//! request too.
//!
//! A warning says when the limit drops to a new low; an info line when it is back at
//! full. A slot is held from sending a request until its answer's headers: the pace
//! counts requests the service must start on, not the bytes of answers it is streaming.
//!
//! This module must never hold a request back for good: the limit never goes below 1,
//! and every slot released either frees a place or pays back a place the limit lost.

use crate::store::call::{transport, HttpError};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The requests of one store client permitted in flight, adapted to the service's
/// answers.
#[derive(Debug)]
pub struct Pace {
    /// Who paces, for log lines (the datastore).
    name: String,
    /// The configured parallelism: the most permitted, and where it starts.
    full: usize,
    state: Mutex<State>,
    /// One permit per place free; fair, so places go in the order they were asked for.
    places: Semaphore,
}

#[derive(Debug)]
struct State {
    /// Requests permitted in flight, between 1 and `full`; its whole part counts.
    limit: f64,
    /// Places the limit lost while they were taken: the next slots released are not
    /// given back (free places + taken places - `owed` = permitted).
    owed: usize,
    /// Bumped at each decrease: a slot taken before it does not decrease again.
    epoch: u64,
    /// The lowest limit warned of since the pace was last at full.
    low: usize,
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
    /// `None` once released.
    place: Option<SemaphorePermit<'a>>,
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
                owed: 0,
                epoch: 0,
                low: full,
            }),
            places: Semaphore::new(full),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests permitted in flight now.
    pub fn permitted(&self) -> usize {
        self.state().permitted()
    }

    /// Waits for a place among the requests in flight, after those already waiting.
    pub async fn slot(&self) -> Slot<'_> {
        // The semaphore is never closed.
        let place = self
            .places
            .acquire()
            .await
            .expect("the pace's semaphore is open");
        let epoch = self.state().epoch;
        Slot {
            pace: self,
            epoch,
            place: Some(place),
        }
    }

    /// Gives a place back, or keeps it to pay what the limit lost.
    fn release(&self, place: SemaphorePermit<'_>) {
        let mut s = self.state();
        if s.owed > 0 {
            s.owed -= 1;
            place.forget();
        } else {
            drop(place);
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
        let before = s.permitted();
        s.limit = (s.limit / 2.0).max(1.0);
        let now = s.permitted();
        // Free places go at once; taken ones are kept as they come back.
        let lost = before - now;
        s.owed += lost - self.places.forget_permits(lost);
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

    /// One more request in flight per round of answers, up to full.
    fn increase(&self) {
        let full = {
            let mut s = self.state();
            let before = s.permitted();
            s.limit = (s.limit + 1.0 / s.limit).min(self.full as f64);
            let gained = s.permitted() - before;
            // Places still owed are forgiven first: they were never given back.
            let forgiven = gained.min(s.owed);
            s.owed -= forgiven;
            self.places.add_permits(gained - forgiven);
            let full = s.permitted() == self.full && s.low < self.full;
            if full {
                s.low = self.full;
            }
            full
        };
        if full {
            tracing::info!(
                "{}: the service keeps up again: back at {} requests in flight",
                self.name,
                self.full
            );
        }
    }
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
        self.pace.increase();
    }

    /// The service said it is overloaded: half as many requests in flight, unless the
    /// limit was already halved since this request was sent.
    pub fn throttled(self) {
        self.pace.decrease(self.epoch);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            self.pace.release(place);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use std::sync::Arc;
    use std::time::Duration;

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
                retry_after: Duration::from_secs(1),
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
        // Every place is free again, exactly as many as permitted.
        let s = pace.state();
        assert!(s.permitted() >= 1 && s.permitted() <= 4);
        assert_eq!(pace.places.available_permits(), s.permitted());
        assert_eq!(s.owed, 0, "places still owed with none taken");
    }

    #[tokio::test]
    async fn places_go_first_come_first_served() {
        let pace = Arc::new(Pace::new("t", 1));
        let first = pace.slot().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiting: Vec<_> = (0..5)
            .map(|i| {
                let (pace, order) = (pace.clone(), order.clone());
                tokio::spawn(async move {
                    let _slot = pace.slot().await;
                    order.lock().unwrap().push(i);
                })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(order.lock().unwrap().is_empty());
        // A request answered and retried at once (a refusal) queues behind those
        // already waiting, rather than taking the place it just gave back.
        drop(first);
        let again = pace.slot().await;
        order.lock().unwrap().push(99);
        drop(again);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 99]);
    }

    #[tokio::test]
    async fn a_limit_halved_while_its_places_are_taken_is_kept_as_they_come_back() {
        let pace = Pace::new("t", 4);
        let taken: Vec<_> = futures::future::join_all((0..4).map(|_| pace.slot())).await;
        // Halved with all four in flight: two of them (the refused one first) are not
        // given back as they come back, the other two are.
        let mut taken = taken.into_iter();
        taken.next().unwrap().throttled();
        assert_eq!(pace.permitted(), 2);
        let mut free = vec![pace.places.available_permits()];
        for slot in taken {
            drop(slot);
            free.push(pace.places.available_permits());
        }
        assert_eq!(free, [0, 0, 1, 2], "places free as each came back");
        // Raised by answers back to 4 places, never more.
        while pace.permitted() < 4 {
            pace.slot().await.succeeded();
        }
        for _ in 0..50 {
            pace.slot().await.succeeded();
        }
        assert_eq!(pace.places.available_permits(), 4);
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
