//! S3-compatible datastores end to end, against a private moto server (`common::s3`),
//! objects made with boto3: the `Store` conformance suite, and the built binary
//! downloading and uploading the three data shapes (scaled down, small tuning so they
//! take the parallel-range and multipart paths), hostile keys, `overwrite: false`, and
//! the secret key never shown.

use crate::common::faults::{first, Fault, Proxy};
use crate::common::s3::{Moto, KEY_ID, SECRET};
use crate::common::*;
use sha2::Digest;
use stagehand::store::azure::Tuning;
use stagehand::store::conformance::check;
use stagehand::store::s3::{config, S3Store};
use stagehand::store::{DynStore, StoreError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Opens datastore `name` of a workspace file written with `yaml`, as the agent does.
fn open(dir: &Path, name: &str, yaml: &str) -> DynStore {
    std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
    let file = dir.join("workspace.yaml");
    std::fs::write(&file, yaml).unwrap();
    let ws = stagehand_protocol::load_workspace(&file)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .value;
    stagehand::store::open(&ws, dir, name).unwrap_or_else(|e| panic!("{e}"))
}

fn conforms(store: DynStore) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(check(store)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn s3_conforms_with_default_and_small_tuning() {
    let Some(m) = Moto::start() else { return };
    m.mkbucket(&["plain", "parts"]);
    let dir = tempfile::tempdir().unwrap();
    conforms(open(
        dir.path(),
        "s3",
        &format!(
            "datastores:\n  s3:\n    type: s3\n    bucket: plain\n    endpoint: {}\n    credentials: {{access_key_id: {KEY_ID}, secret_access_key: {{file: secret.txt}}}}\n",
            m.endpoint()
        ),
    ));
    // Over 1 MiB: parallel 1 MiB ranges down, a multipart upload up.
    let ds: stagehand_protocol::Datastore = serde_yaml::from_str(&format!(
        "{{type: s3, bucket: parts, endpoint: '{}', credentials: {{access_key_id: k, secret_access_key: s}}}}",
        m.endpoint()
    ))
    .unwrap();
    let target = config::resolve_target("s3", &ds, dir.path(), &|_| None).unwrap();
    let tuning = Tuning {
        range_threshold: 1 << 20,
        chunk: Some(1 << 20),
        single_put_max: 1 << 20,
        ..Tuning::from_settings()
    };
    let store: DynStore = Arc::new(S3Store::open_with(target, tuning).unwrap());
    conforms(store.clone());
    // A multipart upload's conditional Complete leaves an existing object alone.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let large = dir.path().join("large.bin");
    std::fs::write(&large, vec![7u8; 3_000_000]).unwrap();
    m.py(&["put", "parts", "taken.bin", "original"]);
    let e = rt
        .block_on(store.upload(&large, "taken.bin", false))
        .unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
    assert_eq!(m.py(&["get", "parts", "taken.bin"]), "original");
    assert_eq!(
        rt.block_on(store.upload(&large, "free.bin", false))
            .unwrap(),
        3_000_000
    );
    assert_eq!(
        m.sha256s("parts", "free.bin")["free.bin"],
        hex(&sha2::Sha256::digest(vec![7u8; 3_000_000]))
    );
}

/// Tuning that sends anything over 3 MiB through parallel 1 MiB ranges, and over 2 MiB
/// up as a multipart upload (in 5 MiB parts, S3's least).
fn small_tuning(c: &mut Command) -> &mut Command {
    c.env("STAGEHAND_AZURE_RANGE_THRESHOLD_MIB", "3")
        .env("STAGEHAND_AZURE_CHUNK_MIB", "1")
        .env("STAGEHAND_AZURE_SINGLE_PUT_MIB", "2")
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// The three data shapes, scaled down: one large file, a few medium, many small.
fn shapes(root: &Path) {
    put(root, "big.bin", &noise_for(1, 12 * 1024 * 1024 + 123));
    for i in 0..4 {
        put(
            root,
            &format!("medium/m{i}.bin"),
            &noise_for(10 + i, 2_600_000),
        );
    }
    for f in 0..100 {
        put(
            root,
            &format!("small/d{}/f{f:02}.bin", f % 4),
            &noise_for(100 + f, 4096),
        );
    }
}

fn setup(m: &Moto, bucket: &str, job_yaml: &str) -> (Scratch, PathBuf) {
    let s = Scratch::new();
    s.write("job/workspace.yaml", &m.workspace_yaml("s3", bucket));
    let j = s.write("job/job.yaml", job_yaml);
    (s, j)
}

fn run(s: &Scratch, job: &Path) -> std::process::Output {
    small_tuning(&mut s.run_cmd(job))
        .env("TEST_S3_SECRET", SECRET)
        .output()
        .unwrap()
}

/// Neither the secret key nor anything else of it in what the agent wrote.
fn never_shows_the_secret(s: &Scratch, o: &std::process::Output) {
    let mut all = String::from_utf8_lossy(&o.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&o.stderr));
    all.push_str(&std::fs::read_to_string(s.events_file()).unwrap_or_default());
    assert!(
        !all.contains("7c4e.never-printed"),
        "the secret key was shown"
    );
}

#[test]
fn a_job_downloads_and_uploads_every_shape_byte_for_byte_through_s3() {
    let Some(m) = Moto::start() else { return };
    let (s, j) = setup(
        &m,
        "data",
        r#"name: shapes
command: ["sh", "-c", "cp -r \"$AZUREML_DATAREFERENCE_big\" \"$AZUREML_DATAREFERENCE_medium\" \"$AZUREML_DATAREFERENCE_small\" \"$AZUREML_DATAREFERENCE_out\"/"]
inputs:
  big: {path: in/big.bin, mode: download}
  medium: {path: in/medium, mode: download}
  small: {path: in/small/, mode: download}
outputs:
  out: {path: "out/{run_id}", mode: upload}
"#,
    );
    let src = s.path().join("src");
    shapes(&src);
    m.mkbucket(&["data"]);
    m.upload_tree(&src, "data", "in");
    let o = run(&s, &j);
    expect_code(&o, 0);
    never_shows_the_secret(&s, &o);
    let want = tree(&src);
    let ev = s.events();
    let run_id = ev[0].run_id.as_str().to_string();
    let mut got = tree(&s.run_dir().join("inputs/medium"));
    got.extend(tree(&s.run_dir().join("inputs/small")));
    got.extend(tree(&s.run_dir().join("inputs/big")));
    assert_eq!(got, want, "downloaded bytes differ");
    let up: BTreeMap<String, String> = m
        .sha256s("data", &format!("out/{run_id}/"))
        .into_iter()
        .map(|(k, v)| {
            (
                k.trim_start_matches(&format!("out/{run_id}/")).to_string(),
                v,
            )
        })
        .collect();
    assert_eq!(up, want, "uploaded bytes differ (as boto3 reads them)");
}

#[test]
fn hostile_s3_keys_are_refused_by_name_and_nothing_lands_outside_the_target() {
    let Some(m) = Moto::start() else { return };
    m.mkbucket(&["hostile"]);
    m.py(&["put", "hostile", "back/../../../../x.txt", "escaped"]);
    m.py(&["put", "hostile", "ctl\u{1}name.txt", "control"]);
    m.py(&["put", "hostile", "esc\u{1b}[31mred.txt", "escape"]);
    m.py(&["put", "hostile", "fine.txt", "fine"]);
    let (s, j) = setup(
        &m,
        "hostile",
        "name: hostile\ncommand: [\"true\"]\ninputs:\n  data: {path: /, mode: download}\n",
    );
    let o = run(&s, &j);
    let (_, se) = expect_code(&o, code::NOT_FOUND_OR_DENIED);
    assert!(
        se.contains("back/../../../../x.txt"),
        "the refused name is not named: {se}"
    );
    // A control character in a name is refused too, and named escaped: it never reaches
    // a terminal or a file name raw.
    // (A newline too, in protocol::path's tests: moto cannot store a key with one.)
    for name in [r"ctl\u{1}name.txt", r"esc\u{1b}[31mred.txt"] {
        assert!(se.contains(name), "{name} is not named: {se}");
    }
    assert!(
        !se.contains('\u{1b}'),
        "a raw escape reached the terminal: {se}"
    );
    for p in walk(s.path()) {
        assert_ne!(
            p.file_name().unwrap(),
            "x.txt",
            "a hostile object landed at {}",
            p.display()
        );
        assert!(
            !p.to_string_lossy().chars().any(char::is_control),
            "a name with a control character landed: {p:?}"
        );
    }
}

#[test]
fn overwrite_false_leaves_an_existing_s3_object_alone_as_boto3_sees_the_server_do() {
    let Some(m) = Moto::start() else { return };
    m.mkbucket(&["box"]);
    m.py(&["put", "box", "results/model.txt", "original"]);
    // What the server does with boto3's own conditional create.
    assert_eq!(
        m.py(&["put-if-absent", "box", "results/model.txt", "x"])
            .trim(),
        "PreconditionFailed"
    );
    let (s, j) = setup(
        &m,
        "box",
        r#"name: clash
command: ["sh", "-c", "echo new > $AZUREML_DATAREFERENCE_out/model.txt"]
outputs:
  out: {path: results, mode: upload, overwrite: false}
"#,
    );
    let o = run(&s, &j);
    let (_, se) = expect_code(&o, code::UPLOAD_FAILED);
    assert!(
        se.contains("results/model.txt"),
        "the existing object is not named: {se}"
    );
    never_shows_the_secret(&s, &o);
    assert_eq!(m.py(&["get", "box", "results/model.txt"]), "original");
}

/// Deterministic bytes for `seed` (the suite's own generator, in `tests/common`).
fn noise_for(seed: u64, len: usize) -> Vec<u8> {
    crate::common::fuse::noise(len, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A store on `bucket` through the fault proxy, tuned so 3 MiB objects come down as
/// 1 MiB ranges.
fn through(proxy: &Proxy, bucket: &str, dir: &Path) -> DynStore {
    let origin = proxy.endpoint();
    let origin = origin.trim_end_matches("/devstoreaccount1");
    let ds: stagehand_protocol::Datastore = serde_yaml::from_str(&format!(
        "{{type: s3, bucket: {bucket}, endpoint: '{origin}', credentials: {{access_key_id: k, secret_access_key: s}}}}"
    ))
    .unwrap();
    let target = config::resolve_target("s3", &ds, dir, &|_| None).unwrap();
    let tuning = Tuning {
        range_threshold: 1 << 20,
        chunk: Some(1 << 20),
        single_put_max: 1 << 20,
        ..Tuning::from_settings()
    };
    Arc::new(S3Store::open_with(target, tuning).unwrap())
}

#[test]
fn s3_calls_survive_a_cut_range_a_lost_conditional_create_and_a_busy_or_throttled_listing() {
    let Some(m) = Moto::start() else { return };
    m.mkbucket(&["box"]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    put(&src, "obj.bin", &noise_for(7, 3 * 1024 * 1024 + 17));
    m.upload_tree(&src, "box", "in");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // A ranged GET whose answer breaks off half-way: resumed from its last byte.
    let proxy = Proxy::start(
        m.port,
        first(|l| l.starts_with("GET /box/in/obj.bin"), Fault::CutAnswer),
    );
    let store = through(&proxy, "box", dir.path());
    let obj = match rt.block_on(store.stat("in/obj.bin")).unwrap() {
        stagehand::store::Entry::File(o) => o,
        e => panic!("{e:?}"),
    };
    let dest = dir.path().join("got.bin");
    rt.block_on(store.download(&obj, &dest)).unwrap();
    assert_eq!(proxy.injected(), 1);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(src.join("obj.bin")).unwrap()
    );

    // A conditional PUT stored, its answer lost: the retry's 412 is recognised as ours.
    let proxy = Proxy::start(
        m.port,
        first(
            |l| l.starts_with("PUT /box/out/small.txt"),
            Fault::DropAnswer,
        ),
    );
    let store = through(&proxy, "box", dir.path());
    std::fs::write(dir.path().join("small.txt"), "mine").unwrap();
    let sent = rt.block_on(store.upload(&dir.path().join("small.txt"), "out/small.txt", false));
    assert_eq!(proxy.injected(), 1);
    assert_eq!(sent.unwrap_or_else(|e| panic!("{e}")), 4);
    assert_eq!(m.py(&["get", "box", "out/small.txt"]), "mine");

    // A listing answered 503 once: retried.
    let proxy = Proxy::start(
        m.port,
        first(|l| l.contains("list-type=2"), Fault::Status(503)),
    );
    let store = through(&proxy, "box", dir.path());
    let listed = rt.block_on(store.list("in")).unwrap();
    assert_eq!(proxy.injected(), 1);
    assert_eq!(listed.len(), 1);

    // A listing answered 503 with `Retry-After: 2` (S3 sends none; compatible services
    // and proxies in front of them do): waited out, not retried at the first backoff.
    let proxy = Proxy::start(
        m.port,
        first(|l| l.contains("list-type=2"), Fault::Throttle(503, 2)),
    );
    let store = through(&proxy, "box", dir.path());
    let asked = std::time::Instant::now();
    let listed = rt.block_on(store.list("in")).unwrap();
    assert_eq!(proxy.injected(), 1);
    assert_eq!(listed.len(), 1);
    assert!(
        asked.elapsed() >= std::time::Duration::from_secs(2),
        "the answer's Retry-After was not waited for: {:?}",
        asked.elapsed()
    );
}

#[test]
fn a_job_reads_an_s3_bucket_through_the_mount_byte_for_byte() {
    if !crate::common::fuse::fuse_ready() {
        return;
    }
    let Some(m) = Moto::start() else { return };
    m.mkbucket(&["data"]);
    let (s, j) = setup(
        &m,
        "data",
        r#"name: mounted
command: ["sh", "-c", "cmp \"$AZUREML_DATAREFERENCE_train/big.bin\" \"$EXPECT/big.bin\" && cat \"$AZUREML_DATAREFERENCE_train/d/small.txt\" && grep -c \" $AZUREML_DATAREFERENCE_train fuse\" /proc/self/mounts"]
inputs:
  train: {path: in, mode: mount}
"#,
    );
    let src = s.path().join("src");
    put(&src, "big.bin", &noise_for(3, 9 * 1024 * 1024 + 5));
    put(&src, "d/small.txt", b"small through the mount");
    m.upload_tree(&src, "data", "in");
    let o = small_tuning(&mut s.run_cmd(&j))
        .env("TEST_S3_SECRET", SECRET)
        .env("EXPECT", &src)
        .output()
        .unwrap();
    let (so, se) = expect_code(&o, 0);
    assert!(so.contains("small through the mount"), "{so}\n{se}");
    assert!(
        so.trim_end().ends_with('1'),
        "not read through a FUSE mount: {so}"
    );
    let stage = stage_started(&s.events(), "train");
    assert_eq!(stage.mode, "mount");
    let mp = PathBuf::from(stage.destination);
    assert!(
        !crate::common::fuse::mounted_at(&mp),
        "the mount outlived the run"
    );
    never_shows_the_secret(&s, &o);
}

#[test]
fn an_s3_download_killed_half_way_shows_no_partial_file_and_a_rerun_completes() {
    let Some(m) = Moto::start() else { return };
    m.mkbucket(&["box"]);
    let (s, j) = setup(
        &m,
        "box",
        "name: killed\ncommand: [\"true\"]\ninputs:\n  data: {path: set, mode: download}\n",
    );
    let src = s.path().join("src");
    let mut sizes = BTreeMap::new();
    for i in 0..60u64 {
        let len = 250_000 + i as usize * 100;
        put(&src, &format!("f{i:02}.bin"), &noise_for(i, len));
        sizes.insert(format!("f{i:02}.bin"), len as u64);
    }
    put(&src, "large.bin", &noise_for(99, 6 * 1024 * 1024));
    sizes.insert("large.bin".to_string(), 6 * 1024 * 1024);
    m.upload_tree(&src, "box", "set");
    let target = s.run_dir().join("inputs/data/set");
    // One request at a time, so there is a middle to kill it in.
    let mut child = small_tuning(&mut s.run_cmd(&j))
        .env("TEST_S3_SECRET", SECRET)
        .env("STAGEHAND_AZURE_REQUESTS", "1")
        .env("STAGEHAND_MANIFEST_SAVE_MS", "100")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let manifest = target.with_file_name(".set.stagehand.json");
    let midway = wait_until(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(5),
        || {
            let mut finals = 0;
            for e in std::fs::read_dir(&target).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                // A file under its final name is complete, always.
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                assert_eq!(
                    Some(&len),
                    sizes.get(&name),
                    "{name} appeared with {len} bytes"
                );
                finals += 1;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before the kill"
            );
            finals >= 5 && manifest.exists()
        },
    );
    assert!(midway, "the download never started");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let o = run(&s, &j);
    expect_code(&o, 0);
    assert_eq!(tree(&target), tree(&src));
    let f = stage_finished(&s.events(), "data");
    assert!(
        f.skipped_files > 0,
        "the re-run fetched again what was complete: {f:?}"
    );
}

/// `stagehand ARGS…` with the scratch workspace's secret in the environment.
fn agent(s: &Scratch, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env("TEST_S3_SECRET", SECRET)
        .current_dir(s.path())
        .output()
        .unwrap()
}

#[test]
fn datastore_commands_and_plan_check_reach_an_s3_bucket_and_show_no_secret() {
    let Some(m) = Moto::start() else { return };
    let (s, j) = setup(
        &m,
        "fresh",
        "name: planned\ncommand: [\"true\"]\ninputs:\n  data: {path: in/a.txt, mode: download}\n",
    );
    let ws = s.path().join("job/workspace.yaml");
    let ws = ws.to_str().unwrap();
    let o = agent(
        &s,
        &[
            "datastore",
            "-w",
            ws,
            "check",
            "s3",
            "--create-if-not-exists",
        ],
    );
    let (so, _) = expect_code(&o, 0);
    assert!(so.contains("created bucket \"fresh\""), "{so}");
    m.py(&["put", "fresh", "in/a.txt", "hello"]);
    let o = agent(&s, &["datastore", "-w", ws, "show", "s3"]);
    let (so, _) = expect_code(&o, 0);
    assert!(
        so.contains("path-style")
            && so.contains("secret access key from environment variable TEST_S3_SECRET"),
        "{so}"
    );
    let o = agent(&s, &["datastore", "-w", ws, "ls", "s3", "in"]);
    let (so, _) = expect_code(&o, 0);
    assert!(so.contains("in/a.txt"), "{so}");
    let o = agent(&s, &["plan", "--check", j.to_str().unwrap()]);
    let (so, se) = expect_code(&o, 0);
    assert!(so.contains("s3") && so.contains("in/a.txt"), "{so}\n{se}");
    let all = format!("{so}{se}");
    assert!(
        !all.contains("7c4e.never-printed"),
        "the secret key was shown"
    );
    // `register --type s3` writes the entry with its credentials as references, checks
    // it (here creating the bucket) and the bucket is then there for boto3 too.
    let o = Command::new(bin())
        .args(["datastore", "-w", ws, "register", "made", "--type", "s3"])
        .args(["--bucket", "made", "--endpoint", &m.endpoint()])
        .args(["--access-key-id", "env:TEST_S3_KEY"])
        .args(["--secret-access-key", "env:TEST_S3_SECRET"])
        .arg("--create-if-not-exists")
        .env("TEST_S3_KEY", KEY_ID)
        .env("TEST_S3_SECRET", SECRET)
        .current_dir(s.path())
        .output()
        .unwrap();
    let (so, _) = expect_code(&o, 0);
    assert!(so.contains("registered datastore \"made\""), "{so}");
    m.py(&["put", "made", "x.txt", "hi"]);
    assert_eq!(m.py(&["get", "made", "x.txt"]), "hi");
    let file = std::fs::read_to_string(ws).unwrap();
    assert!(
        file.contains("access_key_id: {env: TEST_S3_KEY}")
            && file.contains("secret_access_key: {env: TEST_S3_SECRET}")
            && !file.contains(SECRET),
        "{file}"
    );
    // A secret given as itself is refused, and the file is left as it was.
    let o = agent(
        &s,
        &[
            "datastore",
            "-w",
            ws,
            "register",
            "bad",
            "--type",
            "s3",
            "--bucket",
            "b",
            "--access-key-id",
            "env:K",
            "--secret-access-key",
            SECRET,
        ],
    );
    let (_, se) = expect_code(&o, code::INVALID);
    assert!(!se.contains(SECRET), "{se}");
    assert_eq!(std::fs::read_to_string(ws).unwrap(), file);
}

#[test]
fn an_output_with_sync_goes_up_to_s3_while_the_job_runs() {
    let Some(m) = Moto::start() else { return };
    m.mkbucket(&["ckpt"]);
    let (s, j) = setup(
        &m,
        "ckpt",
        r#"name: trainer
command: ["sh", "-c", "echo step-1 > \"$AZUREML_DATAREFERENCE_out/ckpt-1.txt\"; sleep 4"]
outputs:
  out: {path: "runs/{run_id}", mode: upload, sync: 1s}
"#,
    );
    let o = run(&s, &j);
    expect_code(&o, 0);
    let ev = s.events();
    let synced: u64 = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SyncPass { files, .. } => Some(*files),
            _ => None,
        })
        .sum();
    assert!(
        synced >= 1,
        "no sync pass sent the checkpoint: {:?}",
        kinds(&ev)
    );
    let run_id = ev[0].run_id.as_str().to_string();
    let key = format!("runs/{run_id}/ckpt-1.txt");
    assert_eq!(m.py(&["get", "ckpt", &key]), "step-1\n");
}

const MIB: u64 = 1 << 20;

/// `relative path -> sha256` of every file under `root`, hashed by coreutils'
/// `sha256sum` (a GiB in seconds, where this debug build would take most of a minute).
fn sha256sum_tree(root: &Path) -> BTreeMap<String, String> {
    let o = Command::new("sh")
        .args([
            "-c",
            "find . -type f ! -name '.*' -print0 | xargs -0 sha256sum",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (h, p) = l.split_once("  ").unwrap();
            (p.trim_start_matches("./").to_string(), h.to_string())
        })
        .collect()
}

/// Issue 30's acceptance at full size: a job writes 1 GiB, 100 × 10 MiB and
/// 2,000 × 4 KiB (hard links to files made beforehand, so the job itself is quick) and
/// stagehand uploads them with its default tuning (the GiB as a multipart upload);
/// boto3 reads every object back byte-exact and sees the GiB's multipart ETag; a
/// second job downloads them all (the GiB in parallel ranges) byte-exact.
#[test]
fn a_job_uploads_and_another_downloads_1_gib_100_x_10_mib_and_2000_x_4_kib_byte_exact_through_s3() {
    use crate::common::files::write_data;
    let Some(m) = Moto::start() else { return };
    m.mkbucket(&["shapes"]);
    let s = Scratch::new();
    let src = s.path().join("src");
    write_data(&src.join("big.bin"), 1, 1 << 30);
    for i in 0..100 {
        write_data(&src.join(format!("medium/m{i:03}.bin")), 10 + i, 10 * MIB);
    }
    for i in 0..2000 {
        write_data(
            &src.join(format!("small/d{}/f{i:04}.bin", i % 10)),
            100_000 + i,
            4096,
        );
    }
    let want = sha256sum_tree(&src);
    assert_eq!(want.len(), 2101);

    s.write("job/workspace.yaml", &m.workspace_yaml("s3", "shapes"));
    let up = s.write(
        "job/up.yaml",
        r#"name: up
command: ["sh", "-c", "cp -al \"$SRC\"/. \"$AZUREML_DATAREFERENCE_out\"/"]
outputs:
  out: {path: shapes, mode: upload}
"#,
    );
    let o = s
        .run_cmd(&up)
        .env("TEST_S3_SECRET", SECRET)
        .env("SRC", &src)
        .output()
        .unwrap();
    expect_code(&o, 0);
    never_shows_the_secret(&s, &o);
    let got: BTreeMap<String, String> = m
        .sha256s("shapes", "shapes/")
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("shapes/").to_string(), v))
        .collect();
    assert_eq!(got, want, "uploaded bytes differ (as boto3 reads them)");
    // The GiB went up in parts of the default block size: its ETag says how many.
    let part = Tuning::from_settings().block_for(1 << 30).max(5 * MIB);
    let etag = m.py(&["etag", "shapes", "shapes/big.bin"]);
    assert!(
        etag.trim()
            .ends_with(&format!("-{}", (1u64 << 30).div_ceil(part))),
        "the 1 GiB object is not a multipart upload in {part}-byte parts: ETag {etag}"
    );

    let d = Scratch::new();
    d.write("job/workspace.yaml", &m.workspace_yaml("s3", "shapes"));
    let down = d.write(
        "job/down.yaml",
        r#"name: down
command: ["true"]
inputs:
  big: {path: shapes/big.bin, mode: download}
  medium: {path: shapes/medium, mode: download}
  small: {path: shapes/small, mode: download}
"#,
    );
    let o = d
        .run_cmd(&down)
        .env("TEST_S3_SECRET", SECRET)
        .output()
        .unwrap();
    expect_code(&o, 0);
    never_shows_the_secret(&d, &o);
    assert_eq!(
        sha256sum_tree(&d.run_dir().join("inputs")),
        want.into_iter()
            .map(|(rel, h)| {
                // An input lands in a folder named after it, under its own last name.
                let input = rel.split_once('/').map_or("big", |(top, _)| top);
                (format!("{input}/{rel}"), h)
            })
            .collect::<BTreeMap<_, _>>(),
        "downloaded bytes differ"
    );
}

