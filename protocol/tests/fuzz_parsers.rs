//! A mutation fuzzer for the job spec and workspace parsers, run in the test suite for a
//! bounded number of cases (`PROPTEST_CASES`, default below): each case takes a valid
//! seed document and applies a few random mutations (bytes flipped, deleted, repeated;
//! hostile snippets inserted: deep nesting, aliases, tabs, control characters, huge
//! numbers, long keys), then parses it. A parser must answer every input with a spec or
//! with problems — never a panic — and problems must carry the file they are about.
//!
//! `cargo fuzz` needs a nightly toolchain, which this project does not use; proptest is
//! already here and shrinks a finding to a small input.

use proptest::prelude::*;
use stagehand_protocol::load::{parse_job, parse_workspace};
use std::path::Path;

const JOB: &str = r#"name: train
command: ["python", "train.py", "--data", "$AZUREML_DATAREFERENCE_data", "--out", "${{outputs.model}}"]
environment:
  EPOCHS: "3"
timeout: 2h
kill_grace: 10s
code: {local: ./src}
container: {image: "python:3.12", pull: missing, gpus: all, shm_size: 2GiB}
inputs:
  data: {datastore: blobs, path: datasets/mnist, mode: download, overwrite: false}
  shards: {path: "shards/{run_id}", mode: mount, mount_fallback: download}
outputs:
  model: {datastore: blobs, path: "models/{run_id}", mode: upload, upload_on: success}
"#;

const WORKSPACE: &str = r#"default_datastore: local
datastores:
  local: {type: local, root: ./data}
  blobs:
    type: azure_blob
    account_name: acct
    container_name: data
    endpoint: core.windows.net
    protocol: https
    credentials: {account_key: {env: KEY}}
  lake:
    type: azure_data_lake_gen2
    account_name: acct
    filesystem: fs
    credentials: {sas_token: {file: sas.txt}}
"#;

/// Snippets a hostile or broken file might hold.
const SNIPPETS: &[&str] = &[
    "[",
    "{",
    "]]]]",
    "&a [*a, *a, *a, *a]",
    "*a",
    "!!binary aGVsbG8=",
    "\t",
    "\u{0}",
    "\u{1b}[31m",
    "\u{feff}",
    "? complex\n: key",
    "--- \n",
    "...\n",
    "99999999999999999999999999",
    "-1",
    "1e400",
    "~",
    "''",
    "\"\\u0000\"",
    ": :",
    "- - -",
    "<<: *a",
    "%YAML 1.2\n",
    "../../etc/passwd",
    "$AZUREML_DATAREFERENCE_",
    "${{inputs.",
    "{run_id}",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
    Insert(usize, usize),
    Nest(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1usize..64, 2usize..200).prop_map(|(p, n, k)| Mutation::Repeat(p, n, k)),
        (any::<usize>(), 0..SNIPPETS.len()).prop_map(|(p, i)| Mutation::Insert(p, i)),
        (any::<usize>(), 1usize..20_000).prop_map(|(p, d)| Mutation::Nest(p, d)),
    ]
}

/// `seed` with `muts` applied, positions taken modulo the length at the time.
fn mutate(seed: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.as_bytes().to_vec();
    for m in muts {
        let at = |p: usize, b: &Vec<u8>| if b.is_empty() { 0 } else { p % b.len() };
        match *m {
            Mutation::Flip(p, x) if !b.is_empty() => {
                let i = at(p, &b);
                b[i] = x;
            }
            Mutation::Flip(..) => {}
            Mutation::Delete(p, n) => {
                let i = at(p, &b);
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Mutation::Repeat(p, n, k) => {
                let i = at(p, &b);
                let end = (i + n).min(b.len());
                let piece = b[i..end].repeat(k);
                b.splice(i..i, piece);
            }
            Mutation::Insert(p, s) => {
                let i = at(p, &b);
                b.splice(i..i, SNIPPETS[s].bytes());
            }
            Mutation::Nest(p, d) => {
                let i = at(p, &b);
                let mut nest = "[".repeat(d);
                nest.push_str(&"]".repeat(d / 2));
                b.splice(i..i, nest.into_bytes());
            }
        }
    }
    b
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_job_parser_answers_every_mutant(muts in prop::collection::vec(mutation(), 1..6)) {
        let bytes = mutate(JOB, &muts);
        let text = String::from_utf8_lossy(&bytes);
        let file = Path::new("fuzz/job.yaml");
        if let Err(p) = parse_job(file, &text) {
            prop_assert!(!p.0.is_empty(), "refused without a problem");
            prop_assert!(p.to_string().contains("job.yaml"), "{p}");
        }
    }

    #[test]
    fn the_workspace_parser_answers_every_mutant(muts in prop::collection::vec(mutation(), 1..6)) {
        let bytes = mutate(WORKSPACE, &muts);
        let text = String::from_utf8_lossy(&bytes);
        let file = Path::new("fuzz/workspace.yaml");
        if let Err(p) = parse_workspace(file, &text) {
            prop_assert!(!p.0.is_empty(), "refused without a problem");
            prop_assert!(p.to_string().contains("workspace.yaml"), "{p}");
        }
    }
}

#[test]
fn the_seeds_parse() {
    parse_job(Path::new("job.yaml"), JOB).unwrap_or_else(|p| panic!("{p}"));
    parse_workspace(Path::new("workspace.yaml"), WORKSPACE).unwrap_or_else(|p| panic!("{p}"));
}
