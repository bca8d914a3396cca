//! Azure file share datastores (`type: azure_file`) end to end: the built binary, and
//! the store itself, against the Files REST test server (tests/common/files_server.py;
//! Azurite has no Files service), which Microsoft's Python SDK is run against too, so
//! the server stays honest. Shares are folders of the server's storage: tests seed
//! large data there directly and read uploads back from there, byte for byte.

use crate::common::files::{
    same_bytes, write_data, FilesServer, ACCOUNT, KEY, KEY_FROM_ENV, SAS_FROM_ENV,
};
use crate::common::fuse::fuse_ready;
use crate::common::*;
use stagehand::store::{DynStore, Entry, StoreError};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

/// `stagehand run JOB` against `fs`, its key and `sas` in the environment.
fn run(s: &Scratch, job: &Path, sas: &str) -> std::process::Output {
    s.run_cmd(job)
        .env("TEST_FILES_KEY", KEY)
        .env("TEST_FILES_SAS", sas)
        .output()
        .unwrap()
}

/// The data shapes of the issue: one large file, many medium, many small; written
/// straight into the share's folder on the server. Returns their relative paths.
fn seed_shapes(dir: &Path, big: u64, medium: (u64, u64), small: (u64, u64)) -> Vec<String> {
    let mut rels = vec!["big.bin".to_string()];
    write_data(&dir.join("big.bin"), 1, big);
    for i in 0..medium.0 {
        let r = format!("medium/m{i:03}.bin");
        write_data(&dir.join(&r), 10 + i, medium.1);
        rels.push(r);
    }
    for i in 0..small.0 {
        let r = format!("small/d{}/f{i:04}.bin", i % 10);
        write_data(&dir.join(&r), 100_000 + i, small.1);
        rels.push(r);
    }
    rels
}

/// A job downloading the three shapes from `in/` and uploading them again to
/// `out/{run_id}`: checks both directions byte for byte.
fn shapes_round_trip(credentials: &str, sas_perms: Option<&str>) {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    fs.mkshare("data");
    let src = fs.share_dir("data").join("in");
    let rels = seed_shapes(&src, 1 << 30, (100, 10 * MIB), (2000, 4096));
    let sas = sas_perms.map(|p| fs.sas("data", p)).unwrap_or_default();
    let s = Scratch::new();
    fs.workspace(&s, "job/workspace.yaml", "share", "data", credentials);
    let job = s.write(
        "job/job.yaml",
        r#"name: shapes
command: ["sh", "-c", "cp -r \"$AZUREML_DATAREFERENCE_big\" \"$AZUREML_DATAREFERENCE_medium\" \"$AZUREML_DATAREFERENCE_small\" \"$AZUREML_DATAREFERENCE_out\"/"]
inputs:
  big: {path: in/big.bin, mode: download}
  medium: {path: in/medium, mode: download}
  small: {path: in/small, mode: download}
outputs:
  out: {path: "out/{run_id}", mode: upload}
"#,
    );
    let o = run(&s, &job, &sas);
    let (_, se) = expect_code(&o, 0);
    assert!(sas.is_empty() || !se.contains(&sas), "the SAS was printed");
    let run_id = s.events()[0].run_id.clone();
    let inputs = s.run_dir().join("inputs");
    let uploaded = fs.share_dir("data").join("out").join(&run_id);
    for rel in &rels {
        // An input lands in a folder named after it, under its own last name.
        let input = rel.split_once('/').map_or("big", |(top, _)| top);
        let local = inputs.join(input).join(rel);
        assert!(
            same_bytes(&src.join(rel), &local),
            "downloaded {rel} differs"
        );
        assert!(
            same_bytes(&src.join(rel), &uploaded.join(rel)),
            "uploaded {rel} differs"
        );
    }
    // No temporary upload is left in the share.
    let leftovers: Vec<_> = walk(&uploaded)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".stagehand-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Microsoft's SDK reads what stagehand uploaded.
    let sdk = fs.sha256s("data", &format!("out/{run_id}/small/d3"));
    assert_eq!(sdk.len(), 200);
    assert_eq!(
        sdk,
        tree(&uploaded.join("small/d3"))
            .into_iter()
            .map(|(k, v)| (format!("out/{run_id}/small/d3/{k}"), v))
            .collect()
    );
}

