//! Azure Blob datastores end to end: the built binary against a private Azurite, blobs
//! made with the Azure Python SDK. Data sizes are modest; small tuning values
//! (STAGEHAND_AZURE_*) make them take the same paths as gigabytes would (parallel
//! ranges, block uploads).

use crate::common::azurite::{Azurite, ACCOUNT, KEY, KEY_FROM_ENV};
use crate::common::fuse::fuse_ready;
use crate::common::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Tuning that sends anything over 3 MiB through parallel 1 MiB ranges, and over 2 MiB
/// up as blocks.
fn small_tuning(c: &mut Command) -> &mut Command {
    c.env("STAGEHAND_AZURE_RANGE_THRESHOLD_MIB", "3")
        .env("STAGEHAND_AZURE_CHUNK_MIB", "1")
        .env("STAGEHAND_AZURE_SINGLE_PUT_MIB", "2")
        .env("STAGEHAND_AZURE_BLOCK_MIB", "1")
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// The three data shapes, scaled down: one large file, a few medium, many small.
fn shapes(root: &Path) {
    put(root, "big.bin", &noise_for(1, 12 * 1024 * 1024 + 123));
    for i in 0..6 {
        put(
            root,
            &format!("medium/m{i}.bin"),
            &noise_for(10 + i, 2_600_000),
        );
    }
    for d in 0..5 {
        for f in 0..60 {
            put(
                root,
                &format!("small/d{d}/f{f:02}.bin"),
                &noise_for(100 + d * 100 + f, 4096),
            );
        }
    }
}

/// Writes a workspace with one Azure datastore `az` on `container`.
fn workspace(s: &Scratch, az: &Azurite, container: &str, credentials: &str) -> PathBuf {
    az.workspace(s, "job/workspace.yaml", "az", container, credentials)
}

fn job(s: &Scratch, yaml: &str) -> PathBuf {
    s.write("job/job.yaml", yaml)
}

fn run(s: &Scratch, job: &Path) -> std::process::Output {
    small_tuning(&mut s.run_cmd(job))
        .env("TEST_AZ_KEY", KEY)
        .output()
        .unwrap()
}

#[test]
fn a_job_downloads_and_uploads_every_shape_byte_for_byte_and_a_rerun_moves_nothing() {
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    let src = s.path().join("src");
    shapes(&src);
    az.mkcontainer(&["data"]);
    az.upload_tree(&src, "data", "in");
    workspace(&s, &az, "data", KEY_FROM_ENV);
    let j = job(
        &s,
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
    let o = run(&s, &j);
    expect_code(&o, 0);
    let want = tree(&src);
    let ev = s.events();
    let run_id = ev[0].run_id.as_str().to_string();
    // What the job read ...
    let mut got = tree(&s.run_dir().join("inputs/medium"));
    got.extend(tree(&s.run_dir().join("inputs/small")));
    got.extend(tree(&s.run_dir().join("inputs/big")));
    assert_eq!(got, want, "downloaded bytes differ");
    // ... and what it uploaded.
    let up: BTreeMap<String, String> = az
        .sha256s("data", &format!("out/{run_id}/"))
        .into_iter()
        .map(|(k, v)| {
            (
                k.trim_start_matches(&format!("out/{run_id}/")).to_string(),
                v,
            )
        })
        .collect();
    assert_eq!(up, want, "uploaded bytes differ");
    assert!(stage_finished(&ev, "small").bytes > 0);

    // The same job again: every input is already there and unchanged.
    let o = run(&s, &j);
    expect_code(&o, 0);
    let ev = s.events();
    for name in ["big", "medium", "small"] {
        let f = stage_finished(&ev, name);
        assert_eq!(f.bytes, 0, "re-run moved bytes for {name}: {f:?}");
        assert!(f.skipped_files > 0, "{f:?}");
    }
}

#[test]
fn sas_token_and_connection_string_reach_the_container() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let src = tempfile::tempdir().unwrap();
    put(src.path(), "a/one.txt", b"one\n");
    put(src.path(), "two.bin", &noise_for(7, 3 * 1024 * 1024));
    az.upload_tree(src.path(), "box", "in");
    let sas = az.sas("box");
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={}/;",
        az.endpoint()
    );
    for (what, creds, env) in [
        (
            "sas",
            "{sas_token: {env: TEST_SAS}}",
            ("TEST_SAS", format!("?{sas}")),
        ),
        (
            "connection string",
            "{connection_string: {file: conn.txt}}",
            ("UNUSED", String::new()),
        ),
    ] {
        let s = Scratch::new();
        s.write("job/conn.txt", &format!("{conn}\n"));
        workspace(&s, &az, "box", creds);
        let j = job(
            &s,
            r#"name: auth
command: ["sh", "-c", "cp -r $AZUREML_DATAREFERENCE_data/. $AZUREML_DATAREFERENCE_out/"]
inputs:
  data: {path: in, mode: download}
outputs:
  out: {path: "out-{run_id}", mode: upload}
"#,
        );
        let o = small_tuning(&mut s.run_cmd(&j))
            .env(env.0, &env.1)
            .output()
            .unwrap();
        let (so, se) = text(&o);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{what}: stdout: {so}\nstderr: {se}"
        );
        let run_id = s.events()[0].run_id.as_str().to_string();
        assert_eq!(
            tree(&s.run_dir().join("inputs/data/in")),
            tree(src.path()),
            "{what}"
        );
        assert_eq!(
            az.sha256s("box", &format!("out-{run_id}/")).len(),
            2,
            "{what}"
        );
        let all = format!(
            "{so}{se}{}",
            std::fs::read_to_string(s.events_file()).unwrap()
        );
        assert!(
            !all.contains(KEY) && !all.contains(&sas),
            "{what}: a secret leaked"
        );
    }
}

