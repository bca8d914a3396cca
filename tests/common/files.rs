//! A private Azure Files REST test server (tests/common/files_server.py) for one test:
//! a free loopback port, its storage in a temporary folder (shares are its folders, so
//! a test can seed and inspect a share's files on disk), killed when dropped. Plus
//! Microsoft's Python SDK (tests/common/files_sdk.py) to use the share as Microsoft's
//! tools do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// The test account.
pub const ACCOUNT: &str = "stagehandfiles";
/// Its key (base64 of a test-only phrase; not a real credential).
pub const KEY: &str = "c3RhZ2VoYW5kLWZpbGVzLXRlc3Qta2V5LW5vdC1hLXJlYWwtc2VjcmV0";
/// Workspace credentials reading [`KEY`] from `TEST_FILES_KEY`.
pub const KEY_FROM_ENV: &str = "{account_key: {env: TEST_FILES_KEY}}";
/// Workspace credentials reading a SAS from `TEST_FILES_SAS`.
pub const SAS_FROM_ENV: &str = "{sas_token: {env: TEST_FILES_SAS}}";

/// One running server.
pub struct FilesServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    root: tempfile::TempDir,
    python: PathBuf,
}

impl FilesServer {
    /// Starts the server with the Python that has the Azure SDK
    /// (`STAGEHAND_TEST_PYTHON`, else `.tools/venv`). `None` (a test that checks
    /// nothing) when it is missing, outside CI; in CI a missing SDK fails the test.
    pub fn start() -> Option<FilesServer> {
        let python = std::env::var_os("STAGEHAND_TEST_PYTHON")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                let p = crate::common::repo().join(".tools/venv/bin/python");
                p.exists().then_some(p)
            });
        let Some(python) = python else {
            assert!(
                !crate::common::in_ci(),
                "the Azure Python SDK is not installed; CI=true, so this test cannot pass without it (run scripts/test)"
            );
            eprintln!("the Azure Python SDK is not installed (STAGEHAND_TEST_PYTHON unset, no .tools/venv): this test returns early without checking anything");
            return None;
        };
        let root = tempfile::Builder::new()
            .prefix("stagehand-files-")
            .tempdir()
            .unwrap();
        let (child, port) = crate::common::spawn_server(
            Command::new(&python)
                .arg(crate::common::repo().join("tests/common/files_server.py"))
                .arg(root.path())
                .args([ACCOUNT, KEY]),
            "the Files test server",
        );
        Some(FilesServer {
            child,
            port,
            root,
            python,
        })
    }

    /// The file service URL, path-style.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The Python with the Azure SDK.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// The folder holding the share `share`'s files.
    pub fn share_dir(&self, share: &str) -> PathBuf {
        self.root.path().join(share)
    }

    /// `files_sdk.py ARGS…` (the Azure SDK, with the account key); panics unless it
    /// succeeds; returns its stdout.
    pub fn py(&self, args: &[&str]) -> String {
        let o = self.py_raw(args);
        assert!(
            o.status.success(),
            "files_sdk.py {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `files_sdk.py ARGS…`, whatever it returns.
    pub fn py_raw(&self, args: &[&str]) -> Output {
        Command::new(&self.python)
            .arg(crate::common::repo().join("tests/common/files_sdk.py"))
            .args([&self.endpoint(), ACCOUNT, KEY])
            .args(args)
            .output()
            .unwrap()
    }

    /// Creates a share through the SDK.
    pub fn mkshare(&self, share: &str) {
        self.py(&["mkshare", share]);
    }

    /// `path -> sha256` of every file under the folder `prefix`, read through the SDK.
    pub fn sha256s(&self, share: &str, prefix: &str) -> BTreeMap<String, String> {
        serde_json::from_str(&self.py(&["sha256s", share, prefix])).unwrap()
    }

    /// A share SAS (`perms` of `rcwdl`), from the SDK.
    pub fn sas(&self, share: &str, perms: &str) -> String {
        self.py(&["sas", share, perms]).trim().to_string()
    }

    /// Makes the share's root listing also carry `entries` (`(kind, name, size)`), as a
    /// hostile or broken service could.
    pub fn plant_in_listing(&self, share: &str, entries: &[(&str, &str, u64)]) {
        let dir = self.root.path().join(".hostile");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{share}.json")),
            serde_json::to_string(entries).unwrap(),
        )
        .unwrap();
    }

    /// Sets the server's faults (`{"cut_gets": N, "busy": N, "page": N}`).
    pub fn faults(&self, json: &str) {
        std::fs::write(self.root.path().join(".faults.json"), json).unwrap();
    }

    /// What is left of the faults.
    pub fn faults_left(&self) -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.root.path().join(".faults.json")).unwrap(),
        )
        .unwrap()
    }

    /// Writes a workspace at `rel` in `s` whose datastore `datastore` (also the
    /// default) is the share `share` here, with `credentials` (YAML flow text).
    pub fn workspace(
        &self,
        s: &crate::common::Scratch,
        rel: &str,
        datastore: &str,
        share: &str,
        credentials: &str,
    ) -> PathBuf {
        s.write(
            rel,
            &format!(
                "default_datastore: {datastore}\ndatastores:\n  {datastore}:\n    type: azure_file\n    account_name: {ACCOUNT}\n    file_share_name: {share}\n    endpoint: {}\n    credentials: {credentials}\n",
                self.endpoint()
            ),
        )
    }
}

impl Drop for FilesServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether two files hold the same bytes (streamed: fast for a GiB in a debug build).
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    if fa.metadata().map(|m| m.len()).ok() != fb.metadata().map(|m| m.len()).ok() {
        return false;
    }
    let (mut ra, mut rb) = (
        std::io::BufReader::with_capacity(1 << 20, fa),
        std::io::BufReader::with_capacity(1 << 20, fb),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = ra.read(&mut ba).unwrap();
        if n == 0 {
            return rb.read(&mut bb).unwrap() == 0;
        }
        if rb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Writes `len` deterministic bytes (seeded) to `path`, creating its folders; fast
/// enough for a GiB in a debug build.
pub fn write_data(path: &Path, seed: u64, len: u64) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = len;
    let mut buf = Vec::with_capacity(1 << 20);
    while left > 0 {
        buf.clear();
        let n = left.min(1 << 20) as usize;
        while buf.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        buf.truncate(n);
        f.write_all(&buf).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}
