//! `stagehand datastore register|set-default|unregister`: edits the workspace file as
//! text, line by line, so that its comments, its order and its formatting survive
//! (serde_yaml would rewrite the whole file without a comment; no comment-preserving
//! YAML editor is in the dependency tree, and the edits needed are few: add, replace or
//! remove one entry under `datastores:`, and set one top-level key).
//!
//! The edited text is parsed again (`stagehand_protocol::parse_workspace`) before the
//! caller writes it, so an edit never leaves a file that does not load. This module
//! never reads a secret and never writes one: credentials are `{env:}`/`{file:}`
//! references only (see [`SecretRef`]).

use thiserror::Error;

/// Why the workspace file cannot be edited as asked.
#[derive(Debug, Error)]
pub enum EditError {
    /// `register` without `--overwrite` on a name that is there.
    #[error("datastore {0:?} exists already; pass --overwrite to replace it")]
    Exists(String),
    /// A name that is not in the file.
    #[error("no datastore {0:?} in the workspace (`stagehand datastore list` shows them)")]
    Missing(String),
    /// `unregister` of the default.
    #[error("datastore {0:?} is the workspace's default; `stagehand datastore set-default` another one first")]
    IsDefault(String),
    /// `datastores:` written in flow style (`{a: …}`), which a line edit cannot change.
    #[error("`datastores:` is written on one line (flow style); write it as one entry per line to edit it with stagehand")]
    FlowStyle,
    /// A secret given in clear.
    #[error("{flag}: give the secret as env:NAME or file:PATH (a variable or a file that holds it), never its value")]
    ClearSecret {
        /// The option.
        flag: &'static str,
    },
}

