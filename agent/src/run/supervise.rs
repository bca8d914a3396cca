//! The supervisor: the one place that races a job's children against cancellation and
//! the job's timeout, and stops them (stop signal, `kill_grace`, then kill).
//!
//! A job is a group of children (one process group, one container, or several ranks of
//! one job) behind the small [`Child`] trait; one child is just a group of one, so there
//! is a single code path. The first child to fail (a non-zero exit, a signal, an error
//! while waiting) ends the job: the others are stopped the same way as on cancel, and
//! the job's exit is that first failure. When every child exits 0, the job exits 0.
//!
//! It never launches, tears down or reads the output of a child: that is the runner's.
//! It never decides an exit code of the agent's either; it only says how the job ended.

use super::{EndedBy, Exit, RunError};
use async_trait::async_trait;
use futures::future::select_all;
use nix::sys::signal::Signal;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How one child ended: it exited with a code, or a signal killed it (one of the two,
/// always, as the kernel reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It exited with this code.
    Exited(i32),
    /// This signal killed it.
    Killed(i32),
}

impl Status {
    /// Whether it exited 0.
    fn succeeded(&self) -> bool {
        *self == Status::Exited(0)
    }
}

/// One supervised child: a process group or a container.
///
/// `wait` must be cancel-safe: the supervisor drops a pending `wait` to signal the
/// child, then calls `wait` again, and a child that has ended must keep answering with
/// the same status.
#[async_trait]
pub trait Child: Send {
    /// Asks the child to stop. `sig` is what the agent would send a process: the signal
    /// the agent itself received on cancel, SIGTERM otherwise. A container gets its
    /// image's stop signal instead, as `docker stop` does. A child already gone is not
    /// an error.
    async fn stop(&mut self, sig: Signal);
    /// Kills the child outright (SIGKILL). A child already gone is not an error.
    async fn kill(&mut self);
    /// Resolves once the child has ended.
    async fn wait(&mut self) -> Result<Status, RunError>;
}

/// The bounds the supervisor enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long the job may run; `None`, forever.
    pub timeout: Option<Duration>,
    /// How long a child may take to stop after the stop signal before it is killed.
    pub grace: Duration,
}

/// Why the supervisor stops the children still running.
#[derive(Debug, Clone, Copy)]
enum Stopping {
    /// The agent received this signal.
    Cancelled(i32),
    /// The job ran past its timeout.
    TimedOut,
    /// A child failed, so the job has.
    Failed,
}

/// What the supervisor knows of its children: each one's end, once it has ended, and
/// which failed first.
struct Ends {
    ends: Vec<Option<Result<Status, RunError>>>,
    first_failure: Option<usize>,
}

impl Ends {
    fn new(n: usize) -> Ends {
        Ends {
            ends: (0..n).map(|_| None).collect(),
            first_failure: None,
        }
    }

    /// Records how child `i` ended; says whether it failed.
    fn record(&mut self, i: usize, end: Result<Status, RunError>) -> bool {
        let failed = !matches!(&end, Ok(s) if s.succeeded());
        if failed && self.first_failure.is_none() {
            self.first_failure = Some(i);
        }
        self.ends[i] = Some(end);
        failed
    }

    fn running(&self) -> Vec<usize> {
        (0..self.ends.len())
            .filter(|&i| self.ends[i].is_none())
            .collect()
    }

    /// The job's end: the first failure, else the first child's (all exited 0).
    fn into_exit(mut self, ended_by: EndedBy) -> Result<Exit, RunError> {
        let i = self.first_failure.unwrap_or(0);
        let status = match self.ends.get_mut(i).and_then(Option::take) {
            Some(end) => end?,
            None => Status::Exited(0),
        };
        Ok(Exit { status, ended_by })
    }
}

/// Supervises one child: the group of one.
pub async fn supervise(
    child: Box<dyn Child>,
    cancelled: impl Future<Output = i32>,
    limits: Limits,
) -> Result<Exit, RunError> {
    supervise_all(vec![child], cancelled, limits).await
}

