//! Jobs in containers on a real Docker engine, driven through the binary. Every test
//! checks that the containers of its run are gone when the agent has exited.

use crate::common::docker::{self, IMAGE, IMAGE_NONROOT, NONROOT_ID};
use crate::common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::Duration;

/// A scratch folder with a local datastore (`data/`) holding `in/names.txt`.
fn workspace() -> Scratch {
    let s = Scratch::new();
    s.write(
        "workspace.yaml",
        r#"default_datastore: local
datastores:
  local:
    type: local
    root: ./data
"#,
    );
    s.write("data/in/names.txt", "ada\ngrace\n");
    s
}

/// Engine up and images built; false (after a message) when the tests cannot run.
fn ready() -> bool {
    if !docker::engine() {
        return false;
    }
    docker::images();
    true
}

fn run_with_id(s: &Scratch, job: &Path, run_id: &str) -> Output {
    s.run_cmd(job).arg("--run-id").arg(run_id).output().unwrap()
}

fn assert_no_container(run_id: &str) {
    let left = docker::containers_of(run_id);
    assert!(
        left.is_empty(),
        "containers left behind by run {run_id}: {left:?}"
    );
}

/// Waits until the events file shows the job started.
fn wait_started(s: &Scratch, child: &mut Child) {
    let started = wait_until(Duration::from_secs(60), POLL, || {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "the agent exited ({st}) before the job started: {:?}",
                s.events()
            );
        }
        s.saw("started")
    });
    assert!(started, "the job did not start");
}

#[test]
fn job_reads_a_downloaded_input_and_writes_an_uploaded_output_in_the_image() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("data");
    // The script checks that the argument and the variable agree, writes what it saw,
    // proves the root filesystem is the image's, and tries to change its input.
    let script = r#"set -eu
in=$1; out=$2
[ "$in" = "$AZUREML_DATAREFERENCE_names" ]
[ "$out" = "$AZUREML_DATAREFERENCE_result" ]
cat "$in" > "$out/copy.txt"
echo "$in" > "$out/arg.txt"
echo "$STAGEHAND_RUN_DIR" > "$out/run_dir.txt"
pwd > "$out/pwd.txt"
cat /stagehand-test-image > "$out/image.txt"
if echo x >> "$in" 2>/dev/null; then echo writable; else echo read-only; fi > "$out/input.txt"
echo "hello from the container"
echo "to stderr" >&2
"#;
    s.write("job/script.sh", script);
    let job = s.write(
        "job/job.yaml",
        &format!(
            r#"name: data
command: [sh, script.sh, "$AZUREML_DATAREFERENCE_names", "${{{{outputs.result}}}}"]
container: {{image: {IMAGE}, pull: never}}
inputs:
  names: {{path: in/names.txt, mode: download}}
outputs:
  result: {{path: "out/{{run_id}}", mode: upload}}
"#
        ),
    );
    std::fs::copy(
        s.path().join("workspace.yaml"),
        s.path().join("job/workspace.yaml"),
    )
    .unwrap();
    std::fs::rename(s.path().join("data"), s.path().join("job/data")).unwrap();
    let out = run_with_id(&s, &job, &run_id);
    let (so, se) = expect_code(&out, 0);
    assert!(
        so.contains("hello from the container"),
        "job stdout not passed through: {so}"
    );
    assert!(
        se.contains("to stderr"),
        "job stderr not passed through: {se}"
    );

    let landed = s.path().join("job/data/out").join(&run_id);
    let read =
        |f: &str| std::fs::read_to_string(landed.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    assert_eq!(read("copy.txt"), "ada\ngrace\n");
    assert_eq!(
        read("arg.txt").trim(),
        "/mnt/stagehand/run/inputs/names/names.txt"
    );
    assert_eq!(read("run_dir.txt").trim(), "/mnt/stagehand/run");
    assert_eq!(read("pwd.txt").trim(), "/mnt/stagehand/job");
    assert_eq!(read("image.txt"), "busybox test image\n");
    assert_eq!(read("input.txt").trim(), "read-only");

    let logs = s.run_dir().join("logs");
    assert!(std::fs::read_to_string(logs.join("stdout.log"))
        .unwrap()
        .contains("hello from the container"));
    assert!(std::fs::read_to_string(logs.join("stderr.log"))
        .unwrap()
        .contains("to stderr"));
    let ev = s.events();
    let started = started(&ev);
    assert!(
        started.container.as_ref().is_some_and(|c| c.len() >= 12),
        "{started:?}"
    );
    assert_eq!(finished(&ev).status, Status::Succeeded);
    assert_no_container(&run_id);
}