/// One way an S3 datastore is given its keys: its name, the workspace's
/// `credentials:` text, and the environment variables it needs.
type CredentialForm = (&'static str, String, Vec<(&'static str, String)>);

/// Every way an S3 datastore is given its keys; the secret and the session token are
/// `secret` and `token`, the key id `id`; `profiles` is a shared credentials file
/// whose profile `train` holds them.
fn credential_forms(id: &str, secret: &str, token: &str, profiles: &Path) -> Vec<CredentialForm> {
    vec![
        (
            "literal",
            format!("credentials: {{access_key_id: {id}, secret_access_key: \"{secret}\", session_token: \"{token}\"}}"),
            vec![],
        ),
        (
            "env",
            format!("credentials: {{access_key_id: {id}, secret_access_key: {{env: TEST_S3_SECRET}}, session_token: {{env: TEST_S3_TOKEN}}}}"),
            vec![("TEST_S3_SECRET", secret.to_string()), ("TEST_S3_TOKEN", token.to_string())],
        ),
        (
            "file",
            format!("credentials: {{access_key_id: {id}, secret_access_key: {{file: secret.txt}}, session_token: {{file: token.txt}}}}"),
            vec![],
        ),
        (
            "environment chain",
            String::new(),
            vec![
                ("AWS_ACCESS_KEY_ID", id.to_string()),
                ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
                ("AWS_SESSION_TOKEN", token.to_string()),
            ],
        ),
        (
            "shared credentials file",
            String::new(),
            vec![
                ("AWS_SHARED_CREDENTIALS_FILE", profiles.display().to_string()),
                ("AWS_PROFILE", "train".to_string()),
            ],
        ),
    ]
}

