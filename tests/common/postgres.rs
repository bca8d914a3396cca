//! A private PostgreSQL cluster for one test: `initdb` in a temporary folder, the
//! server on a free loopback port with its socket in that folder, stopped (by its pid)
//! when dropped. Run as `nobody` when the tests run as root, which `initdb` refuses.
//!
//! Logins over TCP need a password (SCRAM); the superuser `postgres` has [`SUPERUSER_PASSWORD`].

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The superuser's password (a test fixture, not a secret).
pub const SUPERUSER_PASSWORD: &str = "pg-superuser-fixture";

/// One running cluster.
pub struct Postgres {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// The folder of PostgreSQL's programs: `STAGEHAND_TEST_POSTGRES_BIN`, else Debian's
/// newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STAGEHAND_TEST_POSTGRES_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, b)| b.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

/// Root cannot run the server: the uid and gid of `nobody` then, from /etc/passwd.
fn run_as() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || f[0] != "nobody" {
            return None;
        }
        Some((f[2].parse().ok()?, f[3].parse().ok()?))
    });
    Some(ids.unwrap_or((65534, 65534)))
}

impl Postgres {
    /// Starts a cluster, or returns None (outside CI) when PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        Self::launch(None)
    }

    /// Starts a cluster that also speaks TLS, with `tls`'s certificate for 127.0.0.1.
    pub fn start_with_tls(tls: &super::tls::Tls) -> Option<Postgres> {
        Self::launch(Some(tls))
    }

    fn launch(tls: Option<&super::tls::Tls>) -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            let what = "PostgreSQL is not installed (STAGEHAND_TEST_POSTGRES_BIN unset, no /usr/lib/postgresql/*/bin)";
            if super::in_ci() {
                panic!("{what}; CI=true, so this test cannot pass without it (run scripts/test)");
            }
            eprintln!("{what}: this test returns early without checking anything (run scripts/test to install it)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("stagehand-postgres-")
            .tempdir()
            .unwrap();
        let user = run_as();
        let as_user = |c: &mut Command| {
            if let Some((uid, gid)) = user {
                c.uid(uid).gid(gid);
            }
        };
        std::fs::write(dir.path().join("pw"), SUPERUSER_PASSWORD).unwrap();
        // The server reads its key only when the key is its own and private.
        let mut ssl = Vec::new();
        if let Some(t) = tls {
            std::fs::copy(&t.cert, dir.path().join("server.crt")).unwrap();
            std::fs::copy(&t.key, dir.path().join("server.key")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(dir.path().join("server.key"), private).unwrap();
            for (k, f) in [
                ("ssl_cert_file", "server.crt"),
                ("ssl_key_file", "server.key"),
            ] {
                ssl.push("-c".to_string());
                ssl.push(format!("{k}={}", dir.path().join(f).display()));
            }
            ssl.extend(["-c".to_string(), "ssl=on".to_string()]);
        }
        if let Some((uid, gid)) = user {
            for f in ["", "pw", "server.crt", "server.key"] {
                let p = dir.path().join(f);
                if p.exists() {
                    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
                }
            }
        }
        let mut init = Command::new(bin.join("initdb"));
        init.arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "-E", "UTF8", "--no-locale"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", dir.path().join("pw").display()))
            .stdout(Stdio::null());
        as_user(&mut init);
        let o = init.output().expect("cannot run initdb");
        assert!(
            o.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("no free port");
            let mut server = Command::new(bin.join("postgres"));
            server
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
                .args(["-c", "full_page_writes=off", "-c", "synchronous_commit=off"])
                .args(&ssl)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            as_user(&mut server);
            let mut child = server.spawn().expect("cannot start postgres");
            let mut exited = false;
            let up = super::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
                exited = matches!(child.try_wait(), Ok(Some(_)));
                exited
                    || (TcpStream::connect(("127.0.0.1", port)).is_ok()
                        && psql_cmd(&bin, port)
                            .args(["-c", "SELECT 1"])
                            .output()
                            .is_ok_and(|o| o.status.success()))
            });
            if up && !exited {
                return Some(Postgres {
                    child,
                    port,
                    bin,
                    dir,
                });
            }
            // The port was taken in the meantime: try another, same cluster.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("PostgreSQL did not start");
    }

    /// Runs SQL as the superuser through psql; its output, or its error text.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let o = self
            .psql_cmd()
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("cannot run psql");
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    /// Runs SQL as the superuser; panics on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
    }

    /// `psql` against this cluster as the superuser, over TCP, database `postgres`.
    pub fn psql_cmd(&self) -> Command {
        psql_cmd(&self.bin, self.port)
    }

    /// Its folder (the data and the socket), for tests that must write beside it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `psql` as the superuser over TCP to the cluster on `port`.
fn psql_cmd(bin: &Path, port: u16) -> Command {
    let mut c = Command::new(bin.join("psql"));
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-X", "-q"])
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .env("PGSSLMODE", "disable");
    c
}

impl Drop for Postgres {
    /// A fast shutdown (SIGINT: the server ends its sessions and its processes), by the
    /// server's own pid; killed if it has not ended in 20 s.
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let ended = super::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !ended {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
