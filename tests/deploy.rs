//! The deployment examples under deploy/: the Kubernetes manifests are valid for the
//! API (kubernetes-validate, strict: no field Kubernetes does not know), and the job
//! specs inside them are valid stagehand specs. No cluster runs here; the Slurm
//! scripts run on the test cluster in `slurm.rs`.

use crate::common::*;
use serde::Deserialize;
use std::path::PathBuf;
use std::process::Command;

fn kubernetes_validate() -> Option<PathBuf> {
    let found = std::env::var_os("STAGEHAND_TEST_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .or_else(|| Some(repo().join(".tools/venv/bin/kubernetes-validate")))
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            !in_ci(),
            "kubernetes-validate is not installed; CI=true (run scripts/test)"
        );
        eprintln!("kubernetes-validate is not installed (run scripts/test): this test returns early without checking anything");
    }
    found
}

#[test]
fn the_kubernetes_manifests_are_valid() {
    let Some(validate) = kubernetes_validate() else {
        return;
    };
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "an Indexed Job and a multi-node example");
    let o = Command::new(validate)
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out.matches(" passed for resource ").count(), 4, "{out}");
}

#[test]
fn the_indexed_jobs_spec_is_a_valid_stagehand_job() {
    let manifest =
        std::fs::read_to_string(repo().join("deploy/kubernetes/indexed-job.yaml")).unwrap();
    let config: serde_yaml::Value = serde_yaml::Deserializer::from_str(&manifest)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    let s = Scratch::new();
    let job = s.write("job.yaml", config["data"]["job.yaml"].as_str().unwrap());
    let ws = s.write(
        "workspace.yaml",
        config["data"]["workspace.yaml"].as_str().unwrap(),
    );
    let o = stagehand(&[
        "validate".as_ref(),
        job.as_os_str(),
        "--workspace".as_ref(),
        ws.as_os_str(),
    ]);
    expect_code(&o, 0);
}

/// The image recipe, built for real: `scripts/package` packages the binary under
/// test, `docker build` runs deploy/container/Dockerfile onto a local base (no
/// registry is reachable: the real debian base cannot be pulled), and the image runs
/// the example job. A broken recipe fails the build or the run.
#[test]
fn the_container_recipe_builds_and_runs_the_example() {
    if !crate::common::docker::engine() {
        return;
    }
    let s = Scratch::new();
    let base = format!("stagehand-test-debianlike:{}", std::process::id());
    let _base_gone = RemoveImage(base.clone());
    debian_like_base(&s, &base);
    let ctx = s.path().join("ctx");
    let o = Command::new(repo().join("scripts/package"))
        .arg(bin())
        .arg(&ctx)
        .output()
        .unwrap();
    expect_code(&o, 0);
    let tag = format!("stagehand-test-recipe:{}", std::process::id());
    let _gone = RemoveImage(tag.clone());
    let o = Command::new("docker")
        .args(["build", "-q", "-f"])
        .arg(repo().join("deploy/container/Dockerfile"))
        .args(["--build-arg", &format!("BASE={base}")])
        .args(["--build-arg", "PACKAGES=", "-t", &tag])
        .arg(&ctx)
        .output()
        .unwrap();
    expect_code(&o, 0);

    let o = Command::new("docker")
        .args(["run", "--rm", &tag, "--version"])
        .output()
        .unwrap();
    let (out, _) = expect_code(&o, 0);
    assert!(out.starts_with("stagehand "), "{out}");

    let hello = s.path().join("hello");
    copy_example("hello", &hello);
    let o = Command::new("docker")
        .args(["run", "--rm", "-e", "STAGEHAND_RUNS_DIR=/tmp/runs", "-v"])
        .arg(format!("{}:/job", hello.display()))
        .args([&tag, "run", "/job/job.yaml"])
        .output()
        .unwrap();
    let (out, err) = expect_code(&o, 0);
    assert!(out.contains("wrote 2 greetings"), "{out}\n{err}");
    let runs: Vec<_> = std::fs::read_dir(hello.join("data/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let greeting = std::fs::read_to_string(runs[0].join("greeting/greeting.txt")).unwrap();
    assert!(greeting.starts_with("Hello, "), "{greeting}");
}

/// Removes a test image when the test ends, however it ends.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// A local stand-in for debian:bookworm-slim, made with `docker import`: busybox (its
/// shell, and its dpkg applet to install the package), the shared libraries the
/// binary needs (from `ldd`), and a dpkg database that has libc6 (the package's one
/// dependency), tagged `tag`.
fn debian_like_base(s: &Scratch, tag: &str) {
    let r = s.path().join("rootfs");
    for d in [
        "bin",
        "etc",
        "tmp",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox-static is not installed (apt-get install busybox-static)");
    std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
    for tool in [
        "sh", "[", "test", "rm", "mkdir", "cat", "wc", "echo", "dpkg", "dpkg-deb", "tar", "gzip",
    ] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(tool)).unwrap();
    }
    let o = Command::new("ldd").arg(bin()).output().unwrap();
    let (libs, _) = expect_code(&o, 0);
    for lib in libs.split_whitespace().filter(|w| w.starts_with('/')) {
        let to = r.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lib, &to).unwrap();
    }
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(
        r.join("var/lib/dpkg/status"),
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36\nArchitecture: amd64\n\n",
    )
    .unwrap();
    let tar = s.path().join("rootfs.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&r)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    expect_code(&o, 0);
    let o = Command::new("docker")
        .arg("import")
        .arg(&tar)
        .arg(tag)
        .output()
        .unwrap();
    expect_code(&o, 0);
}