/// The secret access key and the session token, in every form a workspace or the
/// environment gives them, are never shown: not on stdout or stderr (`-vv`), in the
/// events, the run folder, `plan` (text and JSON), the error of a run the service
/// refuses for a wrong secret (403), nor in the job's environment.
#[test]
fn s3_secret_keys_and_session_tokens_never_appear_in_any_form() {
    let Some(open) = Moto::start() else { return };
    open.mkbucket(&["data"]);
    open.py(&["put", "data", "in/a.txt", "hello"]);
    // A server that checks signatures and session tokens: its temporary key id and
    // session token, with a wrong secret (the open server takes any).
    let Some(checking) = Moto::start_checking_signatures(1) else {
        return;
    };
    let (id, _, token) = checking.session_key();
    const SECRET_KEY: &str = "s3-secret-5b0d.never-printed";
    let aws = tempfile::tempdir().unwrap();
    let profiles = aws.path().join("credentials");
    std::fs::write(
        &profiles,
        format!("[default]\naws_access_key_id = other\naws_secret_access_key = other\n[train]\naws_access_key_id = {id}\naws_secret_access_key = {SECRET_KEY}\naws_session_token = {token}\n"),
    )
    .unwrap();
    for (form, creds, vars) in credential_forms(&id, SECRET_KEY, &token, &profiles) {
        let s = Scratch::new();
        s.write("job/secret.txt", &format!("{SECRET_KEY}\n"));
        s.write("job/token.txt", &format!("{token}\n"));
        s.write(
            "job/workspace.yaml",
            &format!(
                "default_datastore: open\ndatastores:\n  open: {{type: s3, bucket: data, endpoint: '{}', {creds}}}\n  checking: {{type: s3, bucket: data, endpoint: '{}', {creds}}}\n",
                open.endpoint(),
                checking.endpoint()
            ),
        );
        let good = s.write(
            "job/good.yaml",
            r#"name: good
command: [sh, -c, "env; echo ---; env | rev"]
inputs:
  a: {path: in/a.txt, mode: download}
outputs:
  o: {path: "o/{run_id}", mode: upload}
"#,
        );
        let bad = s.write(
            "job/bad.yaml",
            "name: bad\ncommand: [\"true\"]\ninputs:\n  a: {datastore: checking, path: in/a.txt, mode: download}\n",
        );
        let with_vars = |c: &mut Command| {
            c.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_SESSION_TOKEN")
                .envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
        };
        let mut c = s.run_cmd(&good);
        c.arg("-vv");
        with_vars(&mut c);
        let (so, se) = expect_code(&c.output().unwrap(), 0);
        // The job's environment as it is, printed backwards: redaction cannot hide it.
        let env: String = so
            .split_once("---")
            .expect("the job ran")
            .1
            .chars()
            .rev()
            .collect();
        for leak in [
            SECRET_KEY,
            &token,
            "TEST_S3_SECRET=",
            "TEST_S3_TOKEN=",
            "AWS_SECRET_ACCESS_KEY=",
            "AWS_SESSION_TOKEN=",
        ] {
            assert!(!env.contains(leak), "{form}: {leak} reached the job: {env}");
        }
        let mut said = vec![
            ("stdout".to_string(), so),
            ("stderr".to_string(), se),
            (
                "events".to_string(),
                std::fs::read_to_string(s.events_file()).unwrap(),
            ),
        ];
        for f in walk(&s.run_dir()) {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            said.push((f.display().to_string(), text));
        }
        for (args, job) in [
            (&["plan", "--format", "text"][..], &good),
            (&["plan", "--format", "json"][..], &good),
            (&["plan", "--check"][..], &bad),
        ] {
            let mut c = Command::new(bin());
            c.args(args).arg(job).current_dir(s.path());
            with_vars(&mut c);
            let (a, b) = text(&c.output().unwrap());
            said.push((format!("{args:?}"), a + &b));
        }
        // A wrong secret: the service answers 403, the run says so, and no more.
        let mut c = Command::new(bin());
        c.arg("run")
            .arg(&bad)
            .arg("--run-dir")
            .arg(s.path().join("refused-run"))
            .arg("--events")
            .arg(s.path().join("bad-events.jsonl"))
            .arg("-vv")
            .in_scratch(&s);
        with_vars(&mut c);
        let (a, b) = expect_code(&c.output().unwrap(), code::NOT_FOUND_OR_DENIED);
        assert!(b.contains("403"), "{form}: the refusal is not said: {b}");
        said.push(("the refused run".to_string(), a + &b));
        said.push((
            "the refused run's events".to_string(),
            std::fs::read_to_string(s.path().join("bad-events.jsonl")).unwrap(),
        ));
        for (what, hay) in said {
            for secret in [SECRET_KEY, &token] {
                assert!(
                    !hay.contains(secret),
                    "{form}: {secret:?} shown in {what}: {hay}"
                );
            }
        }
    }
}

