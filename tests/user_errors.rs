//! What a new user meets first: exit codes and messages that say what to
//! do — a missing input, a program not on the PATH, a reused run id.

use crate::common::*;
use std::path::PathBuf;

/// The hello example copied into a scratch folder, its job rewritten by `edit`.
fn hello(s: &Scratch, edit: impl Fn(String) -> String) -> PathBuf {
    let ex = s.path().join("hello");
    copy_example("hello", &ex);
    let job = ex.join("job.yaml");
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, edit(text)).unwrap();
    job
}

#[test]
fn a_missing_input_is_not_retryable_and_names_the_path() {
    let s = Scratch::new();
    let job = hello(&s, |t| {
        t.replace("greetings/names.txt", "greetings/nmes.txt")
    });
    let (_, err) = expect_code(&s.run(&job), code::NOT_FOUND_OR_DENIED);
    assert!(
        err.contains("\"greetings/nmes.txt\" does not exist"),
        "{err}"
    );
    let f = finished(&s.events());
    assert_eq!(f.exit_code, code::NOT_FOUND_OR_DENIED);
    assert!(!s.saw("started"), "the job must not start");
}

#[test]
fn a_program_not_on_the_path_is_not_started_and_its_near_name_is_offered() {
    let s = Scratch::new();
    let bin_dir = s.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let trainer = bin_dir.join("trainer");
    std::fs::write(&trainer, "#!/bin/sh\nexit 0\n").unwrap();
    let exec = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&trainer, exec).unwrap();
    let job = hello(&s, |t| {
        t.replace(r#"["sh", "hello.sh""#, r#"["trainr", "hello.sh""#)
    });
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let o = s.run_cmd(&job).env("PATH", path).output().unwrap();
    let (_, err) = expect_code(&o, 127);
    assert!(
        err.contains("program \"trainr\" was not found on PATH; did you mean `trainer`?"),
        "{err}"
    );
    assert!(!err.contains("job ended (exited)"), "{err}");
    let ev = s.events();
    assert_eq!(exited(&ev).reason, "not_started");
    assert!(
        finished(&ev)
            .error
            .unwrap_or_default()
            .contains("was not found on PATH"),
        "{:?}",
        finished(&ev)
    );
}

#[test]
fn a_reused_run_id_is_named_as_the_cause() {
    let s = Scratch::new();
    let job = hello(&s, |t| t);
    let run = |id: &str| s.run_cmd(&job).args(["--run-id", id]).output().unwrap();
    expect_code(&run("fixed"), 0);
    // The same job again (as a requeue runs it) writes the same bytes: not a conflict.
    expect_code(&run("fixed"), 0);
    // Another greeting under the same run id: other bytes where the first run's are.
    let howdy = |t: String| t.replace("GREETING: Hello", "GREETING: Howdy");
    hello(&s, howdy);
    let (_, err) = expect_code(&run("fixed"), code::UPLOAD_FAILED);
    assert!(
        err.contains("The run id \"fixed\" was used before (--run-id)"),
        "{err}"
    );
    assert!(!err.contains("Put {run_id} in the output's path"), "{err}");

    // An output path without the run id: then the advice is to put it there.
    let s = Scratch::new();
    let job = hello(&s, |t| t.replace("runs/{run_id}/greeting", "greeting"));
    expect_code(&s.run(&job), 0);
    hello(&s, |t| {
        howdy(t).replace("runs/{run_id}/greeting", "greeting")
    });
    let (_, err) = expect_code(&s.run(&job), code::UPLOAD_FAILED);
    assert!(err.contains("Put {run_id} in the output's path"), "{err}");
}

#[test]
fn plan_says_its_run_id_is_an_example_unless_pinned() {
    let s = Scratch::new();
    let job = hello(&s, |t| t);
    let o = stagehand(&["plan".as_ref(), job.as_os_str()]);
    let (out, _) = expect_code(&o, 0);
    assert!(out.contains("new at every run"), "{out}");
    let o = stagehand(&[
        "plan".as_ref(),
        job.as_os_str(),
        "--run-id".as_ref(),
        "p1".as_ref(),
    ]);
    let (out, _) = expect_code(&o, 0);
    assert!(
        out.contains("run id     p1\n") && !out.contains("new at every run"),
        "{out}"
    );
}

