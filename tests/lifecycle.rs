//! The whole job lifecycle on the local datastore, driven through the binary.

use crate::common::*;

#[test]
fn hello_example_runs_and_its_output_lands() {
    let s = Scratch::new();
    // Copy the example so the test never writes into the repository.
    let ex = s.path().join("hello");
    copy_example("hello", &ex);
    let out = s.run(&ex.join("job.yaml"));
    expect_code(&out, 0);
    let ev = s.events();
    let main: Vec<String> = kinds(&ev)
        .into_iter()
        .filter(|k| {
            [
                "accepted", "staged", "started", "exited", "uploaded", "finished",
            ]
            .contains(&k.as_str())
        })
        .collect();
    assert_eq!(
        main,
        ["accepted", "staged", "started", "exited", "uploaded", "finished"]
    );
    assert_eq!(finished(&ev).status, Status::Succeeded);
    let run_id = ev[0].run_id.as_str();
    let landed = ex
        .join("data/runs")
        .join(run_id)
        .join("greeting/greeting.txt");
    assert_eq!(
        std::fs::read_to_string(&landed).unwrap(),
        "Hello, world!\nHello, stagehand!\n"
    );
}

/// The one test that reads the event stream as raw JSON: the names on the wire are a
/// contract with schedulers, which the protocol's types (used everywhere else) hide.
/// Every line carries `v`, `ts`, `run_id` and `event`, and each kind exactly its fields.
#[test]
fn the_event_stream_keeps_its_wire_format() {
    let s = Scratch::new();
    let ex = s.path().join("hello");
    copy_example("hello", &ex);
    let out = s
        .run_cmd(&ex.join("job.yaml"))
        .arg("--run-id")
        .arg("wire-1")
        .output()
        .unwrap();
    expect_code(&out, 0);
    let text = std::fs::read_to_string(s.events_file()).unwrap();
    let fields = |kind: &str| -> &[&str] {
        match kind {
            "accepted" => &["job", "run_dir"],
            "stage_started" => &["name", "mode", "source", "destination"],
            "stage_progress" | "upload_progress" => &["name", "files", "bytes"],
            "stage_finished" => &[
                "name",
                "files",
                "bytes",
                "skipped_files",
                "skipped_bytes",
                "cache_hits",
                "cache_hit_bytes",
                "cache_misses",
                "duration_ms",
                "retries",
            ],
            "staged" | "uploaded" => &["bytes", "duration_ms"],
            "started" => &["pid"],
            "exited" => &["exit_code", "reason", "duration_ms"],
            "upload_started" => &["name", "source", "destination"],
            "upload_finished" => &[
                "name",
                "files",
                "bytes",
                "skipped_files",
                "skipped_bytes",
                "duration_ms",
                "retries",
            ],
            "finished" => &[
                "status",
                "exit_code",
                "phase",
                "bytes_downloaded",
                "cache_hits",
                "cache_misses",
                "bytes_uploaded",
                "duration_ms",
                "peak_rss_bytes",
                "retries",
            ],
            other => panic!("unexpected event kind {other:?} in a plain run"),
        }
    };
    let mut seen = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        assert_eq!(v["v"], 1, "{line}");
        assert_eq!(v["run_id"], "wire-1", "{line}");
        let ts = v["ts"].as_str().unwrap_or_else(|| panic!("no ts: {line}"));
        assert!(
            ts.len() >= 20 && ts.as_bytes()[10] == b'T' && ts.ends_with('Z'),
            "ts is not RFC 3339 UTC: {line}"
        );
        let kind = v["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event: {line}"));
        let mut want: Vec<&str> = ["v", "ts", "run_id", "event"].to_vec();
        want.extend(fields(kind));
        want.sort_unstable();
        let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
        got.sort_unstable();
        assert_eq!(got, want, "the fields of {kind}");
        seen.push(kind.to_string());
    }
    for kind in [
        "accepted",
        "stage_started",
        "stage_finished",
        "staged",
        "started",
        "exited",
        "upload_started",
        "upload_finished",
        "uploaded",
        "finished",
    ] {
        assert!(seen.iter().any(|k| k == kind), "no {kind} in {seen:?}");
    }
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&last["status"], &last["phase"], &last["exit_code"]),
        (&"succeeded".into(), &"done".into(), &0.into())
    );
}

