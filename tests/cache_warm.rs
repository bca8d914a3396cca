//! `stagehand cache warm JOB`: a job's download inputs fetched into the node cache
//! without running it (a Slurm prolog, an init container), so that its run finds every
//! one a hit; `plan` and `plan --check` say which inputs are cached.

use crate::common::azurite::Azurite;
use crate::common::faults::{Fault, Proxy};
use crate::common::files::write_data;
use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

/// Uploads the local file `src` as the blob of its name.
fn upload(s: &Scratch, src: &Path) {
    let o = Command::new(bin())
        .args(["datastore", "upload-files", "az", "--overwrite"])
        .arg(src)
        .arg("--workspace")
        .arg(s.path().join("workspace.yaml"))
        .output()
        .unwrap();
    expect_code(&o, 0);
}

/// `stagehand ARGS job.yaml` on the test's node cache.
fn agent(s: &Scratch, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg(s.path().join("job.yaml"))
        .in_scratch(s)
        .output()
        .unwrap()
}

#[test]
fn a_warmed_cache_serves_every_input_and_plan_says_which_are_cached() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    let proxy = Proxy::start(az.port, |_| Fault::None);
    proxy.workspace(&s);
    for (i, name) in [(1, "a.bin"), (2, "b.bin")] {
        let p = s.path().join("src").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_data(&p, i, 1 << 20);
        upload(&s, &p);
    }
    s.write(
        "job.yaml",
        r#"name: warmed
command: [cat, "${{inputs.a}}", "${{inputs.b}}"]
inputs:
  a: {path: a.bin, mode: download}
  b: {path: b.bin, mode: download}
"#,
    );
    let (text, _) = expect_code(&agent(&s, &["plan"]), 0);
    assert!(
        text.contains("node cache: checked by plan --check"),
        "{text}"
    );
    let (_, err) = expect_code(&agent(&s, &["plan", "--check"]), 0);
    assert!(
        err.contains("input \"a\": 0 of 1 file(s) in the node cache"),
        "{err}"
    );

    let (out, _) = expect_code(&agent(&s, &["cache", "warm"]), 0);
    assert!(
        out.contains("input \"a\": 1 file(s): 0 already in the node cache, 1 fetched into it"),
        "{out}"
    );
    assert!(
        out.contains("input \"b\": 1 file(s): 0 already in the node cache, 1 fetched into it"),
        "{out}"
    );
    // Nothing but the cache's entries is left.
    let left: Vec<_> = std::fs::read_dir(s.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["downloads"], "{left:?}");
    let (_, err) = expect_code(&agent(&s, &["plan", "--check"]), 0);
    assert!(
        err.contains("input \"a\": 1 of 1 file(s) in the node cache"),
        "{err}"
    );
    assert!(
        err.contains("input \"b\": 1 of 1 file(s) in the node cache"),
        "{err}"
    );

    let events = s.path().join("run.jsonl");
    let o = Command::new(bin())
        .arg("run")
        .arg(s.path().join("job.yaml"))
        .arg("--events")
        .arg(&events)
        .in_scratch(&s)
        .output()
        .unwrap();
    expect_code(&o, 0);
    let events = read_events(&events);
    for name in ["a", "b"] {
        let staged = stage_finished(&events, name);
        assert_eq!(
            (
                staged.files,
                staged.cache_hits,
                staged.cache_misses,
                staged.bytes
            ),
            (1, 1, 0, 0),
            "{name}: {staged:?}"
        );
    }
}
