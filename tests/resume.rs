//! Resume inside a file across restarts: the agent is SIGKILLed half
//! way through moving a 200 MiB blob (through the throttled fault proxy, which counts
//! the bytes), and its re-run moves less than 60% of the blob, landing it byte-exact.
//! Down: the ranges already on disk are kept (pinned to the ETag); up: the blocks
//! already staged for the uncommitted blob are reused.

use crate::common::azurite::Azurite;
use crate::common::faults::{Fault, Proxy};
use crate::common::*;
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const SIZE: u64 = 200 << 20;
/// The proxy's pace (slow enough for a debug build of the agent to keep up, so what
/// the proxy sent is what the agent has): the first run is killed about 5 s in.
const RATE: u64 = 20 << 20;

/// Writes `SIZE` bytes that no two blocks share to `path`; their sha256.
fn write_data(path: &Path) -> String {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut h = sha2::Sha256::new();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut buf = vec![0u8; 1 << 20];
    for w in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes());
    }
    for i in 0..SIZE >> 20 {
        // Every 4 KiB page of every MiB is its own.
        for (p, page) in buf.chunks_mut(4096).enumerate() {
            page[..8].copy_from_slice(&(i << 20 | p as u64).to_le_bytes());
        }
        h.update(&buf);
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
    hex(&h.finalize())
}

/// Runs `job` until `moved` (bytes through the proxy) passes half the blob, then
/// SIGKILLs the agent.
fn kill_half_way(s: &Scratch, job: &Path, env: &[(&str, &str)], moved: impl Fn() -> u64) {
    let mut agent = s
        .run_cmd(job)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let half = wait_until(Duration::from_secs(60), Duration::from_millis(10), || {
        moved() >= SIZE / 2
    });
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert!(half, "the transfer never got half-way");
}

fn sha256_file(p: &Path) -> String {
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(p).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).unwrap();
        if n == 0 {
            return hex(&h.finalize());
        }
        h.update(&buf[..n]);
    }
}

#[test]
fn a_download_killed_half_way_resumes_inside_the_file() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    let src = s.path().join("src.bin");
    eprintln!("start at {:?}", std::time::Instant::now());
    let want = write_data(&src);
    eprintln!("written at {:?}", std::time::Instant::now());
    {
        // Straight to Azurite, no proxy: the blob to download.
        let direct = Proxy::start(az.port, |_| Fault::None);
        direct.workspace(&s);
        let o = std::process::Command::new(bin())
            .args(["datastore", "upload-files", "az"])
            .arg(&src)
            .arg("--workspace")
            .arg(s.path().join("workspace.yaml"))
            .env("STAGEHAND_AZURE_VERIFY_MD5", "0")
            .output()
            .unwrap();
        expect_code(&o, 0);
    }
    std::fs::remove_file(&src).unwrap();
    eprintln!("uploaded at {:?}", std::time::Instant::now());
    let job = s.write(
        "job.yaml",
        r#"name: down
command: ["true"]
inputs:
  big: {path: src.bin, mode: download}
"#,
    );
    let first = Proxy::throttled(az.port, RATE, |_| Fault::None);
    first.workspace(&s);
    kill_half_way(&s, &job, &[], || first.answered());
    let landed: PathBuf = s.run_dir().join("inputs/big");
    assert!(
        tree(&landed).is_empty(),
        "a partial file is under a final name: {:?}",
        tree(&landed)
    );

    eprintln!("killed at {:?}", std::time::Instant::now());
    let again = Proxy::start(az.port, |_| Fault::None);
    again.workspace(&s);
    let (_, se) = expect_code(&s.run(&job), 0);
    eprintln!("re-ran at {:?}: {se}", std::time::Instant::now());
    let files: Vec<PathBuf> = walk(&landed)
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let left: Vec<PathBuf> = walk(&landed)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("stagehand-partial"))
        .collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
    assert_eq!(sha256_file(&files[0]), want, "the bytes downloaded differ");
    let refetched = again.answered();
    assert!(
        refetched < SIZE * 6 / 10,
        "the re-run fetched {refetched} of {SIZE} bytes"
    );
    eprintln!(
        "download resume: first run {} bytes before the kill, re-run {refetched} bytes ({:.0}%)",
        first.answered(),
        refetched as f64 * 100.0 / SIZE as f64
    );
}

#[test]
fn an_upload_killed_half_way_reuses_its_staged_blocks() {
    let Some(az) = Azurite::start() else { return };
    az.mkcontainer(&["box"]);
    let s = Scratch::new();
    let src = s.path().join("src.bin");
    let want = write_data(&src);
    // The job writes its output anew in every run (a copy, new inode and time), byte
    // for byte the same.
    let job = s.write(
        "job.yaml",
        &format!(
            r#"name: up
command: ["sh", "-c", "cp {} ${{{{outputs.out}}}}/big.bin"]
outputs:
  out: {{path: "up/fixed", mode: upload}}
"#,
            src.display()
        ),
    );
    // Small blocks, two in flight: a kill at half-way leaves most of them staged.
    let env = [
        ("STAGEHAND_AZURE_BLOCK_MIB", "8"),
        ("STAGEHAND_AZURE_BLOCKS", "2"),
    ];
    let first = Proxy::throttled(az.port, RATE, |_| Fault::None);
    first.workspace(&s);
    kill_half_way(&s, &job, &env, || first.received());
    assert!(
        az.sha256s("box", "up").is_empty(),
        "a blob was committed by the killed run"
    );

    let again = Proxy::start(az.port, |_| Fault::None);
    again.workspace(&s);
    expect_code(&s.run_cmd(&job).envs(env).output().unwrap(), 0);
    let resent = again.received();
    assert_eq!(
        az.sha256s("box", "up").get("up/fixed/big.bin"),
        Some(&want),
        "the blob differs from the file"
    );
    assert!(
        resent < SIZE * 6 / 10,
        "the re-run sent {resent} of {SIZE} bytes"
    );
    eprintln!(
        "upload resume: first run {} bytes before the kill, re-run {resent} bytes ({:.0}%)",
        first.received(),
        resent as f64 * 100.0 / SIZE as f64
    );
}