#[test]
fn exit_codes_are_as_documented() {
    // The README's table: schedulers depend on these numbers.
    assert_eq!(
        [
            code::INVALID,
            code::NOT_FOUND_OR_DENIED,
            code::INTERNAL,
            code::UPLOAD_FAILED,
            code::OUTPUT_FAILED,
            code::STAGING_FAILED,
            code::TIMED_OUT,
            code::CANCELLED
        ],
        [64, 66, 70, 73, 74, 75, 124, 130]
    );
}

/// A scratch folder with a local datastore `local` (the default) rooted at `data/`.
fn with_local_store(extra_ws: &str) -> Scratch {
    let s = Scratch::new();
    s.write(
        "workspace.yaml",
        &format!(
            r#"default_datastore: local
datastores:
  local:
    type: local
    root: ./data
{extra_ws}"#
        ),
    );
    std::fs::create_dir_all(s.path().join("data")).unwrap();
    s
}

fn assert_gone(pid: i32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Gone, or a zombie waiting for its new parent to reap it: either way not running.
    let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
    assert!(
        stat.is_empty() || state == Some('Z'),
        "process {pid} still running: {stat}"
    );
}

/// The text of the file at `p` once it is complete (ends with a newline); fails the
/// test after ten seconds.
fn wait_for_file(p: &std::path::Path, what: &str) -> String {
    let mut text = String::new();
    let complete = wait_until(std::time::Duration::from_secs(10), POLL, || {
        text = std::fs::read_to_string(p).unwrap_or_default();
        text.ends_with('\n')
    });
    assert!(complete, "{what} never appeared at {}", p.display());
    text
}

#[test]
fn job_exit_code_passes_through_and_upload_on_is_honoured() {
    let s = with_local_store("");
    let job = s.write(
        "job.yaml",
        r#"name: fails
command: ["sh", "-c", "echo partial > $AZUREML_DATAREFERENCE_always/ckpt.txt; echo x > ${{outputs.on_success}}/x.txt; env > $AZUREML_DATAREFERENCE_always/env.txt; exit 3"]
outputs:
  always: {path: "out/{run_id}/always", mode: upload}
  on_success: {path: "out/{run_id}/success", mode: upload, upload_on: success}
"#,
    );
    let out = s.run(&job);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    let ev = s.events();
    let run_id = ev[0].run_id.as_str().to_string();
    let base = s.path().join("data/out").join(&run_id);
    assert_eq!(
        std::fs::read_to_string(base.join("always/ckpt.txt")).unwrap(),
        "partial\n"
    );
    assert!(
        !base.join("success").exists(),
        "upload_on: success output was uploaded"
    );
    let fin = finished(&ev);
    assert_eq!(fin.status, Status::Failed);
    assert_eq!(fin.exit_code, 3);
    assert!(kinds(&ev).contains(&"upload_skipped".to_string()));
    let env = std::fs::read_to_string(base.join("always/env.txt")).unwrap();
    assert!(env.contains(&format!("STAGEHAND_RUN_ID={run_id}")));
    assert!(env.contains("STAGEHAND_JOB_NAME=fails"));
    assert!(env.contains(&format!("STAGEHAND_RUN_DIR={}", s.run_dir().display())));
    assert!(env.contains(&format!(
        "AZUREML_DATAREFERENCE_always={}",
        s.run_dir().join("outputs/always").display()
    )));
}

#[test]
fn sigterm_reaches_job_and_grandchild_and_nothing_survives() {
    let s = with_local_store("");
    let marks = s.path().join("marks");
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: sleeper
kill_grace: 5s
command:
  - sh
  - -c
  - |
    sh -c 'trap "echo grandchild >> {m}; exit 0" TERM; while :; do sleep 0.1; done' &
    echo "$$ $!" > {m}.pids
    trap 'echo child >> {m}; exit 143' TERM
    while :; do sleep 0.1; done
"#,
            m = marks.display()
        ),
    );
    let mut child = s
        .run_cmd(&job)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pids = wait_for_file(&s.path().join("marks.pids"), "the job's pid file");
    let pids: Vec<i32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success());
    let status = wait_exit(&mut child, std::time::Duration::from_secs(30));
    assert_eq!(status.code(), Some(code::CANCELLED));
    // The job ended through its own TERM handler (143), within the grace: the signal
    // reached it, and it was not killed at the grace's end.
    let ended = exited(&s.events());
    assert_eq!(
        (ended.exit_code, ended.reason.as_str()),
        (Some(143), "cancelled")
    );
    let got = std::fs::read_to_string(&marks).unwrap();
    assert!(
        got.contains("child") && got.contains("grandchild"),
        "signals seen: {got:?}"
    );
    for p in pids {
        assert_gone(p);
    }
    let ev = s.events();
    let fin = finished(&ev);
    assert_eq!(fin.status, Status::Cancelled);
    assert_eq!(fin.exit_code, code::CANCELLED);
}

