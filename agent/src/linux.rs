//! Everything that reads Linux's own files or calls Linux-only system calls: process
//! status from `/proc/PID/stat`, the boot id and host name, the mount tables, and
//! `prctl`. Kept in one place (as nextest keeps its `unix.rs`) so the rest of the agent
//! says what it wants to know, not where Linux keeps it.
//!
//! Every reader here is forgiving: a file that cannot be read or parsed gives `None` or
//! an empty table, never a panic, since processes and mounts come and go while read.

use std::path::{Path, PathBuf};

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Its state letter (`R`, `S`, `Z` for a zombie, …).
    pub state: char,
    /// Its process group.
    pub pgrp: i32,
    /// When it started, in clock ticks after boot: with the pid, it names one process,
    /// since a pid is reused but not at the same start time.
    pub start_time: u64,
}

impl ProcStat {
    /// Whether it still runs (a zombie or a dead task does not).
    pub fn running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the text of `/proc/PID/stat`.
pub fn parse_stat(stat: &str) -> Option<ProcStat> {
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    // Field 22 overall: the 20th after the command name, the 17th after pgrp.
    let start_time = f.nth(16)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgrp,
        start_time,
    })
}

/// The status of process `pid`; none when it does not exist.
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether any process of group `pgid` still runs (zombies do not count).
pub fn group_alive(pgid: i32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        parse_stat(&stat).is_some_and(|s| s.pgrp == pgid && s.running())
    })
}

/// Every running process of group `pgid` (zombies excluded).
pub fn group_members(pgid: i32) -> Vec<ProcStat> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| parse_stat(&std::fs::read_to_string(e.path().join("stat")).ok()?))
        .filter(|s| s.pgrp == pgid && s.running())
        .collect()
}

/// The agent's peak resident memory so far, in bytes (`VmHWM` of `/proc/self/status`):
/// what the node's memory accounting and the OOM killer saw of the agent at its
/// highest, reported in the `finished` event so that a job's owner can see what the
/// agent took from the job's memory.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// The `VmHWM:` line of a `/proc/PID/status` text, in bytes.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// This boot's id: it changes when the machine restarts, so a pid recorded before a
/// reboot is known to be gone.
pub fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

/// The host's name, as the kernel knows it.
pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Asks the kernel to SIGKILL the calling process when its parent dies. Called in a
/// child between fork and exec, so the job dies with an agent that is killed outright.
///
/// # Safety
/// Only async-signal-safe work: `prctl` touches nothing but the calling process.
pub unsafe fn die_with_parent() {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
}

/// One line of a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What is mounted (for FUSE, the file system's name).
    pub source: String,
    /// Where.
    pub mountpoint: PathBuf,
    /// Its type (`fuse`, `fuse.NAME`, `ext4`, …).
    pub fstype: String,
}

/// Parses a mount table in the format of `/proc/self/mounts`.
pub fn parse_mounts(table: &str) -> Vec<Mount> {
    table
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let (source, mp, fstype) = (f.next()?, f.next()?, f.next()?);
            Some(Mount {
                source: unescape(source),
                mountpoint: PathBuf::from(unescape(mp)),
                fstype: fstype.to_string(),
            })
        })
        .collect()
}

/// This process's mount table.
pub fn mounts() -> std::io::Result<Vec<Mount>> {
    Ok(parse_mounts(&std::fs::read_to_string("/proc/self/mounts")?))
}

/// Undoes the octal escapes (`\040` for a space) of the mount tables.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the mount that holds `path` propagates (has a `shared:` or `master:` tag in
/// `/proc/self/mountinfo`): then mounts made under it later reach a container bound to
/// it.
pub fn mount_propagates(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut best: Option<(usize, bool)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else { continue };
        let point = unescape(point);
        if !path.starts_with(&point) {
            continue;
        }
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .unwrap_or(fields.len());
        let tagged = fields[6.min(sep)..sep]
            .iter()
            .any(|f| f.starts_with("shared:") || f.starts_with("master:"));
        // The longest mount point wins; a later line with the same point is mounted on top.
        if best.map(|(len, _)| point.len() >= len).unwrap_or(true) {
            best = Some((point.len(), tagged));
        }
    }
    best.map(|(_, t)| t).unwrap_or(false)
}

