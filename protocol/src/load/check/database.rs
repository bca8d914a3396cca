//! The rules of an input on a database datastore ([`crate::database`]): a `query` or a
//! `table` on a `postgresql` datastore, downloaded, and nothing of a path's.

use super::JobCheck;
use crate::job::{DataRef, Mode};

impl JobCheck<'_> {
    /// A database's input names rows (`query` or `table`), not a path; rows come only
    /// from a database, as a download input.
    pub(super) fn database(&mut self, kind: &str, field: &str, r: &DataRef) {
        let ws = self.ws;
        let named = r.datastore.as_ref().or(ws.default_datastore.as_ref());
        let ds = named.and_then(|n| ws.datastores.get(n).map(|d| (n, d)));
        let elsewhere = r.local.is_some() || r.url.is_some() || r.asset.is_some();
        let on_database = !elsewhere && ds.is_some_and(|(_, d)| d.is_database());
        let key = match (&r.query, &r.table) {
            (None, None) => {
                if let (true, Some((name, _))) = (on_database, ds) {
                    self.push(field, format!("datastore {name:?} is a postgresql database: give `query:` (the rows to export) or `table:`, not a path"));
                }
                return;
            }
            (Some(_), Some(_)) => {
                self.push(field, "give `query` or `table`, not both".into());
                "query"
            }
            (Some(_), None) => "query",
            (None, Some(_)) => "table",
        };
        let at = format!("{field}.{key}");
        if !on_database {
            let what = match ds {
                Some((name, d)) if !elsewhere => {
                    format!("datastore {name:?} is {}", d.type_name())
                }
                _ => "this entry names no database".into(),
            };
            self.push(&at, format!("a {key} reads a postgresql datastore; {what}"));
            return;
        }
        self.database_input(kind, field, &at, r);
    }

    /// The rest of the rules, for an entry on a database.
    fn database_input(&mut self, kind: &str, field: &str, at: &str, r: &DataRef) {
        if kind != "inputs" {
            self.push(
                at,
                "queries are inputs; an output goes to a storage datastore".into(),
            );
        } else if r.mode != Mode::Download {
            self.push(
                &format!("{field}.mode"),
                format!("a query's rows are exported to a file before the job starts: use mode: download ({})", crate::database::EXPORT_FORMAT),
            );
        }
        if !r.path.is_empty() {
            self.push(
                &format!("{field}.path"),
                "a query names its rows; leave out path (the file lands at path_on_compute, default inputs/<name>/<name>.csv)".into(),
            );
        }
        if r.shard.is_some() {
            self.push(
                &format!("{field}.shard"),
                "a query's rows are one file; they are not sharded".into(),
            );
        }
        match (&r.query, &r.table) {
            (Some(q), _) if q.trim().trim_end_matches(';').trim().is_empty() => {
                self.push(at, "empty; give the SELECT whose rows the job reads".into());
            }
            (None, Some(t)) if !crate::database::is_table_name(t) => self.push(
                at,
                format!("{t:?} is not a table name (`name` or `schema.name`: letters, digits and `_`); for anything else write `query:`"),
            ),
            _ => {}
        }
    }
}