#[test]
fn a_job_moves_1_gib_100_x_10_mib_and_2000_x_4_kib_byte_exact_with_an_account_key() {
    shapes_round_trip(KEY_FROM_ENV, None);
}

#[test]
fn a_job_moves_1_gib_100_x_10_mib_and_2000_x_4_kib_byte_exact_with_a_sas() {
    shapes_round_trip(SAS_FROM_ENV, Some("rcwdl"));
}

#[test]
fn the_python_sdk_suite_passes_against_the_test_server() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    let o = fs.py_raw(&["suite"]);
    let (so, se) = text(&o);
    assert!(
        o.status.success() && so.trim() == "ok",
        r#"stdout: {so}
stderr: {se}"#
    );
}

#[test]
fn overwrite_false_fails_naming_the_file_and_leaves_it_unchanged() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    fs.mkshare("box");
    fs.py(&["put", "box", "results/model.txt", "original"]);
    let s = Scratch::new();
    fs.workspace(&s, "job/workspace.yaml", "share", "box", KEY_FROM_ENV);
    let job = s.write(
        "job/job.yaml",
        r#"name: clash
command: ["sh", "-c", "echo new > $AZUREML_DATAREFERENCE_out/model.txt"]
outputs:
  out: {path: results, mode: upload, overwrite: false}
"#,
    );
    let (_, se) = expect_code(&run(&s, &job, ""), code::UPLOAD_FAILED);
    assert!(
        se.contains("results/model.txt"),
        "the existing file is not named: {se}"
    );
    assert_eq!(fs.py(&["get", "box", "results/model.txt"]), "original");
    // The file appears after the check before the upload: the rename still refuses.
    fs.faults(r#"{"hide_head": "box/results/model.txt"}"#);
    let (_, se) = expect_code(&run(&s, &job, ""), code::UPLOAD_FAILED);
    assert!(
        fs.faults_left()["hide_head"].is_null(),
        "the check was not fooled"
    );
    assert!(se.contains("results/model.txt"), "{se}");
    assert_eq!(fs.py(&["get", "box", "results/model.txt"]), "original");
    let left: Vec<_> = walk(&fs.share_dir("box"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".stagehand-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn a_rename_whose_answer_was_lost_is_known_for_done_by_its_tag() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    fs.mkshare("box");
    fs.py(&["put", "box", "results/theirs.txt", "someone else's"]);
    fs.faults(r#"{"lose_renames": 2}"#);
    let s = Scratch::new();
    fs.workspace(&s, "job/workspace.yaml", "share", "box", KEY_FROM_ENV);
    let job = s.write(
        "job/job.yaml",
        r#"name: lost
command: ["sh", "-c", "echo one > $AZUREML_DATAREFERENCE_a/one.txt; echo two > $AZUREML_DATAREFERENCE_b/two.txt"]
outputs:
  a: {path: results, mode: upload, overwrite: false}
  b: {path: more, mode: upload, overwrite: true}
"#,
    );
    expect_code(&run(&s, &job, ""), 0);
    assert_eq!(fs.faults_left()["lose_renames"], 0);
    assert_eq!(fs.py(&["get", "box", "results/one.txt"]), "one\n");
    assert_eq!(fs.py(&["get", "box", "more/two.txt"]), "two\n");
    // Someone else's file is still refused, tag or not.
    let job = s.write(
        "job/job.yaml",
        r#"name: theirs
command: ["sh", "-c", "echo mine > $AZUREML_DATAREFERENCE_a/theirs.txt"]
outputs:
  a: {path: results, mode: upload, overwrite: false}
"#,
    );
    let (_, se) = expect_code(&run(&s, &job, ""), code::UPLOAD_FAILED);
    assert!(se.contains("results/theirs.txt"), "{se}");
    assert_eq!(
        fs.py(&["get", "box", "results/theirs.txt"]),
        "someone else's"
    );
}

#[test]
fn hostile_names_are_refused_and_nothing_lands_outside_the_target() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    fs.mkshare("hostile");
    fs.py(&["put", "hostile", "fine.txt", "fine"]);
    fs.plant_in_listing(
        "hostile",
        &[("File", "../../x.txt", 7), ("File", "back\\..\\x.txt", 7)],
    );
    fs.mkshare("loop");
    fs.plant_in_listing("loop", &[("Directory", "..", 0)]);
    let s = Scratch::new();
    s.write(
        "job/workspace.yaml",
        &format!(
            r#"datastores:
  hostile: {{type: azure_file, account_name: {ACCOUNT}, file_share_name: hostile, endpoint: "{e}", credentials: {KEY_FROM_ENV}}}
  loop: {{type: azure_file, account_name: {ACCOUNT}, file_share_name: loop, endpoint: "{e}", credentials: {KEY_FROM_ENV}}}
"#,
            e = fs.endpoint()
        ),
    );
    let job = s.write(
        "job/job.yaml",
        r#"name: hostile
command: ["true"]
inputs:
  data: {datastore: hostile, path: /, mode: download}
"#,
    );
    // The same listing refuses the same names every time: not worth a retry.
    let (_, se) = expect_code(&run(&s, &job, ""), code::NOT_FOUND_OR_DENIED);
    assert!(
        se.contains("../../x.txt") && se.contains(r"back\\..\\x.txt"),
        "the refused names are not named: {se}"
    );
    let job = s.write(
        "job/job.yaml",
        r#"name: loop
command: ["true"]
inputs:
  data: {datastore: loop, path: /, mode: download}
"#,
    );
    let (_, se) = expect_code(&run(&s, &job, ""), code::NOT_FOUND_OR_DENIED);
    assert!(
        se.contains("\"..\"") && se.contains("directory name"),
        "{se}"
    );
    for p in walk(s.path().parent().unwrap()) {
        assert_ne!(p.file_name().unwrap(), "x.txt", "landed at {}", p.display());
    }
}

#[test]
fn broken_downloads_resume_and_busy_answers_are_retried_byte_exact() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    fs.mkshare("data");
    let src = fs.share_dir("data").join("in");
    write_data(&src.join("a.bin"), 7, 40 * MIB + 5);
    write_data(&src.join("b.bin"), 8, 3 * MIB);
    // Listing pages of 1 entry: the walk follows every continuation.
    fs.faults(r#"{"cut_gets": 4, "busy": 3, "page": 1}"#);
    let s = Scratch::new();
    fs.workspace(&s, "job/workspace.yaml", "share", "data", KEY_FROM_ENV);
    let job = s.write(
        "job/job.yaml",
        r#"name: flaky
command: ["true"]
inputs:
  d: {path: in, mode: download}
"#,
    );
    expect_code(&run(&s, &job, ""), 0);
    let left = fs.faults_left();
    assert_eq!(left["busy"], 0, "no busy answer was met: {left}");
    assert_eq!(left["cut_gets"], 0, "no download was cut: {left}");
    for f in ["a.bin", "b.bin"] {
        assert!(
            same_bytes(&src.join(f), &s.run_dir().join("inputs/d/in").join(f)),
            "{f} differs"
        );
    }
}

#[test]
fn a_mount_input_reads_a_200_mib_file_byte_exact_through_fuse() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    if !fuse_ready() {
        return;
    }
    fs.mkshare("data");
    let src = fs.share_dir("data").join("in");
    write_data(&src.join("large.bin"), 21, 200 * MIB);
    std::fs::create_dir_all(src.join("d/e")).unwrap();
    std::fs::write(src.join("d/e/small.txt"), "through the mount\n").unwrap();
    let s = Scratch::new();
    fs.workspace(&s, "job/workspace.yaml", "share", "data", KEY_FROM_ENV);
    let job = s.write(
        "job/job.yaml",
        r#"name: mounted
command: ["sh", "-c", "cd $AZUREML_DATAREFERENCE_data && cmp large.bin $WANT && cat d/e/small.txt > $AZUREML_DATAREFERENCE_out/small.txt"]
inputs:
  data: {path: in, mode: mount}
outputs:
  out: {path: "o-{run_id}", mode: upload}
"#,
    );
    let o = s
        .run_cmd(&job)
        .env("TEST_FILES_KEY", KEY)
        .env("WANT", src.join("large.bin"))
        .output()
        .unwrap();
    expect_code(&o, 0);
    let staged = stage_started(&s.events(), "data");
    assert_eq!(staged.mode, "mount", "{staged:?}");
    assert_eq!(
        std::fs::read_to_string(s.run_dir().join("outputs/out/small.txt")).unwrap(),
        "through the mount\n"
    );
}

/// An SDK-written runconfig (as `RunConfiguration.save()` writes it) whose data
/// references and `sourceDirectoryDataStore` are the workspace's `workspacefilestore`,
/// registered by a v2 datastore file of `type: azure_file`.
#[test]
fn workspacefilestore_in_an_sdk_written_runconfig_plans_and_runs() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    let share = "azureml-filestore-0b1c";
    fs.mkshare(share);
    fs.py(&["put", share, "snapshots/r1/score.py", "import os, sys\nnames = open(sys.argv[2]).read().split()\nopen(os.path.join(sys.argv[4], 'n.txt'), 'w').write(str(len(names)))\nprint('score.py ran')\n"]);
    fs.py(&["put", share, "data/names.txt", "Ada\nGrace\nKatherine\n"]);
    let s = Scratch::new();
    s.write(
        "ws/datastores/workspacefilestore.yml",
        &format!(
            r#"$schema: https://azuremlschemas.azureedge.net/latest/azureFile.schema.json
name: workspacefilestore
type: azure_file
account_name: {ACCOUNT}
file_share_name: {share}
endpoint: "{}"
credentials:
  account_key: {{env: TEST_FILES_KEY}}
"#,
            fs.endpoint()
        ),
    );
    let ws = s.write(
        "ws/workspace.yaml",
        r#"default_datastore: workspacefilestore
datastore_files: [datastores]
"#,
    );
    let job = s.write(
        "project/.azureml/score.runconfig",
        r#"script: score.py
arguments:
- --names
- $AZUREML_DATAREFERENCE_names
- --out
- $AZUREML_DATAREFERENCE_result
target: local
framework: Python
communicator: None
maxRunDurationSeconds: 120
nodeCount: 1
environment:
  python:
    userManagedDependencies: true
    interpreterPath: python3
  docker:
    enabled: false
dataReferences:
  names:
    dataStoreName: workspacefilestore
    pathOnDataStore: data/names.txt
    mode: download
    overwrite: false
    pathOnCompute:
  result:
    dataStoreName: workspacefilestore
    pathOnDataStore: results/r1
    mode: upload
    overwrite: true
    pathOnCompute:
data: {}
outputData: {}
sourceDirectoryDataStore: workspacefilestore
credentialPassthrough: false
"#,
    );
    let ws_arg = ws.to_str().unwrap();
    let plan = plan_json(
        &job,
        &["--workspace", ws_arg, "--source-path", "snapshots/r1"],
    );
    let plan_text = plan.to_string();
    assert!(plan_text.contains("workspacefilestore"), "{plan_text}");
    let o = s
        .run_cmd(&job)
        .args(["--workspace", ws_arg, "--source-path", "snapshots/r1"])
        .env("TEST_FILES_KEY", KEY)
        .output()
        .unwrap();
    let (so, _) = expect_code(&o, 0);
    assert!(so.contains("score.py ran"), "{so}");
    assert_eq!(fs.py(&["get", share, "results/r1/n.txt"]), "3");
}