#[test]
fn timeout_kills_the_job_and_its_grandchildren() {
    let s = with_local_store("");
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: slow
timeout: 2s
kill_grace: 1s
command:
  - sh
  - -c
  - |
    sh -c 'trap "" TERM; while :; do sleep 0.1; done' &
    echo "$$ $!" > {p}
    trap '' TERM
    while :; do sleep 0.1; done
"#,
            p = s.path().join("pids").display()
        ),
    );
    let out = s.run(&job);
    assert_eq!(out.status.code(), Some(code::TIMED_OUT), "{:?}", text(&out));
    let pids = std::fs::read_to_string(s.path().join("pids")).unwrap();
    for p in pids.split_whitespace() {
        assert_gone(p.parse().unwrap());
    }
    let ev = s.events();
    let exited = exited(&ev);
    assert_eq!(exited.reason, "timed_out");
    assert_eq!(
        exited.signal,
        Some(9),
        "ignored SIGTERM, so SIGKILL after the grace"
    );
    assert_eq!(finished(&ev).status, Status::TimedOut);
}

#[test]
fn invalid_specs_exit_64_name_field_and_line_and_create_nothing() {
    // (what, job text, field path expected in the error, line expected)
    let cases: &[(&str, &str, &str, usize)] = &[
        (
            "unknown mode",
            r#"name: j
command: [true]
inputs:
  x: {path: a, mode: mnt}
"#,
            "inputs.x.mode",
            4,
        ),
        (
            "unknown datastore",
            r#"name: j
command: [true]
inputs:
  x:
    datastore: nope
    path: a
    mode: download
"#,
            "inputs.x.datastore",
            5,
        ),
        (
            "duplicate name",
            r#"name: j
command: [true]
inputs:
  x: {path: a, mode: download}
outputs:
  x: {path: b, mode: upload}
"#,
            "outputs.x",
            6,
        ),
        (
            "unknown input reference",
            r#"name: j
command: [echo, "${{inputs.y}}"]
"#,
            "command[1]",
            2,
        ),
        (
            "unknown dataref reference",
            r#"name: j
command:
  - echo
  - --in=$AZUREML_DATAREFERENCE_nope/x
"#,
            "command[1]",
            4,
        ),
        (
            "bad yaml",
            r#"name: j
command: [true
"#,
            "",
            3,
        ),
        (
            "wrong type",
            r#"name: j
command: "python train.py"
"#,
            "command",
            2,
        ),
        (
            "path escaping the root",
            r#"name: j
command: [true]
inputs:
  x: {path: ../.., mode: download}
"#,
            "inputs.x.path",
            4,
        ),
        (
            "missing command",
            r#"name: j
"#,
            "command",
            0,
        ),
        (
            "bad timeout",
            r#"name: j
command: [true]
timeout: soon
"#,
            "timeout",
            3,
        ),
        (
            "unknown top-level field",
            r#"name: j
command: [true]
retries: 3
"#,
            "retries",
            3,
        ),
        (
            "unknown input field",
            r#"name: j
command: [true]
inputs:
  x:
    path: a
    mode: download
    cache: yes
"#,
            "inputs.x.cache",
            7,
        ),
        (
            "name not an env suffix",
            r#"name: j
command: [true]
inputs:
  my-data: {path: a, mode: download}
"#,
            "inputs.my-data",
            4,
        ),
        (
            "upload as input",
            r#"name: j
command: [true]
inputs:
  x: {path: a, mode: upload}
"#,
            "inputs.x.mode",
            4,
        ),
        (
            "empty command",
            r#"name: j
command: []
"#,
            "command",
            2,
        ),
        (
            "path_on_compute escaping the run folder",
            r#"name: j
command: [true]
inputs:
  x: {path: a, mode: download, path_on_compute: ../../etc}
"#,
            "inputs.x.path_on_compute",
            4,
        ),
    ];
    assert!(cases.len() >= 12);
    for (what, yaml, field, line) in cases {
        let s = with_local_store("");
        let job = s.write("job.yaml", yaml);
        let out = s.run(&job);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(code::INVALID), "{what}: {err}");
        if !field.is_empty() {
            assert!(
                err.contains(&format!(": {field}: ")),
                "{what}: field {field} not named in {err:?}"
            );
        }
        if *line > 0 {
            assert!(
                err.contains(&format!("job.yaml:{line}:")),
                "{what}: line {line} not named in {err:?}"
            );
        }
        assert!(!s.run_dir().exists(), "{what}: a run folder was created");
        assert!(
            !s.path().join("runs").exists(),
            "{what}: a run folder was created"
        );
        let fin = s.events();
        assert_eq!(finished(&fin).phase, Phase::Validate, "{what}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let s = with_local_store("");
    let job = s.write(
        "job.yaml",
        r#"name: j
command: [echo, "${{inputs.nope}}"]
timeout: soon
inputs:
  a: {path: x, mode: mnt}
  b: {path: ../y, mode: download}
"#,
    );
    let out = std::process::Command::new(bin())
        .arg("validate")
        .arg(&job)
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(code::INVALID));
    for f in ["timeout", "inputs.a.mode", "inputs.b.path"] {
        assert!(err.contains(&format!(": {f}: ")), "{f} missing from {err}");
    }
}

/// A local datastore (`data/`) whose folder `set` holds `ok.txt` and a symlink
/// `leak.txt` to a file outside it, beside a symlink `escape` to the folder outside,
/// which holds `secret.txt`. Returns that folder.
fn escapes(s: &Scratch) -> std::path::PathBuf {
    let outside = s.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "do not copy").unwrap();
    std::fs::create_dir_all(s.path().join("data/set")).unwrap();
    std::fs::write(s.path().join("data/set/ok.txt"), "ok").unwrap();
    std::os::unix::fs::symlink(
        outside.join("secret.txt"),
        s.path().join("data/set/leak.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, s.path().join("data/escape")).unwrap();
    outside
}

#[test]
fn escaping_paths_and_symlinks_are_refused_and_nothing_lands_outside() {
    let s = with_local_store("");
    escapes(&s);
    for (path, what) in [
        ("set", "a symlinked file"),
        ("escape", "a symlinked folder"),
    ] {
        let job = s.write(
            "job.yaml",
            &format!(
                r#"name: j
command: [true]
inputs:
  x: {{path: {path}, mode: download}}
"#
            ),
        );
        let out = s.run(&job);
        let (_, err) = text(&out);
        // A refused name is refused every time: not worth a retry.
        assert_eq!(
            out.status.code(),
            Some(code::NOT_FOUND_OR_DENIED),
            "{what}: {err}"
        );
        assert!(
            err.contains("outside the datastore's root"),
            "{what}: {err}"
        );
        let target = s.run_dir().join("inputs/x");
        let copied: Vec<_> = walk(&target)
            .into_iter()
            .filter(|p| std::fs::read_to_string(p).ok().as_deref() == Some("do not copy"))
            .collect();
        assert!(copied.is_empty(), "{what}: secret copied to {copied:?}");
        std::fs::remove_dir_all(s.run_dir()).ok();
    }
    let job = s.write(
        "job.yaml",
        r#"name: j
command: [true]
inputs:
  x: {path: ../.., mode: download}
"#,
    );
    assert_eq!(s.run(&job).status.code(), Some(code::INVALID));
}

/// Mount mode on a local datastore, in place (the default) or through FUSE
/// (`STAGEHAND_LOCAL_MOUNT=fuse`): a symlink out of the datastore is refused there too,
/// and the job never reads what it points at.
#[test]
fn a_symlink_out_of_a_local_datastore_is_refused_when_mounted() {
    let s = with_local_store("");
    escapes(&s);
    let fuse = crate::common::fuse::fuse_ready_or("only the in-place mount is checked");
    for via_fuse in [false, true] {
        if via_fuse && !fuse {
            continue;
        }
        for path in ["set", "escape"] {
            let job = s.write(
                "job.yaml",
                &format!(
                    r#"name: j
command: [sh, -c, 'cat "$0"/* 2>&1; exit 0', "$AZUREML_DATAREFERENCE_x"]
inputs:
  x: {{path: {path}, mode: mount}}
"#
                ),
            );
            let mut cmd = s.run_cmd(&job);
            if via_fuse {
                cmd.env("STAGEHAND_LOCAL_MOUNT", "fuse");
            }
            let out = output_within(&mut cmd, std::time::Duration::from_secs(60));
            let (so, se) = text(&out);
            let what = format!("{path} (fuse: {via_fuse})");
            assert!(!so.contains("do not copy"), "{what}: the job read it: {so}");
            // In place, staging resolves every name first and refuses; through FUSE the
            // escaping folder cannot be mounted, and an escaping file cannot be read.
            if !via_fuse || path == "escape" {
                assert_eq!(
                    out.status.code(),
                    Some(code::NOT_FOUND_OR_DENIED),
                    "{what}: {se}"
                );
                assert!(
                    se.contains("outside the datastore's root")
                        || se.contains("leaves the datastore's root"),
                    "{what}: {se}"
                );
            }
            std::fs::remove_dir_all(s.run_dir()).ok();
        }
    }
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn plan_shows_everything_and_writes_nothing() {
    let s = with_local_store("");
    s.write("data/sets/a/1.txt", "one");
    let job = s.write(
        "job.yaml",
        r#"name: p
command: [python, train.py, --data, $AZUREML_DATAREFERENCE_train, "--out=${{outputs.model}}/m"]
environment: {LR: "0.1"}
inputs:
  train: {path: sets/a, mode: download}
outputs:
  model: {path: "models/{run_id}", mode: upload}
"#,
    );
    let run_dir = s.run_dir();
    let plan = |fmt: &str| {
        std::process::Command::new(bin())
            .args(["plan", "--run-id", "r1", "--format", fmt])
            .arg(&job)
            .arg("--run-dir")
            .arg(&run_dir)
            .output()
            .unwrap()
    };
    let out = plan("text");
    let (so, _) = expect_code(&out, 0);
    let train = run_dir.join("inputs/train/a");
    let model = run_dir.join("outputs/model");
    assert!(
        so.contains(&format!(
            "python train.py --data {} --out={}/m",
            train.display(),
            model.display()
        )),
        "{so}"
    );
    assert!(
        so.contains(&format!("AZUREML_DATAREFERENCE_train={}", train.display())),
        "{so}"
    );
    assert!(
        so.contains("LR=0.1") && so.contains("STAGEHAND_RUN_ID=r1"),
        "{so}"
    );
    assert!(
        so.contains(&format!("local:sets/a -> {}", train.display())),
        "{so}"
    );
    assert!(
        so.contains(&format!("{} -> local:models/r1", model.display())),
        "{so}"
    );

    let out = plan("json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run_id"], "r1");
    assert_eq!(v["command"][3], train.display().to_string());
    assert_eq!(
        v["environment"]["AZUREML_DATAREFERENCE_model"],
        model.display().to_string()
    );
    assert_eq!(v["inputs"][0]["datastore"], "local");
    assert_eq!(v["inputs"][0]["path"], "sets/a");
    assert_eq!(v["inputs"][0]["mode"], "download");
    assert_eq!(v["outputs"][0]["path"], "models/r1");
    assert!(!run_dir.exists(), "plan created the run folder");
    assert!(!s.path().join("runs").exists());
    assert_eq!(
        walk(&s.path().join("data")).len(),
        1,
        "plan wrote into the datastore"
    );
}

#[test]
fn rerun_of_unchanged_download_copies_nothing_and_overwrite_forces_it() {
    let s = with_local_store("");
    for i in 0..20 {
        s.write(
            &format!("data/set/d{}/f{i}.bin", i % 3),
            &"x".repeat(1000 + i),
        );
    }
    let spec = |overwrite: bool| {
        format!(
            r#"name: r
command: [true]
inputs:
  x: {{path: set, mode: download, overwrite: {overwrite}}}
"#
        )
    };
    let job = s.write("job.yaml", &spec(false));
    let stage = |s: &Scratch| {
        let f = stage_finished(&s.events(), "x");
        (f.files, f.bytes, f.skipped_files)
    };
    assert_eq!(s.run(&job).status.code(), Some(0));
    assert_eq!(stage(&s), (20, 20_190, 0));
    assert_eq!(s.run(&job).status.code(), Some(0));
    assert_eq!(stage(&s), (0, 0, 20), "a re-run copied bytes");
    // A changed source file is fetched again; the rest are kept.
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.write("data/set/d0/f0.bin", "changed");
    assert_eq!(s.run(&job).status.code(), Some(0));
    assert_eq!(stage(&s), (1, 7, 19));
    assert_eq!(
        std::fs::read_to_string(s.run_dir().join("inputs/x/set/d0/f0.bin")).unwrap(),
        "changed"
    );
    let job = s.write("job.yaml", &spec(true));
    assert_eq!(s.run(&job).status.code(), Some(0));
    assert_eq!(stage(&s).0, 20, "overwrite: true did not copy afresh");
}

#[test]
fn upload_without_overwrite_refuses_to_replace_and_names_the_file() {
    let s = with_local_store("");
    s.write("data/fixed/out/model.bin", "old");
    let job = s.write(
        "job.yaml",
        r#"name: u
command: [sh, -c, "echo new > $AZUREML_DATAREFERENCE_o/model.bin; echo n > $AZUREML_DATAREFERENCE_o/other.bin"]
outputs:
  o: {path: fixed/out, mode: upload}
"#,
    );
    let out = s.run(&job);
    let (_, err) = expect_code(&out, code::UPLOAD_FAILED);
    assert!(
        err.contains("fixed/out/model.bin") && err.contains("{run_id}"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(s.path().join("data/fixed/out/model.bin")).unwrap(),
        "old"
    );
    assert!(
        !s.path().join("data/fixed/out/other.bin").exists(),
        "a partial output was uploaded"
    );
    assert_eq!(finished(&s.events()).status, Status::Failed);
}

#[test]
fn code_snapshot_is_the_working_folder() {
    let s = with_local_store("");
    s.write(
        "data/snapshots/abc/run.sh",
        r#"echo from-snapshot > "$1/where.txt"; pwd >> "$1/where.txt"
"#,
    );
    let job = s.write(
        "job.yaml",
        r#"name: c
code: {path: snapshots/abc}
command: [sh, run.sh, "${{outputs.o}}"]
outputs:
  o: {path: "res/{run_id}", mode: upload}
"#,
    );
    let out = s.run(&job);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let run_id = s.events()[0].run_id.as_str().to_string();
    let got =
        std::fs::read_to_string(s.path().join("data/res").join(run_id).join("where.txt")).unwrap();
    assert_eq!(
        got,
        format!("from-snapshot\n{}\n", s.run_dir().join("code").display())
    );
}

#[test]
fn secrets_never_appear_anywhere() {
    const LITERAL: &str = "LiteralKey+abc/123==";
    const FROM_ENV: &str = "sv=2024-01-01&sig=EnvSecretSig%2Fxyz";
    let s = with_local_store(&format!(
        r#"  vault:
    type: azure_blob
    account_name: acct
    container_name: c
    credentials:
      account_key: "{LITERAL}"
  other:
    type: azure_blob
    account_name: acct
    container_name: d
    credentials:
      sas_token: {{env: STAGEHAND_TEST_SAS}}
"#
    ));
    let job = s.write(
        "job.yaml",
        r#"name: s
command: [sh, -c, "env; echo done"]
outputs:
  o: {path: "o/{run_id}", mode: upload}
"#,
    );
    let mut cmd = s.run_cmd(&job);
    cmd.arg("-vv").env("STAGEHAND_TEST_SAS", FROM_ENV);
    let out = cmd.output().unwrap();
    let (so, se) = expect_code(&out, 0);
    assert!(so.contains("done"));
    assert!(
        se.contains("literal secret"),
        "no warning about the literal secret: {se}"
    );
    let logs = std::fs::read_to_string(s.run_dir().join("logs/stdout.log")).unwrap();
    let events = std::fs::read_to_string(s.events_file()).unwrap();
    let plan = |fmt: &str| {
        let o = std::process::Command::new(bin())
            .args(["plan", "--format", fmt])
            .arg(&job)
            .env("STAGEHAND_TEST_SAS", FROM_ENV)
            .output()
            .unwrap();
        let (a, b) = text(&o);
        a + &b
    };
    // A job that uses the secret datastore fails (this build cannot reach it): its error too.
    let bad = s.write(
        "bad.yaml",
        r#"name: b
command: [true]
inputs:
  x: {datastore: vault, path: a, mode: download}
"#,
    );
    let bad_out = s
        .run_cmd(&bad)
        .env("STAGEHAND_TEST_SAS", FROM_ENV)
        .output()
        .unwrap();
    let (b1, b2) = text(&bad_out);
    for (what, hay) in [
        ("stdout", &so),
        ("stderr", &se),
        ("job log", &logs),
        ("events", &events),
        ("plan", &plan("text")),
        ("plan json", &plan("json")),
        ("error", &(b1 + &b2)),
    ] {
        for secret in [LITERAL, FROM_ENV, "EnvSecretSig"] {
            assert!(
                !hay.contains(secret),
                "{secret:?} leaked into {what}: {hay}"
            );
        }
    }
    assert!(
        !logs.contains("STAGEHAND_TEST_SAS="),
        "the secret's variable reached the job"
    );
}
