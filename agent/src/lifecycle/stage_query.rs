//! The stage phase's database inputs: each one's rows exported to its file before the
//! job starts (`transfer::query`), with its `stage_started`, `query_exported` and
//! `stage_finished` events.
//!
//! Never writes to a database, and never outside the input's file and its folder.

use super::{ms, Transfer};
use crate::outcome::StageError;
use crate::plan::DataPlan;
use crate::transfer::{query, Moved};
use stagehand_protocol::events::EventKind;
use stagehand_protocol::size::human;
use std::time::Instant;

/// Exports the database input `d` (`what` for people) whose statement is `sql`.
pub(super) async fn export(
    d: &DataPlan,
    sql: &str,
    what: String,
    t: &Transfer<'_>,
) -> Result<Moved, StageError> {
    let events = t.events;
    let started = Instant::now();
    events.emit(EventKind::StageStarted {
        name: d.name.clone(),
        mode: d.mode.as_str().into(),
        source: format!("{}:{sql}", d.datastore),
        destination: d.local_path.display().to_string(),
    });
    // The preflight resolved every database an input names, or failed the run.
    let Some(target) = t.databases.get(&d.datastore) else {
        return Err(StageError::Query {
            what,
            source: Box::new(query::QueryError::NotADatabase {
                datastore: d.datastore.clone(),
            }),
        });
    };
    let done = query::export(target, sql, &d.local_path)
        .await
        .map_err(|source| StageError::Query {
            what: what.clone(),
            source: Box::new(source),
        })?;
    tracing::info!(
        "{what}: {} row(s) exported from datastore {:?} as CSV, {}",
        done.rows,
        d.datastore,
        human(done.bytes)
    );
    let duration_ms = ms(started);
    events.emit(EventKind::QueryExported {
        name: d.name.clone(),
        datastore: d.datastore.clone(),
        rows: done.rows,
        bytes: done.bytes,
        format: "csv".into(),
        duration_ms,
    });
    events.emit(EventKind::StageFinished {
        name: d.name.clone(),
        files: 1,
        bytes: done.bytes,
        skipped_files: 0,
        skipped_bytes: 0,
        cache_hits: 0,
        cache_hit_bytes: 0,
        cache_misses: 0,
        duration_ms,
        pinned: None,
        // A database's export is never retried (a broken connection fails it, 75).
        retries: 0,
    });
    Ok(Moved {
        files: 1,
        bytes: done.bytes,
        ..Default::default()
    })
}
