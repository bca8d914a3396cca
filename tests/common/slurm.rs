//! A private 3-node Slurm cluster for one test, on this machine: its own munge key and
//! munged socket, one `slurmctld` and three `slurmd -N n1..n3` on free loopback ports
//! (`NodeName=nN NodeHostname=localhost NodeAddr=127.0.0.1 Port=…`), its state, spool
//! and log folders under a temporary folder, `SLURM_CONF` set on every command made by
//! [`Slurm::cmd`]. Dropping it (also while a test panics) cancels every job, stops each
//! daemon by its pid and waits for it to go.
//!
//! The clusters of concurrent tests would not collide, but the machine has two cores:
//! one cluster runs at a time (a lock held for the cluster's life).
//!
//! It must never touch the machine's own Slurm or munge configuration (/etc/slurm,
//! /etc/munge) nor signal a process it did not start.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The cluster's nodes, in order: `SLURM_NODEID` 0, 1, 2.
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// CPUs each node claims (more than the machine has: tasks here mostly wait).
pub const CPUS: u32 = 4;
/// Memory each node claims, in MiB (Slurm's `RealMemory`; a job without `--mem` gets
/// 1024 per CPU, `DefMemPerCPU`).
pub const MEMORY_MIB: u32 = 4096;
/// GPUs each node has: fake ones, character devices made with `mknod` under the
/// cluster's folder ([`Slurm::gpu_dir`]), enough for Slurm to allocate them by id.
pub const GPUS: u32 = 4;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One running cluster.
pub struct Slurm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// munged, slurmctld, then the slurmds: stopped in the reverse order.
    daemons: Vec<Child>,
    turn: Option<MutexGuard<'static, ()>>,
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|d| d.join(program).is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn sbin(program: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

impl Slurm {
    /// Starts the cluster and waits until its three nodes are idle; None (outside CI)
    /// when Slurm or munge is not installed. Under CI=true a cluster that cannot start
    /// fails the test.
    pub fn start() -> Option<Slurm> {
        let missing = ["slurmctld", "slurmd", "munged", "srun", "sbatch"]
            .into_iter()
            .find(|p| !installed(p));
        if let Some(p) = missing {
            assert!(
                !super::in_ci(),
                "{p} is not installed; CI=true, so this test cannot pass without it (run scripts/test)"
            );
            eprintln!("{p} is not installed (apt-get install slurm-wlm munge, or run scripts/test): this test returns early without checking anything");
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let mut turn = Some(turn);
        for attempt in 0..3 {
            match Self::launch(turn.take().expect("the lock is held")) {
                Ok(s) => return Some(s),
                Err((t, why)) if attempt < 2 => {
                    eprintln!("the Slurm cluster did not start ({why}); trying other ports");
                    turn = Some(t);
                }
                Err((_, why)) => panic!("the Slurm cluster did not start: {why}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn launch(turn: MutexGuard<'static, ()>) -> Result<Slurm, (MutexGuard<'static, ()>, String)> {
        let dir = tempfile::Builder::new()
            .prefix("stagehand-slurm-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["state", "log", "munge", "spool/n1", "spool/n2", "spool/n3"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        // munged checks that its socket's folder is reachable by all, and that the key
        // is readable by its owner only.
        set_mode(d, 0o755);
        set_mode(&d.join("munge"), 0o755);
        let key: Vec<u8> = (0..1024).map(|_| fastrand_byte()).collect();
        std::fs::write(d.join("munge/key"), key).unwrap();
        set_mode(&d.join("munge/key"), 0o400);
        make_fake_gpus(d);
        let conf = d.join("slurm.conf");
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        std::fs::write(&conf, slurm_conf(d, &ports)).unwrap();
        // slurmd reads gres.conf from the folder of slurm.conf.
        std::fs::write(d.join("gres.conf"), gres_conf(d)).unwrap();
        let mut s = Slurm {
            dir,
            conf,
            daemons: Vec::new(),
            turn: Some(turn),
        };
        let up = s.spawn_daemons();
        match up {
            Ok(()) => Ok(s),
            Err(why) => {
                let log = s.logs();
                s.stop();
                let turn = s.turn.take().expect("a new cluster holds the lock");
                Err((turn, format!("{why}\n{log}")))
            }
        }
    }

    fn spawn_daemons(&mut self) -> Result<(), String> {
        let d = self.dir.path().to_path_buf();
        let munge = d.join("munge");
        let mut munged = Command::new(sbin("munged"));
        munged
            .arg("--foreground")
            .arg(format!("--key-file={}", munge.join("key").display()))
            .arg(format!("--socket={}", munge.join("sock").display()))
            .arg(format!("--pid-file={}", munge.join("pid").display()))
            .arg(format!("--log-file={}", munge.join("log").display()))
            .arg(format!("--seed-file={}", munge.join("seed").display()))
            .arg("--num-threads=4");
        self.spawn(munged, "munged.out")?;
        let sock = munge.join("sock");
        if !super::wait_until(Duration::from_secs(10), super::POLL, || sock.exists()) {
            return Err("munged did not open its socket".into());
        }
        let mut ctld = Command::new(sbin("slurmctld"));
        ctld.args(["-D", "-c", "-f"]).arg(&self.conf);
        self.spawn(ctld, "slurmctld.out")?;
        for n in NODES {
            let mut slurmd = Command::new(sbin("slurmd"));
            slurmd.args(["-D", "-N", n, "-f"]).arg(&self.conf);
            self.spawn(slurmd, &format!("slurmd.{n}.out"))?;
        }
        let idle = super::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
            self.daemons_alive()
                && self
                    .cmd("sinfo")
                    .args(["-h", "-N", "-o", "%N %t"])
                    .output()
                    .is_ok_and(|o| {
                        let t = String::from_utf8_lossy(&o.stdout).into_owned();
                        o.status.success()
                            && t.lines().filter(|l| l.ends_with(" idle")).count() == NODES.len()
                    })
        });
        if idle {
            Ok(())
        } else {
            Err("the three nodes did not become idle within 30 s".into())
        }
    }

    fn spawn(&mut self, mut c: Command, out: &str) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("log").join(out)).unwrap();
        c.env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = c.spawn().map_err(|e| format!("cannot start {c:?}: {e}"))?;
        self.daemons.push(child);
        Ok(())
    }

    fn daemons_alive(&mut self) -> bool {
        self.daemons
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The cluster's slurm.conf (what `SLURM_CONF` names).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Where the nodes' fake GPU device files are (`fakegpu0` … `fakegpu3`).
    pub fn gpu_dir(&self) -> PathBuf {
        self.dir.path().join("gpu")
    }

    /// A Slurm command (`srun`, `sbatch`, `scontrol`…) aimed at this cluster.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Runs a Slurm command to its end.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.cmd(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Whether any job of this cluster is still pending or running.
    pub fn busy(&self) -> bool {
        let o = self.run("squeue", &["-h", "-o", "%i"]);
        !o.status.success() || !o.stdout.is_empty()
    }

    /// The daemons' logs, for a failure message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for e in std::fs::read_dir(self.dir.path().join("log"))
            .into_iter()
            .flatten()
        {
            let p = e.unwrap().path();
            let t = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(15).collect();
            all += &format!("--- {}\n", p.display());
            for l in tail.into_iter().rev() {
                all += l;
                all.push('\n');
            }
        }
        all
    }

    /// Cancels every job, then stops the daemons newest first: SIGTERM, then SIGKILL for
    /// one that has not gone within 15 s.
    fn stop(&mut self) {
        if self.daemons.len() > 2 && self.daemons_alive() {
            let _ = self.run("scancel", &["--full", "-u", "root"]);
            super::wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
                !self.busy()
            });
        }
        while let Some(mut c) = self.daemons.pop() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let gone = super::wait_until(Duration::from_secs(15), super::POLL, || {
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !gone {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// gres.conf: every node's GPUs are the same fake device files (no node checks that
/// another uses them; each slurmd hands out its own four).
fn gres_conf(d: &Path) -> String {
    format!(
        "Name=gpu File={}/gpu/fakegpu[0-{}]\n",
        d.display(),
        GPUS - 1
    )
}

/// The fake GPUs: character devices with NVIDIA's major number (195), which is all
/// slurmd reads from them. Needs root (or CAP_MKNOD), as the cluster does.
fn make_fake_gpus(d: &Path) {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    std::fs::create_dir_all(d.join("gpu")).unwrap();
    for i in 0..GPUS {
        let p = d.join(format!("gpu/fakegpu{i}"));
        mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(195, u64::from(i)),
        )
        .unwrap_or_else(|e| {
            panic!(
                "cannot make the fake GPU {}: {e} (mknod needs root)",
                p.display()
            )
        });
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn fastrand_byte() -> u8 {
    fastrand::u8(..)
}

/// slurm.conf for the three nodes, everything under `d` (the template the benchmark
/// uses too, `slurm.conf.in`). Ports: slurmctld, then n1..n3.
fn slurm_conf(d: &Path, ports: &[u16]) -> String {
    let mut c = include_str!("slurm.conf.in")
        .replace("@NAME@", "stagehand")
        .replace("@CTLD@", &ports[0].to_string())
        .replace("@DIR@", &d.display().to_string())
        .replace("@USER@", "root");
    for (n, port) in NODES.iter().zip(&ports[1..]) {
        c += &format!(
            "NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={MEMORY_MIB} Gres=gpu:{GPUS} Port={port}\n"
        );
    }
    c += "PartitionName=debug Nodes=n[1-3] Default=YES MaxTime=INFINITE State=UP\n";
    c
}
