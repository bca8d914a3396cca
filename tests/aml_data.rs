//! Azure ML v2 jobs naming their data the way real jobs do: a local folder
//! beside the job, a data asset registered in the workspace, and storage URLs, read
//! through a registered datastore or, for a public container, anonymously.

use crate::common::azurite::{Azurite, KEY, KEY_FROM_ENV};
use crate::common::*;

/// A local folder input, downloaded and given in place, and a data asset at its latest
/// version: the job sees all three; the local folder is neither changed nor uploaded.
#[test]
fn a_local_folder_and_a_registered_asset_are_read_where_they_are() {
    let s = Scratch::new();
    s.write("project/data/a.txt", "local bytes\n");
    s.write("store/things/v1/b.txt", "asset v1\n");
    s.write("store/things/v2/b.txt", "asset v2\n");
    let ws = s.write(
        "workspace.yaml",
        r#"default_datastore: store
datastores:
  store: {type: local, root: ./store}
data_assets:
  - {name: things, version: 1, path: "azureml://datastores/store/paths/things/v1/"}
  - {name: things, version: 2, type: uri_folder, path: "azureml://datastores/store/paths/things/v2/"}
"#,
    );
    let job = s.write(
        "project/job.yml",
        r#"$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
command: >-
  cat ${{inputs.copied}}/a.txt ${{inputs.in_place}}/a.txt ${{inputs.latest}}/b.txt ${{inputs.first}}/b.txt
inputs:
  copied: {type: uri_folder, path: ./data, mode: download}
  in_place: {type: uri_folder, path: data}
  latest: {type: uri_folder, path: "azureml:things@latest", mode: download}
  first: {type: uri_folder, path: "azureml:things:1"}
"#,
    );
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .output()
        .unwrap();
    let (so, _) = expect_code(&out, 0);
    assert_eq!(so, "local bytes\nlocal bytes\nasset v2\nasset v1\n");
    // The download is a copy in the run folder; the mount is the folder itself.
    let copied = s.run_dir().join("inputs/copied/data/a.txt");
    assert_eq!(std::fs::read_to_string(copied).unwrap(), "local bytes\n");
    assert_eq!(
        tree(&s.path().join("project"))
            .into_keys()
            .collect::<Vec<_>>(),
        ["data/a.txt", "job.yml"]
    );
    // `plan` says where each came from.
    let plan = plan_with(&job, &ws);
    let (shown, _) = expect_code(&plan, 0);
    assert!(shown.contains("asset things@latest"), "{shown}");
    assert!(shown.contains("used in place"), "{shown}");
}

/// An asset that is not registered is refused at the key the person wrote.
#[test]
fn an_unregistered_asset_names_the_key() {
    let s = Scratch::new();
    let ws = s.write(
        "workspace.yaml",
        r#"default_datastore: store
datastores:
  store: {type: local, root: .}
"#,
    );
    let job = s.write(
        "job.yml",
        r#"type: command
command: ls
inputs:
  x: {path: 'azureml:cifar-10-example@latest'}
"#,
    );
    let out = plan_with(&job, &ws);
    let (_, se) = expect_code(&out, 64);
    assert!(se.contains("inputs.x.path"), "{se}");
    assert!(
        se.contains("not registered in the workspace's data_assets"),
        "{se}"
    );
}

/// A job whose inputs are storage URLs of Azurite's containers (path-style, as an
/// emulator serves them), with `mode: download`.
fn url_job(s: &Scratch, az: &Azurite, blobs: &[(&str, &str)]) -> std::path::PathBuf {
    let mut inputs = String::new();
    let mut cmd = Vec::new();
    for (name, blob) in blobs {
        inputs.push_str(&format!(
            r#"  {name}: {{type: uri_file, path: "{}/{blob}", mode: download}}
"#,
            az.endpoint()
        ));
        cmd.push(format!("${{{{inputs.{name}}}}}"));
    }
    s.write(
        "job.yml",
        &format!(
            r#"type: command
command: cat {}
inputs:
{inputs}"#,
            cmd.join(" ")
        ),
    )
}

