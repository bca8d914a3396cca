//! The one retry policy: how often, how far apart, and for how long a failed call to a
//! remote service is tried again (object_store's `RetryConfig`, with its bound on total
//! time). Every retrying caller goes through [`RetryConfig::run`] or [`Attempts`]: the
//! Azure client's requests, a download or a streamed read resuming from its last byte,
//! and (through the store it is given) the FUSE mount.
//!
//! A caller must never wrap a call that retries already in retries of its own: the
//! schedules multiply, and a reader waits minutes for an answer one policy would have
//! given in seconds. A caller that needs a shorter bound hands the callee a shorter
//! policy instead ([`crate::store::Store::retrying`]).
//!
//! Nothing here knows which errors are transient; the caller says, for each error.
//!
//! Every retry is visible: a debug line per retry (what, why, which attempt, the wait),
//! a warning when a call succeeds only after retries, and a call given up says how many
//! attempts were made over how long ([`GaveUp`]). A wait the service asks for
//! (`Retry-After`) is honoured, up to [`RETRY_AFTER_MAX`], and a retry after it is not
//! counted against [`RetryConfig::max_retries`]: a throttled service that says when to
//! come back is waited for, within [`RetryConfig::retry_timeout`] only. (At 30 % of
//! answers throttled, 8 attempts all fail once in 15,000 calls: a job of thousands of
//! requests would fail on a service that only asked it to slow down.)
//!
//! Every retry is also counted: into the [`RetryCount`] a caller scoped around its
//! calls ([`RetryCount::counting`]), so an input's or an output's retries reach its
//! events whichever store made them, without a store knowing whom it serves.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The longest wait a service's `Retry-After` may impose on one retry: a longer one is
/// cut to this (still within [`RetryConfig::retry_timeout`]).
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// A call given up: its last error, and what was tried.
#[derive(Debug)]
pub struct GaveUp<E> {
    /// The last attempt's error.
    pub error: E,
    /// Attempts made (the first one and its retries).
    pub attempts: u32,
    /// Time from the first attempt's start to giving up.
    pub spent: Duration,
    /// Whether the error was worth retrying and the policy was spent (rather than an
    /// error no retry can fix).
    pub exhausted: bool,
}

impl<E> GaveUp<E> {
    /// "after N attempts over X s", for an error message.
    pub fn summary(&self) -> String {
        summary(self.attempts, self.spent)
    }
}

fn summary(attempts: u32, spent: Duration) -> String {
    format!(
        "after {attempts} attempt{} over {:.1}s",
        if attempts == 1 { "" } else { "s" },
        spent.as_secs_f64()
    )
}

tokio::task_local! {
    /// The count the calls of the current task add their retries to.
    static COUNTING: Arc<RetryCount>;
}

/// Retries made by the calls scoped in it ([`RetryCount::counting`]), and added to its
/// parent's: an input's count, under the run's.
///
/// A scope is task-local: work spawned onto a task of its own takes the count along
/// with [`RetryCount::carry`], or its retries go uncounted (never miscounted).
#[derive(Debug, Default)]
pub struct RetryCount {
    retries: AtomicU64,
    parent: Option<Arc<RetryCount>>,
}

impl RetryCount {
    /// A count whose every retry is also added to `parent`.
    pub fn child_of(parent: &Arc<RetryCount>) -> RetryCount {
        RetryCount {
            retries: AtomicU64::new(0),
            parent: Some(parent.clone()),
        }
    }

    /// Retries counted so far.
    pub fn get(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.add();
        }
    }

    /// Runs `work`, counting the retries of every call it makes here.
    pub async fn counting<F: Future>(self: Arc<Self>, work: F) -> F::Output {
        COUNTING.scope(self, work).await
    }

    /// The count scoped around the caller, if any: for work that runs later on tasks
    /// the caller does not spawn (a mount's reads, made for the job's reader).
    pub fn current() -> Option<Arc<RetryCount>> {
        COUNTING.try_with(Arc::clone).ok()
    }

    /// `work` counting into the count scoped around the caller, if any: for work the
    /// caller spawns onto a task of its own.
    pub fn carry<F: Future>(work: F) -> impl Future<Output = F::Output> {
        let current = COUNTING.try_with(Arc::clone).ok();
        async move {
            match current {
                Some(count) => count.counting(work).await,
                None => work.await,
            }
        }
    }
}

/// How a failed call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// The most retries after the first attempt, not counting those after a wait the
    /// service asked for (`Retry-After`).
    pub max_retries: u32,
    /// The wait before the first retry; each further wait doubles, up to
    /// [`RetryConfig::max_backoff`]. Each wait is drawn between half of it and all of
    /// it (jitter), so many callers failing together do not retry together.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// No retry starts (and no wait runs) past this long after the first attempt began.
    pub retry_timeout: Duration,
}

