//! Hugging Face Hub repositories as inputs (`hf://`), against a private server that
//! speaks the Hub's HTTP API for the parts used (tests/common/web_server.py), itself
//! checked by running huggingface_hub's own `snapshot_download` against it: stagehand
//! downloads the same repository byte-exact, a second job is served from the node
//! cache, and a branch that moved is noticed (a new commit id, a new fetch).

use crate::common::events::read_events;
use crate::common::web::{python, WebServer};
use crate::common::*;
use stagehand_protocol::events::EventKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `stage_finished` said of input `name` in `events`: (pinned, cache hits, misses).
fn staged(events: &Path, name: &str) -> (Option<String>, u64, u64) {
    read_events(events)
        .into_iter()
        .rev()
        .find_map(|e| match e.kind {
            EventKind::StageFinished {
                name: n,
                pinned,
                cache_hits,
                cache_misses,
                ..
            } if n == name => Some((pinned, cache_hits, cache_misses)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no stage_finished for {name}"))
}

/// `huggingface_hub.snapshot_download` of `repo` from the server: its files, by path.
/// `None` when huggingface_hub is not installed (a failure in CI).
fn snapshot_download(
    web: &WebServer,
    s: &Scratch,
    repo: &str,
    kind: &str,
) -> Option<BTreeMap<String, Vec<u8>>> {
    let ok = Command::new(python())
        .args(["-c", "import huggingface_hub"])
        .status();
    if !ok.is_ok_and(|s| s.success()) {
        assert!(
            !in_ci(),
            "huggingface_hub is not installed; CI=true (run scripts/test)"
        );
        eprintln!("huggingface_hub is not installed: the server is not checked against it");
        return None;
    }
    let dest = s.path().join(format!("hf-{kind}"));
    let script = "import sys, huggingface_hub as h; print(h.snapshot_download(repo_id=sys.argv[1], repo_type=sys.argv[2], local_dir=sys.argv[3]))";
    let out = Command::new(python())
        .args(["-c", script, repo, kind])
        .arg(&dest)
        .env("HF_ENDPOINT", web.url())
        .env("HF_HOME", s.path().join("hf-home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_TOKEN", "hf_test_token_not_a_secret_value")
        .output()
        .unwrap();
    expect_code(&out, 0);
    Some(files_under(&dest))
}

/// Every file under `dir` (but huggingface_hub's own `.cache`), by relative path.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir)
        .into_keys()
        .filter(|p| !p.starts_with(".cache"))
        .map(|p| {
            let bytes = std::fs::read(dir.join(&p)).unwrap();
            (p, bytes)
        })
        .collect()
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn agent(s: &Scratch, web: &WebServer, job: &Path, ws: &Path, id: &str) -> (PathBuf, PathBuf) {
    let (run, events) = (
        s.path().join("runs").join(id),
        s.path().join(format!("{id}.jsonl")),
    );
    let out = Command::new(bin())
        .arg("run")
        .arg(job)
        .arg("--keep-run-dir")
        .arg("--run-dir")
        .arg(&run)
        .arg("--events")
        .arg(&events)
        .arg("--workspace")
        .arg(ws)
        .in_scratch(s)
        .env("HF_ENDPOINT", web.url())
        .env("HF_TOKEN", "hf_test_token_not_a_secret_value")
        .output()
        .unwrap();
    let (so, se) = expect_code(&out, 0);
    assert!(
        !so.contains("hf_test_token") && !se.contains("hf_test_token"),
        "{so}{se}"
    );
    (run, events)
}

#[test]
fn a_hub_model_and_dataset_download_byte_exact_cache_and_follow_a_moved_branch() {
    let web = WebServer::start();
    web.require_token("hf_test_token_not_a_secret_value");
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("store")).unwrap();
    let ws = s.write(
        "workspace.yaml",
        "default_datastore: store\ndatastores:\n  store: {type: local, root: ./store}\n",
    );
    web.put_hub(
        "models",
        "org/model",
        "main",
        "config.json",
        b"{\"layers\": 2}\n",
    );
    web.put_hub(
        "models",
        "org/model",
        "main",
        "weights.bin",
        &bytes(1, 300 << 10),
    );
    web.put_hub("models", "org/model", "main", "tok/vocab.txt", b"a\nb\n");
    web.put_hub(
        "datasets",
        "org/data",
        "main",
        "train/a.bin",
        &bytes(2, 100 << 10),
    );
    web.put_hub("datasets", "org/data", "main", "train/b.txt", b"row\n");
    web.put_hub(
        "datasets",
        "org/data",
        "main",
        "test/c.txt",
        b"not asked for\n",
    );

    // The server answers huggingface_hub itself (it needs the token too).
    let reference = snapshot_download(&web, &s, "org/model", "model");
    let job = s.write(
        "job.yaml",
        r#"name: hub
command: ["true"]
inputs:
  model: {url: "hf://org/model", mode: download}
  train: {url: "hf://datasets/org/data@main/train", mode: download}
"#,
    );
    let (shown, _) = expect_code(&plan_with(&job, &ws), 0);
    assert!(
        shown.contains("Hugging Face model org/model, revision main"),
        "{shown}"
    );

    let (run, events) = agent(&s, &web, &job, &ws, "one");
    // The whole repository lands under its name at the revision.
    let model = files_under(&run.join("inputs/model/model"));
    if let Some(reference) = reference {
        assert_eq!(model, reference, "stagehand and huggingface_hub differ");
    }
    assert_eq!(model["weights.bin"], bytes(1, 300 << 10));
    assert_eq!(model.len(), 3, "{:?}", model.keys());
    let train = files_under(&run.join("inputs/train/train"));
    assert_eq!(train.keys().collect::<Vec<_>>(), ["a.bin", "b.txt"]);
    let (pinned, _, misses) = staged(&events, "model");
    let first_commit = pinned.expect("the commit is recorded");
    assert!(first_commit.starts_with("commit "), "{first_commit}");
    assert_eq!(misses, 3);
    // The run folder says it too.
    let pins: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("pinned.json")).unwrap()).unwrap();
    assert_eq!(pins["model"].as_str(), Some(first_commit.as_str()));

    // A second job: every file from the node cache, none fetched again.
    let cdn_before = web
        .hub_requests()
        .iter()
        .filter(|r| r.starts_with("/cdn/"))
        .count();
    let (_, events) = agent(&s, &web, &job, &ws, "two");
    let (pinned, hits, misses) = staged(&events, "model");
    assert_eq!((pinned.as_ref(), hits, misses), (Some(&first_commit), 3, 0));
    let cdn_after = web
        .hub_requests()
        .iter()
        .filter(|r| r.starts_with("/cdn/"))
        .count();
    assert_eq!(cdn_before, cdn_after, "the cache was not used");

    // The branch moves: a new commit, the changed file fetched, the others served.
    web.put_hub(
        "models",
        "org/model",
        "main",
        "weights.bin",
        &bytes(9, 300 << 10),
    );
    let (run, events) = agent(&s, &web, &job, &ws, "three");
    let (pinned, hits, misses) = staged(&events, "model");
    assert_ne!(pinned.as_ref(), Some(&first_commit));
    assert_eq!((hits, misses), (2, 1));
    let model = files_under(&run.join("inputs/model/model"));
    assert_eq!(model["weights.bin"], bytes(9, 300 << 10));
}

/// The Hub store passes the conformance suite's read-only mode (its objects put in a
/// repository on the test server; an upload refused as read-only).
#[test]
fn the_hub_store_conforms_read_only() {
    use stagehand::store::conformance::{check_read_only, read_only_seed};
    let web = WebServer::start();
    for (rel, bytes) in read_only_seed() {
        web.put_hub(
            "datasets",
            "org/conf",
            "main",
            &format!("seeded/{rel}"),
            &bytes,
        );
    }
    let store = stagehand::store::hub::HubStore::open(
        "hf://datasets/org/conf@main",
        "dataset",
        "org/conf",
        "main",
        &web.url(),
        None,
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(check_read_only(std::sync::Arc::new(store), "seeded"))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A private repository: without a token the server answers 401 and the run fails with
/// 66, saying a token is needed; with `HF_TOKEN` it downloads, and the token shows in
/// no output: not stdout, stderr, the events, `plan` (text and JSON), nor the job's
/// environment. Once its file is in the node cache, a run without the token still fails.
#[test]
fn a_private_repository_needs_the_token_and_the_token_is_never_shown() {
    const TOKEN: &str = "hf_private_token_never_shown_42";
    let web = WebServer::start();
    web.require_token(TOKEN);
    web.put_hub("models", "org/private", "main", "w.bin", &bytes(4, 4096));
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("store")).unwrap();
    let ws = s.write(
        "workspace.yaml",
        "default_datastore: store\ndatastores:\n  store: {type: local, root: ./store}\n",
    );
    let job = s.write(
        "job.yaml",
        "name: private\ncommand: [\"sh\", \"-c\", \"env; test -z \\\"${HF_TOKEN:-}\\\" && echo HF_TOKEN-withheld\"]\ninputs:\n  m: {url: \"hf://org/private\", mode: download}\n",
    );
    let run = |token: Option<&str>, args: &[&str]| {
        let mut c = Command::new(bin());
        c.args(args)
            .arg(&job)
            .arg("--workspace")
            .arg(&ws)
            .in_scratch(&s)
            .env("HF_ENDPOINT", web.url())
            .env_remove("HF_TOKEN");
        if let Some(t) = token {
            c.env("HF_TOKEN", t);
        }
        c.output().unwrap()
    };
    let events = s.path().join("events.jsonl");
    let out = run(None, &["run"]);
    let (so, se) = expect_code(&out, code::NOT_FOUND_OR_DENIED);
    assert!((so + &se).contains("HF_TOKEN"), "the error says no token");
    assert!(web.hub_requests().iter().any(|r| r.contains("org/private")));

    let ev = events.to_string_lossy().to_string();
    let out = run(Some(TOKEN), &["run", "--events", &ev]);
    let (so, se) = expect_code(&out, 0);
    // Checked in the job itself: its output is redacted, its environment is not.
    assert!(
        so.contains("HF_TOKEN-withheld"),
        "the job got HF_TOKEN: {so}"
    );
    let plan = run(Some(TOKEN), &["plan"]);
    let (plan_text, plan_err) = expect_code(&plan, 0);
    let json = run(Some(TOKEN), &["plan", "--format", "json"]);
    let (plan_json, json_err) = expect_code(&json, 0);
    let said = [
        so,
        se,
        std::fs::read_to_string(&events).unwrap(),
        plan_text,
        plan_err,
        plan_json,
        json_err,
    ];
    for text in said {
        assert!(!text.contains(TOKEN), "the token is shown: {text}");
    }
    // The run with the token put the file in the node cache; a run without it still
    // fails at the revision's resolution, before any cache lookup: the cache never
    // hands a private repository's bytes to a job that could not read them.
    let (_, _, misses) = staged(&events, "m");
    assert!(misses >= 1, "the file did not go through the node cache");
    let before = web.hub_requests().len();
    let out = run(None, &["run"]);
    let (so, se) = expect_code(&out, code::NOT_FOUND_OR_DENIED);
    assert!((so + &se).contains("HF_TOKEN"), "the error says no token");
    assert!(web.hub_requests().len() > before, "the Hub was not asked");
}

/// A private repository read through a workspace `hugging_face` datastore: its
/// `endpoint` names the server (no `HF_ENDPOINT`), its token comes from `{file:}` and
/// wins over a wrong `HF_TOKEN`; the bytes land exact, `plan` says where they come
/// from, and the token shows in no output (stdout, stderr, events, `plan` text and
/// JSON) nor in the job's environment. A token file that is missing fails naming it.
#[test]
fn a_hugging_face_datastore_reads_a_private_repository_with_its_own_token() {
    const TOKEN: &str = "hf_workspace_token_never_shown_77";
    let web = WebServer::start();
    web.require_token(TOKEN);
    web.put_hub("models", "org/private", "v1", "w.bin", &bytes(5, 8192));
    web.put_hub("models", "org/private", "v1", "sub/x.txt", b"x\n");
    let s = Scratch::new();
    s.write("hf-token.txt", &format!("{TOKEN}\n"));
    let ws = s.write(
        "workspace.yaml",
        &format!(
            "datastores:\n  hub:\n    type: hugging_face\n    endpoint: {}\n    credentials: {{token: {{file: hf-token.txt}}}}\n",
            web.url()
        ),
    );
    let job = s.write(
        "job.yaml",
        &format!(
            "name: private\ncommand: [\"sh\", \"-c\", \"env > {}\"]\ninputs:\n  m: {{datastore: hub, path: \"org/private@v1\", mode: download}}\n",
            s.path().join("env.txt").display()
        ),
    );
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .arg(&job)
            .arg("--workspace")
            .arg(&ws)
            .in_scratch(&s)
            .env_remove("HF_ENDPOINT")
            .env("HF_TOKEN", "hf_wrong_token_from_the_environment")
            .output()
            .unwrap()
    };
    let events = s.path().join("events.jsonl");
    let runs = s.path().join("run");
    let out = run(&[
        "run",
        "--keep-run-dir",
        "--run-dir",
        runs.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ]);
    let (so, se) = expect_code(&out, 0);
    let got = files_under(&runs.join("inputs/m/private"));
    assert_eq!(got["w.bin"], bytes(5, 8192));
    assert_eq!(got["sub/x.txt"], b"x\n");
    let plan = run(&["plan"]);
    let (plan_text, plan_err) = expect_code(&plan, 0);
    assert!(
        plan_text.contains(&format!(
            "Hugging Face model org/private, revision v1 resolved to a commit before download, from {}, token from file hf-token.txt (datastore hub)",
            web.url()
        )),
        "{plan_text}"
    );
    let json = run(&["plan", "--format", "json"]);
    let (plan_json, json_err) = expect_code(&json, 0);
    // The job's own environment, as it wrote it in its working folder.
    let env = std::fs::read_to_string(s.path().join("env.txt")).unwrap();
    assert!(env.contains("PATH="), "{env}");
    let said = [
        so,
        se,
        std::fs::read_to_string(&events).unwrap(),
        plan_text,
        plan_err,
        plan_json,
        json_err,
        env,
    ];
    for text in said {
        assert!(!text.contains(TOKEN), "the token is shown: {text}");
    }
    // A token file that is not there: the run fails naming the datastore and the file.
    std::fs::remove_file(s.path().join("hf-token.txt")).unwrap();
    let out = run(&["run"]);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert_ne!(out.status.code(), Some(0), "{so}{se}");
    assert!(
        se.contains("credentials.token") && se.contains("hf-token.txt"),
        "{so}{se}"
    );
}

/// `datastore register --type hugging-face` writes a Hub with its endpoint and a token
/// reference (never the token); an input's `hf://` URL then reads through it, its
/// endpoint and its token, with neither `HF_ENDPOINT` nor `HF_TOKEN` set, and `plan`
/// names the datastore.
#[test]
fn a_registered_hub_serves_hf_urls_with_its_endpoint_and_token() {
    const TOKEN: &str = "hf_registered_token_never_shown_9";
    let web = WebServer::start();
    web.require_token(TOKEN);
    web.put_hub("models", "org/private", "main", "w.bin", &bytes(6, 4096));
    let s = Scratch::new();
    s.write("hf-token.txt", &format!("{TOKEN}\n"));
    std::fs::create_dir_all(s.path().join("store")).unwrap();
    let ws = s.write(
        "workspace.yaml",
        "default_datastore: store\ndatastores:\n  store: {type: local, root: ./store}\n",
    );
    let agent = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .in_scratch(&s)
            .env_remove("HF_ENDPOINT")
            .env_remove("HF_TOKEN")
            .output()
            .unwrap()
    };
    let ws_arg = ws.to_str().unwrap();
    let url = web.url();
    let out = agent(&[
        "datastore",
        "-w",
        ws_arg,
        "register",
        "hub",
        "--type",
        "hugging-face",
        "--endpoint",
        &url,
        "--token",
        "file:hf-token.txt",
    ]);
    let (so, se) = expect_code(&out, 0);
    assert!(so.contains("registered datastore \"hub\""), "{so}{se}");
    let file = std::fs::read_to_string(&ws).unwrap();
    assert!(
        file.contains("type: hugging_face") && file.contains("token: {file: \"hf-token.txt\"}"),
        "{file}"
    );
    assert!(!file.contains(TOKEN) && !(so + &se).contains(TOKEN));
    let job = s.write(
        "job.yaml",
        "name: viaurl\ncommand: [\"true\"]\ninputs:\n  m: {url: \"hf://org/private\", mode: download}\n",
    );
    let job_arg = job.to_str().unwrap();
    let runs = s.path().join("run");
    let out = agent(&[
        "run",
        job_arg,
        "--workspace",
        ws_arg,
        "--keep-run-dir",
        "--run-dir",
        runs.to_str().unwrap(),
    ]);
    let (so, se) = expect_code(&out, 0);
    assert!(!(so + &se).contains(TOKEN), "the token is shown");
    let got = files_under(&runs.join("inputs/m"));
    let w = got.iter().find(|(k, _)| k.ends_with("w.bin"));
    assert_eq!(w.map(|(_, v)| v), Some(&bytes(6, 4096)), "{:?}", got.keys());
    let out = agent(&["plan", job_arg, "--workspace", ws_arg]);
    let (plan, _) = expect_code(&out, 0);
    assert!(
        plan.contains(&format!(
            "from {url}, token from file hf-token.txt (datastore hub)"
        )),
        "{plan}"
    );
    assert!(!plan.contains(TOKEN));
}