#[test]
fn sizes_in_the_log_are_for_people() {
    let s = Scratch::new();
    let job = hello(&s, |t| t);
    let (_, err) = expect_code(&s.run(&job), 0);
    assert!(err.contains("1 file(s), 16 B fetched"), "{err}");
    assert!(err.contains("1 file(s), 32 B uploaded"), "{err}");
}

#[test]
fn plan_check_reports_a_missing_input_a_wrong_key_and_a_missing_image_at_once() {
    use crate::common::azurite::{Azurite, KEY_FROM_ENV};
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    az.mkcontainer(&["box"]);
    let ws = az.workspace(&s, "job/workspace.yaml", "az", "box", KEY_FROM_ENV);
    let mut text = std::fs::read_to_string(&ws).unwrap();
    text.push_str(
        r#"  here: {type: local, root: ./data}
"#,
    );
    std::fs::write(&ws, text).unwrap();
    std::fs::create_dir_all(s.path().join("job/data")).unwrap();
    let job = s.write(
        "job/job.yaml",
        r#"name: preflight
command: ["true"]
container: {image: "stagehand-test-absent:1", pull: never}
inputs:
  typo: {datastore: here, path: nmes.txt, mode: download}
  remote: {datastore: az, path: set, mode: download}
"#,
    );
    let wrong = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS0wMTIzNDU2Nzg5YWJjZGVm";
    let o = std::process::Command::new(bin())
        .arg("plan")
        .arg(&job)
        .arg("--check")
        .in_scratch(&s)
        .env("TEST_AZ_KEY", wrong)
        .output()
        .unwrap();
    let (_, err) = expect_code(&o, code::NOT_FOUND_OR_DENIED);
    let failed: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("check FAILED"))
        .collect();
    assert_eq!(failed.len(), 3, "{err}");
    assert!(
        err.contains("input \"typo\": datastore \"here\": \"nmes.txt\" does not exist"),
        "{err}"
    );
    assert!(
        err.contains("input \"remote\": datastore \"az\": authentication failed"),
        "{err}"
    );
    assert!(err.contains("container: "), "{err}");
    if docker_available() {
        assert!(
            err.contains("\"stagehand-test-absent:1\" is not on the container engine"),
            "{err}"
        );
    }
    assert!(!err.contains(wrong), "the key leaked: {err}");
    // Nothing was written: no run folder.
    assert!(!s.path().join("runs").exists());
}

