//! The bounds every file this crate reads must stay within, checked before any YAML
//! parser builds a value from it.
//!
//! Deep nesting made the parse quadratic: a 200 KB job file holding `[[[[…` 100 000
//! deep took 47.7 s in `validate` and over a minute in `plan`. [`check`] refuses such a
//! file in milliseconds, with a [`Problem`] naming the file, the line and the limit, so
//! a scheduler that validates a job it was handed cannot be held up by it. Job specs
//! (native, runconfig, v2), workspace files and v2 datastore files all pass through
//! [`read`] or, given as text, through [`check`]. Nothing here parses a value.

use crate::locate::Location;
use crate::problem::{Problem, Problems};
use std::io::Read;
use std::path::Path;

/// The largest file read, in bytes: 4 MiB. The job, workspace and datastore files
/// stagehand reads are a few KB (the SDK's runconfig with every section is under
/// 3 KB); 4 MiB is a thousand times that, so no real file meets it, and a file at
/// the limit still parses in seconds: `validate` of a 4 MiB job with 100 000
/// environment variables took 2.6 s of CPU in a debug build, the depth scan 29 ms in
/// all for the 100 000-deep file that took 47.7 s before.
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The deepest nesting accepted: 64 collections (block or flow) one inside another.
/// The deepest real file nests 5 (a runconfig's
/// `environment.docker.baseImageRegistry.address`); 64 leaves room for any hand-written
/// structure and stops the quadratic case long before it costs anything.
pub const MAX_DEPTH: usize = 64;

/// Reads `file` (a `what`: "job spec", "workspace", …) within [`MAX_BYTES`] and checks
/// it with [`check`]. A larger file is refused from its size alone, without reading it.
pub fn read(file: &Path, what: &str) -> Result<String, Problems> {
    let cannot = |e: std::io::Error| refuse(file, None, format!("cannot read the {what}: {e}"));
    let f = std::fs::File::open(file).map_err(cannot)?;
    // The length is checked again on the bytes read: a special file reports 0.
    if let Ok(meta) = f.metadata() {
        if meta.len() > MAX_BYTES {
            return Err(too_large(file, what, meta.len()));
        }
    }
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_large(file, what, bytes.len() as u64));
    }
    // The same words `read_to_string` uses, as before the bound was added.
    let text = String::from_utf8(bytes).map_err(|_| {
        cannot(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })?;
    check(file, &text)?;
    Ok(text)
}

/// Refuses `text` (the content of `file`) when it is over [`MAX_BYTES`] or nests
/// deeper than [`MAX_DEPTH`]; otherwise the parsers may run on it.
///
/// The depth is measured by [`crate::nesting`], one pass over the characters that
/// builds nothing, so the check costs time in proportion to the text.
pub fn check(file: &Path, text: &str) -> Result<(), Problems> {
    if text.len() as u64 > MAX_BYTES {
        return Err(too_large(file, "file", text.len() as u64));
    }
    match crate::nesting::deeper_than(text, MAX_DEPTH) {
        None => Ok(()),
        Some(line) => Err(refuse(
            file,
            Some(Location { line, column: 1 }),
            format!(
                "nested more than {MAX_DEPTH} levels deep; stagehand refuses such a file before parsing it (no job, workspace or datastore file needs more)"
            ),
        )),
    }
}

/// The problem of a file over [`MAX_BYTES`]: the whole file, no line.
fn too_large(file: &Path, what: &str, len: u64) -> Problems {
    refuse(
        file,
        None,
        format!(
            "the {what} is {len} bytes, over the limit of {MAX_BYTES} bytes (4 MiB); stagehand refuses such a file before parsing it"
        ),
    )
}

/// One problem about the whole of `file`.
fn refuse(file: &Path, location: Option<Location>, message: String) -> Problems {
    Problems(vec![Problem {
        file: file.to_path_buf(),
        location,
        field: String::new(),
        message,
    }])
}

#[cfg(test)]
mod limits_tests {
    use super::*;
    use crate::aml::{self, Format, ImportOptions};