#[test]
fn a_wrong_key_or_sas_fails_staging_saying_authentication_and_shows_no_secret() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    az.py(&["put", "box", "in/x.txt", "x"]);
    let wrong_key = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS0wMTIzNDU2Nzg5YWJjZGVm";
    let sas = az.sas("box");
    let bad_sas = sas.replace("sig=", "sig=AAAA");
    for (creds, var, value, secret) in [
        (
            "{account_key: {env: TEST_SECRET}}",
            "TEST_SECRET",
            wrong_key.to_string(),
            wrong_key.to_string(),
        ),
        (
            "{sas_token: {env: TEST_SECRET}}",
            "TEST_SECRET",
            bad_sas.clone(),
            bad_sas.split("sig=").nth(1).unwrap().to_string(),
        ),
    ] {
        let s = Scratch::new();
        workspace(&s, &az, "box", creds);
        let j = job(
            &s,
            r#"name: auth
command: ["true"]
inputs:
  data: {path: in, mode: download}
"#,
        );
        let o = s.run_cmd(&j).env(var, &value).output().unwrap();
        let (so, se) = text(&o);
        assert_eq!(
            o.status.code(),
            Some(code::NOT_FOUND_OR_DENIED),
            "{creds}: stdout: {so}\nstderr: {se}"
        );
        let ev = std::fs::read_to_string(s.events_file()).unwrap();
        let err = finished(&s.events()).error.unwrap_or_default();
        assert!(
            err.contains("authentication") && err.contains("\"az\""),
            "{creds}: error does not say authentication for datastore az: {err}"
        );
        assert!(se.contains("authentication"), "{se}");
        for text in [&so, &se, &ev] {
            assert!(
                !text.contains(&secret),
                "{creds}: the secret leaked: {text}"
            );
            let short = &secret[secret.len().saturating_sub(12)..];
            assert!(
                !text.contains(short),
                "{creds}: part of the secret leaked: {text}"
            );
        }
    }
}

#[test]
fn hostile_blob_names_are_refused_and_nothing_lands_outside_the_target() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["hostile"]);
    az.py(&["put", "hostile", "back/../../../../x.txt", "escaped"]);
    az.py(&["put", "hostile", "/abs/x.txt", "escaped"]);
    az.py(&["put", "hostile", "fine.txt", "fine"]);
    let s = Scratch::new();
    workspace(&s, &az, "hostile", KEY_FROM_ENV);
    let j = job(
        &s,
        r#"name: hostile
command: ["true"]
inputs:
  data: {path: /, mode: download}
"#,
    );
    let o = run(&s, &j);
    let (_, se) = expect_code(&o, code::NOT_FOUND_OR_DENIED);
    assert!(
        se.contains("back/../../../../x.txt") && se.contains("/abs/x.txt"),
        "the refused names are not named: {se}"
    );
    for p in walk(s.path()) {
        assert_ne!(
            p.file_name().unwrap(),
            "x.txt",
            "a hostile blob landed at {}",
            p.display()
        );
    }
    assert!(!Path::new("/abs/x.txt").exists());
    assert!(
        !s.path().parent().unwrap().join("x.txt").exists()
            || std::fs::read_to_string(s.path().parent().unwrap().join("x.txt")).unwrap()
                != "escaped"
    );
}