#[test]
fn a_managed_identity_reaches_the_share_with_the_backup_intent() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    fs.mkshare("data");
    fs.py(&["put", "data", "in/x.txt", "by token"]);
    let msi = crate::common::token::TokenServer::start(
        fs.python(),
        None,
        crate::common::token::Tokens::Valid,
    );
    let s = Scratch::new();
    fs.workspace(&s, "job/workspace.yaml", "share", "data", "{}");
    let job = s.write(
        "job/job.yaml",
        r#"name: msi
command: ["sh", "-c", "cp $AZUREML_DATAREFERENCE_x $AZUREML_DATAREFERENCE_out/y.txt"]
inputs:
  x: {path: in/x.txt, mode: download}
outputs:
  out: {path: out, mode: upload}
"#,
    );
    let o = s
        .run_cmd(&job)
        .env("IDENTITY_ENDPOINT", msi.identity_endpoint())
        .env("IDENTITY_HEADER", "files-test-identity-header")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_AUTHORITY_HOST")
        .output()
        .unwrap();
    let (so, se) = expect_code(&o, 0);
    assert!(!format!("{so}{se}").contains("files-test-identity-header"));
    assert_eq!(fs.py(&["get", "data", "out/y.txt"]), "by token");
    assert!(!msi.requests().is_empty(), "no token was asked for");
}

