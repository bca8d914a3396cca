//! Outputs restored from their destination (`restore`, on by default with `sync`): a
//! job requeued by Slurm onto another node, whose run folder there is empty, starts
//! with the checkpoints its first attempt synced, continues from the last, and uploads
//! none of them twice.

use crate::common::slurm::Slurm;
use crate::common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The checkpoint writer: lists what its output folder holds at the start (into
/// `seen-at-start-<attempt>`), then writes `ckpt-NNNN` every second from the last one
/// it found: forever on a first attempt, three more on a requeue.
const CHECKPOINTS: &str = r#"out="$1"; attempt="${SLURM_RESTART_COUNT:-0}"
seen=$(ls "$out"); printf '%s\n' "$seen" > "$out/seen-at-start-$attempt"
last=$(ls "$out" | grep '^ckpt-' | sort | tail -n 1); n=${last#ckpt-}; n=$((10#${n:-0}))
if [ "$attempt" = 0 ]; then end=100000; else end=$((n + 3)); fi
while [ "$n" -lt "$end" ]; do
  n=$((n + 1)); printf 'checkpoint %d of attempt %s\n' "$n" "$attempt" > "$out/$(printf ckpt-%04d "$n")"
  sleep 1
done
"#;

/// The names of the checkpoints in `dir`.
fn checkpoints(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("ckpt-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Files uploaded by an attempt: its sync passes and its upload at exit.
fn uploaded_files(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::SyncPass { files, .. } | EventKind::UploadFinished { files, .. } => *files,
            _ => 0,
        })
        .sum()
}

/// The `output_restored` event of `name`: (files, bytes).
fn restored(events: &[Event], name: &str) -> (u64, u64) {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::OutputRestored {
                name: n,
                files,
                bytes,
                ..
            } if n == name => Some((*files, *bytes)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no output_restored event for {name:?}: {:?}", kinds(events)))
}

/// The node an attempt ran on, from its `accepted` event.
fn node_of(events: &[Event]) -> String {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Accepted { scheduler, .. } => scheduler.as_ref()?.node.clone(),
            _ => None,
        })
        .expect("an accepted event naming the node")
}

/// `scontrol requeue` after a few synced checkpoints, the first node excluded, and each
/// node with run folders of its own (as on separate machines): the second attempt
/// finds every checkpoint the first uploaded in its output folder, continues from the
/// last, and uploads none of them again; the first attempt, on an empty destination,
/// restored nothing.
#[test]
fn a_job_requeued_onto_another_node_continues_from_its_synced_checkpoints() {
    let Some(slurm) = Slurm::start() else { return };
    let s = Scratch::new();
    s.write(
        "workspace.yaml",
        "datastores:\n  local: {type: local, root: store}\ndefault_datastore: local\n",
    );
    std::fs::create_dir_all(s.path().join("store")).unwrap();
    let script = s.write("checkpoints.sh", CHECKPOINTS);
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: checkpointed
command: [bash, {}, "${{{{outputs.ckpt}}}}"]
kill_grace: 2s
outputs:
  ckpt: {{path: "ckpt/{{run_id}}", mode: upload, sync: 1s}}
"#,
            script.display()
        ),
    );
    let o = slurm
        .cmd("sbatch")
        .args(["--parsable", "--requeue", "-o"])
        .arg(s.path().join("slurm.out"))
        .arg("--wrap")
        .arg(format!(
            "STAGEHAND_RUNS_DIR={dir}/runs-$SLURMD_NODENAME exec {bin} run {job} --events {dir}/events-$SLURM_RESTART_COUNT.jsonl",
            bin = bin().display(),
            job = job.display(),
            dir = s.path().display()
        ))
        .in_scratch(&s)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let id = out.trim().split(';').next().unwrap_or_default().to_string();
    let dest = s.path().join(format!("store/ckpt/slurm-{id}"));
    // A few checkpoints synced to the datastore, then the requeue.
    assert!(
        wait_until(Duration::from_secs(60), POLL, || checkpoints(&dest).len()
            >= 3),
        "no checkpoints synced: {}",
        slurm.logs()
    );
    let first_events = s.path().join("events-.jsonl");
    let first_node = node_of(&read_events(&first_events));
    let o = slurm.run("scontrol", &["requeue", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pending = || {
        String::from_utf8_lossy(&slurm.run("squeue", &["-h", "-j", &id, "-o", "%T"]).stdout)
            .contains("PENDING")
    };
    assert!(wait_until(
        Duration::from_secs(30),
        Duration::from_millis(250),
        pending
    ));
    let jobid = format!("JobId={id}");
    let excluded = format!("ExcNodeList={first_node}");
    let o = slurm.run("scontrol", &["update", &jobid, &excluded, "StartTime=now"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let second_events = s.path().join("events-1.jsonl");
    assert!(
        wait_until(Duration::from_secs(150), Duration::from_millis(250), || {
            kinds(&read_events(&second_events))
                .iter()
                .any(|k| k == "finished")
        }),
        "the requeued job did not run again: {}",
        String::from_utf8_lossy(&slurm.run("squeue", &["-h", "-o", "%i %T %r"]).stdout)
    );
    let (first, second) = (read_events(&first_events), read_events(&second_events));
    assert_ne!(node_of(&second), first_node, "the first node was excluded");
    assert_eq!(finished(&second).exit_code, 0, "{second:?}");
    // The first attempt, on an empty destination, restored nothing.
    assert_eq!(restored(&first, "ckpt"), (0, 0));
    // What the first attempt left at the destination is what the second found.
    let seen_file = dest.join("seen-at-start-1");
    let seen: BTreeSet<String> = std::fs::read_to_string(&seen_file)
        .unwrap()
        .lines()
        .filter(|n| n.starts_with("ckpt-"))
        .map(str::to_string)
        .collect();
    assert!(seen.len() >= 3, "{seen:?}");
    let (files, _) = restored(&second, "ckpt");
    // The first attempt's checkpoints and its `seen-at-start-0`.
    assert_eq!(files, seen.len() as u64 + 1);
    // Continued from the last: one unbroken run of numbers, three past what it found.
    let all = checkpoints(&dest);
    let expected: BTreeSet<String> = (1..=seen.len() + 3)
        .map(|n| format!("ckpt-{n:04}"))
        .collect();
    assert_eq!(all, expected);
    let last = std::fs::read_to_string(dest.join(format!("ckpt-{:04}", seen.len() + 1)));
    assert!(last.unwrap().contains("of attempt 1"));
    // Nothing uploaded twice: every file at the destination went up exactly once.
    let at_dest = std::fs::read_dir(&dest).unwrap().count() as u64;
    assert_eq!(uploaded_files(&first) + uploaded_files(&second), at_dest);
}
