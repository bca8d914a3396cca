//! The node cache: runs on one node share what they download from
//! Azure. Counted at a proxy in front of Azurite: two jobs started together on one
//! 1 GiB blob fetch it once and see the same bytes; a changed blob is fetched again; a
//! bound below the inputs evicts and still serves every job; a corrupted entry, or a
//! job writing through its input, never reaches the next job; `stagehand cache`.

use crate::common::azurite::Azurite;
use crate::common::faults::{Fault, Proxy};
use crate::common::files::{same_bytes, write_data};
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MIB: u64 = 1 << 20;

/// Uploads the local file `src` as blob `name` (replacing it).
fn upload(s: &Scratch, src: &Path, name: &str) {
    let dir = s.path().join("upload-src");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::hard_link(src, dir.join(name)).unwrap();
    let o = Command::new(bin())
        .args(["datastore", "upload-files", "az", "--overwrite"])
        .arg(dir.join(name))
        .arg("--workspace")
        .arg(s.path().join("workspace.yaml"))
        .env("STAGEHAND_AZURE_VERIFY_MD5", "0")
        .output()
        .unwrap();
    expect_code(&o, 0);
}

/// A job reading the blob `blob` as input `data` and running `script`.
fn job(s: &Scratch, name: &str, blob: &str, script: &str) -> PathBuf {
    s.write(
        &format!("{name}.yaml"),
        &format!(
            r#"name: {name}
command: ["sh", "-c", '{script}', "x", "${{{{inputs.data}}}}"]
inputs:
  data: {{path: {blob}, mode: download}}
"#
        ),
    )
}

/// The command of one agent running `job` in the run folder `runs/<id>` with its own
/// events file, on the test's node cache; the run folder is kept, so that the test can
/// read what landed in it.
fn agent(s: &Scratch, job: &Path, id: &str) -> Command {
    let mut c = Command::new(bin());
    c.arg("run")
        .arg(job)
        .arg("--keep-run-dir")
        .arg("--run-dir")
        .arg(run_dir(s, id))
        .arg("--events")
        .arg(events_of(s, id))
        .in_scratch(s);
    c
}

fn run_dir(s: &Scratch, id: &str) -> PathBuf {
    s.path().join("runs").join(id)
}

fn events_of(s: &Scratch, id: &str) -> PathBuf {
    s.path().join(format!("{id}.jsonl"))
}

/// Runs `job` as run `id`, expecting success; its `stage_finished` for `data`.
fn run_ok(s: &Scratch, job: &Path, id: &str, env: &[(&str, &str)]) -> StageFinished {
    let o = agent(s, job, id)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    expect_code(&o, 0);
    stage_finished(&read_events(&events_of(s, id)), "data")
}

fn landed(s: &Scratch, id: &str, blob: &str) -> PathBuf {
    run_dir(s, id).join("inputs/data").join(blob)
}

fn cache(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .arg("cache")
        .args(args)
        .env("STAGEHAND_CACHE_DIR", s.cache_dir())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn entries(s: &Scratch) -> usize {
    std::fs::read_dir(s.cache_dir().join("downloads")).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.len() == 40 && !n.contains('.')
            })
            .count()
    })
}