/// `stagehand datastore …` with the scratch workspace and the key.
fn ds(s: &Scratch, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("datastore")
        .arg("-w")
        .arg(s.path().join("job/workspace.yaml"))
        .args(args)
        .env("TEST_FILES_KEY", KEY)
        .output()
        .unwrap()
}

#[test]
fn datastore_commands_check_create_upload_list_and_download_a_share() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    let s = Scratch::new();
    fs.workspace(&s, "job/workspace.yaml", "share", "fresh", KEY_FROM_ENV);
    let (_, se) = expect_code(&ds(&s, &["check", "share"]), code::STAGING_FAILED);
    assert!(se.contains("--create-if-not-exists"), "{se}");
    let (so, _) = expect_code(&ds(&s, &["check", "share", "--create-if-not-exists"]), 0);
    assert!(so.contains("created share \"fresh\""), "{so}");
    let (so, _) = expect_code(&ds(&s, &["show", "share"]), 0);
    assert!(
        so.contains("share fresh") && so.contains(&fs.endpoint()),
        "{so}"
    );
    let src = s.path().join("tree");
    write_data(&src.join("large.bin"), 5, 9 * MIB + 7);
    s.write("tree/deep/er/x.json", "{}");
    s.write("tree/name with spaces & ü.txt", "unicode");
    let up = |extra: &[&str]| {
        let mut a = vec![
            "upload",
            "share",
            "--src-dir",
            src.to_str().unwrap(),
            "--target-path",
            "t1",
        ];
        a.extend_from_slice(extra);
        ds(&s, &a)
    };
    expect_code(&up(&[]), 0);
    let (_, se) = expect_code(&up(&[]), code::UPLOAD_FAILED);
    assert!(se.contains("t1/large.bin"), "{se}");
    let (so, _) = expect_code(&ds(&s, &["ls", "share", "t1"]), 0);
    assert!(
        so.contains("t1/deep/") && so.contains("t1/large.bin"),
        "{so}"
    );
    let dl = s.path().join("dl");
    let dl_arg = dl.to_str().unwrap();
    expect_code(
        &ds(
            &s,
            &[
                "download",
                "share",
                "--target-path",
                dl_arg,
                "--prefix",
                "t1",
            ],
        ),
        0,
    );
    assert_eq!(tree(&dl.join("t1")), tree(&src));
    assert_eq!(
        fs.sha256s("fresh", "t1")["t1/name with spaces & ü.txt"],
        tree(&src)["name with spaces & ü.txt"]
    );
}