fn simple_job(s: &Scratch, name: &str, container: &str, command: &str, extra: &str) -> PathBuf {
    s.write(
        &format!("{name}.yaml"),
        &format!(
            r#"name: {name}
command: {command}
container: {container}
{extra}"#
        ),
    )
}

#[test]
fn the_containers_exit_code_is_the_agents() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("exit5");
    let job = simple_job(
        &s,
        "exit5",
        &format!("{{image: {IMAGE}, pull: never}}"),
        r#"[sh, -c, "exit 5"]"#,
        "",
    );
    let out = run_with_id(&s, &job, &run_id);
    assert_eq!(out.status.code(), Some(5), "{:?}", text(&out));
    let ev = s.events();
    assert_eq!(finished(&ev).exit_code, 5);
    assert_eq!(finished(&ev).status, Status::Failed);
    assert_no_container(&run_id);
}

#[test]
fn sigterm_to_the_agent_stops_and_removes_the_container() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("sigterm");
    // sh as PID 1 ignores SIGTERM, so this also covers the grace period and SIGKILL.
    let job = simple_job(
        &s,
        "sigterm",
        &format!("{{image: {IMAGE}, pull: never}}"),
        r#"[sh, -c, "echo started; sleep 60"]"#,
        r#"kill_grace: 2s
"#,
    );
    let mut child = s
        .run_cmd(&job)
        .arg("--run-id")
        .arg(&run_id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_started(&s, &mut child);
    assert_eq!(
        docker::containers_of(&run_id).len(),
        1,
        "the running container is not labelled with its run id"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(code::CANCELLED));
    let ev = s.events();
    // `sleep` as PID 1 ignores SIGTERM: the container was killed at the grace's end.
    let ended = exited(&ev);
    assert_eq!(ended.reason, "cancelled");
    assert_eq!(ended.exit_code, Some(137), "{ended:?}");
    assert_eq!(finished(&ev).status, Status::Cancelled);
    assert_no_container(&run_id);
}

#[test]
fn a_job_past_its_timeout_is_stopped_and_removed() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("timeout");
    // This job handles SIGTERM (the stop signal) and exits by itself within the grace.
    let job = simple_job(
        &s,
        "timeout",
        &format!("{{image: {IMAGE}, pull: never}}"),
        r#"[sh, -c, "trap 'echo got TERM; exit 3' TERM; while true; do sleep 1; done"]"#,
        r#"timeout: 3s
kill_grace: 10s
"#,
    );
    let out = run_with_id(&s, &job, &run_id);
    let (so, se) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(code::TIMED_OUT),
        "stdout: {so}\nstderr: {se}"
    );
    // It exited through its own TERM handler (3), not killed at the grace's end.
    let ended = exited(&s.events());
    assert_eq!(
        (ended.exit_code, ended.reason.as_str()),
        (Some(3), "timed_out")
    );
    assert!(
        so.contains("got TERM"),
        "the job never saw its stop signal: {so}"
    );
    let ev = s.events();
    assert_eq!(finished(&ev).status, Status::TimedOut);
    assert_eq!(exited(&ev).exit_code, Some(3));
    assert_no_container(&run_id);
}

#[test]
fn user_host_makes_outputs_belong_to_the_agent() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("user");
    // The image's own user is 4321: without `user: host` the job could not even write
    // to the output folder the agent made.
    let job = simple_job(
        &s,
        "user",
        &format!(r#"{{image: "{IMAGE_NONROOT}", pull: never, user: host}}"#),
        r#"[sh, -c, "id -u > $AZUREML_DATAREFERENCE_out/uid.txt"]"#,
        r#"outputs:
  out: {path: "out/{run_id}", mode: upload}
"#,
    );
    let out = run_with_id(&s, &job, &run_id);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let me = nix::unistd::getuid().as_raw();
    let file = s.run_dir().join("outputs/out/uid.txt");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        me.to_string()
    );
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), me);
    assert_ne!(me, NONROOT_ID);
    assert_no_container(&run_id);
}

#[test]
fn a_missing_image_with_pull_never_is_a_clear_staging_failure() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("noimage");
    let job = simple_job(
        &s,
        "noimage",
        r#"{image: "stagehand-test-absent:1", pull: never}"#,
        r#"[sh, -c, "true"]"#,
        "",
    );
    let out = run_with_id(&s, &job, &run_id);
    let (_, se) = expect_code(&out, code::STAGING_FAILED);
    assert!(
        se.contains("\"stagehand-test-absent:1\"") && se.contains("pull is never"),
        "{se}"
    );
    assert!(!se.contains("panicked"), "{se}");
    let ev = s.events();
    assert_eq!(finished(&ev).status, Status::Failed);
    assert!(!kinds(&ev).contains(&"started".to_string()));
    assert_no_container(&run_id);
}

