//! A stand-in for the Microsoft Entra ID token endpoint, over HTTPS with a
//! [`Tls`](super::tls::Tls) certificate, or for a managed identity endpoint, over HTTP
//! (tests/common/token_server.py); killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

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
    /// Starts the endpoint with `python` (any Python 3): over HTTPS with `tls`, else
    /// over HTTP.
    pub fn start(python: &Path, tls: Option<&super::tls::Tls>, tokens: Tokens) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("stagehand-token-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("requests.log");
        let mode = match tokens {
            Tokens::Valid => "ok",
            Tokens::Expired => "expired",
        };
        let (child, port) = super::spawn_server(
            Command::new(python)
                .arg(super::repo().join("tests/common/token_server.py"))
                .args(match tls {
                    Some(t) => [t.cert.as_os_str(), t.key.as_os_str()],
                    None => ["-".as_ref(), "-".as_ref()],
                })
                .arg(&log)
                .arg(mode),
            "the token endpoint",
        );
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

    /// A managed identity endpoint's URL (`IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/msi/token", self.port)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                assert_eq!(f.len(), 5, "a request line of token_server.py: {l}");
                TokenRequest {
                    method: f[0].into(),
                    path: f[1].into(),
                    form: f[2].into(),
                    metadata: f[3].into(),
                    identity_header: f[4].into(),
                }
            })
            .collect()
    }
}

/// One request the endpoint answered (`-` for what it did not carry).
#[derive(Debug)]
pub struct TokenRequest {
    /// `GET` (a managed identity) or `POST` (a service principal).
    pub method: String,
    /// The path, with its query.
    pub path: String,
    /// The form body.
    pub form: String,
    /// The `metadata` header.
    pub metadata: String,
    /// The `x-identity-header` header.
    pub identity_header: String,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