/// The store opened as the agent opens it, from a workspace entry.
fn open_store(fs: &FilesServer, share: &str) -> DynStore {
    let ws: stagehand_protocol::Workspace = serde_yaml::from_str(&format!(
        r#"datastores:
  fs: {{type: azure_file, account_name: {ACCOUNT}, file_share_name: {share}, endpoint: "{}", credentials: {{account_key: "{KEY}"}}}}
"#,
        fs.endpoint()
    ))
    .unwrap();
    stagehand::store::open(&ws, Path::new("."), "fs").unwrap()
}

/// Every store passes the one conformance suite (agent/src/store/conformance.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_passes_the_store_conformance_suite() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    fs.mkshare("conformance");
    let store = open_store(&fs, "conformance");
    stagehand::store::conformance::check(store)
        .await
        .unwrap_or_else(|e| panic!("azure_file does not conform: {e}"));
}

/// The same calls, checked against the bytes in the share's folder, and that uploads
/// leave no temporary file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_the_store_contract_on_a_share() {
    let Some(fs) = FilesServer::start() else {
        return;
    };
    fs.mkshare("contract");
    let store = open_store(&fs, "contract");
    store_contract(&store, &fs.share_dir("contract")).await;
}

/// stat, list, list_dir, read_range, download, upload, `overwrite: false` and NotFound,
/// each checked against the bytes in the share's folder.
async fn store_contract(store: &DynStore, share_dir: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.bin");
    write_data(&src, 3, 9 * MIB + 3);
    // Upload (three 4 MiB ranges) into folders that do not exist yet.
    assert_eq!(
        store.upload(&src, "a/b/c.bin", false).await.unwrap(),
        9 * MIB + 3
    );
    assert!(same_bytes(&src, &share_dir.join("a/b/c.bin")));
    let small = tmp.path().join("small.txt");
    std::fs::write(&small, "small").unwrap();
    store.upload(&small, "a/top.txt", true).await.unwrap();
    store.upload(&small, "a/b/d/e.txt", true).await.unwrap();
    // overwrite: false never replaces; overwrite: true does.
    let e = store.upload(&small, "a/b/c.bin", false).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::AlreadyExists { path, .. } if path == "a/b/c.bin"),
        "{e}"
    );
    assert!(same_bytes(&src, &share_dir.join("a/b/c.bin")));
    store.upload(&small, "a/top.txt", true).await.unwrap();
    // stat.
    let Entry::File(meta) = store.stat("a/b/c.bin").await.unwrap() else {
        panic!("a/b/c.bin is not a file")
    };
    assert_eq!(meta.size, 9 * MIB + 3);
    assert!(meta.version.is_some());
    assert_eq!(store.stat("a/b").await.unwrap(), Entry::Dir);
    assert_eq!(store.stat("").await.unwrap(), Entry::Dir);
    assert_eq!(store.stat("a/nope").await.unwrap(), Entry::Missing);
    // list: every level, full paths; list_dir: one level.
    let mut all: Vec<(String, u64)> = store
        .list("a")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.path, m.size))
        .collect();
    all.sort();
    assert_eq!(
        all,
        [
            ("a/b/c.bin".to_string(), 9 * MIB + 3),
            ("a/b/d/e.txt".to_string(), 5),
            ("a/top.txt".to_string(), 5)
        ]
    );
    assert!(store.list("nothing/here").await.unwrap().is_empty());
    let (files, dirs) = store.list_dir("a/b").await.unwrap();
    assert_eq!(
        files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["a/b/c.bin"]
    );
    assert_eq!(dirs, ["d"]);
    // read_range.
    let want = std::fs::read(&src).unwrap();
    let got = store
        .read_range("a/b/c.bin", 4 * MIB - 10..4 * MIB + 10)
        .await
        .unwrap();
    assert_eq!(
        &got[..],
        &want[(4 * MIB - 10) as usize..(4 * MIB + 10) as usize]
    );
    // download.
    let dest = tmp.path().join("down.bin");
    assert_eq!(store.download(&meta, &dest).await.unwrap(), meta.size);
    assert!(same_bytes(&src, &dest));
    // NotFound.
    let e = store.read_range("a/missing.bin", 0..1).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    let leftovers: Vec<PathBuf> = walk(share_dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".stagehand-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
