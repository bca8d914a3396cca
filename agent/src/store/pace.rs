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
//! A warning says when the limit drops to a new low; an info line when it is back at
//! full. A slot is held from sending a request until its answer's headers: the pace
//! counts requests the service must start on, not the bytes of answers it is streaming.
//!
//! This module must never hold a request back for good: the limit never goes below 1,
//! and every slot released wakes whoever waits.

use crate::store::azure::client::HttpError;
use std::sync::Mutex;
use tokio::sync::Notify;

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

    /// Waits for a place among the requests in flight.
    pub async fn slot(&self) -> Slot<'_> {
        loop {
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
}

impl Slot<'_> {
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
        let pace = self.pace;
        let mut s = pace.state();
        if self.epoch != s.epoch {
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
                pace.name,
                if now == 1 { "" } else { "s" },
                pace.full
            );
        }
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
}
