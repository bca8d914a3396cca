//! Entra ID identities against Azurite: a service principal signs in at a stand-in
//! token endpoint (tests/common/token_server.py) and its bearer tokens reach an Azurite
//! served over HTTPS that checks them (`--oauth basic`); both trust a private
//! authority only through `SSL_CERT_FILE`.

use crate::common::azurite::{Azurite, KEY};
use crate::common::tls::Tls;
use crate::common::token::{TokenServer, Tokens};
use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "c0ffee00-0000-4000-8000-000000000001";
const SECRET: &str = "sp-secret-Zq8~vX3.never-printed";
/// What an App Service or Container Apps host gives its managed identity to prove itself.
const IDENTITY_HEADER: &str = "identity-header-5b1e0c.never-printed";

/// A workspace with the container `data` three times: `bykey` (the account key), `sp` (a
/// service principal whose secret comes from the environment) and `mi` (no credentials:
/// the managed identity).
fn workspace(s: &Scratch, az: &Azurite) -> std::path::PathBuf {
    let ep = az.endpoint();
    s.write(
        "workspace.yaml",
        &format!(
            r#"datastores:
  bykey:
    type: azure_blob
    account_name: devstoreaccount1
    container_name: data
    endpoint: {ep}
    credentials: {{account_key: {{env: TEST_AZ_KEY}}}}
  sp:
    type: azure_blob
    account_name: devstoreaccount1
    container_name: data
    endpoint: {ep}
    credentials: {{tenant_id: {TENANT}, client_id: {CLIENT}, client_secret: {{env: TEST_SP_SECRET}}}}
  mi:
    type: azure_blob
    account_name: devstoreaccount1
    container_name: data
    endpoint: {ep}
"#
        ),
    )
}

/// `stagehand datastore ARGS` with the workspace, trusting `ca` (when given) and signing
/// in at `token`.
fn datastore(s: &Scratch, ca: Option<&Path>, token: &TokenServer, args: &[&str]) -> Output {
    datastore_env(s, ca, &[("AZURE_AUTHORITY_HOST", token.authority())], args)
}

/// `stagehand datastore ARGS` with the workspace, trusting `ca` (when given), with `env`.
fn datastore_env(s: &Scratch, ca: Option<&Path>, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.arg("datastore")
        .arg("-w")
        .arg(s.path().join("workspace.yaml"))
        .args(args)
        .env("TEST_AZ_KEY", KEY)
        .env("TEST_SP_SECRET", SECRET)
        .env_remove("AZURE_AUTHORITY_HOST")
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("IDENTITY_HEADER")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_TENANT_ID");
    if let Some(ca) = ca {
        c.env("SSL_CERT_FILE", ca);
    }
    c.envs(env.iter().map(|(k, v)| (k, v)));
    let o = c.output().unwrap();
    let (so, se) = text(&o);
    for secret in [SECRET, IDENTITY_HEADER] {
        assert!(
            !so.contains(secret) && !se.contains(secret),
            "a secret was printed:\n{so}{se}"
        );
    }
    o
}

fn started(tokens: Tokens) -> Option<(Tls, Azurite, TokenServer, Scratch)> {
    let tls = Tls::new()?;
    let az = Azurite::start_with_tokens(&tls)?;
    let token = TokenServer::start(az.python(), Some(&tls), tokens);
    let s = Scratch::new();
    workspace(&s, &az);
    Some((tls, az, token, s))
}

/// Creates the container `data` with the account key.
fn create_container(s: &Scratch, ca: Option<&Path>) {
    let o = datastore_env(s, ca, &[], &["check", "bykey", "--create-if-not-exists"]);
    expect_code(&o, 0);
}

/// Puts a file in `data` under `prefix` with the account key, then downloads `prefix`
/// as the credential-less datastore `mi` with `env`; checks the bytes that came back
/// and returns what stagehand printed.
fn read_back_as_identity(
    s: &Scratch,
    ca: Option<&Path>,
    prefix: &str,
    env: &[(&str, String)],
) -> String {
    create_container(s, ca);
    let file = s.write(
        &format!("src/{prefix}.txt"),
        "weights, as an identity reads them\n",
    );
    let o = datastore_env(
        s,
        ca,
        &[],
        &[
            "upload-files",
            "bykey",
            file.to_str().unwrap(),
            "--target-path",
            prefix,
        ],
    );
    expect_code(&o, 0);
    let dest = s.path().join("out");
    let o = datastore_env(
        s,
        ca,
        env,
        &[
            "download",
            "mi",
            "--target-path",
            dest.to_str().unwrap(),
            "--prefix",
            prefix,
        ],
    );
    let (so, se) = expect_code(&o, 0);
    assert_eq!(
        std::fs::read(dest.join(prefix).join(format!("{prefix}.txt"))).unwrap(),
        std::fs::read(&file).unwrap()
    );
    so + &se
}