#[test]
fn a_failed_pull_names_the_image() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("pull");
    // Nothing listens on port 1: the pull fails at once, without a registry.
    let job = simple_job(
        &s,
        "pull",
        r#"{image: "127.0.0.1:1/absent:1", pull: always}"#,
        r#"[sh, -c, "true"]"#,
        "",
    );
    let out = run_with_id(&s, &job, &run_id);
    let (_, se) = expect_code(&out, code::STAGING_FAILED);
    assert!(
        se.contains("cannot pull image \"127.0.0.1:1/absent:1\""),
        "{se}"
    );
    assert_no_container(&run_id);
}

#[test]
fn no_engine_at_docker_host_is_a_clear_staging_failure() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("noengine");
    let job = simple_job(
        &s,
        "noengine",
        &format!("{{image: {IMAGE}, pull: never}}"),
        r#"[sh, -c, "true"]"#,
        "",
    );
    for host in [
        format!("unix://{}/absent.sock", s.path().display()),
        "tcp://127.0.0.1:1".to_string(),
    ] {
        let out = s
            .run_cmd(&job)
            .arg("--run-id")
            .arg(&run_id)
            .env("DOCKER_HOST", &host)
            .output()
            .unwrap();
        let (_, se) = expect_code(&out, code::STAGING_FAILED);
        assert!(
            se.contains(&format!(
                "no container engine reachable at {host} (from DOCKER_HOST)"
            )),
            "{se}"
        );
        assert!(se.contains("dockerd") && se.contains("DOCKER_HOST"), "{se}");
        assert!(!se.contains("panicked"), "{se}");
    }
    assert_no_container(&run_id);
}

#[test]
fn plan_shows_container_paths_and_binds_without_an_engine() {
    let s = workspace();
    let job = simple_job(
        &s,
        "plan",
        &format!(
            "{{image: {IMAGE}, volumes: [{{host: /etc, container: /host-etc}}], env: [HOME]}}"
        ),
        r#"[cat, "${{inputs.names}}", "--out=$AZUREML_DATAREFERENCE_model/x"]"#,
        r#"inputs:
  names: {path: in/names.txt, mode: download}
  local: {path: in, mode: mount}
outputs:
  model: {path: m, mode: upload, path_on_compute: /tmp/stagehand-plan-model}
  metrics: {path: m.json, mode: upload, path_on_compute: /tmp/stagehand-plan/metrics.json}
"#,
    );
    let out = std::process::Command::new(bin())
        .args(["plan", "--format", "json", "--run-dir"])
        .arg(s.run_dir())
        .arg(&job)
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = &plan["environment"];
    assert_eq!(
        env["AZUREML_DATAREFERENCE_names"],
        "/mnt/stagehand/run/inputs/names/names.txt"
    );
    assert_eq!(
        env["AZUREML_DATAREFERENCE_local"],
        "/mnt/stagehand/data/local/in"
    );
    assert_eq!(
        env["AZUREML_DATAREFERENCE_model"],
        "/mnt/stagehand/data/model/stagehand-plan-model"
    );
    assert_eq!(env["STAGEHAND_RUN_DIR"], "/mnt/stagehand/run");
    assert_eq!(
        plan["command"],
        serde_json::json!([
            "cat",
            "/mnt/stagehand/run/inputs/names/names.txt",
            "--out=/mnt/stagehand/data/model/stagehand-plan-model/x"
        ])
    );
    let binds = plan["container"]["binds"].as_array().unwrap();
    let bind = |purpose: &str| {
        binds
            .iter()
            .find(|b| b["purpose"] == purpose)
            .unwrap_or_else(|| panic!("no {purpose} bind in {binds:?}"))
    };
    assert_eq!(bind("run folder")["container"], "/mnt/stagehand/run");
    assert_eq!(bind("run folder")["propagation"], "rslave");
    assert_eq!(bind("run folder")["read_only"], false);
    assert_eq!(bind("input names")["read_only"], true);
    assert_eq!(bind("input local")["propagation"], "rslave");
    assert_eq!(bind("output model")["read_only"], false);
    assert_eq!(bind("output model")["host"], "/tmp/stagehand-plan-model");
    // A one-file output does not exist at launch: its folder is bound.
    assert_eq!(
        env["AZUREML_DATAREFERENCE_metrics"],
        "/mnt/stagehand/data/metrics/metrics.json"
    );
    assert_eq!(bind("output metrics")["host"], "/tmp/stagehand-plan");
    assert_eq!(
        bind("output metrics")["container"],
        "/mnt/stagehand/data/metrics"
    );
    assert_eq!(bind("volumes[0]")["container"], "/host-etc");
    assert_eq!(bind("volumes[0]")["read_only"], true);
    assert_eq!(plan["container"]["working_dir"], "/mnt/stagehand/job");
}

