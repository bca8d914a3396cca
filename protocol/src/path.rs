//! Path safety: datastore paths from a spec and object names from a listing become
//! relative paths that can never leave the folder they are joined to.
//!
//! Everything that turns a name from outside the process into a local path goes
//! through here; nothing else may join such a name onto a folder.

use thiserror::Error;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// A `..` segment.
    #[error("{0:?} contains a `..` segment, which would leave the target folder")]
    ParentSegment(String),
    /// An absolute name.
    #[error("{0:?} is absolute (starts with `/`)")]
    Absolute(String),
    /// A backslash (a Windows separator: `a\\..\\b` must not become `a/../b`).
    #[error("{0:?} contains a backslash")]
    Backslash(String),
    /// A NUL byte.
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    /// A control character (a newline, an escape, …) in an object name: as a local file
    /// name it would break line-based tools and can drive a terminal that lists it.
    #[error("{0:?} contains a control character")]
    Control(String),
    /// An empty or `.` segment (`a//b`, `a/./b`) in an object name.
    #[error("{0:?} has an empty or `.` segment")]
    EmptySegment(String),
    /// A placeholder other than `{run_id}`, `{name}`, `{task_index}` and `{task_count}`.
    #[error("{0:?} has an unknown placeholder {1:?}; only {{run_id}}, {{name}}, {{task_index}} and {{task_count}} are replaced")]
    Placeholder(String, String),
}

/// Normalises a datastore path written in a spec: a leading `/` and empty or `.`
/// segments are dropped (the path is always relative to the datastore's root), a
/// trailing `/` is dropped; `..`, backslashes and NUL are refused. `""` is the root.
pub fn spec_path(path: &str) -> Result<String, PathError> {
    if path.contains('\0') {
        return Err(PathError::Nul(path.to_string()));
    }
    if path.contains('\\') {
        return Err(PathError::Backslash(path.to_string()));
    }
    let mut parts = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(PathError::ParentSegment(path.to_string())),
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

/// Checks an object name from a listing, relative to the prefix being copied, before
/// it is joined to a local folder. Stricter than [`spec_path`]: nothing is silently
/// dropped, because two different objects must never land on the same file.
pub fn object_name(name: &str) -> Result<&str, PathError> {
    if name.contains('\0') {
        return Err(PathError::Nul(name.to_string()));
    }
    if name.contains('\\') {
        return Err(PathError::Backslash(name.to_string()));
    }
    if name.starts_with('/') {
        return Err(PathError::Absolute(name.to_string()));
    }
    if name.chars().any(char::is_control) {
        return Err(PathError::Control(name.to_string()));
    }
    for seg in name.split('/') {
        match seg {
            ".." => return Err(PathError::ParentSegment(name.to_string())),
            "" | "." => return Err(PathError::EmptySegment(name.to_string())),
            _ => {}
        }
    }
    Ok(name)
}

/// Joins two normalised datastore paths.
pub fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}/{name}"),
    }
}

/// The values of a path's placeholders for one run.
#[derive(Debug, Clone, Copy)]
pub struct Placeholders<'a> {
    /// `{run_id}`.
    pub run_id: &'a str,
    /// `{name}`: the job's name.
    pub name: &'a str,
    /// `{task_index}`: this task's place in a scheduler's array (0 outside one).
    pub task_index: u32,
    /// `{task_count}`: the array's size (1 outside one).
    pub task_count: u32,
}

/// Replaces `{run_id}` and `{name}` in an output path (one task of one); any other
/// `{…}` but the task placeholders is an error.
pub fn expand_placeholders(path: &str, run_id: &str, job_name: &str) -> Result<String, PathError> {
    expand_placeholders_with(
        path,
        &Placeholders {
            run_id,
            name: job_name,
            task_index: 0,
            task_count: 1,
        },
    )
}