#[test]
fn overwrite_false_leaves_an_existing_blob_alone_and_fails_the_upload_naming_it() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    az.py(&["put", "box", "results/model.txt", "original"]);
    let s = Scratch::new();
    workspace(&s, &az, "box", KEY_FROM_ENV);
    let j = job(
        &s,
        r#"name: clash
command: ["sh", "-c", "echo new > $AZUREML_DATAREFERENCE_out/model.txt; echo new > $AZUREML_DATAREFERENCE_out/other.txt"]
outputs:
  out: {path: results, mode: upload, overwrite: false}
"#,
    );
    let o = run(&s, &j);
    let (_, se) = expect_code(&o, code::UPLOAD_FAILED);
    assert!(
        se.contains("results/model.txt"),
        "the existing blob is not named: {se}"
    );
    assert_eq!(az.py(&["get", "box", "results/model.txt"]), "original");
}

#[test]
fn a_download_killed_half_way_never_shows_a_partial_file_and_a_rerun_completes() {
    let Some(az) = Azurite::start() else { return };
    let src = tempfile::tempdir().unwrap();
    let mut sizes = BTreeMap::new();
    for i in 0..200u64 {
        let len = 250_000 + i as usize * 100;
        put(src.path(), &format!("f{i:02}.bin"), &noise_for(i, len));
        sizes.insert(format!("f{i:02}.bin"), len as u64);
    }
    put(src.path(), "large.bin", &noise_for(99, 6 * 1024 * 1024));
    sizes.insert("large.bin".into(), 6 * 1024 * 1024);
    az.mkcontainer(&["box"]);
    az.upload_tree(src.path(), "box", "set");
    let s = Scratch::new();
    workspace(&s, &az, "box", KEY_FROM_ENV);
    let j = job(
        &s,
        r#"name: killed
command: ["true"]
inputs:
  data: {path: set, mode: download}
"#,
    );
    let target = s.run_dir().join("inputs/data/set");
    // One request at a time, so there is a middle to kill it in.
    let mut child = small_tuning(&mut s.run_cmd(&j))
        .env("TEST_AZ_KEY", KEY)
        .env("STAGEHAND_AZURE_REQUESTS", "1")
        .env("STAGEHAND_MANIFEST_SAVE_MS", "100")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let manifest = target.with_file_name(".set.stagehand.json");
    let mut seen_final = 0;
    // Kill once the manifest has recorded some complete files (saved every 0.1 s
    // here), so the re-run can show that it resumes.
    let midway = wait_until(Duration::from_secs(60), Duration::from_millis(5), || {
        let mut finals = 0;
        if let Ok(rd) = std::fs::read_dir(&target) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                // A file under its final name is complete, always.
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                assert_eq!(
                    Some(&len),
                    sizes.get(&name),
                    "{name} appeared under its final name with {len} bytes"
                );
                finals += 1;
            }
        }
        seen_final = seen_final.max(finals);
        if finals >= 5 && manifest.exists() {
            return true;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the download finished before it could be killed"
        );
        false
    });
    assert!(midway, "the download never started");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(seen_final < sizes.len(), "killed after the end");
    let o = run(&s, &j);
    expect_code(&o, 0);
    assert_eq!(tree(&target), tree(src.path()));
    let leftovers: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("stagehand-partial")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial files left behind: {leftovers:?}"
    );
    let f = stage_finished(&s.events(), "data");
    assert!(
        f.skipped_files > 0,
        "the re-run fetched again what was complete: {f:?}"
    );
}