    /// `key: [[[[…]]]]` nested `depth` deep, under a v2 job's ignored `tags`.
    fn v2_job_nested(depth: usize) -> String {
        format!(
            r#"type: command
command: echo hi
tags:
  deep: {}x{}
"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    fn refused_line(p: Problems) -> (usize, String) {
        assert_eq!(p.0.len(), 1, "one problem: {p}");
        let p = &p.0[0];
        (p.location.map_or(0, |l| l.line), p.message.clone())
    }

    #[test]
    fn hundred_thousand_deep_file_is_refused_naming_file_line_and_limit() {
        let dir = std::env::temp_dir().join(format!("stagehand-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("deep.yml");
        let text = format!(
            r#"name: deep
command: [echo]
environment:
  X: {}
"#,
            "[".repeat(100_000)
        );
        std::fs::write(&file, &text).unwrap();
        let err = crate::load::load_job(&file).unwrap_err();
        let shown = err.to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            shown.starts_with(&format!("{}:4:", file.display())),
            "{shown}"
        );
        assert!(shown.contains("nested more than 64 levels deep"), "{shown}");
        // Every format refuses it the same way, given as text too.
        for format in [Format::Native, Format::Runconfig, Format::AmlJob] {
            let err = aml::parse_any_job(
                Path::new("deep.yml"),
                &text,
                Some(format),
                &ImportOptions::default(),
            )
            .unwrap_err();
            assert_eq!(refused_line(err).0, 4, "{format:?}");
        }
        let err = crate::load::parse_workspace(Path::new("ws.yaml"), &text).unwrap_err();
        assert!(refused_line(err).1.contains("64 levels"));
        let err = aml::v2_datastore::import(Path::new("ds.yml"), &text).unwrap_err();
        assert!(refused_line(err).1.contains("64 levels"));
    }

    #[test]
    fn block_nesting_counts_too() {
        let mut text = String::from(
            r#"type: command
command: echo hi
tags:
"#,
        );
        for i in 0..80 {
            text.push_str(&format!(
                r#"{}k{i}:
"#,
                "  ".repeat(i + 1)
            ));
        }
        let err = aml::v2_job::import(Path::new("job.yml"), &text).unwrap_err();
        let (line, message) = refused_line(err);
        assert!(message.contains("nested more than 64 levels"), "{message}");
        assert_eq!(line, 3 + 64, "the line where the 65th level opens");
    }

    #[test]
    fn brackets_in_quotes_and_block_scalars_are_text() {
        let text = format!(
            r#"type: command
command: |
  echo '{}'
tags:
  a: "{}"
  b: '{}'
"#,
            "[".repeat(500),
            "{".repeat(500),
            "[".repeat(500)
        );
        aml::v2_job::import(Path::new("job.yml"), &text).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn nesting_up_to_the_limit_loads() {
        // The top-level mapping and `tags` are two levels.
        let (job, report) =
            aml::v2_job::import(Path::new("job.yml"), &v2_job_nested(MAX_DEPTH - 2))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(job.value.command, ["bash", "-c", "echo hi"]);
        assert!(report.ignored.iter().any(|i| i.key == "tags"));
        let err =
            aml::v2_job::import(Path::new("job.yml"), &v2_job_nested(MAX_DEPTH - 1)).unwrap_err();
        assert!(refused_line(err).1.contains("64 levels"));
    }

    #[test]
    fn real_files_still_load() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/aml");
        let mut checked = 0;
        for dir in ["runconfig", "v2/jobs", "v2/datastore"] {
            for entry in std::fs::read_dir(fixtures.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|x| x != "py" && x != "md") {
                    read(&path, "file").unwrap_or_else(|e| panic!("{e}"));
                    checked += 1;
                }
            }
        }
        assert!(checked > 15, "only {checked} fixtures");
        for rel in ["runconfig/docker.runconfig", "runconfig/modes.runconfig"] {
            aml::load_any_job(&fixtures.join(rel), None, &ImportOptions::default())
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
        }
        aml::v2_datastore::load(&fixtures.join("v2/datastore/blob.yml"))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_file_over_four_mib_is_refused_by_its_size() {
        let text = format!(
            r#"name: big
command: [echo]
# {}
"#,
            "x".repeat(5 << 20)
        );
        let err = crate::load::parse_job(Path::new("big.yml"), &text).unwrap_err();
        let (line, message) = refused_line(err);
        assert_eq!(line, 0, "no line: the whole file");
        assert!(
            message.contains("over the limit of 4194304 bytes (4 MiB)"),
            "{message}"
        );
    }
}
