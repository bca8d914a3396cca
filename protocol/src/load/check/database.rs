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
                match (on_database, ds) {
                    (true, Some((name, _))) if kind == "outputs" => self.push(field, format!("datastore {name:?} is a postgresql database, read-only here: an output goes to a storage datastore")),
                    (true, Some((name, _))) => self.push(field, format!("datastore {name:?} is a postgresql database: give `query:` (the rows to export) or `table:`, not a path")),
                    _ => {}
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

#[cfg(test)]
mod tests {
    use crate::load::{parse_job, parse_workspace, validate_job};
    use crate::problem::Problem;
    use crate::workspace::{Datastore, SslMode};
    use std::path::Path;

    const WS: &str = r#"default_datastore: local
datastores:
  local: {type: local, root: ./data}
  db:
    type: postgresql
    host: db.example
    database: shop
    user: reader
    password: {env: DB_PASSWORD}
    sslmode: verify-full
"#;

    fn rules(inputs: &str) -> Vec<Problem> {
        let text = format!("name: j\ncommand: [x]\ninputs:\n{inputs}");
        let job = parse_job(Path::new("job.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let ws = parse_workspace(Path::new("ws.yaml"), WS).unwrap_or_else(|e| panic!("{e}"));
        validate_job(&job, &ws.value, None).0
    }

    fn says(problems: &[Problem], field: &str, fragment: &str) {
        assert!(
            problems
                .iter()
                .any(|p| p.field == field && p.message.contains(fragment)),
            "no {field}: {fragment:?} in {problems:#?}"
        );
    }

    #[test]
    fn a_postgresql_datastore_reads_as_written_with_libpq_names() {
        let ws = parse_workspace(Path::new("ws.yaml"), WS).unwrap();
        let Datastore::Postgresql {
            port,
            sslmode,
            user,
            ..
        } = &ws.value.datastores["db"]
        else {
            panic!("{:?}", ws.value.datastores["db"]);
        };
        assert_eq!(
            (*port, *sslmode, user.as_str()),
            (None, Some(SslMode::VerifyFull), "reader")
        );
        assert!(ws.warnings.is_empty(), "{:?}", ws.warnings);
        let literal = WS.replace("{env: DB_PASSWORD}", "hunter2-literal");
        let ws = parse_workspace(Path::new("ws.yaml"), &literal).unwrap();
        assert_eq!(ws.warnings[0].field, "datastores.db.password");
        let bad = WS.replace("verify-full", "verify_full");
        assert!(parse_workspace(Path::new("ws.yaml"), &bad).is_err());
    }

    #[test]
    fn azure_sql_database_is_refused_by_name_with_the_reason() {
        let text = format!("{WS}  sql: {{type: azure_sql_database, server_name: s}}\n");
        let err = parse_workspace(Path::new("ws.yaml"), &text).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].field, "datastores.sql.type");
        assert!(
            err.0[0].message.contains("no SQL Server (TDS) client"),
            "{err}"
        );
    }

    #[test]
    fn a_query_or_a_table_is_a_download_input_on_a_database() {
        assert!(rules("  r: {datastore: db, query: \"SELECT 1\", mode: download}\n").is_empty());
        assert!(rules("  r: {datastore: db, table: sales.orders, mode: download}\n").is_empty());
        says(
            &rules("  r: {datastore: db, path: t, mode: download}\n"),
            "inputs.r",
            "give `query:`",
        );
        let text = "name: j\ncommand: [x]\noutputs:\n  o: {datastore: db, path: o, mode: upload}\n";
        let job = parse_job(Path::new("job.yaml"), text).unwrap();
        let ws = parse_workspace(Path::new("ws.yaml"), WS).unwrap();
        says(
            &validate_job(&job, &ws.value, None).0,
            "outputs.o",
            "an output goes to a storage datastore",
        );
        says(
            &rules("  r: {datastore: db, query: \"SELECT 1\", mode: mount}\n"),
            "inputs.r.mode",
            "use mode: download",
        );
        says(
            &rules("  r: {query: \"SELECT 1\", mode: download}\n"),
            "inputs.r.query",
            "datastore \"local\" is local",
        );
        says(
            &rules("  r: {datastore: db, query: \"SELECT 1\", table: t, mode: download}\n"),
            "inputs.r",
            "not both",
        );
        says(
            &rules("  r: {datastore: db, table: \"t; DROP TABLE t\", mode: download}\n"),
            "inputs.r.table",
            "is not a table name",
        );
        says(
            &rules("  r: {datastore: db, query: \" ; \", mode: download}\n"),
            "inputs.r.query",
            "empty",
        );
    }
}