/// An S3 endpoint whose certificate comes from an authority this machine does not
/// trust (here an HTTPS server of the tests, which is enough: the handshake fails
/// before any S3 call): the run fails at once with 66, not 75 (a rerun meets the same
/// certificate), saying why and what to do, without retrying it.
#[test]
fn an_s3_endpoint_with_an_untrusted_certificate_is_refused_at_once() {
    let Some(tls) = crate::common::tls::Tls::new() else {
        return;
    };
    let web = crate::common::web::WebServer::start_tls(&tls);
    let s = Scratch::new();
    s.write(
        "job/workspace.yaml",
        &format!(
            "default_datastore: s\ndatastores:\n  s: {{type: s3, bucket: data, endpoint: '{}', credentials: {{access_key_id: k, secret_access_key: s}}}}\n",
            web.url()
        ),
    );
    let job = s.write(
        "job/job.yaml",
        "name: tls\ncommand: [\"true\"]\ninputs:\n  a: {path: in/a.txt, mode: download}\n",
    );
    let out = s
        .run_cmd(&job)
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    let (so, se) = expect_code(&out, code::NOT_FOUND_OR_DENIED);
    let said = so + &se;
    assert!(
        said.contains("TLS certificate is not trusted") && said.contains("SSL_CERT_FILE"),
        "{said}"
    );
    assert_eq!(said.matches("UnknownIssuer").count(), 1, "retried: {said}");
}