impl Default for RetryConfig {
    /// The transfers' schedule: 7 retries, 0.1-0.2 s after the first failure, doubling
    /// to 5-10 s, and nothing started after 3 minutes (object_store's bound).
    fn default() -> Self {
        RetryConfig {
            max_retries: 7,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            retry_timeout: Duration::from_secs(180),
        }
    }
}

impl RetryConfig {
    /// A schedule that fits a reader waiting on a FUSE mount: five retries, 0.2-0.4 s
    /// and then 0.4-0.8 s after a failure, none started after 50 s (the mount's limit
    /// on a whole call, [`crate::mount::inodes::FsConfig::op_timeout`], is 60 s). Five,
    /// because a read the service fails at 15 % then fails for good about once in
    /// 90,000 calls (with two, once in 300: a few times over one job's reads), while a
    /// reader still hears within seconds of a service that is down.
    pub fn for_reader() -> RetryConfig {
        RetryConfig {
            max_retries: 5,
            initial_backoff: Duration::from_millis(400),
            max_backoff: Duration::from_millis(800),
            retry_timeout: Duration::from_secs(50),
        }
    }

    /// The longest wait before retry number `retry` (1 for the first retry), before
    /// jitter.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let doubled = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        doubled.min(self.max_backoff)
    }

    /// A fresh count of attempts under this policy, its clock starting now.
    pub fn attempts(&self) -> Attempts {
        let now = Instant::now();
        Attempts {
            cfg: *self,
            started: now,
            first: now,
            retries: 0,
            spent: 0,
            exhausted: false,
            count: COUNTING.try_with(Arc::clone).ok(),
        }
    }

    /// Runs `op` until it succeeds, fails with an error `is_transient` says is not worth
    /// retrying, or the policy is spent; the error returned is the last one. `op` is
    /// given the number of the attempt (0 for the first), so a retry can tell that an
    /// earlier attempt may have taken effect. `what` names the call in the debug log.
    pub async fn run<T, E, F, Fut>(
        &self,
        what: &str,
        is_transient: impl Fn(&E) -> bool,
        op: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_with(what, is_transient, |_| None, op)
            .await
            .map_err(|g| g.error)
    }

    /// As [`RetryConfig::run`], waiting at least what `retry_after` says an error asks
    /// for (a service's `Retry-After`, bounded by [`RETRY_AFTER_MAX`]), and saying, when
    /// it gives up, how many attempts were made over how long.
    pub async fn run_with<T, E, F, Fut>(
        &self,
        what: &str,
        is_transient: impl Fn(&E) -> bool,
        retry_after: impl Fn(&E) -> Option<Duration>,
        mut op: F,
    ) -> Result<T, GaveUp<E>>
    where
        E: std::fmt::Display,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempts = self.attempts();
        loop {
            match op(attempts.retries()).await {
                Ok(v) => {
                    attempts.succeeded(what);
                    return Ok(v);
                }
                Err(e) => {
                    let transient = is_transient(&e);
                    if !attempts
                        .again_after(what, &e, transient, retry_after(&e))
                        .await
                    {
                        return Err(attempts.gave_up(e));
                    }
                }
            }
        }
    }
}

/// The attempts at one call so far, for a caller whose attempts share state a closure
/// cannot lend (a download or a stream resuming where the last attempt broke off). It
/// keeps its own copy of the policy, so it can live as long as a stream does.
#[derive(Debug)]
pub struct Attempts {
    cfg: RetryConfig,
    /// Where the bound on total time counts from.
    started: Instant,
    /// When the first attempt began.
    first: Instant,
    retries: u32,
    /// Retries counted against [`RetryConfig::max_retries`]: those not after a wait the
    /// service asked for.
    spent: u32,
    /// The last [`Attempts::again`] refused a transient error: the policy is spent.
    exhausted: bool,
    /// Where its retries are counted: the count scoped where it was made (a stream
    /// resuming later still counts for the input that opened it).
    count: Option<Arc<RetryCount>>,
}

impl Attempts {
    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Time since the first attempt began.
    pub fn spent(&self) -> Duration {
        self.first.elapsed()
    }

    /// "after N attempts over X s", for an error message.
    pub fn summary(&self) -> String {
        summary(self.retries + 1, self.spent())
    }

    /// Whether the last [`Attempts::again`] gave up on an error worth retrying because
    /// the policy was spent.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// The call failed for good with `error`: what was tried.
    pub fn gave_up<E>(&self, error: E) -> GaveUp<E> {
        GaveUp {
            error,
            attempts: self.retries + 1,
            spent: self.spent(),
            exhausted: self.exhausted,
        }
    }

