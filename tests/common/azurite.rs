//! A private Azurite (blob service) for one test: a free loopback port, its own
//! storage folder, killed when dropped. Plus the Azure Python SDK, to make blobs the way
//! Microsoft's tools do (including names stagehand must refuse).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Azurite's public development account and key (documented by Microsoft).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Credentials for [`Azurite::workspace`]: the account key from `TEST_AZ_KEY`, which
/// the command must then have (`.env("TEST_AZ_KEY", KEY)`).
pub const KEY_FROM_ENV: &str = "{account_key: {env: TEST_AZ_KEY}}";

/// One running Azurite.
pub struct Azurite {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
    python: PathBuf,
    /// Served over HTTPS (with Entra ID tokens accepted), not HTTP.
    https: bool,
}

fn missing(what: &str) -> Option<Azurite> {
    if super::in_ci() {
        panic!("{what}; CI=true, so this test cannot pass without it (run scripts/test)");
    }
    eprintln!("{what}: this test returns early without checking anything (run scripts/test to install it)");
    None
}

fn tool(var: &str, repo_rel: &str, on_path: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let local = super::repo().join(repo_rel);
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(on_path))
            .find(|p| p.is_file())
    })
}

impl Azurite {
    /// Starts Azurite, or returns None (outside CI) when it or the Python SDK is not
    /// installed.
    pub fn start() -> Option<Azurite> {
        Self::launch(None)
    }

    /// Starts Azurite over HTTPS with `tls`'s certificate, accepting Entra ID bearer
    /// tokens (`--oauth basic`: issuer, audience and lifetime are checked, not the
    /// signature) besides the account key.
    pub fn start_with_tokens(tls: &super::tls::Tls) -> Option<Azurite> {
        Self::launch(Some(tls))
    }

    fn launch(tls: Option<&super::tls::Tls>) -> Option<Azurite> {
        let Some(bin) = tool(
            "STAGEHAND_TEST_AZURITE",
            ".tools/npm/node_modules/.bin/azurite-blob",
            "azurite-blob",
        ) else {
            return missing("Azurite is not installed (STAGEHAND_TEST_AZURITE unset, no .tools/npm, no azurite-blob on PATH)");
        };
        let Some(python) = tool(
            "STAGEHAND_TEST_PYTHON",
            ".tools/venv/bin/python",
            "no-such-python",
        ) else {
            return missing("the Azure Python SDK is not installed (STAGEHAND_TEST_PYTHON unset, no .tools/venv)");
        };
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("no free port");
            let dir = tempfile::Builder::new()
                .prefix("stagehand-azurite-")
                .tempdir()
                .unwrap();
            let child = Command::new(&bin)
                .args([
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    &port.to_string(),
                    "--location",
                ])
                .arg(dir.path())
                .args([
                    "--silent",
                    "--skipApiVersionCheck",
                    "--loose",
                    "--disableTelemetry",
                ])
                .args(tls.map_or(Vec::new(), |t| {
                    vec![
                        "--cert".into(),
                        t.cert.clone().into_os_string(),
                        "--key".into(),
                        t.key.clone().into_os_string(),
                        "--oauth".into(),
                        "basic".into(),
                    ]
                }))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut a = Azurite {
                child,
                port,
                _dir: dir,
                python: python.clone(),
                https: tls.is_some(),
            };
            // Up when its port answers; an exit means the port was taken in the
            // meantime: try another.
            let mut exited = false;
            let answered =
                super::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
                    exited = matches!(a.child.try_wait(), Ok(Some(_)));
                    exited || TcpStream::connect(("127.0.0.1", port)).is_ok()
                });
            if answered && !exited {
                return Some(a);
            }
        }
        panic!("Azurite did not start");
    }

    /// The blob service URL.
    pub fn endpoint(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The Python with the Azure SDK, for other helpers written in Python.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Runs the Python helper (tests/common/azblob.py) with `args`; panics on failure.
    pub fn py(&self, args: &[&str]) -> String {
        let o = self.py_raw(args);
        assert!(
            o.status.success(),
            "azblob.py {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs the Python helper and returns its output whatever happened.
    pub fn py_raw(&self, args: &[&str]) -> Output {
        Command::new(&self.python)
            .arg(super::repo().join("tests/common/azblob.py"))
            .args(args)
            .env("AZ_ENDPOINT", self.endpoint())
            .env("ACCOUNT", ACCOUNT)
            .env("ACCOUNT_KEY", KEY)
            .output()
            .expect("cannot run python")
    }

    /// Creates containers.
    pub fn mkcontainer(&self, names: &[&str]) {
        let mut a = vec!["mkcontainer"];
        a.extend_from_slice(names);
        self.py(&a);
    }

    /// Creates containers anyone may read without credentials (public access).
    pub fn mkpublic(&self, names: &[&str]) {
        let mut a = vec!["mkpublic"];
        a.extend_from_slice(names);
        self.py(&a);
    }

    /// Writes one blob with `text` as its content.
    pub fn put(&self, container: &str, name: &str, text: &str) {
        self.py(&["put", container, name, text]);
    }

    /// Uploads every file under `dir` to `container` as `prefix/<relative path>`, with
    /// its Content-MD5.
    pub fn upload_tree(&self, dir: &Path, container: &str, prefix: &str) {
        self.py(&[
            "upload",
            dir.to_str().unwrap(),
            container,
            "--prefix",
            prefix,
            "--md5",
        ]);
    }

    /// Writes a blob of `size` bytes in about a second, however large (three blocks
    /// staged once, committed over and over, in a pattern whose period no power-of-two
    /// block size lines up with); returns its sha256 (hex).
    pub fn put_patterned(&self, container: &str, name: &str, size: u64) -> String {
        self.py(&["patterned", container, name, &size.to_string()])
            .trim()
            .to_string()
    }

    /// `name -> sha256` of every blob under `prefix`.
    pub fn sha256s(
        &self,
        container: &str,
        prefix: &str,
    ) -> std::collections::BTreeMap<String, String> {
        self.py(&["sha256", container, "--prefix", prefix])
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(h, n)| (n.to_string(), h.to_string()))
            })
            .collect()
    }

    /// A blob's content (as text).
    pub fn get(&self, container: &str, name: &str) -> String {
        self.py(&["get", container, name])
    }

    /// Writes a workspace file at `rel` in `s` whose datastore `datastore` (also the
    /// default) is `container` on this Azurite, with `credentials` (YAML flow text, e.g.
    /// [`KEY_FROM_ENV`]).
    pub fn workspace(
        &self,
        s: &super::Scratch,
        rel: &str,
        datastore: &str,
        container: &str,
        credentials: &str,
    ) -> PathBuf {
        s.write(
            rel,
            &format!(
                r#"default_datastore: {datastore}
datastores:
  {datastore}:
    type: azure_blob
    account_name: {ACCOUNT}
    container_name: {container}
    endpoint: {}
    credentials: {credentials}
"#,
                self.endpoint()
            ),
        )
    }

    /// A container SAS token (read, add, create, write, delete, list).
    pub fn sas(&self, container: &str) -> String {
        self.py(&["sas", container]).trim().to_string()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