/// A workspace whose S3 datastore on `bucket` gives no keys, and a job that copies
/// `in/a.txt` from it to `out/copy.txt` (printing its environment first).
fn keyless_job(m: &Moto, bucket: &str) -> (Scratch, PathBuf) {
    let s = Scratch::new();
    s.write(
        "job/workspace.yaml",
        &format!(
            "default_datastore: s3\ndatastores:\n  s3: {{type: s3, bucket: {bucket}, endpoint: '{}'}}\n",
            m.endpoint()
        ),
    );
    let job = s.write(
        "job/job.yaml",
        r#"name: keyless
command: [sh, -c, "env; cp \"$AZUREML_DATAREFERENCE_a\" \"$AZUREML_DATAREFERENCE_o\"/copy.txt"]
inputs:
  a: {path: in/a.txt, mode: download}
outputs:
  o: {path: out, mode: upload}
"#,
    );
    (s, job)
}

/// A stand-in for EC2's instance metadata service (IMDSv2): a session token on
/// `PUT /latest/api/token`, the role's name, then its temporary keys as JSON, each GET
/// only with the session token. Counts the key requests.
fn metadata_service(id: String, secret: String, token: String) -> (u16, Arc<AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let mut session = None;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("x-aws-ec2-metadata-token") {
                        session = Some(v.trim().to_string());
                    }
                }
            }
            let authorised = session.as_deref() == Some("imds-session");
            let expires = humantime::format_rfc3339_seconds(
                std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
            );
            let (status, body) = match line.split_whitespace().take(2).collect::<Vec<_>>()[..] {
                ["PUT", "/latest/api/token"] => ("200 OK", "imds-session".to_string()),
                [_, _] if !authorised => ("401 Unauthorized", String::new()),
                ["GET", "/latest/meta-data/iam/security-credentials/"] => {
                    ("200 OK", "train-role".to_string())
                }
                ["GET", "/latest/meta-data/iam/security-credentials/train-role"] => {
                    count.fetch_add(1, Ordering::SeqCst);
                    (
                        "200 OK",
                        format!(
                            r#"{{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"{id}","SecretAccessKey":"{secret}","Token":"{token}","Expiration":"{expires}"}}"#
                        ),
                    )
                }
                _ => ("404 Not Found", String::new()),
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, asked)
}

