//! Real FUSE for the mount tests: is it usable here, is a path mounted, and driving an
//! agent process (signals, waiting for its exit).

use std::path::Path;
use std::process::Command;

/// Whether FUSE can be used here (the device, and root or fusermount3: what the agent
/// checks). In CI its absence is a failure; elsewhere the test returns early saying so.
pub fn fuse_ready() -> bool {
    fuse_ready_or("this test needs it and returns early without checking anything")
}

/// [`fuse_ready`], saying what the test does `without` FUSE outside CI.
pub fn fuse_ready_or(without: &str) -> bool {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    let root = is_root();
    let helper = ["/usr/bin/fusermount3", "/bin/fusermount3"]
        .iter()
        .any(|p| Path::new(p).exists());
    let ok = dev.is_ok() && (root || helper);
    if !ok {
        let why = format!(
            "FUSE is not usable here (/dev/fuse: {:?}, root: {root}, fusermount3: {helper})",
            dev.err()
        );
        if super::in_ci() {
            panic!("{why}; CI must have it (scripts/test installs fuse3)");
        }
        eprintln!("{why}: {without}");
    }
    ok
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether something is mounted at `mp` (per /proc/self/mounts).
pub fn mounted_at(mp: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let mp = mp.to_string_lossy().replace(' ', "\\040");
    table.lines().any(|l| l.split(' ').nth(1) == Some(&mp))
}

/// Sends signal `sig` to `pid`; panics if that fails.
pub fn kill(pid: u32, sig: i32) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The mount tests' data set, as a local datastore in `root`: `data/big.bin` (48 MiB,
/// returned), `data/small/s{0..20}.txt` ("small file {i}\n"), and a 400-file tree
/// `data/tree/d{i%10}/e{i%4}/f{i}.txt` ("{i}\n").
pub fn make_store(root: &Path) -> Vec<u8> {
    let big = noise(48 << 20, 7);
    std::fs::create_dir_all(root.join("data/small")).unwrap();
    std::fs::write(root.join("data/big.bin"), &big).unwrap();
    for i in 0..20 {
        std::fs::write(
            root.join(format!("data/small/s{i}.txt")),
            format!("small file {i}\n"),
        )
        .unwrap();
    }
    for i in 0..400 {
        let d = root.join(format!("data/tree/d{}/e{}", i % 10, i % 4));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}.txt")), format!("{i}\n")).unwrap();
    }
    big
}
