//! A stand-in for the Microsoft Entra ID token endpoint (tests/common/token_server.py),
//! over HTTPS with a [`Tls`](super::tls::Tls) certificate, killed when dropped.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What tokens the endpoint hands out.
#[derive(Clone, Copy)]
pub enum Tokens {
    /// Valid for the next hour.
    Valid,
    /// Expired an hour ago.
    Expired,
}

/// One running token endpoint.
pub struct TokenServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    /// Starts the endpoint with `python` (any Python 3).
    pub fn start(python: &Path, tls: &super::tls::Tls, tokens: Tokens) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("stagehand-token-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("requests.log");
        let mode = match tokens {
            Tokens::Valid => "ok",
            Tokens::Expired => "expired",
        };
        let mut child = Command::new(python)
            .arg(super::repo().join("tests/common/token_server.py"))
            .args([&tls.cert, &tls.key, &log])
            .arg(mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start the token endpoint");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the token endpoint did not start: {line:?}"));
        TokenServer {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// The authority host to sign in at (`AZURE_AUTHORITY_HOST`).
    pub fn authority(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Every request so far: its path and its form body, one a line.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
