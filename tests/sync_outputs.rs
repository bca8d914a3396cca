//! Outputs that sync while the job runs (`sync: <interval>`), uploads that skip what is
//! already there unchanged (a requeue), run folders that clean up after a successful
//! run, and a reused `--run-id` that does not upload another job's files.

use crate::common::azurite::{Azurite, KEY, KEY_FROM_ENV};
use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A scratch folder whose workspace has the local datastore `local` at `./store`.
fn with_local_store() -> Scratch {
    let s = Scratch::new();
    s.write(
        "workspace.yaml",
        "default_datastore: local\ndatastores:\n  local: {type: local, root: ./store}\n",
    );
    std::fs::create_dir_all(s.path().join("store")).unwrap();
    s
}

/// The `sync_pass` events: (time, files, duration) of each.
fn passes(events: &[Event]) -> Vec<(SystemTime, u64, u64)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SyncPass {
                files, duration_ms, ..
            } => Some((
                humantime::parse_rfc3339(&e.ts).unwrap(),
                *files,
                *duration_ms,
            )),
            _ => None,
        })
        .collect()
}

/// `upload_finished` of `name`: (files, skipped files).
fn upload_finished(events: &[Event], name: &str) -> (u64, u64) {
    events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::UploadFinished {
                name: n,
                files,
                skipped_files,
                ..
            } if n == name => Some((*files, *skipped_files)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no upload_finished for {name}: {:?}", kinds(events)))
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

/// The issue's acceptance test: a job writing a checkpoint every second with
/// `sync: 2s`, the agent (and so the job) SIGKILLed mid-run. Every checkpoint that was
/// whole before the second-to-last pass looked is in the datastore; nothing there is
/// partial (each blob is byte-for-byte its local file); a file held open for writing
/// (still, or written slowly) never went up; a file rewritten went up again.
#[test]
fn checkpoints_synced_while_the_job_runs_survive_a_sigkill_of_the_agent() {
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    az.mkcontainer(&["ckpt"]);
    az.workspace(&s, "workspace.yaml", "blob", "ckpt", KEY_FROM_ENV);
    let job = s.write(
        "job.yaml",
        r#"name: trainer
command:
  - bash
  - -c
  - |
    cd "$1"
    exec 3> held.bin; printf 'half of it' >&3
    exec 4> slow.bin; (while :; do printf x >&4; sleep 0.7; done) &
    echo v1 > state.txt
    for i in $(seq -w 1 60); do
      head -c 300000 /dev/urandom > ckpt-00$i.pt
      [ "$i" = 04 ] && echo v2 > state.txt
      sleep 1
    done
  - bash
  - ${{outputs.out}}
outputs:
  out: {path: "runs/{run_id}", mode: upload, overwrite: true, sync: 2s}
"#,
    );
    let mut child = s
        .run_cmd_as_shipped(&job)
        .args(["--run-id", "killed"])
        .env("TEST_AZ_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = s.run_dir().join("outputs/out");
    // Enough passes that uploaded checkpoints, and the rewritten state, are up.
    let synced = wait_until(Duration::from_secs(40), POLL, || {
        let p = passes(&s.events());
        p.iter().map(|x| x.1).sum::<u64>() >= 5 && p.len() >= 4 && {
            let got = az.sha256s("ckpt", "runs/killed/state.txt");
            got.values()
                .next()
                .is_some_and(|h| *h == hex(&<sha2::Sha256 as sha2::Digest>::digest(b"v2\n")))
        }
    });
    // SIGKILL: no chance to upload anything more, or to clean anything up.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(synced, "events: {:?}", kinds(&s.events()));
    let events = s.events();
    assert!(!events.iter().any(|e| kind_of(e) == "finished"));
    let stored = az.sha256s("ckpt", "runs/killed");
    // Nothing partial: every blob is its local file, whole.
    for (name, sha) in &stored {
        let local = out.join(name.trim_start_matches("runs/killed/"));
        assert_eq!(*sha, sha256_file(&local), "{name} differs from {local:?}");
    }
    for open in ["held.bin", "slow.bin"] {
        assert!(
            !stored.contains_key(&format!("runs/killed/{open}")),
            "a file held open for writing went up: {stored:?}"
        );
    }
    // Every checkpoint already whole when the second-to-last pass listed the folder was
    // seen unchanged by the last one, closed, and uploaded by it.
    let p = passes(&events);
    let (at, _, took) = p[p.len() - 2];
    let listed = at - Duration::from_millis(took + 50);
    let mut older = 0;
    for e in std::fs::read_dir(&out).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("ckpt-") && e.metadata().unwrap().modified().unwrap() < listed {
            older += 1;
            assert!(
                stored.contains_key(&format!("runs/killed/{name}")),
                "{name} was whole two passes ago but is not in the datastore: {stored:?}"
            );
        }
    }
    assert!(older >= 3, "only {older} checkpoints old enough to check");
    // The record of what moved is whole JSON (written beside and renamed).
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.run_dir().join("uploaded.json")).unwrap()).unwrap();
    assert!(record["files"].as_object().unwrap().len() >= 5);
}

