//! `datastore list|show|check` of a database datastore (`postgresql`): where it is,
//! where its password comes from (never the password), and a read-only session opened
//! to check it.

use crate::outcome::DatastoreError;
use crate::transfer::query::{self, QueryError, Target};
use stagehand_protocol::Datastore;

/// Where a database is: `host:port, database NAME`.
pub(super) fn location(ds: &Datastore) -> String {
    match ds {
        Datastore::Postgresql {
            host,
            port,
            database,
            ..
        } => format!(
            "server {host}:{}, database {database}",
            port.unwrap_or(5432)
        ),
        _ => String::new(),
    }
}

/// `datastore show`'s lines for a database, after its name and type.
pub(super) fn show(ds: &Datastore) -> Vec<String> {
    let Datastore::Postgresql {
        user,
        password,
        sslmode,
        ..
    } = ds
    else {
        return Vec::new();
    };
    vec![
        format!("location:    {}", location(ds)),
        format!("user:        {user}"),
        format!(
            "password:    {}",
            password
                .as_ref()
                .map_or_else(|| "none".to_string(), |p| p.describe())
        ),
        format!("sslmode:     {}", sslmode.unwrap_or_default().as_str()),
    ]
}

/// `datastore check`: logs in and says what answered.
pub(super) async fn check(target: Result<Target, QueryError>) -> Result<String, DatastoreError> {
    let target = target.map_err(DatastoreError::Query)?;
    query::describe(&target)
        .await
        .map_err(DatastoreError::Query)
}
