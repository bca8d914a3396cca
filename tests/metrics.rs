//! `STAGEHAND_METRICS_DIR`: each run's metrics and the node cache's, in Prometheus'
//! text format for node_exporter's textfile collector; `promtool check metrics`
//! accepts every file, and the values match the events.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `promtool`, or `None` (a failure in CI) when it is not installed.
fn promtool() -> Option<&'static str> {
    let there = Command::new("promtool").arg("--version").output().is_ok();
    assert!(
        there || !in_ci(),
        "promtool is missing: scripts/test installs it (Debian's prometheus)"
    );
    there.then_some("promtool")
}

/// `promtool check metrics` on `file`: its verdict.
fn check(tool: &str, file: &Path) {
    let text = std::fs::read(file).unwrap();
    let mut c = Command::new(tool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), &text).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{}: {}{}",
        file.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A sample's value in `text`: the first line that starts with `prefix`.
fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
}

#[test]
fn promtool_accepts_the_files_of_a_successful_a_failed_and_a_cancelled_run() {
    let Some(tool) = promtool() else { return };
    let s = Scratch::new();
    s.write(
        "workspace.yaml",
        "datastores:\n  local: {type: local, root: store}\ndefault_datastore: local\n",
    );
    s.write("store/in/a.txt", "hello\n");
    let metrics = s.path().join("metrics");
    let job = |name: &str, script: &str| {
        s.write(
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\ncommand: [sh, -c, '{script}']\ninputs:\n  data: {{path: in, mode: download}}\noutputs:\n  out: {{path: \"out/{{run_id}}\", mode: upload}}\n"
            ),
        )
    };
    let run = |file: &Path, id: &str| {
        let mut c = Command::new(bin());
        c.arg("run")
            .arg(file)
            .args(["--run-id", id, "--events"])
            .arg(s.path().join(format!("{id}.jsonl")))
            .env("STAGEHAND_METRICS_DIR", &metrics)
            .in_scratch(&s);
        c
    };
    let ok = run(
        &job("ok", "echo hi > $STAGEHAND_RUN_DIR/outputs/out/x"),
        "r-ok",
    )
    .output()
    .unwrap();
    expect_code(&ok, 0);
    let failed = run(&job("failed", "exit 3"), "r-failed").output().unwrap();
    expect_code(&failed, 3);
    let mut child = run(&job("cancelled", "sleep 60"), "r-cancelled")
        .spawn()
        .unwrap();
    let events = s.path().join("r-cancelled.jsonl");
    assert!(wait_until(Duration::from_secs(30), POLL, || kinds(
        &read_events(&events)
    )
    .iter()
    .any(|k| k == "started")));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();

    for (id, status) in [
        ("r-ok", "succeeded"),
        ("r-failed", "failed"),
        ("r-cancelled", "cancelled"),
    ] {
        let file = metrics.join(format!("stagehand_run_{id}.prom"));
        check(tool, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        let events = read_events(&s.path().join(format!("{id}.jsonl")));
        let end = finished(&events);
        let labels = format!("run_id=\"{id}\",job=\"{}\"", id.trim_start_matches("r-"));
        assert!(text.contains(&format!("stagehand_run_status{{{labels},scheduler_job_id=\"\",task_index=\"\",status=\"{status}\"}} 1")), "{text}");
        assert_eq!(
            value(&text, "stagehand_run_exit_code{"),
            f64::from(end.exit_code)
        );
        assert_eq!(
            value(&text, "stagehand_run_retries{"),
            end.retries as f64,
            "the retries are the finished event's"
        );
        assert_eq!(value(&text, &format!("stagehand_run_bytes{{{labels},scheduler_job_id=\"\",task_index=\"\",direction=\"download\"}}")), end.bytes_downloaded as f64);
    }
    check(tool, &metrics.join("stagehand_node_cache.prom"));
    let names: Vec<_> = std::fs::read_dir(&metrics)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        4,
        "three runs and the node file, nothing partial: {names:?}"
    );
}

/// A bound that holds one input of two: the second run evicts the first's entry, and the
/// node file counts it (a counter that outlives the agent that evicted).
#[test]
fn the_node_file_counts_evictions_across_runs() {
    let Some(tool) = promtool() else { return };
    let Some(az) = crate::common::azurite::Azurite::start() else {
        return;
    };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    let proxy =
        crate::common::faults::Proxy::start(az.port, |_| crate::common::faults::Fault::None);
    proxy.workspace(&s);
    let metrics = s.path().join("metrics");
    for (i, name) in [(1, "a.bin"), (2, "b.bin")] {
        let p = s.path().join("src").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        crate::common::files::write_data(&p, i, 2 << 20);
        let o = Command::new(bin())
            .args(["datastore", "upload-files", "az", "--overwrite"])
            .arg(&p)
            .arg("--workspace")
            .arg(s.path().join("workspace.yaml"))
            .output()
            .unwrap();
        expect_code(&o, 0);
        let job = s.write(
            &format!("{name}.yaml"),
            &format!("name: read\ncommand: [cat, \"${{{{inputs.data}}}}\"]\ninputs:\n  data: {{path: {name}, mode: download}}\n"),
        );
        let o = Command::new(bin())
            .arg("run")
            .arg(&job)
            .env("STAGEHAND_METRICS_DIR", &metrics)
            .env("STAGEHAND_CACHE_SIZE", "3MiB")
            .in_scratch(&s)
            .stdout(std::process::Stdio::null())
            .output()
            .unwrap();
        expect_code(&o, 0);
    }
    let node = metrics.join("stagehand_node_cache.prom");
    check(tool, &node);
    let text = std::fs::read_to_string(&node).unwrap();
    assert!(
        text.contains("# TYPE stagehand_node_cache_evictions_total counter"),
        "{text}"
    );
    assert!(
        value(&text, "stagehand_node_cache_evictions_total") >= 1.0,
        "a.bin's entry went to make room for b.bin: {text}"
    );
    assert_eq!(value(&text, "stagehand_node_cache_entries"), 1.0, "{text}");
}
