//! The event stream read back as the protocol's own types
//! ([`stagehand_protocol::events`]), so a test names fields the compiler checks rather
//! than strings in untyped JSON. Only `lifecycle::the_event_stream_keeps_its_wire_format`
//! reads raw JSON: it pins the names on the wire that these types hide.
//!
//! Each finder fails the test when the event it looks for is missing: a test that reads
//! an event expects it.

use std::path::Path;

pub use stagehand_protocol::events::{Event, EventKind, Phase, Status, VERSION};

/// Parses a JSON Lines events file; every line must be an event of this [`VERSION`].
/// A missing file is no events.
pub fn read_events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let e: Event =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}"));
            assert_eq!(e.v, VERSION, "event of another version: {l}");
            e
        })
        .collect()
}

/// The event's kind as written on the wire (`stage_finished`).
pub fn kind_of(e: &Event) -> String {
    serde_json::to_value(&e.kind)
        .ok()
        .and_then(|v| Some(v.get("event")?.as_str()?.to_string()))
        .unwrap_or_default()
}

/// The kinds, in order.
pub fn kinds(events: &[Event]) -> Vec<String> {
    events.iter().map(kind_of).collect()
}

/// What the `finished` event says.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: Status,
    pub exit_code: i32,
    pub phase: Phase,
    pub error: Option<String>,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
    /// The agent's peak resident memory (VmHWM), in bytes.
    pub peak_rss_bytes: Option<u64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Requests retried over the run.
    pub retries: u64,
}

/// The last event, which must be `finished`.
pub fn finished(events: &[Event]) -> Finished {
    let last = events.last().expect("no events");
    match &last.kind {
        EventKind::Finished {
            status,
            exit_code,
            phase,
            error,
            bytes_downloaded,
            bytes_uploaded,
            peak_rss_bytes,
            cache_hits,
            cache_misses,
            retries,
            ..
        } => Finished {
            retries: *retries,
            cache_hits: *cache_hits,
            cache_misses: *cache_misses,
            status: *status,
            exit_code: *exit_code,
            phase: *phase,
            error: error.clone(),
            bytes_downloaded: *bytes_downloaded,
            bytes_uploaded: *bytes_uploaded,
            peak_rss_bytes: *peak_rss_bytes,
        },
        other => panic!("last event is not finished: {other:?}"),
    }
}

/// What a `stage_started` event says.
#[derive(Debug, Clone)]
pub struct StageStarted {
    pub mode: String,
    pub source: String,
    pub destination: String,
}

/// The first `stage_started` of input `name`.
pub fn stage_started(events: &[Event], name: &str) -> StageStarted {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::StageStarted {
                name: n,
                mode,
                source,
                destination,
            } if n == name => Some(StageStarted {
                mode: mode.clone(),
                source: source.clone(),
                destination: destination.clone(),
            }),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no stage_started for {name}: {:?}", kinds(events)))
}

/// What a `stage_finished` event says.
#[derive(Debug, Clone)]
pub struct StageFinished {
    pub files: u64,
    pub bytes: u64,
    pub skipped_files: u64,
    pub skipped_bytes: u64,
    pub cache_hits: u64,
    pub cache_hit_bytes: u64,
    pub cache_misses: u64,
    /// Requests retried while staging it.
    pub retries: u64,
}

/// The last `stage_finished` of input `name` (an events file is appended to by every
/// run that writes to it).
pub fn stage_finished(events: &[Event], name: &str) -> StageFinished {
    events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::StageFinished {
                name: n,
                files,
                bytes,
                skipped_files,
                skipped_bytes,
                cache_hits,
                cache_hit_bytes,
                cache_misses,
                retries,
                ..
            } if n == name => Some(StageFinished {
                retries: *retries,
                cache_hits: *cache_hits,
                cache_hit_bytes: *cache_hit_bytes,
                cache_misses: *cache_misses,
                files: *files,
                bytes: *bytes,
                skipped_files: *skipped_files,
                skipped_bytes: *skipped_bytes,
            }),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no stage_finished for {name}: {:?}", kinds(events)))
}

/// What the `started` event says.
#[derive(Debug, Clone)]
pub struct Started {
    pub pid: Option<u32>,
    pub container: Option<String>,
}

/// The first `started` event.
pub fn started(events: &[Event]) -> Started {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Started { pid, container } => Some(Started {
                pid: *pid,
                container: container.clone(),
            }),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no started event: {:?}", kinds(events)))
}

/// What the `exited` event says.
#[derive(Debug, Clone)]
pub struct Exited {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: String,
}

/// The first `exited` event.
pub fn exited(events: &[Event]) -> Exited {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Exited {
                exit_code,
                signal,
                reason,
                ..
            } => Some(Exited {
                exit_code: *exit_code,
                signal: *signal,
                reason: reason.clone(),
            }),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no exited event: {:?}", kinds(events)))
}

/// The messages of the `warning` events, in order.
pub fn warnings(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Warning { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}