    /// The call succeeded: a warning when it took retries, so that a service failing
    /// often shows before it fails for good.
    pub fn succeeded(&self, what: &str) {
        if self.retries > 0 {
            tracing::warn!(
                "{what}: succeeded on attempt {} after {:.1}s of retries",
                self.retries + 1,
                self.spent().as_secs_f64()
            );
        }
    }

    /// Says the last attempt moved the call forward (a resumed download wrote more
    /// bytes): the bound on total time then counts from now, so a long transfer that
    /// keeps moving can still resume after a break late in it. The retries spent still
    /// count against [`RetryConfig::max_retries`].
    pub fn progressed(&mut self) {
        self.started = Instant::now();
    }

    /// After a failed attempt: waits the backoff and returns `true` when another attempt
    /// may be made; returns `false` at once for an error that is not `transient`, when
    /// the retries are spent, or when the wait would end past the bound on total time.
    pub async fn again(
        &mut self,
        what: &str,
        error: &impl std::fmt::Display,
        transient: bool,
    ) -> bool {
        self.again_after(what, error, transient, None).await
    }

    /// As [`Attempts::again`], waiting at least `asked` (a service's `Retry-After`,
    /// bounded by [`RETRY_AFTER_MAX`]) when it is longer than the backoff. A retry after
    /// a wait asked for is not counted against [`RetryConfig::max_retries`], only
    /// against the bound on total time.
    pub async fn again_after(
        &mut self,
        what: &str,
        error: &impl std::fmt::Display,
        transient: bool,
        asked: Option<Duration>,
    ) -> bool {
        self.exhausted = false;
        if !transient {
            return false;
        }
        let asked = asked.map(|a| a.min(RETRY_AFTER_MAX));
        if asked.is_none() && self.spent >= self.cfg.max_retries {
            self.exhausted = true;
            tracing::debug!(
                "{what}: {error}; not retried: {} attempts made",
                self.retries + 1
            );
            return false;
        }
        let ceiling = self.cfg.backoff_ceiling(self.spent + 1);
        let wait = jitter(ceiling).max(asked.unwrap_or_default());
        if self.started.elapsed() + wait > self.cfg.retry_timeout {
            self.exhausted = true;
            tracing::debug!(
                "{what}: {error}; not retried: {:.1}s spent of {:.1}s",
                self.started.elapsed().as_secs_f64(),
                self.cfg.retry_timeout.as_secs_f64()
            );
            return false;
        }
        self.retries += 1;
        if let Some(count) = &self.count {
            count.add();
        }
        if asked.is_some() {
            tracing::debug!(
                "{what}: {error}; retry {} (attempt {}) in {} ms, as the service asked: not counted against the {} retries",
                self.retries,
                self.retries + 1,
                wait.as_millis(),
                self.cfg.max_retries
            );
        } else {
            self.spent += 1;
            tracing::debug!(
                "{what}: {error}; retry {} (attempt {}, {} of {} retries spent) in {} ms",
                self.retries,
                self.retries + 1,
                self.spent,
                self.cfg.max_retries,
                wait.as_millis()
            );
        }
        tokio::time::sleep(wait).await;
        true
    }
}

