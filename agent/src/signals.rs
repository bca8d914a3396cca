//! SIGINT and SIGTERM to the agent become a cancellation every phase can watch. The
//! count lets a phase that started after the first signal (uploading a preempted
//! job's checkpoint, say) still be interrupted by a second one.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// The signals received so far: (how many, the last one's number).
pub type Received = (u32, i32);

/// A handle on the agent's cancellation state.
#[derive(Clone)]
pub struct Cancel(watch::Receiver<Received>);

impl Cancel {
    /// Starts listening for SIGINT and SIGTERM.
    pub fn install() -> std::io::Result<Cancel> {
        let (tx, rx) = watch::channel((0u32, 0i32));
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            loop {
                let sig = tokio::select! {
                    _ = int.recv() => libc::SIGINT,
                    _ = term.recv() => libc::SIGTERM,
                };
                tracing::warn!(
                    "received {}; stopping the run",
                    if sig == libc::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    }
                );
                tx.send_modify(|(n, s)| {
                    *n += 1;
                    *s = sig;
                });
            }
        });
        Ok(Cancel(rx))
    }

    /// A handle that is never cancelled (for tests and one-shot commands).
    pub fn never() -> Cancel {
        let (tx, rx) = watch::channel((0, 0));
        std::mem::forget(tx);
        Cancel(rx)
    }

    /// What has been received so far.
    pub fn received(&self) -> Received {
        *self.0.borrow()
    }

    /// Resolves with the signal number once more than `seen` signals have arrived.
    pub async fn after(&self, seen: u32) -> i32 {
        let mut rx = self.0.clone();
        let sig = rx.wait_for(|(n, _)| *n > seen).await.map(|r| r.1);
        match sig {
            Ok(s) => s,
            Err(_) => std::future::pending().await,
        }
    }
}