/// Supervises the children of one job until all have ended. `cancelled` resolves with
/// the signal the agent received when it is told to stop.
pub async fn supervise_all(
    mut children: Vec<Box<dyn Child>>,
    cancelled: impl Future<Output = i32>,
    limits: Limits,
) -> Result<Exit, RunError> {
    let mut ends = Ends::new(children.len());
    let stopping = race(&mut children, &mut ends, cancelled, limits.timeout).await;
    let ended_by = match stopping {
        None | Some(Stopping::Failed) => EndedBy::Itself,
        Some(Stopping::Cancelled(_)) => EndedBy::Cancelled,
        Some(Stopping::TimedOut) => EndedBy::TimedOut,
    };
    if let Some(why) = stopping {
        let sig = match why {
            Stopping::Cancelled(s) => Signal::try_from(s).unwrap_or(Signal::SIGTERM),
            Stopping::TimedOut | Stopping::Failed => Signal::SIGTERM,
        };
        stop_all(&mut children, &mut ends, sig, limits.grace).await;
    }
    ends.into_exit(ended_by)
}

/// How long a child that died of a stop signal waits for the agent's own. A scheduler
/// (`scancel`, a pod's termination) signals every process of the job at once, so the job
/// may die of SIGTERM a moment before the agent's handler has run: that is a
/// cancellation, not the job's failure. A scheduler sends its signals pid after pid,
/// microseconds apart; 500 ms covers a busy node and only delays the report of a job
/// that some other hand killed (`slurm::scancel_mid_job…` failed one run in two without it).
const SIGNAL_ECHO: Duration = Duration::from_millis(500);

/// Whether a child's end looks like a stop signal's: killed by SIGTERM or SIGINT, or
/// exiting 128 + either, as a shell reports a child's.
fn stop_signalled(end: &Result<Status, RunError>) -> bool {
    const STOPS: [i32; 2] = [libc::SIGTERM, libc::SIGINT];
    matches!(end, Ok(Status::Killed(n)) if STOPS.contains(n))
        || matches!(end, Ok(Status::Exited(c)) if STOPS.iter().any(|n| *c == 128 + n))
}

/// Waits for the children until they have all ended (`None`), one fails, the agent is
/// cancelled or the timeout passes.
async fn race(
    children: &mut [Box<dyn Child>],
    ends: &mut Ends,
    cancelled: impl Future<Output = i32>,
    timeout: Option<Duration>,
) -> Option<Stopping> {
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(cancelled, deadline);
    loop {
        if ends.running().is_empty() {
            return None;
        }
        tokio::select! {
            (i, end) = first_end(children, ends) => {
                let by_stop_signal = stop_signalled(&end);
                if ends.record(i, end) {
                    if by_stop_signal {
                        if let Ok(sig) = tokio::time::timeout(SIGNAL_ECHO, &mut cancelled).await {
                            return Some(Stopping::Cancelled(sig));
                        }
                    }
                    if !ends.running().is_empty() {
                        tracing::warn!("a process of the job failed; stopping the others");
                    }
                    return Some(Stopping::Failed);
                }
            }
            sig = &mut cancelled => return Some(Stopping::Cancelled(sig)),
            _ = &mut deadline => {
                tracing::warn!(
                    "job ran past its timeout of {}s; stopping it",
                    timeout.unwrap_or_default().as_secs()
                );
                return Some(Stopping::TimedOut);
            }
        }
    }
}

/// Sends `sig` to every child still running, waits up to `grace` for them to end, then
/// kills the rest and waits for them.
async fn stop_all(children: &mut [Box<dyn Child>], ends: &mut Ends, sig: Signal, grace: Duration) {
    let running = ends.running();
    if running.is_empty() {
        return;
    }
    for &i in &running {
        children[i].stop(sig).await;
    }
    let deadline = Instant::now() + grace;
    while !ends.running().is_empty() {
        match tokio::time::timeout_at(deadline, first_end(children, ends)).await {
            Ok((i, end)) => {
                ends.record(i, end);
            }
            Err(_) => break,
        }
    }
    let rest = ends.running();
    if rest.is_empty() {
        return;
    }
    // Not "after {sig}": a container was sent its image's stop signal instead.
    tracing::warn!(
        "job still running {}s after the stop signal; sending SIGKILL",
        grace.as_secs_f64()
    );
    for &i in &rest {
        children[i].kill().await;
    }
    while !ends.running().is_empty() {
        let (i, end) = first_end(children, ends).await;
        ends.record(i, end);
    }
}