/// `stagehand datastore upload az --src-dir SRC --target-path TARGET`.
fn ds_upload(s: &Scratch, src: &Path, target: &str) -> std::process::Output {
    ds(
        s,
        &[
            "upload",
            "az",
            "--src-dir",
            src.to_str().unwrap(),
            "--target-path",
            target,
        ],
    )
}

/// `stagehand datastore …` with the scratch workspace.
fn ds(s: &Scratch, args: &[&str]) -> std::process::Output {
    ds_env(s, args, &[])
}

/// `stagehand datastore ARGS…` with extra environment variables.
fn ds_env(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(bin());
    c.arg("datastore")
        .arg("-w")
        .arg(s.path().join("job/workspace.yaml"))
        .args(args)
        .envs(env.iter().copied());
    small_tuning(&mut c)
        .env("TEST_AZ_KEY", KEY)
        .output()
        .unwrap()
}

#[test]
fn datastore_upload_then_download_round_trips_a_tree() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    workspace(&s, &az, "box", KEY_FROM_ENV);
    let src = s.path().join("tree");
    put(&src, "large.bin", &noise_for(5, 5 * 1024 * 1024 + 7));
    put(&src, "deep/er/still/x.json", b"{}");
    put(&src, "name with spaces & ü.txt", b"unicode");
    for i in 0..50 {
        put(&src, &format!("many/f{i}.txt"), format!("{i}\n").as_bytes());
    }
    let o = ds_upload(&s, &src, "trees/t1");
    expect_code(&o, 0);
    // Again without --overwrite: refused, naming what exists.
    let o = ds_upload(&s, &src, "trees/t1");
    let (_, se) = expect_code(&o, code::UPLOAD_FAILED);
    assert!(se.contains("trees/t1/large.bin"), "{se}");
    let dl = s.path().join("dl");
    let o = ds(
        &s,
        &[
            "download",
            "az",
            "--target-path",
            dl.to_str().unwrap(),
            "--prefix",
            "trees/t1",
        ],
    );
    expect_code(&o, 0);
    assert_eq!(tree(&dl.join("trees/t1")), tree(&src));
    let o = ds(&s, &["ls", "az", "trees/t1"]);
    let listing = text(&o).0;
    assert!(
        listing.contains("trees/t1/deep/") && listing.contains("trees/t1/large.bin"),
        "{listing}"
    );
    let o = ds(
        &s,
        &[
            "upload-files",
            "az",
            src.join("deep/er/still/x.json").to_str().unwrap(),
            "--relative-root",
            src.to_str().unwrap(),
            "--target-path",
            "files",
        ],
    );
    expect_code(&o, 0);
    assert_eq!(az.py(&["get", "box", "files/deep/er/still/x.json"]), "{}");
}

#[test]
fn datastore_show_and_check_say_where_credentials_come_from_and_what_is_wrong() {
    let Some(az) = Azurite::start() else { return };
    let s = Scratch::new();
    workspace(&s, &az, "fresh", KEY_FROM_ENV);
    let o = ds(&s, &["show", "az"]);
    let (so, _) = text(&o);
    assert!(
        so.contains("environment variable TEST_AZ_KEY") && !so.contains(KEY),
        "{so}"
    );
    let o = ds(&s, &["check", "az"]);
    let (_, se) = expect_code(&o, code::STAGING_FAILED);
    assert!(se.contains("does not exist"), "{se}");
    let o = ds(&s, &["check", "az", "--create-if-not-exists"]);
    let (so, _) = expect_code(&o, 0);
    assert!(so.contains("created container"), "{so}");
    let o = ds(&s, &["check", "az"]);
    expect_code(&o, 0);
    let mut c = Command::new(bin());
    c.args(["datastore", "-w"])
        .arg(s.path().join("job/workspace.yaml"))
        .args(["check", "az"]);
    let o = c
        .env(
            "TEST_AZ_KEY",
            "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS0wMTIzNDU2Nzg5YWJjZGVm",
        )
        .output()
        .unwrap();
    let (so, se) = expect_code(&o, code::NOT_FOUND_OR_DENIED);
    assert!(
        se.contains("authentication") && se.contains("account key"),
        "{se}"
    );
    assert!(!se.contains("d3JvbmctYnV0") && !so.contains("d3JvbmctYnV0"));
}