/// With no key in the workspace or the environment, on a machine whose role hands out
/// temporary keys (EC2, SageMaker: the instance metadata service), a job reads and
/// writes a bucket whose server checks every signature and session token; the keys are
/// fetched once for the whole run, and neither the secret nor the session token shows
/// in any output or reaches the job.
#[test]
fn the_instance_role_s_temporary_keys_sign_when_no_key_is_given() {
    // Unchecked: the role, its policy, its keys, the bucket and its object.
    let Some(m) = Moto::start_checking_signatures(5) else {
        return;
    };
    let keys = m.role_key();
    m.mkbucket(&["role"]);
    m.py(&["put", "role", "in/a.txt", "from the bucket"]);
    let (_, secret, token) = keys.clone();
    let (port, asked) = metadata_service(keys.0.clone(), secret.clone(), token.clone());
    let (s, job) = keyless_job(&m, "role");
    let out = s
        .run_cmd(&job)
        .arg("-vv")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .output()
        .unwrap();
    let (so, se) = expect_code(&out, 0);
    assert_eq!(
        m.py_as(&keys, &["get", "role", "out/copy.txt"]),
        "from the bucket"
    );
    // The server checks: other keys are refused.
    assert!(!m.py_raw(&["get", "role", "out/copy.txt"]).status.success());
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the keys were not kept");
    let said = [so, se, std::fs::read_to_string(s.events_file()).unwrap()];
    for text in said {
        assert!(
            !text.contains(&secret) && !text.contains(&token),
            "a temporary key is shown: {text}"
        );
    }
    // `datastore check` says where the keys come from.
    let o = Command::new(bin())
        .args(["datastore", "-w", "job/workspace.yaml", "check", "s3"])
        .current_dir(s.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .output()
        .unwrap();
    let (checked, _) = expect_code(&o, 0);
    assert!(
        checked.contains(&format!(
            "can be listed from the instance's role, at the metadata service http://127.0.0.1:{port}"
        )),
        "{checked}"
    );
    // A machine with no role (a laptop): no metadata service answers, and the run
    // fails with 66 (a rerun meets the same machine), saying where keys were looked for.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let out = s
        .run_cmd(&job)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &nowhere)
        .output()
        .unwrap();
    let (so, se) = expect_code(&out, code::NOT_FOUND_OR_DENIED);
    let said = so + &se;
    assert!(
        said.contains("no keys for bucket \"role\"") && said.contains(&nowhere),
        "{said}"
    );
}