/// A public container's URL with no datastore registered for it is read anonymously;
/// a private container's is not, until a datastore with credentials is registered for
/// its account and container, whose credentials are then used.
#[test]
fn storage_urls_read_through_a_registered_datastore_or_anonymously() {
    let Some(az) = Azurite::start() else { return };
    az.mkpublic(&["pub"]);
    az.mkcontainer(&["data", "priv"]);
    az.put("pub", "iris/iris.csv", "public bytes\n");
    az.put("priv", "secret.txt", "private bytes\n");
    let s = Scratch::new();
    // Only the default datastore, which is neither container.
    let ws = az.workspace(&s, "workspace.yaml", "blobs", "data", KEY_FROM_ENV);
    let job = url_job(&s, &az, &[("iris", "pub/iris/iris.csv")]);
    let run = |job: &std::path::Path, ws: &std::path::Path| {
        s.run_cmd(job)
            .arg("--workspace")
            .arg(ws)
            .env("TEST_AZ_KEY", KEY)
            .output()
            .unwrap()
    };
    let (so, _) = expect_code(&run(&job, &ws), 0);
    assert_eq!(so, "public bytes\n");
    let plan = plan_with(&job, &ws);
    let (shown, _) = expect_code(&plan, 0);
    assert!(shown.contains("read anonymously"), "{shown}");

    // The private container cannot be read anonymously…
    let private = url_job(&s, &az, &[("secret", "priv/secret.txt")]);
    let out = run(&private, &ws);
    assert_ne!(out.status.code(), Some(0));
    let (_, se) = text(&out);
    assert!(se.contains("cannot be read anonymously"), "{se}");
    assert!(!se.contains(KEY), "{se}");

    // …but through the datastore registered for it, with its key.
    let ws2 = s.write(
        "ws2.yaml",
        &format!(
            r#"default_datastore: blobs
datastores:
  blobs: {{type: azure_blob, account_name: devstoreaccount1, container_name: data, endpoint: "{e}", credentials: {KEY_FROM_ENV}}}
  secrets: {{type: azure_blob, account_name: devstoreaccount1, container_name: priv, endpoint: "{e}", credentials: {KEY_FROM_ENV}}}
"#,
            e = az.endpoint()
        ),
    );
    let _ = std::fs::remove_dir_all(s.run_dir());
    let (so, _) = expect_code(&run(&private, &ws2), 0);
    assert_eq!(so, "private bytes\n");
    // The account's https:// and wasbs:// URLs too: the datastore reaches the account.
    let virtual_host = s.write(
        "virtual.yml",
        r#"type: command
command: cat ${{inputs.a}} ${{inputs.b}}
inputs:
  a: {type: uri_file, path: "https://devstoreaccount1.blob.core.windows.net/priv/secret.txt", mode: download}
  b: {type: uri_file, path: "wasbs://priv@devstoreaccount1.blob.core.windows.net/secret.txt", mode: download}
"#,
    );
    let _ = std::fs::remove_dir_all(s.run_dir());
    let (so, _) = expect_code(&run(&virtual_host, &ws2), 0);
    assert_eq!(so, "private bytes\nprivate bytes\n");
    let plan = plan_with(&private, &ws2);
    let (shown, _) = expect_code(&plan, 0);
    assert!(shown.contains("datastore secrets"), "{shown}");
}

/// In a container, a local input in mount mode is the folder itself, bound read-only;
/// in download mode it is a copy in the run folder.
#[test]
fn a_local_mount_is_bound_read_only_into_a_container() {
    let s = Scratch::new();
    s.write("data/a.txt", "x");
    let ws = s.write(
        "workspace.yaml",
        r#"datastores: {}
"#,
    );
    let job = s.write(
        "job.yml",
        r#"type: command
command: ls ${{inputs.in_place}} ${{inputs.copied}}
environment: {image: "busybox:latest"}
inputs:
  in_place: {type: uri_folder, path: ./data}
  copied: {type: uri_file, path: ./data/a.txt, mode: download}
"#,
    );
    let run = s.run_dir();
    let plan = plan_json(
        &job,
        &[
            "--workspace",
            ws.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
        ],
    );
    let binds = plan["container"]["binds"].as_array().unwrap();
    let bind = binds
        .iter()
        .find(|b| b["purpose"] == "input in_place")
        .unwrap_or_else(|| panic!("{binds:?}"));
    let data = std::fs::canonicalize(s.path().join("data")).unwrap();
    assert_eq!(
        std::fs::canonicalize(bind["host"].as_str().unwrap()).unwrap(),
        data
    );
    assert_eq!(bind["read_only"], true);
    assert_eq!(bind["container"], "/mnt/stagehand/data/in_place/data");
    let copied = plan["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "copied")
        .unwrap();
    assert_eq!(
        copied["local_path"].as_str().unwrap(),
        run.join("inputs/copied/a.txt").to_str().unwrap()
    );
}