/// A credential reference as given on the command line: `env:NAME` or `file:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `{env: NAME}`.
    Env(String),
    /// `{file: PATH}`.
    File(String),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`; anything else is refused (it would be the
    /// secret itself).
    pub fn parse(flag: &'static str, text: &str) -> Result<SecretRef, EditError> {
        let valid_env =
            |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match text.split_once(':') {
            Some(("env", n)) if valid_env(n) => Ok(SecretRef::Env(n.to_string())),
            Some(("file", p)) if !p.is_empty() => Ok(SecretRef::File(p.to_string())),
            _ => Err(EditError::ClearSecret { flag }),
        }
    }

    /// The YAML flow text: `{env: NAME}` or `{file: "PATH"}`.
    pub fn yaml(&self) -> String {
        match self {
            SecretRef::Env(n) => format!("{{env: {n}}}"),
            SecretRef::File(p) => format!("{{file: {}}}", quote(p)),
        }
    }
}

/// A YAML scalar, double-quoted (JSON's quoting is valid YAML).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// Where the entries of `datastores:` are.
struct Entries {
    /// The line after which a new entry goes (the last line of the section).
    end: usize,
    /// The entries' indentation.
    indent: usize,
    /// (name, first line, one past the last line) of each entry.
    list: Vec<(String, usize, usize)>,
    /// The `datastores:` line, if any.
    header: Option<usize>,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// The key of a `key: …` line (unquoted or quoted), if it is one.
fn key_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    let (k, _) = t.split_once(':')?;
    let k = k.trim();
    let k = k
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .or_else(|| k.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
        .unwrap_or(k);
    (!k.is_empty() && !k.contains(' ')).then(|| k.to_string())
}

fn entries(lines: &[&str]) -> Result<Entries, EditError> {
    let Some(header) = lines
        .iter()
        .position(|l| indent_of(l) == 0 && key_of(l).as_deref() == Some("datastores"))
    else {
        return Ok(Entries {
            end: lines.len(),
            indent: 2,
            list: Vec::new(),
            header: None,
        });
    };
    let rest = lines[header].split_once(':').map_or("", |(_, r)| r).trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(EditError::FlowStyle);
    }
    // The section runs to the next line at column 0 that is not a comment or blank.
    let mut stop = lines.len();
    for (i, l) in lines.iter().enumerate().skip(header + 1) {
        if !is_blank_or_comment(l) && indent_of(l) == 0 {
            stop = i;
            break;
        }
    }
    let indent = lines[header + 1..stop]
        .iter()
        .find(|l| !is_blank_or_comment(l))
        .map_or(2, |l| indent_of(l));
    let starts: Vec<usize> = (header + 1..stop)
        .filter(|&i| !is_blank_or_comment(lines[i]) && indent_of(lines[i]) == indent)
        .collect();
    let mut list = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let next = starts.get(n + 1).copied().unwrap_or(stop);
        // Comments just above the next entry belong to it, not to this one.
        let mut end = next;
        while end > start + 1 && is_blank_or_comment(lines[end - 1]) {
            end -= 1;
        }
        if let Some(name) = key_of(lines[start]) {
            list.push((name, start, end));
        }
    }
    let end = list.last().map_or(header + 1, |(_, _, e)| *e);
    Ok(Entries {
        end,
        indent,
        list,
        header: Some(header),
    })
}

fn join(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// Adds (or, with `overwrite`, replaces) the entry `name`, whose body is `body` (lines
/// relative to the entry, e.g. `type: azure_blob`), keeping every other line.
pub fn register(
    text: &str,
    name: &str,
    body: &[String],
    overwrite: bool,
) -> Result<String, EditError> {
    let lines: Vec<&str> = text.lines().collect();
    let e = entries(&lines)?;
    let pad = " ".repeat(e.indent);
    let mut block = vec![format!("{pad}{name}:")];
    block.extend(body.iter().map(|b| format!("{pad}  {b}")));
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match e.list.iter().find(|(n, _, _)| n == name) {
        Some(_) if !overwrite => return Err(EditError::Exists(name.to_string())),
        Some((_, start, end)) => {
            out.splice(start..end, block);
        }
        None if e.header.is_none() => {
            out.push("datastores:".to_string());
            out.extend(block);
        }
        None => {
            out.splice(e.end..e.end, block);
        }
    }
    Ok(join(&out))
}

/// Removes the entry `name` (not the default).
pub fn unregister(text: &str, name: &str, default: Option<&str>) -> Result<String, EditError> {
    if default == Some(name) {
        return Err(EditError::IsDefault(name.to_string()));
    }
    let lines: Vec<&str> = text.lines().collect();
    let e = entries(&lines)?;
    let Some((_, start, end)) = e.list.iter().find(|(n, _, _)| n == name) else {
        return Err(EditError::Missing(name.to_string()));
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.drain(*start..*end);
    Ok(join(&out))
}

/// Sets `default_datastore: name`, in place (keeping a comment at the line's end), or
/// as the first line after the file's leading comments.
pub fn set_default(text: &str, name: &str) -> Result<String, EditError> {
    let lines: Vec<&str> = text.lines().collect();
    let e = entries(&lines)?;
    if !e.list.iter().any(|(n, _, _)| n == name) {
        return Err(EditError::Missing(name.to_string()));
    }
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let line = format!("default_datastore: {name}");
    match lines
        .iter()
        .position(|l| indent_of(l) == 0 && key_of(l).as_deref() == Some("default_datastore"))
    {
        Some(i) => {
            let comment = lines[i].find(" #").map(|c| &lines[i][c..]).unwrap_or("");
            out[i] = format!("{line}{comment}");
        }
        None => {
            let at = lines.iter().take_while(|l| is_blank_or_comment(l)).count();
            out.insert(at, line);
        }
    }
    Ok(join(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = r#"# Our registry: keep this comment.
default_datastore: local   # the default
datastores:
  # Scratch space on the node.
  local:
    type: local
    root: ./data           # relative to this file
  # The team's blobs.
  blobs: {type: azure_blob, account_name: acct, container_name: c}
# Trailing notes.
"#;

    fn body() -> Vec<String> {
        vec!["type: local".into(), "root: ./more".into()]
    }

    #[test]
    fn register_appends_after_the_last_entry_and_keeps_every_comment() {
        let out = register(WS, "more", &body(), false).unwrap();
        assert_eq!(
            out,
            WS.replace(
                "# Trailing notes.\n",
                "  more:\n    type: local\n    root: ./more\n# Trailing notes.\n"
            )
        );
        assert!(matches!(
            register(WS, "local", &body(), false),
            Err(EditError::Exists(_))
        ));
        let out = register(WS, "blobs", &body(), true).unwrap();
        assert!(
            out.contains(
                "  # The team's blobs.\n  blobs:\n    type: local\n    root: ./more\n# Trailing"
            ),
            "{out}"
        );
        let out = register("", "x", &body(), false).unwrap();
        assert_eq!(
            out,
            "datastores:\n  x:\n    type: local\n    root: ./more\n"
        );
    }

    #[test]
    fn unregister_removes_the_entry_and_not_the_next_ones_comment() {
        let out = unregister(WS, "local", Some("blobs")).unwrap();
        assert_eq!(
            out,
            WS.replace(
                "  local:\n    type: local\n    root: ./data           # relative to this file\n",
                ""
            )
        );
        assert!(matches!(
            unregister(WS, "local", Some("local")),
            Err(EditError::IsDefault(_))
        ));
        assert!(matches!(
            unregister(WS, "nope", None),
            Err(EditError::Missing(_))
        ));
    }

    #[test]
    fn set_default_replaces_the_value_and_keeps_the_comment() {
        let out = set_default(WS, "blobs").unwrap();
        assert_eq!(
            out,
            WS.replace(
                "default_datastore: local   # the default",
                "default_datastore: blobs # the default"
            )
        );
        assert!(matches!(
            set_default(WS, "nope"),
            Err(EditError::Missing(_))
        ));
        let out = set_default("# top\ndatastores:\n  a: {type: local, root: .}\n", "a").unwrap();
        assert_eq!(
            out,
            "# top\ndefault_datastore: a\ndatastores:\n  a: {type: local, root: .}\n"
        );
    }

    #[test]
    fn secrets_are_references_only() {
        assert_eq!(
            SecretRef::parse("--account-key", "env:KEY").unwrap().yaml(),
            "{env: KEY}"
        );
        assert_eq!(
            SecretRef::parse("--account-key", "file:/run/k")
                .unwrap()
                .yaml(),
            "{file: \"/run/k\"}"
        );
        assert!(SecretRef::parse("--account-key", "Eby8vdM02xNOcqF==").is_err());
        assert!(SecretRef::parse("--account-key", "env:").is_err());
    }
}