#[test]
fn run_checks_before_it_moves_a_byte_and_names_every_failure() {
    use crate::common::azurite::{Azurite, KEY_FROM_ENV};
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    az.mkcontainer(&["box"]);
    az.put("box", "set/a.txt", "remote bytes");
    let ws = az.workspace(&s, "job/workspace.yaml", "az", "box", KEY_FROM_ENV);
    let mut text = std::fs::read_to_string(&ws).unwrap();
    text.push_str("  here: {type: local, root: ./data}\n");
    std::fs::write(&ws, text).unwrap();
    s.write("job/data/names.txt", "present and readable\n");
    let job = s.write(
        "job/job.yaml",
        r#"name: preflight-run
command: ["sh", "-c", "echo ran > $AZUREML_DATAREFERENCE_out/ran.txt"]
inputs:
  good: {datastore: here, path: names.txt, mode: download}
  typo: {datastore: here, path: nmes.txt, mode: download}
  remote: {datastore: az, path: set, mode: download}
outputs:
  out: {datastore: here, path: "runs/{run_id}", mode: upload, upload_on: always}
"#,
    );
    let wrong = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS0wMTIzNDU2Nzg5YWJjZGVm";
    let o = s.run_cmd(&job).env("TEST_AZ_KEY", wrong).output().unwrap();
    let (_, err) = expect_code(&o, code::NOT_FOUND_OR_DENIED);
    let typo = "input \"typo\": datastore \"here\": \"nmes.txt\" does not exist";
    let auth = "input \"remote\": datastore \"az\": authentication failed";
    assert!(err.contains(typo) && err.contains(auth), "{err}");
    assert!(!err.contains(wrong), "the key leaked: {err}");
    let ev = s.events();
    let f = finished(&ev);
    assert_eq!(f.exit_code, code::NOT_FOUND_OR_DENIED);
    let error = f.error.unwrap_or_default();
    assert!(error.contains(typo) && error.contains(auth), "{error}");
    for kind in ["stage_started", "started", "upload_started"] {
        assert!(
            !s.saw(kind),
            "{kind} after a failed preflight: {:?}",
            kinds(&ev)
        );
    }
    // Nothing moved: no input on the node (not even the one that was there), no output
    // in the datastore.
    let inputs = s.run_dir().join("inputs");
    assert!(!inputs.exists() || std::fs::read_dir(&inputs).unwrap().next().is_none());
    assert!(!s.path().join("job/data/runs").exists());

    // With the key fixed and the name corrected the same job runs.
    let job_text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, job_text.replace("nmes.txt", "names.txt")).unwrap();
    let o = s
        .run_cmd(&job)
        .env("TEST_AZ_KEY", crate::common::azurite::KEY)
        .output()
        .unwrap();
    expect_code(&o, 0);
}

fn docker_available() -> bool {
    std::process::Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn datastore_register_set_default_and_unregister_edit_the_workspace_keeping_comments() {
    use crate::common::azurite::{Azurite, KEY};
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    let original = r#"# The team's registry. Keep this comment.
default_datastore: scratch   # where jobs write by default
datastores:
  # Node-local scratch space.
  scratch:
    type: local
    root: ./data
# End of registry.
"#;
    let ws = s.write("job/workspace.yaml", original);
    std::fs::create_dir_all(s.path().join("job/data")).unwrap();
    let ds = |key: &str, args: &[&str]| {
        std::process::Command::new(bin())
            .arg("datastore")
            .arg("-w")
            .arg(&ws)
            .args(args)
            .env("TEST_AZ_KEY", key)
            .output()
            .unwrap()
    };
    let endpoint = az.endpoint();
    let register = [
        "register",
        "blobs",
        "--type",
        "azure-blob",
        "--account-name",
        crate::common::azurite::ACCOUNT,
        "--container-name",
        "fresh",
        "--endpoint",
        &endpoint,
        "--account-key",
        "env:TEST_AZ_KEY",
        "--create-if-not-exists",
    ];
    // A wrong key: refused, naming authentication; the file is as it was.
    let wrong = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS0wMTIzNDU2Nzg5YWJjZGVm";
    let (so, se) = expect_code(&ds(wrong, &register), code::NOT_FOUND_OR_DENIED);
    assert!(se.contains("authentication"), "{se}");
    assert!(!se.contains(wrong) && !so.contains(wrong));
    assert_eq!(std::fs::read_to_string(&ws).unwrap(), original);
    // A key in clear is refused before anything happens.
    let mut clear = register;
    clear[11] = KEY;
    let (_, se) = expect_code(&ds(KEY, &clear), code::INVALID);
    assert!(
        se.contains("env:NAME or file:PATH") && !se.contains(KEY),
        "{se}"
    );
    // The right key: the container is made and the entry written.
    let (so, _) = expect_code(&ds(KEY, &register), 0);
    assert!(so.contains("created"), "{so}");
    let text = std::fs::read_to_string(&ws).unwrap();
    assert!(
        text.contains("account_key: {env: TEST_AZ_KEY}") && !text.contains(KEY),
        "{text}"
    );
    let (_, se) = expect_code(&ds(KEY, &register), code::INVALID);
    assert!(se.contains("--overwrite"), "{se}");
    // The new entry becomes the default, and the next run's output lands in it.
    expect_code(&ds(KEY, &["set-default", "blobs"]), 0);
    expect_code(&ds(KEY, &["unregister", "scratch"]), 0);
    let text = std::fs::read_to_string(&ws).unwrap();
    for kept in [
        "# The team's registry. Keep this comment.",
        "default_datastore: blobs # where jobs write by default",
        "# End of registry.",
    ] {
        assert!(
            text.contains(kept),
            r#"lost {kept:?}:
{text}"#
        );
    }
    assert!(!text.contains("scratch:"), "{text}");
    let job = s.write(
        "job/job.yaml",
        r#"name: lands
command: ["sh", "-c", "echo hi > $AZUREML_DATAREFERENCE_out/x.txt"]
outputs:
  out: {path: "runs/{run_id}", mode: upload}
"#,
    );
    let o = s
        .run_cmd(&job)
        .args(["--run-id", "reg1"])
        .env("TEST_AZ_KEY", KEY)
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert_eq!(az.get("fresh", "runs/reg1/x.txt"), "hi\n");
}

/// The bytes of one transfer's progress events, in order.
fn progress_bytes(events: &[Event], upload: bool, of: &str) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StageProgress { name, bytes, .. } if !upload && name == of => Some(*bytes),
            EventKind::UploadProgress { name, bytes, .. } if upload && name == of => Some(*bytes),
            _ => None,
        })
        .collect()
}