#[test]
fn two_jobs_on_one_blob_fetch_it_once_and_a_changed_blob_is_fetched_again() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    let proxy = Proxy::start(az.port, |_| Fault::None);
    proxy.workspace(&s);
    let big = s.path().join("big.bin");
    write_data(&big, 1, 1 << 30);
    upload(&s, &big, "big.bin");
    let job = job(&s, "read", "big.bin", "cat \"$1\" > /dev/null");

    let before = proxy.answered();
    let mut a = agent(&s, &job, "a").spawn().unwrap();
    let mut b = agent(&s, &job, "b").spawn().unwrap();
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let fetched = proxy.answered() - before;
    assert!(
        (1 << 30..(1 << 30) + 4 * MIB).contains(&fetched),
        "two jobs fetched {fetched} bytes of one 1 GiB blob"
    );
    let (ea, eb) = (
        stage_finished(&read_events(&events_of(&s, "a")), "data"),
        stage_finished(&read_events(&events_of(&s, "b")), "data"),
    );
    let mut said = [
        (ea.cache_misses, ea.cache_hits),
        (eb.cache_misses, eb.cache_hits),
    ];
    said.sort_unstable();
    assert_eq!(
        said,
        [(0, 1), (1, 0)],
        "one miss and one hit: {ea:?} {eb:?}"
    );
    assert_eq!(ea.bytes + eb.bytes, 1 << 30);
    assert_eq!(
        finished(&read_events(&events_of(&s, "a"))).cache_hits
            + finished(&read_events(&events_of(&s, "b"))).cache_hits,
        1
    );
    for id in ["a", "b"] {
        assert!(
            same_bytes(&landed(&s, id, "big.bin"), &big),
            "run {id} differs"
        );
    }

    // The blob changes (a new ETag): a third job fetches the new bytes.
    let small = s.path().join("small.bin");
    write_data(&small, 2, 3 * MIB);
    upload(&s, &small, "big.bin");
    let before = proxy.answered();
    let c = run_ok(&s, &job, "c", &[]);
    assert_eq!((c.cache_misses, c.bytes), (1, 3 * MIB));
    assert!(proxy.answered() - before >= 3 * MIB);
    assert!(same_bytes(&landed(&s, "c", "big.bin"), &small));
}

#[test]
fn a_bound_below_the_inputs_evicts_and_still_serves_every_job() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    let proxy = Proxy::start(az.port, |_| Fault::None);
    proxy.workspace(&s);
    let mut src = Vec::new();
    for (i, size) in [(1, 2 * MIB), (2, 2 * MIB), (3, 2 * MIB), (4, 5 * MIB)] {
        let p = s.path().join(format!("f{i}.bin"));
        write_data(&p, i, size);
        upload(&s, &p, &format!("f{i}.bin"));
        src.push(p);
    }
    let bound = [("STAGEHAND_CACHE_SIZE", "3MiB")];
    // Each run's folder goes once it is done (as a scheduler's clean-up would): the
    // entries are then the cache's alone, and count against its bound.
    let go = |id: &str, i: usize| {
        let name = format!("f{i}.bin");
        let job = job(&s, id, &name, "cat \"$1\" > /dev/null");
        let st = run_ok(&s, &job, id, &bound);
        assert!(same_bytes(&landed(&s, id, &name), &src[i - 1]), "run {id}");
        std::fs::remove_dir_all(run_dir(&s, id)).unwrap();
        st
    };
    assert_eq!(go("r1", 1).cache_misses, 1);
    assert_eq!(go("r2", 1).cache_hits, 1, "f1 is served from the cache");
    assert_eq!(go("r3", 2).cache_misses, 1);
    assert_eq!(entries(&s), 1, "f1 was evicted to make room for f2");
    assert_eq!(go("r4", 3).cache_misses, 1);
    assert_eq!(go("r5", 1).cache_misses, 1, "f1 was evicted, fetched again");
    // Larger than the bound: served, uncached.
    let big = go("r6", 4);
    assert_eq!(
        (big.files, big.cache_misses, big.cache_hits, big.bytes),
        (1, 0, 0, 5 * MIB)
    );
    assert!(entries(&s) <= 1);
}

