//! A private certificate authority and a certificate for 127.0.0.1 signed by it, made
//! with the `openssl` command for one test: HTTPS endpoints that stagehand trusts only
//! through `SSL_CERT_FILE`.

use std::path::PathBuf;
use std::process::Command;

/// The files, in a folder removed when dropped.
pub struct Tls {
    _dir: tempfile::TempDir,
    /// The authority's certificate (what `SSL_CERT_FILE` names).
    pub ca: PathBuf,
    /// The server's certificate, for 127.0.0.1.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl Tls {
    /// Makes the authority and the server's certificate, or returns None (outside CI)
    /// when `openssl` is not installed.
    pub fn new() -> Option<Tls> {
        if Command::new("openssl").arg("version").output().is_err() {
            if super::in_ci() {
                panic!("openssl is not installed; CI=true, so this test cannot pass without it (run scripts/test)");
            }
            eprintln!("openssl is not installed: this test returns early without checking anything (run scripts/test to install it)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("stagehand-tls-")
            .tempdir()
            .unwrap();
        let p = |n: &str| dir.path().join(n);
        let ext = p("ext.cnf");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let steps: [Vec<&str>; 3] = [
            vec![
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ],
            vec!["req", "-newkey", "rsa:2048", "-nodes"],
            vec!["x509", "-req", "-days", "2", "-CAcreateserial"],
        ];
        let args: [Vec<String>; 3] = [
            vec![
                "-keyout".into(),
                s(&p("ca.key")),
                "-out".into(),
                s(&p("ca.pem")),
                "-subj".into(),
                "/CN=stagehand test authority".into(),
            ],
            vec![
                "-keyout".into(),
                s(&p("key.pem")),
                "-out".into(),
                s(&p("server.csr")),
                "-subj".into(),
                "/CN=127.0.0.1".into(),
            ],
            vec![
                "-in".into(),
                s(&p("server.csr")),
                "-CA".into(),
                s(&p("ca.pem")),
                "-CAkey".into(),
                s(&p("ca.key")),
                "-out".into(),
                s(&p("cert.pem")),
                "-extfile".into(),
                s(&ext),
            ],
        ];
        for (step, more) in steps.iter().zip(args.iter()) {
            let o = Command::new("openssl")
                .args(step)
                .args(more)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "openssl {step:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Some(Tls {
            ca: p("ca.pem"),
            cert: p("cert.pem"),
            key: p("key.pem"),
            _dir: dir,
        })
    }
}

fn s(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}
