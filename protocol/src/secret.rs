//! Secret values in a workspace: `{env: NAME}`, `{file: PATH}`, or a literal.
//!
//! This module never reads a secret's value: it only says where the value lives. The
//! agent resolves it at the last moment and registers it for redaction. `Debug` never
//! shows a literal.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a credential's value comes from.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Secret {
    /// Read from the agent's environment variable `env`; the variable is removed from the
    /// job's environment.
    Env {
        /// The environment variable's name.
        env: String,
    },
    /// Read from a file (trailing newline trimmed); relative to the workspace file.
    File {
        /// The file's path.
        file: String,
    },
    /// The value itself, written in the workspace. Accepted, and warned about.
    Literal(String),
}

impl Secret {
    /// A description that is safe to print.
    pub fn describe(&self) -> String {
        match self {
            Secret::Env { env } => format!("environment variable {env}"),
            Secret::File { file } => format!("file {file}"),
            Secret::Literal(_) => "a literal value in the workspace".to_string(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Literal(_) => f.write_str("Secret::Literal(***)"),
            other => write!(f, "Secret({})", other.describe()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_literals() {
        let s: Secret = serde_yaml::from_str("hunter2-very-secret").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let e: Secret = serde_yaml::from_str("{env: KEY}").unwrap();
        assert_eq!(e, Secret::Env { env: "KEY".into() });
        let f: Secret = serde_yaml::from_str("{file: /run/key}").unwrap();
        assert_eq!(
            f,
            Secret::File {
                file: "/run/key".into()
            }
        );
    }
}