#[test]
fn a_corrupted_entry_or_a_job_writing_its_input_never_reaches_the_next_job() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    let proxy = Proxy::start(az.port, |_| Fault::None);
    proxy.workspace(&s);
    let src = s.path().join("d.bin");
    write_data(&src, 7, 4 * MIB);
    upload(&s, &src, "d.bin");
    let read = job(&s, "read", "d.bin", "cat \"$1\" > /dev/null");
    assert_eq!(run_ok(&s, &read, "r1", &[]).cache_misses, 1);
    assert_eq!(run_ok(&s, &read, "r2", &[]).cache_hits, 1);

    // Same size, other bytes, in the cache's own file.
    let entry = std::fs::read_dir(s.cache_dir().join("downloads"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().len() == 40)
        .unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    bytes[12345] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let r3 = run_ok(&s, &read, "r3", &[]);
    assert_eq!(
        (r3.cache_hits, r3.cache_misses),
        (0, 1),
        "the corrupted entry was served"
    );
    assert!(same_bytes(&landed(&s, "r3", "d.bin"), &src));

    // A job (root) makes its input writable and overwrites it in place.
    let vandal = job(
        &s,
        "vandal",
        "d.bin",
        "chmod u+w \"$1\" && printf XXXXXXXX | dd of=\"$1\" conv=notrunc 2>/dev/null",
    );
    run_ok(&s, &vandal, "v", &[]);
    assert!(
        !same_bytes(&landed(&s, "v", "d.bin"), &src),
        "the job could not write"
    );
    let r4 = run_ok(&s, &read, "r4", &[]);
    assert_eq!(r4.cache_hits, 0, "what the job wrote was served");
    assert!(same_bytes(&landed(&s, "r4", "d.bin"), &src));
    // And a job that only read it leaves the entry served as is.
    assert_eq!(run_ok(&s, &read, "r5", &[]).cache_hits, 1);
    assert!(same_bytes(&landed(&s, "r5", "d.bin"), &src));
}

#[test]
fn cache_ls_du_and_clear_say_what_is_there_and_clear_skips_entries_in_use() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    let proxy = Proxy::start(az.port, |_| Fault::None);
    proxy.workspace(&s);
    for (i, name) in [(1, "one.bin"), (2, "two.bin")] {
        let p = s.path().join(name);
        write_data(&p, i, 3 * MIB);
        upload(&s, &p, name);
        run_ok(&s, &job(&s, name, name, "true"), name, &[]);
    }
    let (ls, _) = expect_code(&cache(&s, &["ls"], &[]), 0);
    assert!(ls.contains("one.bin") && ls.contains("two.bin"), "{ls}");
    assert!(ls.contains("3.1 MB") && ls.contains("/box"), "{ls}");
    let (du, _) = expect_code(&cache(&s, &["du"], &[]), 0);
    assert!(du.contains("2 entries, 6.3 MB"), "{du}");
    assert!(du.contains("still linked from run folders: 6.3 MB"), "{du}");
    assert!(du.contains("(bound 21.5 GB)"), "{du}");

    // An entry a run holds right now (its lock taken) stays. (An entry's lock, not the
    // cache's own `.space.lock` beside them, which `read_dir` may list first.)
    let lock = std::fs::read_dir(s.cache_dir().join("downloads"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "lock")
                && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .unwrap();
    let mut holder = Command::new("sh")
        .args([
            "-c",
            "exec 9>>\"$0\" && flock 9 && echo locked && exec sleep 60",
        ])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let (out, _) = expect_code(&cache(&s, &["clear"], &[]), 0);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        out.contains("removed 1 entries") && out.contains("skipped 1 entries in use"),
        "{out}"
    );
    let (out, _) = expect_code(&cache(&s, &["clear"], &[]), 0);
    assert!(out.contains("removed 1 entries"), "{out}");
    let (ls, _) = expect_code(&cache(&s, &["ls"], &[]), 0);
    assert!(ls.contains("is empty"), "{ls}");
    // The runs keep their files.
    assert!(landed(&s, "one.bin", "one.bin").exists());

    let o = cache(&s, &["du"], &[("STAGEHAND_CACHE_SIZE", "lots")]);
    let (_, err) = expect_code(&o, code::INVALID);
    assert!(
        err.contains("STAGEHAND_CACHE_SIZE") && err.contains("\"lots\""),
        "{err}"
    );
}
