//! A private certificate authority and a certificate for 127.0.0.1 and localhost signed by it, made
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
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let run = |c: &mut Command| {
            let o = c.output().unwrap();
            assert!(
                o.status.success(),
                "openssl {:?} failed: {}",
                c.get_args().collect::<Vec<_>>(),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        // The authority, self-signed; then the server's key and request, signed by it.
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=stagehand test authority", "-keyout"])
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(p("key.pem"))
            .arg("-out")
            .arg(p("server.csr")));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(p("cert.pem")));
        Some(Tls {
            ca: p("ca.pem"),
            cert: p("cert.pem"),
            key: p("key.pem"),
            _dir: dir,
        })
    }
}