/// Asserts that every request to `token` was a sign-in at the tenant's token URL whose
/// form carries each of `fields` (compared with `~` unescaped).
fn assert_sign_ins(token: &TokenServer, fields: &[String]) {
    let requests = token.requests();
    assert!(!requests.is_empty(), "no token was asked for");
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/{TENANT}/oauth2/v2.0/token"));
        for field in fields {
            assert!(
                r.form.split('&').any(|f| f.replace("%7E", "~") == *field),
                "{field} missing from the token request {}",
                r.form
            );
        }
    }
}

#[test]
fn a_service_principal_signs_in_and_moves_data_both_ways() {
    let Some((tls, _az, token, s)) = started(Tokens::Valid) else {
        return;
    };
    let ca = Some(tls.ca.as_path());
    create_container(&s, ca);

    s.write("src/one.txt", "hello from a service principal\n");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::create_dir_all(s.path().join("src/sub")).unwrap();
    std::fs::write(s.path().join("src/sub/two.bin"), &big).unwrap();
    let src = s.path().join("src");
    let o = datastore(
        &s,
        ca,
        &token,
        &[
            "upload",
            "sp",
            "--src-dir",
            src.to_str().unwrap(),
            "--target-path",
            "up",
        ],
    );
    expect_code(&o, 0);

    // Read back with the account key, then as the service principal.
    for (name, out) in [("bykey", "out-key"), ("sp", "out-sp")] {
        let dest = s.path().join(out);
        let o = datastore(
            &s,
            ca,
            &token,
            &[
                "download",
                name,
                "--target-path",
                dest.to_str().unwrap(),
                "--prefix",
                "up",
            ],
        );
        expect_code(&o, 0);
        assert_eq!(tree(&dest.join("up")), tree(&src), "download by {name}");
    }

    assert_sign_ins(
        &token,
        &[
            format!("client_id={CLIENT}"),
            format!("client_secret={SECRET}"),
            "grant_type=client_credentials".to_string(),
            "scope=https%3A%2F%2Fstorage.azure.com%2F.default".to_string(),
        ],
    );
}

#[test]
fn a_token_the_service_refuses_fails_saying_authentication() {
    let Some((tls, _az, token, s)) = started(Tokens::Expired) else {
        return;
    };
    let ca = Some(tls.ca.as_path());
    create_container(&s, ca);
    let o = datastore(&s, ca, &token, &["check", "sp"]);
    let (so, se) = expect_code(&o, code::NOT_FOUND_OR_DENIED);
    let text = so + &se;
    assert!(
        text.contains("datastore \"sp\"") && text.contains("authentication"),
        "{text}"
    );
    assert!(!token.requests().is_empty(), "no token was asked for");
}

#[test]
fn an_untrusted_certificate_fails_at_once_and_says_what_to_do() {
    let Some((_tls, _az, token, s)) = started(Tokens::Valid) else {
        return;
    };
    let o = datastore(&s, None, &token, &["check", "bykey"]);
    // 66, not 75: a rerun meets the same certificate.
    let (so, se) = expect_code(&o, code::NOT_FOUND_OR_DENIED);
    let text = so + &se;
    assert!(
        text.contains("TLS certificate is not trusted") && text.contains("SSL_CERT_FILE"),
        "{text}"
    );
    // Said once, by stagehand: not retried, and not repeated by the verifier's own log.
    assert_eq!(text.matches("UnknownIssuer").count(), 1, "{text}");
}

#[test]
fn a_managed_identity_gets_its_token_at_identity_endpoint() {
    let Some((tls, az, _sp, s)) = started(Tokens::Valid) else {
        return;
    };
    let msi = TokenServer::start(az.python(), None, Tokens::Valid);
    read_back_as_identity(
        &s,
        Some(&tls.ca),
        "m",
        &[
            ("IDENTITY_ENDPOINT", msi.identity_endpoint()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.to_string()),
        ],
    );
    let requests = msi.requests();
    assert!(!requests.is_empty(), "no token was asked for");
    for r in &requests {
        assert_eq!(r.method, "GET");
        assert!(r.path.starts_with("/msi/token?"), "{r:?}");
        assert!(
            r.path.contains("resource=https%3A%2F%2Fstorage.azure.com"),
            "{r:?}"
        );
        assert_eq!(r.metadata, "true");
        assert_eq!(r.identity_header, IDENTITY_HEADER);
    }
}

#[test]
fn a_workload_identity_trades_its_federated_token_for_one_the_service_takes() {
    let Some((tls, _az, token, s)) = started(Tokens::Valid) else {
        return;
    };
    // What the AKS workload identity webhook mounts and sets in the pod.
    let assertion = "the-pods-federated-token.from-kubernetes";
    let token_file = s.write("serviceaccount/token", assertion);
    let text = read_back_as_identity(
        &s,
        Some(&tls.ca),
        "w",
        &[
            ("AZURE_AUTHORITY_HOST", token.authority()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AZURE_CLIENT_ID", CLIENT.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
        ],
    );
    assert!(
        !text.contains(assertion),
        "the federated token was printed:\n{text}"
    );
    assert_sign_ins(
        &token,
        &[
            format!("client_assertion={assertion}"),
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer".to_string(),
            format!("client_id={CLIENT}"),
            "grant_type=client_credentials".to_string(),
        ],
    );
}