#[test]
fn adls_gen2_through_the_blob_endpoint_skips_folder_markers() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["lake"]);
    // A hierarchical account lists each folder as an empty blob marked hdi_isfolder.
    az.py(&["put", "lake", "in/dir", "", "hdi_isfolder=true"]);
    az.py(&["put", "lake", "in/dir/file.txt", "in the lake"]);
    let s = Scratch::new();
    s.write(
        "job/workspace.yaml",
        &format!(
            r#"default_datastore: lake
datastores:
  lake:
    type: azure_data_lake_gen2
    account_name: {ACCOUNT}
    filesystem: lake
    endpoint: {}
    credentials: {KEY_FROM_ENV}
"#,
            az.endpoint()
        ),
    );
    let j = job(
        &s,
        r#"name: lake
command: ["true"]
inputs:
  data: {path: in, mode: download}
"#,
    );
    let o = run(&s, &j);
    expect_code(&o, 0);
    let got = std::fs::read_to_string(s.run_dir().join("inputs/data/in/dir/file.txt")).unwrap();
    assert_eq!(got, "in the lake");
}

#[test]
fn the_store_itself_never_replaces_a_blob_without_overwrite_and_sets_md5_on_block_uploads() {
    use stagehand::store::azure::{config, AzureStore, Md5Check, Tuning};
    use stagehand::store::{Store, StoreError};
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    az.py(&["put", "box", "small.txt", "original"]);
    az.py(&["put", "box", "large.bin", "original"]);
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "small.txt", b"new");
    let large = noise_for(3, 3 * 1024 * 1024 + 5);
    put(dir.path(), "large.bin", &large);
    // Small tuning: 3 MiB goes up as 1 MiB blocks, each with its Content-MD5 (which
    // Azurite checks: a wrong one fails the upload); the whole file's MD5 only when
    // every MD5 is asked for.
    let open = |md5| {
        let tuning = Tuning {
            single_put_max: 2 << 20,
            block: 1 << 20,
            md5,
            ..Tuning::from_settings()
        };
        let target = config::AzureTarget {
            datastore: "az".into(),
            account: ACCOUNT.into(),
            container: "box".into(),
            service_url: az.endpoint(),
            auth: config::Auth::SharedKey(base64_decode(KEY)),
            hierarchical: false,
        };
        AzureStore::open_with(target, tuning).unwrap()
    };
    let store = open(Md5Check::All);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // No pre-check here: only the conditional create stands between us and the blob.
        for name in ["small.txt", "large.bin"] {
            let e = store
                .upload(&dir.path().join(name), name, false)
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::AlreadyExists { .. }), "{name}: {e}");
        }
        assert_eq!(az.py(&["get", "box", "small.txt"]), "original");
        assert_eq!(az.py(&["get", "box", "large.bin"]), "original");
        store
            .upload(&dir.path().join("large.bin"), "copy/large.bin", false)
            .await
            .unwrap();
        let props = store.client().head("copy/large.bin").await.unwrap();
        let md5: [u8; 16] = md5_of(&large);
        assert_eq!(
            props.md5,
            Some(md5),
            "a block upload must carry the file's MD5 under VERIFY_MD5=all"
        );
        assert_eq!(props.size, large.len() as u64);
        let store = open(Md5Check::Streamed);
        store
            .upload(&dir.path().join("large.bin"), "plain/large.bin", false)
            .await
            .unwrap();
        let props = store.client().head("plain/large.bin").await.unwrap();
        assert_eq!(props.size, large.len() as u64);
        assert_eq!(props.md5, None, "by default only the blocks are hashed");
        assert_eq!(
            az.sha256s("box", "plain/")["plain/large.bin"],
            hex(&Sha256::digest(&large))
        );
    });
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(b).into()
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_content_md5_is_refused_on_every_path() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let src = tempfile::tempdir().unwrap();
    // Hashed inline (small), by the hashing thread as it lands (one GET), from the file
    // (ranges: only when asked for with STAGEHAND_AZURE_VERIFY_MD5=all, see Md5Check).
    put(src.path(), "small.txt", b"small");
    put(src.path(), "mid.bin", &noise_for(8, 2 * 1024 * 1024));
    put(src.path(), "big.bin", &noise_for(9, 5 * 1024 * 1024));
    az.py(&[
        "upload",
        src.path().to_str().unwrap(),
        "box",
        "--prefix",
        "bad",
        "--bad-md5",
    ]);
    let s = Scratch::new();
    workspace(&s, &az, "box", KEY_FROM_ENV);
    for (name, policy) in [
        ("small.txt", "default"),
        ("mid.bin", "default"),
        ("big.bin", "all"),
    ] {
        let dl = s.path().join("dl");
        let o = ds_env(
            &s,
            &[
                "download",
                "az",
                "--target-path",
                dl.to_str().unwrap(),
                "--prefix",
                &format!("bad/{name}"),
            ],
            &[("STAGEHAND_AZURE_VERIFY_MD5", policy)],
        );
        let (_, se) = expect_code(&o, code::STAGING_FAILED);
        assert!(se.contains("MD5"), "{name}: {se}");
        assert!(
            !dl.join("bad").join(name).exists(),
            "{name}: a corrupt copy landed under its final name"
        );
    }
}

