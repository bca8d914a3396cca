//! Azure ML v2 environments: a build context built once with the Docker
//! engine and reused, a failing build, and named environments resolved through the
//! workspace or to Microsoft's curated images.

use crate::common::docker::{self, IMAGE};
use crate::common::*;
use std::process::Command;

/// The `stagehand-env:<hash>` tag a run's log names.
fn built_tag(stderr: &str) -> String {
    let at = stderr
        .find("stagehand-env:")
        .unwrap_or_else(|| panic!("no image tag in {stderr}"));
    stderr[at..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_string()
}

fn image_id(tag: &str) -> String {
    let o = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A build context whose Dockerfile is `FROM` the test image: built on the first run
/// (its output in the run folder's build log), the job runs in it; the second run
/// finds the image by its content and builds nothing.
#[test]
fn a_build_context_is_built_once_and_reused() {
    if !docker::engine() {
        return;
    }
    docker::images();
    let s = Scratch::new();
    // Content unique to this test run, so the first run really builds.
    let nonce = s.path().display().to_string();
    s.write("project/ctx/marker.txt", &format!("built {nonce}\n"));
    // Azure ML runs a command with bash, which the test image lacks: the built image
    // has one (a wrapper around busybox sh), so the job runs only in the built image.
    let bash = s.write("project/ctx/bash", "#!/bin/sh\nexec /bin/sh \"$@\"\n");
    std::fs::set_permissions(&bash, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    s.write(
        "project/ctx/Dockerfile.test",
        &format!("FROM {IMAGE}\nCOPY bash /bin/bash\nCOPY marker.txt /built-marker\n"),
    );
    let job = s.write(
        "project/job.yml",
        r#"type: command
command: cat /built-marker
environment:
  build: {path: ctx, dockerfile_path: Dockerfile.test}
"#,
    );
    let ws = s.write(
        "workspace.yaml",
        r#"datastores: {}
"#,
    );
    let run = |dir: &str| {
        Command::new(bin())
            .arg("run")
            .arg(&job)
            .arg("--workspace")
            .arg(&ws)
            .arg("--run-dir")
            .arg(s.path().join(dir))
            .in_scratch(&s)
            .output()
            .unwrap()
    };
    let first = run("run1");
    let (so, se) = expect_code(&first, 0);
    assert_eq!(so, format!("built {nonce}\n"));
    let tag = built_tag(&se);
    let log = std::fs::read_to_string(s.path().join("run1/logs/build.log")).unwrap();
    assert!(log.contains("COPY marker.txt"), "{log}");
    let id = image_id(&tag);
    assert!(!id.is_empty());

    let second = run("run2");
    let (so, se) = expect_code(&second, 0);
    assert_eq!(so, format!("built {nonce}\n"));
    assert!(se.contains("reusing it"), "{se}");
    assert!(!s.path().join("run2/logs/build.log").exists());
    assert_eq!(image_id(&tag), id);
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
}

/// A Dockerfile that fails: exit 75 before the job, naming the context and the log.
#[test]
fn a_failing_build_says_so_and_where_its_log_is() {
    if !docker::engine() {
        return;
    }
    docker::images();
    let s = Scratch::new();
    s.write(
        "ctx/Dockerfile",
        &format!("FROM {IMAGE}\nCOPY not-there.txt /x\n"),
    );
    let job = s.write(
        "job.yml",
        r#"type: command
command: echo never
environment: {build: {path: ctx}}
"#,
    );
    let ws = s.write(
        "workspace.yaml",
        r#"datastores: {}
"#,
    );
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .output()
        .unwrap();
    let (so, se) = expect_code(&out, 75);
    assert!(!so.contains("never"), "{so}");
    assert!(se.contains("building the image from"), "{se}");
    assert!(se.contains("logs/build.log"), "{se}");
    let log = std::fs::read_to_string(s.run_dir().join("logs/build.log")).unwrap();
    assert!(log.contains("not-there.txt"), "{log}");
}

/// Named environments: a workspace entry (with a version), a curated one by default, a
/// curated one overridden, and an unknown one refused at `environment`.
#[test]
fn named_environments_resolve_through_the_workspace_or_to_curated_images() {
    let s = Scratch::new();
    let ws = s.write(
        "workspace.yaml",
        r#"datastores: {}
environments:
  my-env:2: {image: "registry.local/my-env:2"}
  sklearn-1.5: {image: "mirror.local/sklearn:1.5"}
"#,
    );
    let image_of = |env: &str| {
        let job = s.write(
            "job.yml",
            &format!(
                r#"type: command
command: ls
environment: "{env}"
"#
            ),
        );
        let plan = plan_json(&job, &["--workspace", ws.to_str().unwrap()]);
        plan["container"]["image"].as_str().unwrap().to_string()
    };
    assert_eq!(image_of("azureml:my-env:2"), "registry.local/my-env:2");
    assert_eq!(
        image_of("azureml://registries/azureml/environments/tensorflow-2.16-cuda12/labels/latest"),
        "mcr.microsoft.com/azureml/curated/tensorflow-2.16-cuda12:latest"
    );
    assert_eq!(
        image_of("azureml:AzureML-sklearn-1.5@latest"),
        "mirror.local/sklearn:1.5"
    );
    let job = s.write(
        "job.yml",
        r#"type: command
command: ls
environment: azureml:nothere:1
"#,
    );
    let out = plan_with(&job, &ws);
    let (_, se) = expect_code(&out, 64);
    assert!(se.contains("environment:"), "{se}");
    assert!(se.contains("not in the workspace's environments"), "{se}");
}
