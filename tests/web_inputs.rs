//! Files on a web server as inputs (any `http(s)://` URL that no Azure account
//! serves), against a private server (tests/common/web_server.py) that answers Range
//! requests on one path and ignores them on another: both download byte-exact, through
//! a cut connection (resumed from its last byte, or started over where ranges are not
//! served); a `sha256:` that does not match fails the run naming both hashes; an Azure
//! ML job's `uri_file` on a web server plans and downloads.

use crate::common::files::{same_bytes, write_data};
use crate::common::web::WebServer;
use crate::common::*;
use std::path::Path;

/// A workspace with one local datastore (the URL inputs need none).
fn workspace(s: &Scratch) -> std::path::PathBuf {
    std::fs::create_dir_all(s.path().join("store")).unwrap();
    s.write(
        "workspace.yaml",
        "default_datastore: store\ndatastores:\n  store: {type: local, root: ./store}\n",
    )
}

fn sha256_of(p: &Path) -> String {
    use sha2::Digest;
    crate::common::hex(&sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn web_files_download_with_and_without_ranges_through_a_cut_and_are_checked() {
    let web = WebServer::start();
    let s = Scratch::new();
    let ws = workspace(&s);
    let src = s.path().join("src/data.bin");
    write_data(&src, 7, 3 << 20);
    web.put_file("d/data.bin", &std::fs::read(&src).unwrap());
    let sha = sha256_of(&src);
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: web
command: ["cmp", "${{{{inputs.ranged}}}}", "${{{{inputs.plain}}}}"]
inputs:
  ranged: {{url: "{u}/ranged/d/data.bin", mode: download}}
  plain: {{url: "{u}/plain/d/data.bin", mode: download, sha256: "{sha}"}}
"#,
            u = web.url()
        ),
    );
    // `plan` says where each comes from.
    let (shown, _) = expect_code(&plan_with(&job, &ws), 0);
    assert!(
        shown.contains("a file on a web server, pinned by its ETag"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("checked against sha256 {sha}")),
        "{shown}"
    );
    // One GET of each is cut half-way: the ranged one resumes, the plain one starts over.
    web.cut_next(2);
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .output()
        .unwrap();
    expect_code(&out, 0);
    for name in ["ranged", "plain"] {
        let got = s.run_dir().join(format!("inputs/{name}/data.bin"));
        assert!(
            same_bytes(&src, &got),
            "{name} differs from the server's file"
        );
    }

    // A wrong sha256 fails the run and names both hashes.
    let wrong = "0".repeat(64);
    let bad = s.write(
        "bad.yaml",
        &format!(
            r#"name: bad
command: ["true"]
inputs:
  plain: {{url: "{u}/plain/d/data.bin", mode: download, sha256: "{wrong}"}}
"#,
            u = web.url()
        ),
    );
    let _ = std::fs::remove_dir_all(s.run_dir());
    let out = s
        .run_cmd(&bad)
        .arg("--workspace")
        .arg(&ws)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let (_, se) = text(&out);
    assert!(se.contains(&sha) && se.contains(&wrong), "{se}");
    assert!(!s.run_dir().join("inputs/plain/data.bin").exists());
}

#[test]
fn an_azureml_uri_file_on_a_web_server_plans_and_downloads() {
    let web = WebServer::start();
    let s = Scratch::new();
    let ws = workspace(&s);
    web.put_file("iris.csv", b"sepal_length,species\n5.1,setosa\n");
    // azureml-examples' cli/jobs/basics/hello-world-input.yml, its file on our server.
    let job = s.write(
        "hello-world-input.yml",
        &format!(
            r#"$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: |
  echo ${{{{inputs.hello_string}}}}
  cat ${{{{inputs.iris}}}}
inputs:
  hello_string: "hello world"
  iris:
    type: uri_file
    path: {u}/ranged/iris.csv
    mode: download
"#,
            u = web.url()
        ),
    );
    let (shown, _) = expect_code(&plan_with(&job, &ws), 0);
    assert!(shown.contains("a file on a web server"), "{shown}");
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .output()
        .unwrap();
    let (so, _) = expect_code(&out, 0);
    assert_eq!(so, "hello world\nsepal_length,species\n5.1,setosa\n");
}
