//! Docker for the end-to-end tests: is an engine there, the test image (built with
//! `docker import` from a busybox-static root filesystem, since no registry is
//! reachable), and the containers a run left behind, found by stagehand's labels.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The test image: busybox, root by default, with a marker file at /stagehand-test-image.
pub const IMAGE: &str = "stagehand-test-busybox:latest";
/// The same image whose default user is 4321:4321, for `user: host` tests.
pub const IMAGE_NONROOT: &str = "stagehand-test-busybox:nonroot";
/// The uid and gid of [`IMAGE_NONROOT`]'s default user.
pub const NONROOT_ID: u32 = 4321;
/// The label every stagehand container carries.
pub const RUN_ID_LABEL: &str = "io.stagehand.run_id";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("cannot run the docker CLI")
}

/// Whether an engine answers. Without one, a test returns early with a message, except
/// under CI=true, where it fails: CI must not pass without having run these tests.
pub fn engine() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !up {
        assert!(
            !super::in_ci(),
            "CI=true but no Docker engine answers; scripts/test starts dockerd"
        );
        eprintln!("no Docker engine answers (start dockerd, or run scripts/test): the container tests did not run");
    }
    up
}

/// Builds the test images once per test binary (and once per engine: they are kept).
pub fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let have = |tag: &str| docker(&["image", "inspect", tag]).status.success();
        if have(IMAGE) && have(IMAGE_NONROOT) {
            return;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is not installed (apt-get install busybox-static)");
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["bin", "etc", "tmp", "work"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
        for tool in [
            "sh", "cat", "ls", "id", "sleep", "stat", "echo", "touch", "mkdir", "env", "pwd",
            "true", "false", "test", "wc", "grep", "printf", "trap", "kill",
        ] {
            let _ = std::os::unix::fs::symlink("busybox", r.join("bin").join(tool));
        }
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(r.join("stagehand-test-image"), "busybox test image\n").unwrap();
        let tar = r
            .parent()
            .unwrap()
            .join(format!("{}.tar", r.file_name().unwrap().to_string_lossy()));
        let ok = Command::new("tar")
            .arg("-C")
            .arg(r)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar failed");
        let tar_s = tar.to_string_lossy().into_owned();
        for (tag, changes) in [
            (IMAGE, vec![]),
            (
                IMAGE_NONROOT,
                vec![
                    "--change".to_string(),
                    format!("USER {NONROOT_ID}:{NONROOT_ID}"),
                ],
            ),
        ] {
            let mut args = vec!["import".to_string()];
            args.extend(changes);
            args.push(tar_s.clone());
            args.push(tag.to_string());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = docker(&args);
            assert!(
                out.status.success(),
                "docker import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_file(&tar);
    });
}

/// Ids of the containers (running or not) labelled with this run id.
pub fn containers_of(run_id: &str) -> Vec<String> {
    let filter = format!("label={RUN_ID_LABEL}={run_id}");
    let out = docker(&["ps", "-aq", "--filter", &filter]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Removes this run's containers (after a test that expects some to be left).
pub fn remove_containers_of(run_id: &str) {
    for id in containers_of(run_id) {
        let _ = docker(&["rm", "-f", "-v", &id]);
    }
}

/// A run id for one test, unique across test runs and processes.
pub fn run_id(test: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("test-{test}-{}-{nanos:x}", std::process::id())
}

/// An image that runs the host's Python: busybox with `/lib` and `/lib64` pointing into
/// `/usr`, for a job that binds the host's `/usr` read-only (`volumes`) over its empty
/// `/usr`; its `/bin/bash` hands over to busybox's `sh`, for Azure ML v2 jobs (whose
/// command line runs as `bash -c`). Built once per engine; no registry needed.
pub const IMAGE_PYTHON: &str = "stagehand-test-python:latest";

/// Builds [`IMAGE_PYTHON`] once per test binary (kept on the engine).
pub fn python_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if docker(&["image", "inspect", IMAGE_PYTHON]).status.success() {
            return;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is not installed (apt-get install busybox-static)");
        let root = tempfile::tempdir().unwrap();
        let r = root.path().join("root");
        for d in ["bin", "etc", "tmp", "usr"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", r.join("bin/sh")).unwrap();
        std::fs::write(r.join("bin/bash"), "#!/bin/sh\nexec /bin/sh \"$@\"\n").unwrap();
        std::fs::set_permissions(
            r.join("bin/bash"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib64", r.join("lib64")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        let tar = root.path().join("python.tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&r)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar failed");
        let out = docker(&["import", &tar.to_string_lossy(), IMAGE_PYTHON]);
        assert!(
            out.status.success(),
            "docker import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    IMAGE_PYTHON
}

/// Ids of the containers (running or not) of the job named `job`.
pub fn containers_of_job(job: &str) -> Vec<String> {
    let filter = format!("label=io.stagehand.job={job}");
    let out = docker(&["ps", "-aq", "--filter", &filter]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}
