//! Mount mode end to end on Azure Blob: the built binary mounts a
//! prefix of a container of a private Azurite with real FUSE, and a job reads it. The
//! data set is tests/mount.rs's (tests/common/fuse.rs `make_store`), uploaded with the
//! Azure Python SDK. Without Azurite or FUSE these tests fail in CI and return early
//! elsewhere.

use crate::common::azurite::{Azurite, KEY, KEY_FROM_ENV};
use crate::common::fuse::{alive, fuse_ready, kill, make_store, mounted_at};
use crate::common::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Azurite with container `data` holding the data set under `in/`, a workspace on it,
/// and a job running `script` (bash, `$1` = the mounted input `train`, `$RESULTS` = a
/// folder of the test). Returns Azurite (keep it alive), the job and the 48 MiB blob.
fn setup(s: &Scratch, script: &str) -> Option<(Azurite, PathBuf, Vec<u8>)> {
    let az = Azurite::start()?;
    if !fuse_ready() {
        return None;
    }
    let src = s.path().join("src");
    let big = make_store(&src);
    az.mkcontainer(&["data"]);
    az.upload_tree(&src.join("data"), "data", "in");
    az.workspace(s, "job/workspace.yaml", "az", "data", KEY_FROM_ENV);
    let sh = s.write("job/job.sh", script);
    std::fs::create_dir_all(results(s)).unwrap();
    let job = s.write(
        "job/job.yaml",
        &format!(
            r#"name: mount-azure
command: ["bash", "{}", "$AZUREML_DATAREFERENCE_train"]
inputs:
  train: {{path: in, mode: mount}}
"#,
            sh.display()
        ),
    );
    Some((az, job, big))
}

fn results(s: &Scratch) -> PathBuf {
    s.path().join("results")
}

fn result(s: &Scratch, name: &str) -> String {
    std::fs::read_to_string(results(s).join(name))
        .unwrap_or_else(|e| panic!("the job wrote no {name}: {e}"))
}

fn cmd(s: &Scratch, job: &Path) -> Command {
    let mut c = s.run_cmd(job);
    c.env("TEST_AZ_KEY", KEY)
        .env("RESULTS", results(s))
        .env("LC_ALL", "C");
    c
}

/// Where the agent mounted input `train`, per its `stage_started` event.
fn mountpoint(ev: &[Event]) -> PathBuf {
    let stage = stage_started(ev, "train");
    assert_eq!(stage.mode, "mount", "{stage:?}");
    PathBuf::from(stage.destination)
}

/// Everything the job learns through the mount goes to $RESULTS for the test to judge.
const READ_SCRIPT: &str = r#"set -u
mp="$1"
echo "$mp" > "$RESULTS/mountpoint"
grep " $mp " /proc/self/mounts > "$RESULTS/mounts" || true
sha256sum "$mp/big.bin" | cut -d' ' -f1 > "$RESULTS/big.sha256"
(cd "$mp/tree" && find . -type f | sort) > "$RESULTS/tree.txt"
for i in $(seq 0 19); do cat "$mp/small/s$i.txt"; done > "$RESULTS/small.txt"
if touch "$mp/x" 2> "$RESULTS/touch.err"; then echo allowed; else echo refused; fi > "$RESULTS/touch"
if mkdir "$mp/tree/new" 2> "$RESULTS/mkdir.err"; then echo allowed; else echo refused; fi > "$RESULTS/mkdir"
"#;

#[test]
fn a_job_reads_an_azure_container_through_the_mount_and_the_mount_is_gone_after() {
    let s = Scratch::new();
    let Some((az, job, big)) = setup(&s, READ_SCRIPT) else {
        return;
    };
    let out = cmd(&s, &job).output().unwrap();
    expect_code(&out, 0);
    let ev = s.events();
    assert_eq!(finished(&ev).status, Status::Succeeded);
    let mp = mountpoint(&ev);
    assert_eq!(result(&s, "mountpoint").trim(), mp.display().to_string());

    // While the job ran, its input was a read-only stagehand FUSE mount.
    let line = result(&s, "mounts");
    let fields: Vec<&str> = line.split(' ').collect();
    assert!(
        fields.len() >= 4
            && fields[0].starts_with("stagehand:")
            // `fuse` when root mounts directly, `fuse.stagehand` through fusermount3.
            && (fields[2] == "fuse" || fields[2] == "fuse.stagehand")
            && fields[3].split(',').any(|o| o == "ro"),
        "the job did not see its input mounted: {line:?}"
    );

    // The 48 MiB blob, byte for byte.
    assert_eq!(
        result(&s, "big.sha256").trim(),
        hex(&Sha256::digest(&big)),
        "big.bin read through the mount differs"
    );

    // The 400-file tree in nested folders: exactly the uploaded names.
    let mut want: Vec<String> = (0..400)
        .map(|i| format!("./d{}/e{}/f{i}.txt", i % 10, i % 4))
        .collect();
    want.sort();
    let got: Vec<String> = result(&s, "tree.txt").lines().map(String::from).collect();
    assert_eq!(got.len(), 400, "{} files listed", got.len());
    assert_eq!(got, want, "the tree listed through the mount differs");

    // Small files' contents.
    let small: String = (0..20).map(|i| format!("small file {i}\n")).collect();
    assert_eq!(result(&s, "small.txt"), small);

    // Writing is refused as a read-only file system.
    for what in ["touch", "mkdir"] {
        assert_eq!(result(&s, what).trim(), "refused", "{what} was allowed");
        let err = result(&s, &format!("{what}.err"));
        assert!(err.contains("Read-only file system"), "{what}: {err:?}");
    }
    assert!(
        !az_has(&az, "in/x") && !az_has(&az, "in/tree/new"),
        "a write reached the container"
    );

    // The agent is gone, and so is the mount.
    assert!(!mounted_at(&mp), "the mount outlived the run");
    assert!(
        !std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(&format!("stagehand:{}:", ev[0].run_id.as_str())),
        "a mount of the run is still in /proc/mounts"
    );
}

