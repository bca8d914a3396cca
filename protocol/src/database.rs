//! Inputs read from a database datastore: the SQL whose rows an input exports, from
//! its `query`, or from its `table` name (checked, then quoted, so that a name can
//! never become SQL of its own).
//!
//! Pure text: it never connects anywhere, and never resolves a credential.

use crate::job::DataRef;

/// The one format a database input is written in, named for people.
pub const EXPORT_FORMAT: &str = "CSV with a header row";

/// Whether `table` is a table name this module can quote: `name` or `schema.name`, each
/// part letters, digits and `_`, not starting with a digit.
pub fn is_table_name(table: &str) -> bool {
    let parts: Vec<&str> = table.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
}

/// The statement whose rows the input `r` exports: its `query` (a trailing `;`
/// dropped, since it is wrapped in `COPY (…)`), or every row of its `table`; `None`
/// when it has neither, or a table name [`is_table_name`] refuses.
pub fn export_query(r: &DataRef) -> Option<String> {
    if let Some(q) = &r.query {
        return Some(q.trim().trim_end_matches(';').trim_end().to_string());
    }
    let table = r.table.as_deref().filter(|t| is_table_name(t))?;
    let quoted: Vec<String> = table.split('.').map(|p| format!("\"{p}\"")).collect();
    Some(format!("SELECT * FROM {}", quoted.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(query: Option<&str>, table: Option<&str>) -> DataRef {
        let mut r: DataRef = serde_yaml::from_str("{mode: download}").unwrap();
        r.query = query.map(Into::into);
        r.table = table.map(Into::into);
        r
    }

    #[test]
    fn a_table_is_quoted_and_a_query_loses_its_semicolon() {
        assert_eq!(
            export_query(&input(None, Some("public.Rides"))).as_deref(),
            Some(r#"SELECT * FROM "public"."Rides""#)
        );
        assert_eq!(
            export_query(&input(Some(" SELECT 1 ; \n"), None)).as_deref(),
            Some("SELECT 1")
        );
        assert_eq!(export_query(&input(None, None)), None);
    }

    #[test]
    fn a_table_name_that_could_be_sql_is_refused() {
        for bad in ["", "a.b.c", "x\"; DROP TABLE y; --", "1abc", "a b", "a."] {
            assert!(!is_table_name(bad), "{bad:?}");
            assert_eq!(export_query(&input(None, Some(bad))), None);
        }
        assert!(is_table_name("_t1"));
        assert!(is_table_name("sales.orders_2024"));
    }
}