/// The bytes free for an unprivileged writer on the file system that holds `path`, or
/// its nearest existing ancestor (a run folder that is not made yet).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let mut at = path;
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    let st = nix::sys::statvfs::statvfs(at).map_err(std::io::Error::from)?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// A file's identity, whatever name or mount namespace it is seen through.
pub type FileId = (u64, u64);

/// The (device, inode) of each file some process this agent can see holds open for
/// writing (`O_WRONLY` or `O_RDWR` in `/proc/<pid>/fdinfo/<fd>`'s `flags`).
///
/// Files are matched by identity, not name: a container's process sees its output
/// folder under another path (`/mnt/stagehand/...`), and `/proc/<pid>/fd/<n>` resolves
/// to the file itself across mount namespaces. Limits: only processes whose `/proc`
/// entries the agent may read are seen (all of them as root, the agent's own user's
/// otherwise; a rootless container's or another user's writers are not); a process in
/// another PID namespace whose `/proc` is not this one (a container on another node's
/// kernel, a VM) is not seen at all; a file written through `mmap` after its
/// descriptor was closed, or by a writer that reopens it later, is not open now.
/// The callers therefore also wait for a file's size and mtime to hold still.
pub fn open_for_writing(
    among: &std::collections::HashSet<FileId>,
) -> std::collections::HashSet<FileId> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::HashSet::new();
    if among.is_empty() {
        return out;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(m) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let id = (m.dev(), m.ino());
            if !among.contains(&id) || out.contains(&id) {
                continue;
            }
            let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
            if std::fs::read_to_string(info)
                .ok()
                .and_then(|t| fdinfo_flags(&t))
                .is_none_or(writes)
            {
                // Unreadable flags: the process may be writing it; wait.
                out.insert(id);
            }
        }
    }
    out
}

/// The `flags:` field (octal) of an fdinfo file.
fn fdinfo_flags(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
}

/// Whether open flags allow writing.
fn writes(flags: u32) -> bool {
    let mode = flags & libc::O_ACCMODE as u32;
    mode == libc::O_WRONLY as u32 || mode == libc::O_RDWR as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_memory_is_read_in_bytes() {
        let status =
            "Name:\tstagehand\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(40 << 20));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        assert!(peak_rss_bytes().is_some_and(|b| b > 0));
    }

    #[test]
    fn stat_fields_count_after_the_last_parenthesis() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 105 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                pgrp: 4242,
                start_time: 987654
            })
        );
        assert!(parse_stat(line).unwrap().running());
        let zombie = line.replace(") S ", ") Z ");
        assert!(!parse_stat(&zombie).unwrap().running());
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_found_and_alive() {
        let me = stat(std::process::id()).expect("our own /proc entry");
        assert!(me.running());
        assert!(me.start_time > 0);
        assert!(!boot_id().is_empty());
    }

    #[test]
    fn a_file_held_open_for_writing_is_seen_and_a_reader_is_not() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (w, r) = (dir.path().join("w"), dir.path().join("r"));
        std::fs::write(&r, b"done").unwrap();
        let writer = std::fs::File::create(&w).unwrap();
        let _reader = std::fs::File::open(&r).unwrap();
        let id = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.dev(), m.ino())
        };
        let among = [id(&w), id(&r)].into_iter().collect();
        let open = super::open_for_writing(&among);
        assert!(open.contains(&id(&w)), "the file being written is seen");
        assert!(!open.contains(&id(&r)), "a file only read is not");
        drop(writer);
        assert!(super::open_for_writing(&among).is_empty());
        assert_eq!(
            super::fdinfo_flags("pos:\t0\nflags:\t0100001\n"),
            Some(0o100001)
        );
    }

    #[test]
    fn mount_tables_unescape_spaces() {
        let t = "stagehand:r1:9 /tmp/a\\040b fuse rw 0 0\n/dev/vda / ext4 rw 0 0\nshort\n";
        let m = parse_mounts(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mountpoint, PathBuf::from("/tmp/a b"));
        assert_eq!(m[0].fstype, "fuse");
        assert_eq!(m[1].source, "/dev/vda");
    }
}
