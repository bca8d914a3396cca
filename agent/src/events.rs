//! The event sink: JSON Lines to a file or stdout (`--events`), one object per event,
//! flushed as written so a scheduler can follow along. Every line is redacted.
//!
//! A write that fails is never silent: the sink keeps its first failure ([`Events::lost`])
//! and the lifecycle fails the run with it. The sink never prints the failure itself.

use crate::console::FirstFailure;
use crate::console::{Channel, OutputError};
use crate::redact::redact;
use stagehand_protocol::events::{Event, EventKind, VERSION};
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

/// Where events go.
pub struct Events {
    run_id: String,
    out: Option<Mutex<Box<dyn Write + Send>>>,
    channel: Channel,
    lost: FirstFailure,
    /// Sees every event before it is written (the metrics).
    observer: Option<Observer>,
}

/// What sees every event before it is written.
type Observer = Box<dyn Fn(&Event) + Send + Sync>;

impl Events {
    /// Events to `dest` (`-` = stdout), or nowhere.
    pub fn open(dest: Option<&str>, run_id: &str) -> std::io::Result<Events> {
        let out: Option<Box<dyn Write + Send>> = match dest {
            None => None,
            Some("-") => Some(Box::new(std::io::stdout())),
            Some(path) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
        };
        Ok(Events {
            run_id: run_id.to_string(),
            out: out.map(Mutex::new),
            channel: match dest {
                Some("-") => Channel::Stdout,
                _ => Channel::Events,
            },
            lost: FirstFailure::new(),
            observer: None,
        })
    }

    /// The same sink, with `f` seeing every event.
    pub fn observed(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Events {
        self.observer = Some(Box::new(f));
        self
    }

    /// Writes one event.
    pub fn emit(&self, kind: EventKind) {
        let ev = Event {
            v: VERSION,
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            run_id: self.run_id.clone(),
            kind,
        };
        if let Some(f) = &self.observer {
            f(&ev);
        }
        let Ok(line) = serde_json::to_string(&ev) else {
            return;
        };
        tracing::debug!(target: "stagehand::events", "{line}");
        if let Some(out) = &self.out {
            let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
            let written = writeln!(w, "{}", redact(&line)).and_then(|()| w.flush());
            if let Err(e) = written {
                self.lost.record(&e);
            }
        }
    }

    /// The first write that failed, if one did: an event (at least) was lost.
    pub fn lost(&self) -> Option<OutputError> {
        self.lost.get(self.channel)
    }
}
