//! Files on a web server as inputs (any `http(s)://` URL that no Azure account
//! serves), against a private server (tests/common/web_server.py) that answers Range
//! requests on one path and ignores them on another: both download byte-exact, through
//! a cut connection (resumed from its last byte, or started over where ranges are not
//! served); a `sha256:` that does not match fails the run naming both hashes; an Azure
//! ML job's `uri_file` on a web server plans and downloads; an HTTPS server with a
//! private authority's certificate is trusted through `SSL_CERT_FILE` and refused (66)
//! without it; a web file and a Hub LFS file killed half-way resume in the next run.

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

/// A web file on an HTTPS server whose certificate comes from a private authority:
/// trusted through `SSL_CERT_FILE` (as curl, Python and the Azure SDKs read it), it
/// downloads byte-exact; without it the run fails at once with 66 (a rerun meets the
/// same certificate), naming the URL, the reason and what to do, and nothing lands.
#[test]
fn an_https_file_downloads_with_its_authority_and_an_untrusted_one_is_refused() {
    let Some(tls) = crate::common::tls::Tls::new() else {
        return;
    };
    let web = WebServer::start_tls(&tls);
    let s = Scratch::new();
    let ws = workspace(&s);
    let src = s.path().join("src/model.bin");
    write_data(&src, 5, 1 << 20);
    web.put_file("m/model.bin", &std::fs::read(&src).unwrap());
    let url = format!("{}/ranged/m/model.bin", web.url());
    assert!(url.starts_with("https://"), "{url}");
    let job = s.write(
        "job.yaml",
        &format!(
            "name: tls\ncommand: [\"true\"]\ninputs:\n  m: {{url: \"{url}\", mode: download}}\n"
        ),
    );
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .env("SSL_CERT_FILE", &tls.ca)
        .output()
        .unwrap();
    expect_code(&out, 0);
    assert!(same_bytes(&src, &s.run_dir().join("inputs/m/model.bin")));

    let _ = std::fs::remove_dir_all(s.run_dir());
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    let (so, se) = expect_code(&out, code::NOT_FOUND_OR_DENIED);
    let said = so + &se;
    assert!(
        said.contains(&url)
            && said.contains("TLS certificate is not trusted")
            && said.contains("UnknownIssuer")
            && said.contains("SSL_CERT_FILE"),
        "{said}"
    );
    assert!(!s.run_dir().join("inputs/m/model.bin").exists());
}

/// A web file and a Hugging Face LFS file (both 9 MiB, over the size a download
/// resumes at) are killed half-way (`kill -9`, the server paced): nothing lands under
/// a final name; the rerun asks each server for the rest only (a `Range` past 0) and
/// lands both byte-exact, leaving no partial file.
#[test]
fn web_and_hub_downloads_killed_half_way_resume_in_the_next_run() {
    use std::process::Stdio;
    use std::time::Duration;
    let web = WebServer::start();
    let s = Scratch::new();
    let ws = workspace(&s);
    let src = s.path().join("src/big.bin");
    write_data(&src, 3, 9 << 20);
    let bytes = std::fs::read(&src).unwrap();
    web.put_file("big.bin", &bytes);
    let mut lfs = bytes.clone();
    lfs.reverse();
    web.put_hub("models", "org/big", "main", "weights.bin", &lfs);
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: resume
command: ["true"]
inputs:
  web: {{url: "{u}/ranged/big.bin", mode: download}}
  hub: {{url: "hf://org/big", mode: download}}
"#,
            u = web.url()
        ),
    );
    let records = || {
        walk(s.path())
            .into_iter()
            .filter(|p| {
                p.to_string_lossy()
                    .ends_with(".stagehand-partial-resume.ranges")
            })
            .count()
    };
    web.throttle(2 << 20);
    let mut agent = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .env("HF_ENDPOINT", web.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = wait_until(Duration::from_secs(30), Duration::from_millis(20), || {
        records() == 2
    });
    // Past the record's first saves, well before the end (4.5 s at this pace).
    std::thread::sleep(Duration::from_millis(1200));
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert!(started, "the downloads never started");
    let landed = |name: &str| {
        walk(&s.run_dir().join("inputs"))
            .into_iter()
            .any(|p| p.file_name().is_some_and(|n| n == name))
    };
    assert!(
        !landed("big.bin") && !landed("weights.bin"),
        "a partial file is under a final name"
    );

    web.throttle(0);
    let out = s
        .run_cmd(&job)
        .arg("--workspace")
        .arg(&ws)
        .env("HF_ENDPOINT", web.url())
        .output()
        .unwrap();
    expect_code(&out, 0);
    assert!(same_bytes(&src, &s.run_dir().join("inputs/web/big.bin")));
    assert_eq!(
        std::fs::read(s.run_dir().join("inputs/hub/big/weights.bin")).unwrap(),
        lfs
    );
    let ranges = web.ranges();
    let resumed = |path: &str| {
        ranges.iter().any(|(p, r)| {
            p.contains(path)
                && r.strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
        })
    };
    assert!(
        resumed("/ranged/big.bin"),
        "the web file started over: {ranges:?}"
    );
    assert!(resumed("/cdn/"), "the Hub file started over: {ranges:?}");
    let left: Vec<_> = walk(s.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("stagehand-partial"))
        .collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
}

/// The web-file store passes the conformance suite's single-file mode
/// (`check_single_file`: its one file at the root, every range, a download, a missing
/// path, an upload refused as read-only), from a server that answers Range requests and
/// from one that ignores them, and with the input's `sha256:` given.
#[test]
fn the_web_file_store_conforms_as_a_single_file() {
    use stagehand::store::conformance::check_single_file;
    use stagehand::store::http::WebStore;
    let web = WebServer::start();
    // Over 2 MiB, so that the streamed pieces are checked too.
    let bytes: Vec<u8> = (0..(3u32 << 20) + 5)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    web.put_file("d/conf.bin", &bytes);
    let sha = {
        use sha2::Digest;
        crate::common::hex(&sha2::Sha256::digest(&bytes))
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (url, sha256) in [
        (format!("{}/ranged/d/conf.bin", web.url()), None),
        (format!("{}/plain/d/conf.bin", web.url()), None),
        (
            format!("{}/ranged/d/conf.bin?v=1", web.url()),
            Some(sha.as_str()),
        ),
    ] {
        let store = WebStore::open("web", &url, sha256).unwrap();
        rt.block_on(check_single_file(
            std::sync::Arc::new(store),
            "conf.bin",
            &bytes,
        ))
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}