/// SIGTERM mid-job: the job gets it, writes its last file, and the agent uploads what
/// the sync passes had not yet sent; the run is recorded as cancelled.
#[test]
fn sigterm_mid_job_uploads_the_rest_and_reports_cancelled() {
    let s = with_local_store();
    let job = s.write(
        "job.yaml",
        r#"name: stopped
kill_grace: 5s
command:
  - bash
  - -c
  - |
    cd "$1"
    trap 'echo last > final.txt; exit 0' TERM
    echo early > early.txt
    while :; do sleep 0.1; done
  - bash
  - ${{outputs.out}}
outputs:
  out: {path: results, mode: upload, sync: 1s}
"#,
    );
    let mut child = s
        .run_cmd_as_shipped(&job)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let early = s.path().join("store/results/early.txt");
    let synced = wait_until(Duration::from_secs(30), POLL, || early.exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(synced, "early.txt was not synced: {:?}", kinds(&s.events()));
    assert_eq!(status.code(), Some(code::CANCELLED));
    let events = s.events();
    assert_eq!(finished(&events).status, Status::Cancelled);
    assert_eq!(
        std::fs::read_to_string(s.path().join("store/results/final.txt")).unwrap(),
        "last\n"
    );
    assert_eq!(std::fs::read_to_string(&early).unwrap(), "early\n");
    // early.txt went up once, by the sync pass; the upload at exit skipped it.
    assert_eq!(upload_finished(&events, "out"), (1, 1));
    // The run's total counts what the pass sent too.
    assert_eq!(finished(&events).bytes_uploaded, 11);
}

/// A requeue-like second run with the same run id and `overwrite: false`: the files it
/// writes again with the same bytes are already at the destination and are skipped,
/// not conflicts; a file whose bytes changed is still refused, by name.
#[test]
fn a_rerun_with_the_same_run_id_skips_identical_files_and_refuses_a_changed_one() {
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    az.mkcontainer(&["out"]);
    az.workspace(&s, "workspace.yaml", "blob", "out", KEY_FROM_ENV);
    s.write("source/a.txt", "alpha\n");
    s.write("source/b.txt", "beta\n");
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: requeued
command: [sh, -c, 'cp "$1"/* "$2"/', sh, "{}", "${{{{outputs.out}}}}"]
outputs:
  out: {{path: "runs/{{run_id}}", mode: upload}}
"#,
            s.path().join("source").display()
        ),
    );
    let run = || {
        s.run_cmd_as_shipped(&job)
            .args(["--run-id", "again"])
            .env("TEST_AZ_KEY", KEY)
            .output()
            .unwrap()
    };
    expect_code(&run(), 0);
    assert_eq!(upload_finished(&s.events(), "out"), (2, 0));
    // The same job again, as a requeue runs it: the same bytes land again.
    expect_code(&run(), 0);
    assert_eq!(upload_finished(&s.events(), "out"), (0, 2));
    // One file's bytes changed: refused by name, the other still skipped.
    s.write("source/a.txt", "alpha, changed\n");
    let o = run();
    let (_, err) = text(&o);
    assert_ne!(o.status.code(), Some(0));
    let f = finished(&s.events());
    let error = f.error.unwrap_or_default();
    assert!(error.contains("runs/again/a.txt"), "{error}\n{err}");
    assert!(!error.contains("b.txt"), "{error}");
    assert_eq!(az.get("out", "runs/again/a.txt"), "alpha\n");
}