#[test]
fn bad_container_settings_are_invalid_specs_naming_the_field() {
    let s = workspace();
    let job = simple_job(
        &s,
        "bad",
        "{image: x, memory: 2gg, workdir: rel, volumes: [{host: /nonexistent-stagehand-path, container: /data}, {host: /etc, container: /mnt/stagehand/x}]}",
        r#"["true"]"#,
        "",
    );
    let out = s.run(&job);
    let (_, se) = expect_code(&out, code::INVALID);
    for needle in [
        "container.memory",
        "container.workdir",
        "container.volumes[1].container",
    ] {
        assert!(se.contains(needle), "{needle} not named in: {se}");
    }
    // A host path that does not exist on this node is found when planning.
    let job = simple_job(
        &s,
        "bad2",
        "{image: x, volumes: [{host: /nonexistent-stagehand-path, container: /data}]}",
        r#"["true"]"#,
        "",
    );
    let out = s.run(&job);
    let (_, se) = expect_code(&out, code::INVALID);
    assert!(
        se.contains("container.volumes[0].host")
            && se.contains("/nonexistent-stagehand-path does not exist"),
        "{se}"
    );
}

#[test]
fn gc_removes_the_container_of_a_sigkilled_agent_and_keeps_live_ones() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("gc");
    let job = simple_job(
        &s,
        "gc",
        &format!("{{image: {IMAGE}, pull: never}}"),
        r#"[sleep, "60"]"#,
        "",
    );
    let mut child = s
        .run_cmd(&job)
        .arg("--run-id")
        .arg(&run_id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_started(&s, &mut child);
    // A live agent's container is kept.
    let gc = std::process::Command::new(bin())
        .arg("gc")
        .output()
        .unwrap();
    assert_eq!(gc.status.code(), Some(0), "{:?}", text(&gc));
    assert_eq!(
        docker::containers_of(&run_id).len(),
        1,
        "gc removed a live agent's container: {:?}",
        text(&gc)
    );
    // SIGKILL leaves no chance to clean up: the container outlives the agent...
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    assert_eq!(docker::containers_of(&run_id).len(), 1);
    // ...until gc.
    let gc = std::process::Command::new(bin())
        .arg("gc")
        .output()
        .unwrap();
    let (so, _) = expect_code(&gc, 0);
    assert!(so.contains(&format!("run {run_id}")), "{so}");
    let left = docker::containers_of(&run_id);
    docker::remove_containers_of(&run_id);
    assert!(left.is_empty(), "gc left {left:?}: {so}");
}

/// Undoes the mounts a test made, innermost first, even when it fails.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(m)
                .status();
        }
    }
}

fn mount(args: &[&str], target: &Path) -> bool {
    std::process::Command::new("mount")
        .args(args)
        .arg(target)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn a_mount_made_under_the_run_folder_after_start_is_seen_inside() {
    // What a FUSE input needs: the run folder is bound with rslave propagation, so a
    // mount made on the node under it appears in the running container.
    if !ready() {
        return;
    }
    let s = workspace();
    let mut mounts = Mounts(Vec::new());
    // rslave needs the run folder on a shared mount, as on a systemd host; make one.
    let scratch = s.path().to_path_buf();
    if !(mount(&["--bind", scratch.to_str().unwrap()], &scratch) && {
        mounts.0.push(scratch.clone());
        mount(&["--make-rshared"], &scratch)
    }) {
        assert!(
            !in_ci(),
            "cannot make a shared bind mount (CI runs as root)"
        );
        eprintln!(
            "cannot make a shared bind mount here (needs root): the propagation test did not run"
        );
        return;
    }
    let run_id = docker::run_id("propagation");
    let job = simple_job(
        &s,
        "propagation",
        &format!("{{image: {IMAGE}, pull: never}}"),
        r#"[sh, -c, "i=0; while [ $i -lt 300 ]; do if [ -e $AZUREML_DATAREFERENCE_late/marker ]; then echo seen; exit 0; fi; i=$((i+1)); sleep 0.1; done; exit 9"]"#,
        r#"outputs:
  late: {path: "late/{run_id}", mode: upload, upload_on: failure}
"#,
    );
    let mut child = s
        .run_cmd(&job)
        .arg("--run-id")
        .arg(&run_id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_started(&s, &mut child);
    let src = s.path().join("late-source");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), "x").unwrap();
    let target = s.run_dir().join("outputs/late");
    assert!(
        mount(&["--bind", src.to_str().unwrap()], &target),
        "cannot mount onto {}",
        target.display()
    );
    mounts.0.push(target);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "the container never saw the mount made after it started"
    );
    assert_no_container(&run_id);
}

