//! ARCHITECTURE.md's module tables name every source file that exists, and only those:
//! the maintainer's map stays true as files are added, moved and removed.
//!
//! In the tables of `### \`protocol/\`` and `### \`agent/\``, a row's first cell names
//! a file (`outcome.rs`) or a folder (`plan/`); every backticked `….rs` in a folder's
//! row is a file of that folder (`azure/client.rs` one level down); in a file's row,
//! the file and any `folder/file.rs` it names (`load/data_ref.rs`). Test files
//! (`tests.rs`, `*_tests.rs`) need no row.

use crate::common::repo;
use std::collections::BTreeSet;
use std::path::Path;

/// The `.rs` files below `dir`, relative to it.
fn sources(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, base, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name != "tests.rs" && !name.ends_with("_tests.rs") {
                out.insert(p.strip_prefix(base).unwrap().to_string_lossy().to_string());
            }
        }
    }
}

/// The backticked words of `text`.
fn ticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The files a crate's table names, relative to its `src/` (a name that is not under
/// `src/` but beside it, like `build.rs`, is kept as `../build.rs`).
fn documented(doc: &str, heading: &str, crate_dir: &Path) -> BTreeSet<String> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section {heading}"));
    let section = &doc[start + heading.len()..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    let mut named = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let first = ticked(cells[0]);
        let folder = first.first().copied().filter(|t| t.ends_with('/'));
        let words: Vec<&str> = match folder {
            Some(_) => ticked(row),
            None => ticked(row)
                .into_iter()
                .filter(|w| w.contains('/') || first.contains(w))
                .collect(),
        };
        for w in words.into_iter().filter(|w| w.ends_with(".rs")) {
            let rel = format!("{}{w}", folder.unwrap_or(""));
            if crate_dir.join("src").join(&rel).exists() || folder.is_some() {
                named.insert(rel);
            } else {
                named.insert(format!("../{w}"));
            }
        }
    }
    named
}

#[test]
fn every_source_file_has_its_row_and_every_row_its_file() {
    let doc = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let mut problems = Vec::new();
    for (heading, krate) in [("### `protocol/`", "protocol"), ("### `agent/`", "agent")] {
        let dir = repo().join(krate);
        let mut files = BTreeSet::new();
        sources(&dir.join("src"), &dir.join("src"), &mut files);
        let named = documented(&doc, heading, &dir);
        for f in files.difference(&named) {
            problems.push(format!("{krate}/src/{f} has no row in ARCHITECTURE.md"));
        }
        for f in named.difference(&files) {
            if !dir.join("src").join(f).exists() {
                problems.push(format!(
                    "ARCHITECTURE.md names {krate}/src/{f}, which does not exist"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md is out of date:\n{}",
        problems.join("\n")
    );
}