/// The run folder after a run: a successful one keeps its logs, events and records but
/// not its download copies or uploaded outputs; `keep_run_dir: true`, `--keep-run-dir`
/// and a failed run keep both.
#[test]
fn a_successful_run_leaves_no_staged_input_or_uploaded_output_in_its_folder() {
    let s = with_local_store();
    s.write("store/data/in.txt", "input\n");
    // A link out of the run folder in the staged input: removed as a link, never followed.
    s.write("precious/keep.txt", "keep\n");
    let job_text = |keep: bool, code: i32| {
        format!(
            r#"name: tidy
keep_run_dir: {keep}
command: [sh, -c, 'cp "$1"/in.txt "$2"/out.txt; ln -s "{precious}" "$1"/link; exit {code}', sh, "${{{{inputs.data}}}}", "${{{{outputs.out}}}}"]
inputs:
  data: {{path: data, mode: download}}
outputs:
  out: {{path: "results/{{run_id}}", mode: upload, overwrite: true}}
"#,
            precious = s.path().join("precious").display()
        )
    };
    let staged = s.run_dir().join("inputs/data/data/in.txt");
    let output = s.run_dir().join("outputs/out/out.txt");
    // Default: cleaned.
    let job = s.write("job.yaml", &job_text(false, 0));
    let o = s
        .run_cmd_as_shipped(&job)
        .args(["--run-id", "one"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(
        !staged.exists() && !output.exists(),
        "{:?}",
        walk(&s.run_dir())
    );
    assert!(s.run_dir().join("logs").is_dir());
    assert!(s.run_dir().join("uploaded.json").is_file());
    assert_eq!(
        std::fs::read_to_string(s.path().join("store/results/one/out.txt")).unwrap(),
        "input\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.path().join("precious/keep.txt")).unwrap(),
        "keep\n"
    );
    let cleaned = s.events().iter().any(|e| kind_of(e) == "run_dir_cleaned");
    assert!(cleaned, "{:?}", kinds(&s.events()));
    // keep_run_dir: true in the spec.
    let job = s.write("job.yaml", &job_text(true, 0));
    let o = s
        .run_cmd_as_shipped(&job)
        .args(["--run-id", "two"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(staged.exists() && output.exists());
    std::fs::remove_dir_all(s.run_dir()).unwrap();
    // --keep-run-dir.
    let job = s.write("job.yaml", &job_text(false, 0));
    let o = s
        .run_cmd_as_shipped(&job)
        .args(["--run-id", "three", "--keep-run-dir"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(staged.exists() && output.exists());
    std::fs::remove_dir_all(s.run_dir()).unwrap();
    // A failed run keeps its folder (its output was uploaded: upload_on is always).
    let job = s.write("job.yaml", &job_text(false, 3));
    let o = s
        .run_cmd_as_shipped(&job)
        .args(["--run-id", "four"])
        .output()
        .unwrap();
    expect_code(&o, 3);
    assert!(
        staged.exists() && output.exists(),
        "{:?} {:?}",
        walk(&s.run_dir()),
        kinds(&s.events())
    );
    assert!(s.path().join("store/results/four/out.txt").exists());
}

/// `run a.yaml --run-id x`, then `run b.yaml --run-id x`: b uploads only its own files;
/// a's outputs are moved aside under the run folder, with a warning naming where.
#[test]
fn a_reused_run_id_uploads_only_the_second_jobs_files() {
    let s = with_local_store();
    let job = |name: &str, file: &str| {
        s.write(
            &format!("{name}.yaml"),
            &format!(
                r#"name: {name}
command: [sh, -c, 'echo {name} > "$1"/{file}', sh, "${{{{outputs.out}}}}"]
outputs:
  out: {{path: "{name}-results", mode: upload}}
"#
            ),
        )
    };
    let (a, b) = (job("a", "a.txt"), job("b", "b.txt"));
    // a keeps its folder (as a failed or kept run would): its output stays there.
    let o = s.run_cmd(&a).args(["--run-id", "x"]).output().unwrap();
    expect_code(&o, 0);
    assert!(s.run_dir().join("outputs/out/a.txt").exists());
    let o = s
        .run_cmd_as_shipped(&b)
        .args(["--run-id", "x"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    let got: BTreeMap<String, String> = tree(&s.path().join("store/b-results"));
    assert_eq!(got.keys().collect::<Vec<_>>(), ["b.txt"]);
    let warning = s
        .events()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Warning { message } if message.contains("another job") => {
                Some(message.clone())
            }
            _ => None,
        })
        .expect("a warning about the earlier job's outputs");
    // No data lost: a's output is where the warning says.
    let moved: Vec<_> = walk(&s.run_dir().join("superseded"))
        .into_iter()
        .filter(|p| p.ends_with("outputs/out/a.txt"))
        .collect();
    assert_eq!(moved.len(), 1, "{warning}");
    assert!(
        warning.contains(
            &moved[0]
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .display()
                .to_string()
        ),
        "{warning}"
    );
    assert_eq!(std::fs::read_to_string(&moved[0]).unwrap(), "a\n");
}

/// In a container the job's writers are the container's processes: the agent (root)
/// sees their open files through the host's /proc, so a file the container holds open
/// for writing is not synced, while one it closed is; the held one goes up at exit.
#[test]
fn a_containers_open_file_is_not_synced_until_it_is_closed() {
    use crate::common::docker::{self, IMAGE};
    if !docker::engine() {
        return;
    }
    docker::images();
    let s = with_local_store();
    let run_id = docker::run_id("sync");
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: contained
command:
  - sh
  - -c
  - |
    exec 3> "$1/held.bin"; echo half >&3
    echo closed > "$1/done.txt"
    while [ ! -e "$1/stop" ]; do sleep 0.1; done
  - sh
  - ${{{{outputs.out}}}}
container: {{image: {IMAGE}, pull: never}}
outputs:
  out: {{path: results, mode: upload, sync: 1s}}
"#
        ),
    );
    let mut child = s
        .run_cmd_as_shipped(&job)
        .args(["--run-id", &run_id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The pass that sent done.txt saw held.bin just as long unchanged, and open.
    let synced = wait_until(Duration::from_secs(60), POLL, || {
        passes(&s.events()).iter().any(|p| p.1 > 0)
    });
    let held_early = s.path().join("store/results/held.bin").exists();
    std::fs::write(s.run_dir().join("outputs/out/stop"), "").unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(synced, "{:?}", kinds(&s.events()));
    assert!(
        !held_early,
        "held.bin went up while the container held it open"
    );
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(s.path().join("store/results/done.txt")).unwrap(),
        "closed\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.path().join("store/results/held.bin")).unwrap(),
        "half\n"
    );
    assert!(docker::containers_of(&run_id).is_empty());
}
