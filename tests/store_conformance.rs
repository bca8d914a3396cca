//! The `Store` conformance suite (`stagehand::store::conformance::check`) against the
//! Azure stores on a private Azurite: Azure Blob (default tuning, and tuned down so its
//! 3 MiB object goes up as blocks and comes down as parallel ranges) and ADLS Gen2
//! (`azure_data_lake_gen2`, through its blob endpoint). The local store runs the same
//! suite in the unit tests.
//!
//! Also the two retries an operator found broken, through the fault proxy in front of
//! Azurite (`common::faults`) losing one answer: a conditional create whose answer is lost, and a
//! listing cut off mid-answer.

use crate::common::azurite::{Azurite, ACCOUNT, KEY};
use crate::common::faults::{first, Fault, Proxy};
use stagehand::store::azure::{config, AzureStore, Tuning};
use stagehand::store::conformance::check;
use stagehand::store::{DynStore, Store, StoreError};
use std::path::Path;
use std::sync::Arc;

/// Opens datastore `name` of a workspace file written with `yaml` (the account key in a
/// file beside it), as the agent does.
fn open(dir: &Path, name: &str, yaml: &str) -> DynStore {
    std::fs::write(dir.join("key.txt"), KEY).unwrap();
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
fn azure_blob_conforms() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        "az",
        &format!(
            r#"datastores:
  az:
    type: azure_blob
    account_name: {ACCOUNT}
    container_name: box
    endpoint: {}
    credentials: {{account_key: {{file: key.txt}}}}
"#,
            az.endpoint()
        ),
    );
    conforms(store);
}

#[test]
fn azure_blob_in_blocks_and_ranges_conforms() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    conforms(Arc::new(small_store(&az.endpoint(), "box")));
}

#[test]
fn adls_gen2_conforms() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["lake"]);
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        "lake",
        &format!(
            r#"datastores:
  lake:
    type: azure_data_lake_gen2
    account_name: {ACCOUNT}
    filesystem: lake
    endpoint: {}
    credentials: {{account_key: {{file: key.txt}}}}
"#,
            az.endpoint()
        ),
    );
    conforms(store);
}

/// A blob store at `endpoint` whose uploads over 1 MiB go up as 1 MiB blocks, and whose
/// downloads over 1 MiB come down as 1 MiB ranges.
fn small_store(endpoint: &str, container: &str) -> AzureStore {
    use base64::Engine;
    let tuning = Tuning {
        range_threshold: 1 << 20,
        chunk: Some(1 << 20),
        single_put_max: 1 << 20,
        block: 1 << 20,
        ..Tuning::from_settings()
    };
    let target = config::AzureTarget {
        datastore: "az".into(),
        account: ACCOUNT.into(),
        container: container.into(),
        service_url: endpoint.into(),
        auth: config::Auth::SharedKey(
            base64::engine::general_purpose::STANDARD
                .decode(KEY)
                .unwrap(),
        ),
        hierarchical: false,
    };
    AzureStore::open_with(target, tuning).unwrap()
}

#[test]
fn a_conditional_create_whose_answer_was_lost_succeeds_on_its_retry() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let dir = tempfile::tempdir().unwrap();
    let small = b"one request".to_vec();
    let large: Vec<u8> = (0..3 * 1024 * 1024 + 5).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("small"), &small).unwrap();
    std::fs::write(dir.path().join("large"), &large).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A Put Blob (small) and a Put Block List (large): the service stores the blob,
    // and the answer never arrives.
    for (file, name, commit, want) in [
        (
            "small",
            "out/small.txt",
            "PUT /devstoreaccount1/box/out/small.txt HTTP",
            &small,
        ),
        ("large", "out/large.bin", "comp=blocklist", &large),
    ] {
        let proxy = Proxy::start(
            az.port,
            first(move |l| l.contains(commit), Fault::DropAnswer),
        );
        let store = small_store(&proxy.endpoint(), "box");
        let sent = rt.block_on(store.upload(&dir.path().join(file), name, false));
        assert_eq!(proxy.injected(), 1, "{name}: the answer was lost");
        assert_eq!(
            sent.unwrap_or_else(|e| panic!("{name}: {e}")),
            want.len() as u64
        );
        let got = rt.block_on(store.read_range(name, 0..want.len() as u64 + 1));
        assert_eq!(&got.unwrap()[..], &want[..], "{name}");
    }
}

#[test]
fn a_retried_conditional_create_still_refuses_someone_elses_blob() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    az.py(&["put", "box", "out/taken.txt", "someone else's"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine"), b"mine").unwrap();
    // The first attempt never reaches the service; its retry finds a blob that is not
    // its own.
    let proxy = Proxy::start(
        az.port,
        first(
            |l| l.starts_with("PUT /devstoreaccount1/box/out/taken.txt"),
            Fault::DropRequest,
        ),
    );
    let store = small_store(&proxy.endpoint(), "box");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(store.upload(&dir.path().join("mine"), "out/taken.txt", false))
        .unwrap_err();
    assert_eq!(proxy.injected(), 1);
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
    assert_eq!(az.get("box", "out/taken.txt"), "someone else's");
}

#[test]
fn a_listing_cut_off_mid_answer_is_asked_for_again() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::write(dir.path().join(format!("f{i:02}.txt")), format!("file {i}")).unwrap();
    }
    az.upload_tree(dir.path(), "box", "data");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for dir_only in [false, true] {
        let proxy = Proxy::start(
            az.port,
            first(|l| l.contains("comp=list"), Fault::CutAnswer),
        );
        let store = small_store(&proxy.endpoint(), "box");
        let names: Vec<String> = if dir_only {
            rt.block_on(store.list_dir("data")).unwrap().0
        } else {
            rt.block_on(store.list("data")).unwrap()
        }
        .into_iter()
        .map(|m| m.path)
        .collect();
        assert_eq!(proxy.injected(), 1, "the listing was cut");
        assert_eq!(names.len(), 20, "{names:?}");
        assert!(names.contains(&"data/f19.txt".to_string()), "{names:?}");
    }
}

#[test]
fn a_download_cut_off_mid_answer_resumes_from_its_last_byte() {
    use stagehand::store::Entry;
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 5).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(small_store(&az.endpoint(), "box").upload(
        &dir.path().join("big.bin"),
        "big.bin",
        false,
    ))
    .unwrap();
    // Every range of the blob is cut once, half-way.
    let mut cut = 0;
    let proxy = Proxy::start(az.port, move |line| {
        if line.starts_with("GET /devstoreaccount1/box/big.bin ") && cut < 4 {
            cut += 1;
            Fault::CutAnswer
        } else {
            Fault::None
        }
    });
    let store = small_store(&proxy.endpoint(), "box");
    let Entry::File(meta) = rt.block_on(store.stat("big.bin")).unwrap() else {
        panic!("big.bin is not a file");
    };
    let dest = dir.path().join("down.bin");
    let n = rt.block_on(store.download(&meta, &dest)).unwrap();
    assert_eq!(proxy.injected(), 4, "four answers were cut");
    assert_eq!(n, data.len() as u64);
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "the bytes downloaded differ"
    );
}