/// The first of the running children to end, and how. Cancel-safe as `Child::wait` is.
async fn first_end(
    children: &mut [Box<dyn Child>],
    ends: &Ends,
) -> (usize, Result<Status, RunError>) {
    let waits: Vec<_> = children
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| ends.ends[*i].is_none())
        .map(|(i, c)| Box::pin(async move { (i, c.wait().await) }))
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    select_all(waits).await.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the fake children were sent, in order: (child, what).
    type Signals = Arc<Mutex<Vec<(&'static str, String)>>>;

    /// A child that ends at a set time, and on a stop signal after `on_stop` (or never,
    /// when it ignores it).
    struct Fake {
        name: &'static str,
        ends_at: Instant,
        status: Status,
        on_stop: Option<Duration>,
        sent: Signals,
    }

    impl Fake {
        fn new(name: &'static str, after: Duration, code: i32, sent: &Signals) -> Fake {
            Fake {
                name,
                ends_at: Instant::now() + after,
                status: Status::Exited(code),
                on_stop: Some(Duration::from_secs(1)),
                sent: sent.clone(),
            }
        }

        fn ignoring_stop(mut self) -> Fake {
            self.on_stop = None;
            self
        }

        fn boxed(self) -> Box<dyn Child> {
            Box::new(self)
        }

        /// Ends `after` from now with `signal`, unless it has ended by then already.
        fn end_with(&mut self, after: Duration, signal: i32) {
            let at = Instant::now() + after;
            if at < self.ends_at {
                self.ends_at = at;
                self.status = Status::Killed(signal);
            }
        }
    }

    #[async_trait]
    impl Child for Fake {
        async fn stop(&mut self, sig: Signal) {
            self.sent.lock().unwrap().push((self.name, sig.to_string()));
            if let Some(d) = self.on_stop {
                self.end_with(d, sig as i32);
            }
        }
        async fn kill(&mut self) {
            self.sent
                .lock()
                .unwrap()
                .push((self.name, "SIGKILL".into()));
            self.end_with(Duration::ZERO, libc::SIGKILL);
        }
        async fn wait(&mut self) -> Result<Status, RunError> {
            tokio::time::sleep_until(self.ends_at).await;
            Ok(self.status)
        }
    }

    fn limits(timeout: Option<u64>) -> Limits {
        Limits {
            timeout: timeout.map(Duration::from_secs),
            grace: Duration::from_secs(10),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn never() -> impl Future<Output = i32> {
        std::future::pending()
    }

    /// A cancellation that arrives `after` from now with `sig`.
    async fn cancel_after(after: Duration, sig: i32) -> i32 {
        tokio::time::sleep(after).await;
        sig
    }

    fn sent(s: &Signals) -> Vec<(&'static str, String)> {
        s.lock().unwrap().clone()
    }

    fn exit(code: Option<i32>, signal: Option<i32>, ended_by: EndedBy) -> Exit {
        let status = match (code, signal) {
            (Some(c), _) => Status::Exited(c),
            (None, Some(s)) => Status::Killed(s),
            (None, None) => panic!("an exit has a code or a signal"),
        };
        Exit { status, ended_by }
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_that_exits_before_its_timeout_is_never_signalled() {
        let s = Signals::default();
        let child = Fake::new("a", secs(5), 3, &s).boxed();
        let got = supervise(child, never(), limits(Some(60))).await.unwrap();
        assert_eq!(got, exit(Some(3), None, EndedBy::Itself));
        assert!(sent(&s).is_empty(), "{:?}", sent(&s));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_sends_the_stop_signal_and_a_child_that_obeys_is_not_killed() {
        let s = Signals::default();
        let child = Fake::new("a", secs(3600), 0, &s).boxed();
        let start = Instant::now();
        let got = supervise(child, never(), limits(Some(60))).await.unwrap();
        assert_eq!(got, exit(None, Some(libc::SIGTERM), EndedBy::TimedOut));
        assert_eq!(sent(&s), vec![("a", "SIGTERM".to_string())]);
        // It ended a second after the stop signal, well within the grace.
        assert_eq!(start.elapsed(), secs(61));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_then_a_child_that_ignores_the_stop_signal_is_killed_after_the_grace() {
        let s = Signals::default();
        let child = Fake::new("a", secs(3600), 0, &s).ignoring_stop().boxed();
        let start = Instant::now();
        let got = supervise(child, never(), limits(Some(60))).await.unwrap();
        assert_eq!(got, exit(None, Some(libc::SIGKILL), EndedBy::TimedOut));
        assert_eq!(
            sent(&s),
            vec![("a", "SIGTERM".to_string()), ("a", "SIGKILL".to_string())]
        );
        assert_eq!(start.elapsed(), secs(70), "timeout 60s + grace 10s");
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_forwards_the_agents_signal_then_kills_after_the_grace() {
        let s = Signals::default();
        let child = Fake::new("a", secs(3600), 0, &s).ignoring_stop().boxed();
        let cancel = cancel_after(secs(2), libc::SIGINT);
        let got = supervise(child, cancel, limits(None)).await.unwrap();
        assert_eq!(got, exit(None, Some(libc::SIGKILL), EndedBy::Cancelled));
        assert_eq!(
            sent(&s),
            vec![("a", "SIGINT".to_string()), ("a", "SIGKILL".to_string())]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_of_a_child_that_obeys_ends_with_its_status() {
        let s = Signals::default();
        let child = Fake::new("a", secs(3600), 0, &s).boxed();
        let got = supervise(child, cancel_after(secs(2), libc::SIGTERM), limits(None))
            .await
            .unwrap();
        assert_eq!(got, exit(None, Some(libc::SIGTERM), EndedBy::Cancelled));
        assert_eq!(sent(&s), vec![("a", "SIGTERM".to_string())]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_already_gone_is_reported_and_never_signalled() {
        let s = Signals::default();
        let child = Fake::new("a", Duration::ZERO, 7, &s).boxed();
        // The cancellation and the timeout come after it has ended: nothing to stop.
        let got = supervise(child, cancel_after(secs(1), libc::SIGTERM), limits(Some(1)))
            .await
            .unwrap();
        assert_eq!(got, exit(Some(7), None, EndedBy::Itself));
        assert!(sent(&s).is_empty(), "{:?}", sent(&s));
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_gone_when_the_stop_signal_comes_keeps_its_own_status() {
        let s = Signals::default();
        // The child ends at the very moment the agent is cancelled.
        let child = Fake::new("a", secs(2), 0, &s).boxed();
        let cancel = cancel_after(secs(2), libc::SIGTERM);
        let got = supervise(child, cancel, limits(None)).await.unwrap();
        // Which of the two comes first is the race's to decide; either way the child's
        // own exit stands and it is never killed.
        assert_eq!((got.code(), got.signal()), (Some(0), None), "{got:?}");
        assert!(
            !sent(&s).iter().any(|(_, what)| what == "SIGKILL"),
            "{:?}",
            sent(&s)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_that_all_exits_zero_exits_zero() {
        let s = Signals::default();
        let children = vec![
            Fake::new("a", secs(3), 0, &s).boxed(),
            Fake::new("b", secs(1), 0, &s).boxed(),
            Fake::new("c", secs(2), 0, &s).boxed(),
        ];
        let got = supervise_all(children, never(), limits(Some(60)))
            .await
            .unwrap();
        assert_eq!(got, exit(Some(0), None, EndedBy::Itself));
        assert!(sent(&s).is_empty(), "{:?}", sent(&s));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_failure_stops_the_others_and_is_the_jobs_exit() {
        let s = Signals::default();
        let children = vec![
            Fake::new("a", secs(3600), 0, &s).boxed(),
            Fake::new("b", secs(2), 0, &s).boxed(),
            Fake::new("c", secs(5), 4, &s).boxed(),
            Fake::new("d", secs(3600), 0, &s).ignoring_stop().boxed(),
            Fake::new("e", secs(6), 9, &s).boxed(),
        ];
        let start = Instant::now();
        let got = supervise_all(children, never(), limits(None))
            .await
            .unwrap();
        assert_eq!(got, exit(Some(4), None, EndedBy::Itself));
        let mut got_sent = sent(&s);
        got_sent.sort();
        assert_eq!(
            got_sent,
            vec![
                ("a", "SIGTERM".to_string()),
                ("d", "SIGKILL".to_string()),
                ("d", "SIGTERM".to_string()),
                ("e", "SIGTERM".to_string()),
            ],
            "b had exited 0 and c had failed: neither is signalled"
        );
        assert_eq!(start.elapsed(), secs(15), "failure at 5s + grace 10s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_killed_by_a_signal_is_a_failure() {
        let s = Signals::default();
        let mut b = Fake::new("b", secs(3600), 0, &s);
        b.end_with(secs(1), libc::SIGSEGV);
        let children = vec![Fake::new("a", secs(3600), 0, &s).boxed(), b.boxed()];
        let got = supervise_all(children, never(), limits(None))
            .await
            .unwrap();
        assert_eq!(got, exit(None, Some(libc::SIGSEGV), EndedBy::Itself));
        assert_eq!(sent(&s), vec![("a", "SIGTERM".to_string())]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_killed_by_the_schedulers_signal_just_before_the_agent_is_cancelled() {
        // scancel: the job dies of SIGTERM, the agent's own SIGTERM is handled a moment
        // later. The job was cancelled; its sibling is stopped with the agent's signal.
        let s = Signals::default();
        let mut b = Fake::new("b", secs(3600), 0, &s);
        b.end_with(secs(1), libc::SIGTERM);
        let children = vec![Fake::new("a", secs(3600), 0, &s).boxed(), b.boxed()];
        let cancel = cancel_after(secs(1) + Duration::from_millis(20), libc::SIGTERM);
        let got = supervise_all(children, cancel, limits(None)).await.unwrap();
        assert_eq!(got, exit(None, Some(libc::SIGTERM), EndedBy::Cancelled));
        // Killed by SIGTERM with no signal to the agent: the job's own failure.
        let mut c = Fake::new("c", secs(3600), 0, &s);
        c.end_with(secs(1), libc::SIGTERM);
        let got = supervise(c.boxed(), never(), limits(None)).await.unwrap();
        assert_eq!(got, exit(None, Some(libc::SIGTERM), EndedBy::Itself));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_and_timeout_apply_to_every_child() {
        let s = Signals::default();
        let children = vec![
            Fake::new("a", secs(3600), 0, &s).boxed(),
            Fake::new("b", secs(3600), 0, &s).ignoring_stop().boxed(),
        ];
        let got = supervise_all(children, never(), limits(Some(30)))
            .await
            .unwrap();
        assert_eq!(got.ended_by, EndedBy::TimedOut);
        // a obeyed first: its end is the job's.
        assert_eq!(got.signal(), Some(libc::SIGTERM));
        let mut got_sent = sent(&s);
        got_sent.sort();
        assert_eq!(
            got_sent,
            vec![
                ("a", "SIGTERM".to_string()),
                ("b", "SIGKILL".to_string()),
                ("b", "SIGTERM".to_string()),
            ]
        );

        let s = Signals::default();
        let children = vec![
            Fake::new("a", secs(3600), 0, &s).boxed(),
            Fake::new("b", secs(3600), 0, &s).boxed(),
        ];
        let got = supervise_all(children, cancel_after(secs(1), libc::SIGINT), limits(None))
            .await
            .unwrap();
        assert_eq!(got, exit(None, Some(libc::SIGINT), EndedBy::Cancelled));
        let mut got_sent = sent(&s);
        got_sent.sort();
        assert_eq!(
            got_sent,
            vec![("a", "SIGINT".to_string()), ("b", "SIGINT".to_string())]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_while_waiting_is_the_jobs_error_and_stops_the_others() {
        struct Lost;
        #[async_trait]
        impl Child for Lost {
            async fn stop(&mut self, _: Signal) {}
            async fn kill(&mut self) {}
            async fn wait(&mut self) -> Result<Status, RunError> {
                Err(RunError::EngineStoppedAnswering { id: "c1".into() })
            }
        }
        let s = Signals::default();
        let children = vec![
            Fake::new("a", secs(3600), 0, &s).boxed(),
            Box::new(Lost) as Box<dyn Child>,
        ];
        let got = supervise_all(children, never(), limits(None)).await;
        assert!(
            matches!(got, Err(RunError::EngineStoppedAnswering { .. })),
            "{got:?}"
        );
        assert_eq!(sent(&s), vec![("a", "SIGTERM".to_string())]);
    }
}
