//! A private S3 API server for one test: `moto` in server mode (PyPI, installed into
//! `.tools/venv` by scripts/test) on a free loopback port, stopped by its pid when
//! dropped; started by `s3.py serve`, which makes moto's ranged GET read only the range
//! (a fix of the test server's speed, documented there). Plus boto3 (tests/common/s3.py), to make buckets and objects the way AWS's
//! own SDK does, and to check what the server does with the same calls stagehand makes.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The key pair the tests sign with (moto accepts any).
pub const KEY_ID: &str = "testing-key-id";
/// See [`KEY_ID`].
pub const SECRET: &str = "testing-secret-7c4e.never-printed";

/// One running moto server.
pub struct Moto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    python: PathBuf,
}

impl Moto {
    /// Starts moto, or returns None (outside CI) when it is not installed.
    pub fn start() -> Option<Moto> {
        Self::launch(&[])
    }

    /// Starts a moto that checks every request's signature and session token against
    /// the keys it gave out, as AWS does, after the first `unchecked` requests (which can
    /// ask it for keys: [`Moto::session_key`]).
    pub fn start_checking_signatures(unchecked: u32) -> Option<Moto> {
        Self::launch(&[("INITIAL_NO_AUTH_ACTION_COUNT", &unchecked.to_string())])
    }

    /// Temporary credentials from the server's STS: `(key id, secret, session token)`.
    pub fn session_key(&self) -> (String, String, String) {
        self.keys("session-key")
    }

    /// As [`Moto::session_key`], of a role that may do anything on S3 (three requests),
    /// so that a server checking signatures lets them through.
    pub fn role_key(&self) -> (String, String, String) {
        self.keys("role-key")
    }

    fn keys(&self, how: &str) -> (String, String, String) {
        let out = self.py(&[how]);
        let w: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(w.len(), 3, "{how} printed {out:?}");
        (w[0].to_string(), w[1].to_string(), w[2].to_string())
    }

    fn launch(env: &[(&str, &str)]) -> Option<Moto> {
        let python = std::env::var_os("STAGEHAND_TEST_PYTHON")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| super::repo().join(".tools/venv/bin/python"));
        let installed = Command::new(&python)
            .args(["-c", "import moto.server, boto3"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            let what = format!(
                "moto and boto3 are not installed for {} (run scripts/test)",
                python.display()
            );
            if super::in_ci() {
                panic!("{what}; CI=true, so this test cannot pass without them");
            }
            eprintln!("{what}: this test returns early without checking anything");
            return None;
        }
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("no free port");
            let child = Command::new(&python)
                .arg(super::repo().join("tests/common/s3.py"))
                .args(["serve", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start moto: {e}"));
            let mut m = Moto {
                child,
                port,
                python: python.clone(),
            };
            let mut exited = false;
            let answered =
                super::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
                    exited = matches!(m.child.try_wait(), Ok(Some(_)));
                    exited || TcpStream::connect(("127.0.0.1", port)).is_ok()
                });
            if answered && !exited {
                return Some(m);
            }
        }
        panic!("moto did not start");
    }

    /// The Python that runs it (with boto3), for other stand-ins of the tests.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// The service URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs tests/common/s3.py with `args`; panics on failure.
    pub fn py(&self, args: &[&str]) -> String {
        let o = self.py_raw(args);
        assert!(
            o.status.success(),
            "s3.py {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs the Python helper and returns its output whatever happened.
    pub fn py_raw(&self, args: &[&str]) -> Output {
        Command::new(&self.python)
            .arg(super::repo().join("tests/common/s3.py"))
            .args(args)
            .env("S3_ENDPOINT", self.endpoint())
            .output()
            .expect("cannot run python")
    }

    /// [`Moto::py`] signing with `keys` (`(id, secret, session token)`), for a server
    /// that checks signatures.
    pub fn py_as(&self, keys: &(String, String, String), args: &[&str]) -> String {
        let o = Command::new(&self.python)
            .arg(super::repo().join("tests/common/s3.py"))
            .args(args)
            .env("S3_ENDPOINT", self.endpoint())
            .env("S3_KEYS", format!("{} {} {}", keys.0, keys.1, keys.2))
            .output()
            .expect("cannot run python");
        assert!(
            o.status.success(),
            "s3.py {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Creates buckets.
    pub fn mkbucket(&self, names: &[&str]) {
        let mut a = vec!["mkbucket"];
        a.extend_from_slice(names);
        self.py(&a);
    }

    /// `key -> sha256` of every object under `prefix`.
    pub fn sha256s(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> std::collections::BTreeMap<String, String> {
        self.py(&["sha256", bucket, prefix])
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(h, n)| (n.to_string(), h.to_string()))
            })
            .collect()
    }

    /// Uploads every file under `dir` as `prefix/<relative path>`.
    pub fn upload_tree(&self, dir: &Path, bucket: &str, prefix: &str) {
        self.py(&["upload", dir.to_str().unwrap(), bucket, prefix]);
    }

    /// The workspace text of an S3 datastore `name` (also the default) for `bucket`
    /// here, its secret key from `$TEST_S3_SECRET` (which the command must then have).
    pub fn workspace_yaml(&self, name: &str, bucket: &str) -> String {
        format!(
            r#"default_datastore: {name}
datastores:
  {name}:
    type: s3
    bucket: {bucket}
    endpoint: {}
    credentials: {{access_key_id: {KEY_ID}, secret_access_key: {{env: TEST_S3_SECRET}}}}
"#,
            self.endpoint()
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
