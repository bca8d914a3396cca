//! Outputs that cannot be written: stdout, stderr or the events file
//! on `/dev/full` is a clear error and exit 74 (`OUTPUT_FAILED`), never a panic (101),
//! and a run whose events are lost says so and fails.

use crate::common::*;
use std::fs::OpenOptions;
use std::process::{Command, Output, Stdio};

/// `/dev/full`, opened for writing: every write fails with ENOSPC.
fn full() -> Stdio {
    Stdio::from(OpenOptions::new().write(true).open("/dev/full").unwrap())
}

/// The hello example, copied into the scratch folder; its job file.
fn hello(s: &Scratch) -> std::path::PathBuf {
    let ex = s.path().join("hello");
    copy_example("hello", &ex);
    ex.join("job.yaml")
}

fn no_panic(o: &Output) {
    let (_, se) = text(o);
    assert_ne!(o.status.code(), Some(101), "{se}");
    assert!(!se.contains("panicked"), "{se}");
}

#[test]
fn plan_and_friends_on_a_full_stdout_exit_74_and_say_so() {
    let s = Scratch::new();
    let job = hello(&s);
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["plan".into(), job.clone().into()],
        vec![
            "plan".into(),
            job.clone().into(),
            "--format".into(),
            "json".into(),
        ],
        vec!["validate".into(), job.clone().into()],
        vec!["schema".into(), "job".into()],
        vec!["convert".into(), job.clone().into()],
        vec![
            "datastore".into(),
            "list".into(),
            "--workspace".into(),
            s.path().join("hello/workspace.yaml").into(),
        ],
    ];
    for args in cases {
        let o = Command::new(bin())
            .args(&args)
            .in_scratch(&s)
            .stdout(full())
            .output()
            .unwrap();
        no_panic(&o);
        let (_, se) = expect_code(&o, code::OUTPUT_FAILED);
        assert!(
            se.contains("cannot write to stdout: No space left on device"),
            "{args:?}: {se}"
        );
    }
}

#[test]
fn a_run_with_a_full_stderr_fails_with_74_and_its_events_say_why() {
    let s = Scratch::new();
    let job = hello(&s);
    let o = s.run_cmd(&job).stderr(full()).output().unwrap();
    no_panic(&o);
    expect_code(&o, code::OUTPUT_FAILED);
    let f = finished(&s.events());
    assert_eq!(f.status, Status::AgentError);
    assert_eq!(f.exit_code, code::OUTPUT_FAILED);
    let error = f.error.unwrap_or_default();
    assert!(error.contains("cannot write to stderr"), "{error}");
}

#[test]
fn a_run_whose_events_cannot_be_written_says_so_and_does_not_run() {
    let s = Scratch::new();
    let job = hello(&s);
    let o = s.run_cmd_with_events(&job, "/dev/full").output().unwrap();
    no_panic(&o);
    let (_, se) = expect_code(&o, code::OUTPUT_FAILED);
    assert!(
        se.contains("cannot write to the events file: No space left on device"),
        "{se}"
    );
    assert!(se.contains("nothing was run"), "{se}");
    assert!(
        !s.run_dir().join("logs/stdout.log").exists(),
        "the job ran although its events were lost"
    );
}

#[test]
fn events_on_a_full_stdout_fail_the_run_and_stderr_says_so() {
    let s = Scratch::new();
    let job = hello(&s);
    let o = s
        .run_cmd_with_events(&job, "-")
        .stdout(full())
        .output()
        .unwrap();
    no_panic(&o);
    let (_, se) = expect_code(&o, code::OUTPUT_FAILED);
    assert!(se.contains("cannot write to stdout"), "{se}");
}