/// Issue 17's acceptance: a job reads a 1 GiB blob through the mount; it gets the
/// blob's bytes, and the agent's peak resident memory over the run (its `finished`
/// event's `peak_rss_bytes`, the agent's VmHWM) stays under 64 MiB, where holding
/// whole read-ahead runs in memory once took 180 MiB. The blob is made in a second
/// from three blocks committed over and over (`Azurite::put_patterned`).
#[test]
fn a_1_gib_blob_read_through_the_mount_keeps_the_agent_under_64_mib() {
    let Some(az) = Azurite::start() else {
        return;
    };
    if !fuse_ready() {
        return;
    }
    let s = Scratch::new();
    az.mkcontainer(&["data"]);
    let want = az.put_patterned("data", "in/one.bin", 1 << 30);
    az.workspace(&s, "job/workspace.yaml", "az", "data", KEY_FROM_ENV);
    std::fs::create_dir_all(results(&s)).unwrap();
    let job = s.write(
        "job/job.yaml",
        r#"name: mount-1gib
command: ["sh", "-c", "sha256sum \"$AZUREML_DATAREFERENCE_big\" | cut -d' ' -f1 > \"$RESULTS/one.sha256\""]
inputs:
  big: {path: in/one.bin, mode: mount}
"#,
    );
    let out = cmd(&s, &job).output().unwrap();
    expect_code(&out, 0);
    assert_eq!(
        result(&s, "one.sha256").trim(),
        want,
        "the 1 GiB blob read through the mount differs"
    );
    let peak = finished(&s.events())
        .peak_rss_bytes
        .expect("the finished event has no peak_rss_bytes");
    assert!(
        peak < 64 << 20,
        "the agent's peak resident memory was {} MiB reading 1 GiB through the mount",
        peak >> 20
    );
}

/// Whether blob `name` exists in container `data`.
fn az_has(az: &Azurite, name: &str) -> bool {
    az.sha256s("data", name).contains_key(name)
}

#[test]
fn sigterm_during_a_mounted_azure_job_stops_it_and_unmounts() {
    let s = Scratch::new();
    // The job reads part of the big blob, keeps it open, and sleeps as process $$.
    let script = r#"exec 3< "$1/big.bin"
head -c 1000000 <&3 > /dev/null
echo $$ > "$RESULTS/job.pid.tmp" && mv "$RESULTS/job.pid.tmp" "$RESULTS/job.pid"
exec sleep 60
"#;
    let Some((_az, job, _)) = setup(&s, script) else {
        return;
    };
    let mut child = cmd(&s, &job)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = results(&s).join("job.pid");
    assert!(
        wait_until(Duration::from_secs(60), POLL, || pid_file.exists()),
        "the job never got going: {:?}",
        kinds(&s.events())
    );
    let job_pid: u32 = result(&s, "job.pid").trim().parse().unwrap();
    let mp = mountpoint(&s.events());
    assert!(mounted_at(&mp), "{} is not mounted", mp.display());
    assert!(alive(job_pid));

    kill(child.id(), 15);
    let status = wait_exit(&mut child, Duration::from_secs(30)).code();
    assert_eq!(status, Some(code::CANCELLED));
    assert!(!mounted_at(&mp), "the mount outlived a SIGTERM");
    assert!(
        wait_until(Duration::from_secs(5), POLL, || !alive(job_pid)),
        "the job (pid {job_pid}) still runs"
    );
    assert_eq!(finished(&s.events()).status, Status::Cancelled);
}