/// Progress moves inside one large file: a 128 MiB blob (sparse on the node, so made in
/// no time) goes up to Azurite as an output, then comes down as an input; with reports
/// every 20 ms, the download's reports show bytes strictly between nothing and the whole
/// file before it is done, and no report of either direction passes the file's size.
#[test]
fn progress_counts_bytes_inside_one_large_file() {
    use crate::common::azurite::{Azurite, KEY, KEY_FROM_ENV};
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    az.mkcontainer(&["box"]);
    az.workspace(&s, "job/workspace.yaml", "az", "box", KEY_FROM_ENV);
    const SIZE: u64 = 128 << 20;
    let up = s.write(
        "job/up.yaml",
        &format!(
            r#"name: make-big
command: ["truncate", "-s", "{SIZE}", "${{{{outputs.out}}}}/big.bin"]
outputs:
  out: {{path: data, mode: upload}}
"#
        ),
    );
    let run = |job: &std::path::Path| {
        let o = s
            .run_cmd(job)
            .env("TEST_AZ_KEY", KEY)
            .env("STAGEHAND_PROGRESS_MS", "20")
            // Hashing 256 MiB in a debug build takes longer than moving it.
            .env("STAGEHAND_AZURE_VERIFY_MD5", "never")
            .output()
            .unwrap();
        expect_code(&o, 0);
        s.events()
    };
    let ev = run(&up);
    let ups = progress_bytes(&ev, true, "out");
    assert!(ups.iter().all(|&b| b <= SIZE), "{ups:?}");
    assert_eq!(finished(&ev).bytes_uploaded, SIZE);

    let down = s.write(
        "job/down.yaml",
        r#"name: read-big
command: ["sh", "-c", "test $(stat -c %s $AZUREML_DATAREFERENCE_big) -gt 0"]
inputs:
  big: {path: data/big.bin, mode: download}
"#,
    );
    std::fs::remove_dir_all(s.run_dir()).unwrap();
    let ev = run(&down);
    let downs = progress_bytes(&ev, false, "big");
    assert!(downs.iter().all(|&b| b <= SIZE), "{downs:?}");
    assert!(
        downs.iter().any(|&b| b > 0 && b < SIZE),
        "no report inside the file: {downs:?}"
    );
    assert!(downs.windows(2).all(|w| w[0] <= w[1]), "{downs:?}");
    assert_eq!(stage_finished(&ev, "big").bytes, SIZE);
}