#[test]
fn a_mount_input_reads_a_container_prefix_byte_for_byte() {
    let Some(az) = Azurite::start() else { return };
    if !fuse_ready() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    put(src.path(), "large.bin", &noise_for(21, 5 * 1024 * 1024 + 3));
    put(src.path(), "d/e/small.txt", b"through the mount\n");
    az.mkcontainer(&["box"]);
    az.upload_tree(src.path(), "box", "in");
    let s = Scratch::new();
    workspace(&s, &az, "box", KEY_FROM_ENV);
    let j = job(
        &s,
        r#"name: mounted
command: ["sh", "-c", "cd $AZUREML_DATAREFERENCE_data && sha256sum large.bin d/e/small.txt > $AZUREML_DATAREFERENCE_sums/sums.txt"]
inputs:
  data: {path: in, mode: mount}
outputs:
  sums: {path: "sums-{run_id}", mode: upload}
"#,
    );
    let o = run(&s, &j);
    expect_code(&o, 0);
    let sums = std::fs::read_to_string(s.run_dir().join("outputs/sums/sums.txt")).unwrap();
    let want = tree(src.path());
    for (name, sha) in [
        ("large.bin", &want["large.bin"]),
        ("d/e/small.txt", &want["d/e/small.txt"]),
    ] {
        assert!(sums.contains(&format!("{sha}  {name}")), "{name}: {sums}");
    }
}

#[test]
fn a_full_disk_fails_the_download_at_once_naming_the_file_and_leaves_nothing() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    workspace(&s, &az, "box", KEY_FROM_ENV);
    let src = s.path().join("src");
    put(&src, "big.bin", &noise_for(11, 6 * 1024 * 1024));
    put(&src, "small.txt", b"fits");
    let o = ds_upload(&s, &src, "d");
    expect_code(&o, 0);
    // A 2 MiB filesystem: the 6 MiB blob cannot fit.
    let disk = s.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        assert!(!in_ci(), "cannot mount a small tmpfs (CI runs as root)");
        eprintln!("cannot mount a tmpfs here (needs root): the full-disk test did not run");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(disk.clone());
    let dl = disk.join("dl");
    let o = ds(
        &s,
        &[
            "download",
            "az",
            "--target-path",
            dl.to_str().unwrap(),
            "--prefix",
            "d",
        ],
    );
    let (_, err) = expect_code(&o, code::STAGING_FAILED);
    assert!(
        err.contains("big.bin") && err.contains("No space left on device"),
        "the error must name the file and the cause: {err}"
    );
    assert!(
        !err.contains("stagehand-partial"),
        "the error must name the file, not its temporary name: {err}"
    );
    assert!(
        !dl.join("big.bin").exists(),
        "a partial file under its final name"
    );
    let partials: Vec<_> = walk(&dl)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("stagehand-partial"))
        .collect();
    assert!(
        partials.is_empty(),
        "temporary files left behind: {partials:?}"
    );
}

/// Deterministic bytes for `seed` (the suite's own generator, in `tests/common`).
fn noise_for(seed: u64, len: usize) -> Vec<u8> {
    crate::common::fuse::noise(len, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