/// A wait drawn evenly between half of `ceiling` and all of it.
fn jitter(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    enum Failure {
        Transient,
        Permanent,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn transient(e: &Failure) -> bool {
        *e == Failure::Transient
    }

    fn policy(max_retries: u32, retry_timeout: Duration) -> RetryConfig {
        RetryConfig {
            max_retries,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            retry_timeout,
        }
    }

    /// Runs `policy` over an operation that fails transiently `failures` times, then
    /// succeeds; returns the outcome and the attempts made.
    async fn run(policy: &RetryConfig, failures: u32) -> (Result<u32, Failure>, u32) {
        let calls = AtomicU32::new(0);
        let r = policy
            .run("test", transient, |attempt| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                assert_eq!(attempt, n, "the attempt number given to the operation");
                async move {
                    if n < failures {
                        Err(Failure::Transient)
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_after_transient_failures() {
        let (r, calls) = run(&policy(5, Duration::from_secs(60)), 3).await;
        assert_eq!(r, Ok(3));
        assert_eq!(calls, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_retries() {
        let (r, calls) = run(&policy(2, Duration::from_secs(600)), 10).await;
        assert_eq!(r, Err(Failure::Transient));
        assert_eq!(calls, 3, "the first attempt and two retries");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_time_bound_is_reached() {
        // Waits of at most 0.1, 0.2, 0.4, 0.8, 1, 1, … s: within 2 s, no more than 6
        // retries fit, and at least 3 (every wait is at least half its ceiling).
        let p = policy(1000, Duration::from_secs(2));
        let started = Instant::now();
        let (r, calls) = run(&p, u32::MAX).await;
        assert_eq!(r, Err(Failure::Transient));
        assert!((4..=7).contains(&calls), "{calls} attempts");
        assert!(
            started.elapsed() <= Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_past_the_bound_is_not_retried() {
        let p = policy(5, Duration::from_secs(10));
        let calls = AtomicU32::new(0);
        let r: Result<(), Failure> = p
            .run("test", transient, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(11)).await;
                    Err(Failure::Transient)
                }
            })
            .await;
        assert_eq!(r, Err(Failure::Transient));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_a_permanent_error() {
        let p = policy(5, Duration::from_secs(60));
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let r: Result<(), Failure> = p
            .run("test", transient, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(Failure::Permanent) }
            })
            .await;
        assert_eq!(r, Err(Failure::Permanent));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no wait before giving up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn progress_restarts_the_clock_but_not_the_count() {
        let p = policy(3, Duration::from_secs(10));
        let mut attempts = p.attempts();
        tokio::time::sleep(Duration::from_secs(9)).await;
        attempts.progressed();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            attempts.again("test", &Failure::Transient, true).await,
            "14 s in, 5 s since progress"
        );
        assert!(attempts.again("test", &Failure::Transient, true).await);
        assert!(attempts.again("test", &Failure::Transient, true).await);
        assert!(
            !attempts.again("test", &Failure::Transient, true).await,
            "three retries spent"
        );
        let mut stalled = p.attempts();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            !stalled.again("test", &Failure::Transient, true).await,
            "10 s without progress"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_given_up_says_how_often_and_how_long_and_honours_retry_after() {
        let p = policy(2, Duration::from_secs(600));
        let r: Result<(), GaveUp<Failure>> = p
            .run_with(
                "test",
                transient,
                |_| None,
                |_| async { Err(Failure::Transient) },
            )
            .await;
        let g = r.unwrap_err();
        assert_eq!((g.attempts, g.exhausted), (3, true));
        // Every answer asks for 5 s: each wait is 5 s, and none counts against the two
        // retries: the call goes on until the bound on total time.
        let started = Instant::now();
        let r: Result<(), GaveUp<Failure>> = p
            .run_with(
                "test",
                transient,
                |_| Some(Duration::from_secs(5)),
                |_| async { Err(Failure::Transient) },
            )
            .await;
        let g = r.unwrap_err();
        assert_eq!((g.attempts, g.exhausted), (121, true));
        assert_eq!(started.elapsed(), Duration::from_secs(600));
        assert_eq!(g.summary(), "after 121 attempts over 600.0s");
        // Waits asked for between failures that are not leave the retries whole.
        let calls = AtomicU32::new(0);
        let r: Result<(), GaveUp<Failure>> = p
            .run_with(
                "test",
                transient,
                |_| (calls.load(Ordering::SeqCst) % 2 == 1).then_some(Duration::from_secs(1)),
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(Failure::Transient) }
                },
            )
            .await;
        assert_eq!(r.unwrap_err().attempts, 6, "2 retries spent, 3 asked for");
        let r: Result<(), GaveUp<Failure>> = p
            .run_with(
                "test",
                transient,
                |_| None,
                |_| async { Err(Failure::Permanent) },
            )
            .await;
        let g = r.unwrap_err();
        assert_eq!((g.attempts, g.exhausted), (1, false));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_count_into_the_scope_and_its_parent_even_on_another_task() {
        let whole = Arc::new(RetryCount::default());
        let input = Arc::new(RetryCount::child_of(&whole));
        let p = policy(5, Duration::from_secs(60));
        let (r, calls) = input.clone().counting(run(&p, 2)).await;
        assert_eq!((r, calls), (Ok(2), 3));
        assert_eq!((input.get(), whole.get()), (2, 2), "two retries counted");
        // Work spawned with the count carried counts too; a clean call adds nothing.
        let spawned = input
            .clone()
            .counting(async {
                let work = RetryCount::carry(async move { run(&p, 1).await });
                tokio::spawn(work).await.unwrap()
            })
            .await;
        assert_eq!(spawned, (Ok(1), 2));
        input.clone().counting(run(&p, 0)).await.0.unwrap();
        assert_eq!((input.get(), whole.get()), (3, 3));
        // Outside any scope nothing is counted.
        run(&p, 1).await.0.unwrap();
        assert_eq!(whole.get(), 3);
    }

    #[test]
    fn waits_double_up_to_the_ceiling_with_jitter_below_it() {
        let p = policy(10, Duration::from_secs(60));
        let ceilings: Vec<u128> = (1..=6).map(|r| p.backoff_ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        for _ in 0..1000 {
            let w = jitter(Duration::from_millis(800));
            assert!(w >= Duration::from_millis(400) && w <= Duration::from_millis(800));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