#[test]
fn a_program_missing_from_the_image_exits_127() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("missing");
    let job = simple_job(
        &s,
        "missing",
        &format!("{{image: {IMAGE}, pull: never}}"),
        "[no-such-program]",
        "",
    );
    let out = run_with_id(&s, &job, &run_id);
    let (_, se) = expect_code(&out, 127);
    assert!(se.contains("\"no-such-program\""), "{se}");
    assert_no_container(&run_id);
}

#[test]
fn the_container_gets_only_the_planned_environment_and_the_pass_through_list() {
    if !ready() {
        return;
    }
    let s = workspace();
    s.write(
        "workspace.yaml",
        r#"default_datastore: local
datastores:
  local:
    type: local
    root: ./data
  blobs:
    type: azure_blob
    account_name: acct
    container_name: c
    credentials:
      account_key: {env: STAGEHAND_TEST_SECRET}
"#,
    );
    let run_id = docker::run_id("env");
    let job = simple_job(
        &s,
        "env",
        &format!(
            "{{image: {IMAGE}, pull: never, env: [STAGEHAND_TEST_PASSED, STAGEHAND_TEST_UNSET]}}"
        ),
        "[env]",
        r#"environment: {FROM_SPEC: spec}
"#,
    );
    let out = s
        .run_cmd(&job)
        .arg("--run-id")
        .arg(&run_id)
        .env("STAGEHAND_TEST_SECRET", "s3cr3t-value")
        .env("STAGEHAND_TEST_PASSED", "passed")
        .env("STAGEHAND_TEST_AGENT_ONLY", "agent")
        .output()
        .unwrap();
    let (so, _) = expect_code(&out, 0);
    assert!(
        so.contains("STAGEHAND_TEST_PASSED=passed") && so.contains("FROM_SPEC=spec"),
        "{so}"
    );
    assert!(so.contains(&format!("STAGEHAND_RUN_ID={run_id}")), "{so}");
    assert!(
        !so.contains("s3cr3t-value") && !so.contains("STAGEHAND_TEST_SECRET"),
        "a credential reached the container: {so}"
    );
    assert!(
        !so.contains("STAGEHAND_TEST_AGENT_ONLY") && !so.contains("STAGEHAND_TEST_UNSET"),
        "{so}"
    );
    // Asking to pass a credential through is a spec error.
    let job = simple_job(
        &s,
        "env2",
        &format!("{{image: {IMAGE}, pull: never, env: [STAGEHAND_TEST_SECRET]}}"),
        "[env]",
        "",
    );
    let out = s
        .run_cmd(&job)
        .env("STAGEHAND_TEST_SECRET", "s3cr3t-value")
        .output()
        .unwrap();
    let (_, se) = expect_code(&out, code::INVALID);
    assert!(
        se.contains("container.env[0]") && se.contains("credential"),
        "{se}"
    );
    assert_no_container(&run_id);
}

#[test]
fn a_job_killed_for_memory_says_so() {
    if !ready() {
        return;
    }
    let s = workspace();
    let run_id = docker::run_id("oom");
    let job = simple_job(
        &s,
        "oom",
        &format!("{{image: {IMAGE}, pull: never, memory: 16m}}"),
        r#"[sh, -c, "x=a; while true; do x=$x$x; done"]"#,
        r#"timeout: 60s
"#,
    );
    let out = run_with_id(&s, &job, &run_id);
    let (_, se) = expect_code(&out, 137);
    assert!(
        se.contains("the container ran out of memory (its limit: 16 MiB)"),
        "{se}"
    );
    let f = finished(&s.events());
    assert_eq!(
        f.status,
        stagehand_protocol::events::Status::OutOfMemory,
        "{f:?}"
    );
    assert_no_container(&run_id);
}