/// Replaces `{run_id}`, `{name}`, `{task_index}` and `{task_count}` in an output path;
/// any other `{…}` is an error.
pub fn expand_placeholders_with(path: &str, values: &Placeholders) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find('}')
            .ok_or_else(|| PathError::Placeholder(path.to_string(), after.to_string()))?;
        match &after[..=end] {
            "{run_id}" => out.push_str(values.run_id),
            "{name}" => out.push_str(values.name),
            "{task_index}" => out.push_str(&values.task_index.to_string()),
            "{task_count}" => out.push_str(&values.task_count.to_string()),
            other => return Err(PathError::Placeholder(path.to_string(), other.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces only `{task_index}` and `{task_count}`, leaving every other brace as it
/// is: for input paths and command arguments, where braces may be the job's own.
pub fn expand_task_placeholders(text: &str, task_index: u32, task_count: u32) -> String {
    text.replace("{task_index}", &task_index.to_string())
        .replace("{task_count}", &task_count.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_without_doubled_or_dangling_slashes() {
        assert_eq!(join("", "a/b"), "a/b");
        assert_eq!(join("p", ""), "p");
        assert_eq!(join("p/q", "a"), "p/q/a");
        assert_eq!(join("", ""), "");
    }

    #[test]
    fn path_errors_read_as_a_person_needs_them() {
        let all = [
            spec_path("a/../b").unwrap_err(),
            object_name("/x").unwrap_err(),
            spec_path("a\\b").unwrap_err(),
            spec_path("a\0b").unwrap_err(),
            object_name("a//b").unwrap_err(),
            expand_placeholders("o/{who}", "r", "j").unwrap_err(),
        ];
        let text: Vec<String> = all.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(text.join("\n"));
    }

    #[test]
    fn spec_paths() {
        assert_eq!(spec_path("/datasets//mnist/./").unwrap(), "datasets/mnist");
        assert_eq!(spec_path("").unwrap(), "");
        assert!(matches!(
            spec_path("../.."),
            Err(PathError::ParentSegment(_))
        ));
        assert!(matches!(
            spec_path("a/../b"),
            Err(PathError::ParentSegment(_))
        ));
        assert!(matches!(spec_path("a\\b"), Err(PathError::Backslash(_))));
        assert!(matches!(spec_path("a\0b"), Err(PathError::Nul(_))));
    }

    #[test]
    fn hostile_object_names() {
        for bad in [
            "back/../../../../x.txt",
            "/abs/x.txt",
            "..",
            "a\\..\\b",
            "a//b",
            "./a",
            "a/",
            "nul\0",
            "new\nline",
            "esc\u{1b}[31m",
            "c1\u{9b}",
        ] {
            assert!(object_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(object_name("a/b c/ü.txt").unwrap(), "a/b c/ü.txt");
        assert_eq!(object_name("..hidden").unwrap(), "..hidden");
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            expand_placeholders("plain/path", "r", "j").unwrap(),
            "plain/path"
        );
        assert_eq!(
            expand_placeholders("{name}-{name}", "r", "j").unwrap(),
            "j-j",
            "every occurrence"
        );
        assert_eq!(
            expand_placeholders("runs/{run_id}/{name}/m", "r1", "job").unwrap(),
            "runs/r1/job/m"
        );
        assert!(expand_placeholders("runs/{user}", "r", "j").is_err());
        let task = Placeholders {
            run_id: "r",
            name: "j",
            task_index: 7,
            task_count: 20,
        };
        assert_eq!(
            expand_placeholders_with("out/{task_index}-of-{task_count}/{run_id}", &task).unwrap(),
            "out/7-of-20/r"
        );
        assert_eq!(
            expand_task_placeholders("--shard={task_index}/{task_count} {x}", 3, 4),
            "--shard=3/4 {x}",
            "other braces are the job's own"
        );
        assert!(expand_placeholders("runs/{run_id", "r", "j").is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    /// Names built from the characters that make paths dangerous.
    fn hostile() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("/"),
                Just(".."),
                Just("."),
                Just("\\"),
                Just("\0"),
                Just("a"),
                Just("b c"),
                Just("ü")
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    fn stays_inside(rel: &str) -> bool {
        Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    }

    proptest! {
        #[test]
        fn accepted_object_names_never_leave_the_target(name in hostile()) {
            if let Ok(rel) = object_name(&name) {
                prop_assert!(stays_inside(rel), "{:?} escapes", rel);
                prop_assert_eq!(Path::new("/t").join(rel).components().count(), rel.split('/').count() + 2);
            }
        }

        #[test]
        fn normalised_spec_paths_never_leave_the_root(path in hostile()) {
            if let Ok(p) = spec_path(&path) {
                prop_assert!(p.is_empty() || stays_inside(&p), "{:?} escapes", p);
                prop_assert!(!p.starts_with('/') && !p.ends_with('/') && !p.contains("//"));
                prop_assert_eq!(spec_path(&p), Ok(p.clone()), "not idempotent");
            }
        }
    }
}
