//! Database inputs: the rows of a `query` (or `table`) on a `postgresql` datastore,
//! exported before the job starts as one CSV file with a header row, through
//! `COPY (query) TO STDOUT` streamed into a partial file beside the final name and
//! renamed once whole (`partial.rs`). The server sends a row at a time and the driver
//! reads no further ahead than the file is written, so a table larger than memory is
//! exported with the agent's memory bounded.
//!
//! Read-only by construction: the session is read-only from login
//! (`default_transaction_read_only`) and the export runs in a `READ ONLY` transaction,
//! so an `INSERT`, an `UPDATE` or DDL is refused by the server. The statement is sent
//! through the extended protocol, which takes one statement, so a query cannot smuggle
//! a second one past the `COPY (…)` around it.
//!
//! Never writes to the database, never leaves a partial file under the final name, and
//! never puts the password in an error, an event or a log line.

mod connect;

pub use connect::Target;

use crate::credentials::CredentialError;
use crate::partial::TempFile;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::io::AsyncWriteExt;

/// A database input that could not be exported (or checked).
#[derive(Debug, Error)]
pub enum QueryError {
    /// The password could not be read.
    #[error(transparent)]
    Credential(CredentialError),
    /// The server could not be reached, or the connection broke: worth a retry.
    #[error("datastore {datastore:?}: cannot reach the PostgreSQL server {server}: {detail}")]
    Connect {
        /// The datastore's name.
        datastore: String,
        /// `host:port`.
        server: String,
        /// The driver's error and its causes (a TLS handshake's says which check
        /// failed), in one line.
        detail: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// TLS could not be set up as the datastore's `sslmode` asks.
    #[error("datastore {datastore:?}: {detail}")]
    Tls {
        /// The datastore's name.
        datastore: String,
        /// Why.
        detail: String,
    },
    /// The server refused: a login, a missing table, a syntax error, a write in the
    /// read-only session.
    #[error("datastore {datastore:?} ({server}): the server refused: {message} (SQLSTATE {code})")]
    Server {
        /// The datastore's name.
        datastore: String,
        /// `host:port`.
        server: String,
        /// The SQLSTATE.
        code: String,
        /// The server's message (with its detail and hint).
        message: String,
    },
    /// The datastore named is not a database (or not one of the workspace's).
    #[error("datastore {datastore:?} is not a postgresql datastore of the workspace")]
    NotADatabase {
        /// The datastore's name.
        datastore: String,
    },
    /// The file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl QueryError {
    /// Whether retrying cannot help until someone changes the query, the database or
    /// the credentials: every refusal of the server (a missing table or database, a
    /// denied user or a wrong password, a syntax error, a write refused) but those of
    /// its state: a connection failure (class 08), too many connections or too little
    /// memory (53), a shutdown or cancel (57), a system error (58), a conflict (40) or
    /// an internal error (XX).
    pub fn not_found_or_denied(&self) -> bool {
        match self {
            QueryError::Credential(_) | QueryError::NotADatabase { .. } => true,
            QueryError::Server { code, .. } => {
                !["08", "53", "57", "58", "40", "XX"].contains(&code.get(..2).unwrap_or(""))
            }
            QueryError::Connect { .. } | QueryError::Tls { .. } | QueryError::Io { .. } => false,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exported {
    /// Rows, the header not counted.
    pub rows: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

/// The size of the file's write buffer: a few hundred rows per write call.
const WRITE_BUFFER: usize = 256 * 1024;

/// Exports the rows of `sql` as CSV with a header row to `dest` (its folder made
/// first), through a partial file renamed once whole.
pub async fn export(target: &Target, sql: &str, dest: &Path) -> Result<Exported, QueryError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| QueryError::Io { path, source }
    };
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    }
    let mut client = target.connect().await?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| target.error(e))?;
    let copy = format!("COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)");
    let stream = tx.copy_out(&copy).await.map_err(|e| target.error(e))?;
    let mut stream = std::pin::pin!(stream);
    let tmp = TempFile::beside(dest);
    let file = tokio::fs::File::create(tmp.path())
        .await
        .map_err(io(tmp.path()))?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut lines = Lines::default();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| target.error(e))?;
        lines.count(&chunk);
        bytes += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(io(tmp.path()))?;
    }
    out.flush().await.map_err(io(tmp.path()))?;
    out.get_ref().sync_all().await.map_err(io(tmp.path()))?;
    drop(out);
    // Nothing was written; ending the transaction either way changes nothing.
    tx.rollback().await.map_err(|e| target.error(e))?;
    tmp.persist(dest).map_err(io(dest))?;
    Ok(Exported {
        rows: lines.ended.saturating_sub(1),
        bytes,
    })
}

/// Checks, without running it, that `sql` would run: the server plans it (`EXPLAIN`)
/// in a read-only transaction, which finds a syntax error, a missing table or column
/// and a table the user may not read. A write is refused only when it runs.
pub async fn check(target: &Target, sql: &str) -> Result<(), QueryError> {
    let mut client = target.connect().await?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| target.error(e))?;
    tx.simple_query(&format!("EXPLAIN {sql}"))
        .await
        .map_err(|e| target.error(e))?;
    tx.rollback().await.map_err(|e| target.error(e))
}

/// What `datastore check` says of a database it reached: the server's version, the
/// user and the session's read-only state.
pub async fn describe(target: &Target) -> Result<String, QueryError> {
    let client = target.connect().await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_user, current_database(), current_setting('transaction_read_only')",
            &[],
        )
        .await
        .map_err(|e| target.error(e))?;
    let text = |i: usize| row.try_get::<_, String>(i).unwrap_or_default();
    Ok(format!(
        "PostgreSQL {} at {}, database {}, user {}, read-only session: {}",
        text(0),
        target.server,
        text(2),
        text(1),
        text(3)
    ))
}

/// Counts the records of a CSV stream: line ends outside quoted fields (a quoted field
/// may hold a newline; an escaped quote `""` flips the state twice).
#[derive(Debug, Default)]
struct Lines {
    quoted: bool,
    ended: u64,
}

impl Lines {
    fn count(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'"' => self.quoted = !self.quoted,
                b'\n' if !self.quoted => self.ended += 1,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_across_chunks_and_quoted_newlines() {
        let mut l = Lines::default();
        l.count(b"id,text\n1,\"a\nb\"\n2,\"say \"\"hi");
        l.count(b"\"\"\"\n3,plain\n");
        assert_eq!(l.ended, 4);
        assert_eq!(l.ended - 1, 3, "three rows under the header");
    }

    #[test]
    fn only_the_server_state_is_worth_a_retry() {
        let refused = |code: &str| QueryError::Server {
            datastore: "db".into(),
            server: "h:5432".into(),
            code: code.into(),
            message: "m".into(),
        };
        for code in [
            "42P01", "42601", "28P01", "42501", "25006", "3D000", "0A000",
        ] {
            assert!(refused(code).not_found_or_denied(), "{code}");
        }
        for code in ["08006", "53300", "57P01", "40001", "XX000"] {
            assert!(!refused(code).not_found_or_denied(), "{code}");
        }
    }
}
