//! A private web server for one test (tests/common/web_server.py): plain files with and
//! without Range support, and the Hugging Face Hub's HTTP API for the parts stagehand
//! uses, on a free loopback port, its files in a temporary folder; killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// One running server.
pub struct WebServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    root: tempfile::TempDir,
    scheme: &'static str,
}

impl WebServer {
    /// Starts the server (the standard library's Python only).
    pub fn start() -> WebServer {
        WebServer::launch(None)
    }

    /// Starts the server speaking HTTPS with `tls`'s certificate (for 127.0.0.1 and
    /// localhost, from a private authority).
    pub fn start_tls(tls: &crate::common::tls::Tls) -> WebServer {
        WebServer::launch(Some(tls))
    }

    fn launch(tls: Option<&crate::common::tls::Tls>) -> WebServer {
        let root = tempfile::Builder::new()
            .prefix("stagehand-web-")
            .tempdir()
            .unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(crate::common::repo().join("tests/common/web_server.py"))
            .arg(root.path());
        if let Some(t) = tls {
            cmd.arg(&t.cert).arg(&t.key);
        }
        let (child, port) = crate::common::spawn_server(&mut cmd, "the web test server");
        WebServer {
            child,
            port,
            root,
            scheme: if tls.is_some() { "https" } else { "http" },
        }
    }

    /// `http://127.0.0.1:PORT` (`https://` when it speaks TLS).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Writes a plain file, served at `/ranged/REL` and `/plain/REL`.
    pub fn put_file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        write(&self.root.path().join("files").join(rel), bytes)
    }

    /// Writes `rel` in the Hub repository `kind` (`models`, `datasets`) `repo` on
    /// `branch`.
    pub fn put_hub(&self, kind: &str, repo: &str, branch: &str, rel: &str, bytes: &[u8]) {
        write(
            &self
                .root
                .path()
                .join("hub")
                .join(kind)
                .join(repo)
                .join(branch)
                .join(rel),
            bytes,
        );
    }

    /// The next `n` GETs of more than 64 KiB are cut half-way.
    pub fn cut_next(&self, n: u32) {
        std::fs::write(self.root.path().join(".cut"), n.to_string()).unwrap();
    }

    /// Every body is sent at `rate` bytes a second (0: at full speed).
    pub fn throttle(&self, rate: u64) {
        std::fs::write(self.root.path().join(".throttle"), rate.to_string()).unwrap();
    }

    /// The `Range` header of every GET that sent one, with its path: `(path, range)`.
    pub fn ranges(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.root.path().join(".ranges"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(p, r)| (p.to_string(), r.to_string()))
            .collect()
    }

    /// Every Hub request so far, one path each.
    pub fn hub_requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.path().join(".hub_requests"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Every Hub call must now carry this token.
    pub fn require_token(&self, token: &str) {
        std::fs::write(self.root.path().join(".token"), token).unwrap();
    }
}

fn write(p: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    p.to_path_buf()
}

/// The tests' Python (`STAGEHAND_TEST_PYTHON`, else `python3`).
pub fn python() -> PathBuf {
    std::env::var_os("STAGEHAND_TEST_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