/// On EKS with IAM roles for service accounts: no key anywhere, but a web identity
/// token file and a role. The token is traded at STS (a stand-in over HTTPS, trusted
/// through `SSL_CERT_FILE`) for the role's temporary keys, which sign a job's reads and
/// writes on a bucket whose server checks them; one trade for the whole run, and the
/// token, the secret and the session token show nowhere.
#[test]
fn a_web_identity_is_traded_at_sts_for_the_role_s_keys() {
    let Some(tls) = crate::common::tls::Tls::new() else {
        return;
    };
    let Some(m) = Moto::start_checking_signatures(5) else {
        return;
    };
    let keys = m.role_key();
    m.mkbucket(&["irsa"]);
    m.py(&["put", "irsa", "in/a.txt", "for the pod"]);
    const ROLE: &str = "arn:aws:iam::123456789012:role/stagehand-s3";
    const WEB_TOKEN: &str = "eyJ.the-pods-service-account-token.never-shown";
    let (s, job) = keyless_job(&m, "irsa");
    let token_file = s.write("token", WEB_TOKEN);
    let log = s.path().join("sts.log");
    let (child, port) = crate::common::spawn_server(
        Command::new(m.python())
            .arg(crate::common::repo().join("tests/common/sts_server.py"))
            .arg(&tls.cert)
            .arg(&tls.key)
            .arg(&log)
            .args([ROLE, WEB_TOKEN, &keys.0, &keys.1, &keys.2]),
        "the STS stand-in",
    );
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sts = Kill(child);
    let out = s
        .run_cmd(&job)
        .arg("-vv")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_ROLE_ARN", ROLE)
        .env("AWS_ENDPOINT_URL_STS", format!("https://127.0.0.1:{port}"))
        .env("SSL_CERT_FILE", &tls.ca)
        .output()
        .unwrap();
    let (so, se) = expect_code(&out, 0);
    assert_eq!(
        m.py_as(&keys, &["get", "irsa", "out/copy.txt"]),
        "for the pod"
    );
    let asked = std::fs::read_to_string(&log).unwrap();
    assert_eq!(asked, format!("AssumeRoleWithWebIdentity {ROLE}\n"));
    // A token STS refuses (another service account's): 66, saying where keys were
    // looked for, and the token still nowhere.
    let other = s.write("other-token", "eyJ.another-service-account.never-shown");
    let out = s
        .run_cmd(&job)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &other)
        .env("AWS_ROLE_ARN", ROLE)
        .env("AWS_ENDPOINT_URL_STS", format!("https://127.0.0.1:{port}"))
        .env("SSL_CERT_FILE", &tls.ca)
        .output()
        .unwrap();
    let (so2, se2) = expect_code(&out, code::NOT_FOUND_OR_DENIED);
    assert!(
        se2.contains("no keys for bucket \"irsa\"") && se2.contains(ROLE),
        "{se2}"
    );
    for text in [
        so,
        se,
        so2,
        se2,
        std::fs::read_to_string(s.events_file()).unwrap(),
    ] {
        for secret in [WEB_TOKEN, "another-service-account", &keys.1, &keys.2] {
            assert!(!text.contains(secret), "{secret} is shown: {text}");
        }
    }
}
