//! Database inputs against a real PostgreSQL (a private cluster, `common::postgres`):
//! a million rows exported before the job and read by it unchanged, the server's
//! refusals failing the run before the job with the right code and no password shown,
//! and writes refused by the read-only session.

use crate::common::postgres::Postgres;
use crate::common::*;
use stagehand_protocol::events::EventKind;
use std::path::Path;
use std::process::Output;

/// The reader's password: must never appear in any output.
const PASSWORD: &str = "rd-9f3b-c0ffee-password";
/// A wrong one, tried once: must never appear either.
const WRONG: &str = "wr-77ab-not-the-password";

/// A cluster with the role `reader`, the table `big` (`rows` rows, readable by
/// `reader`) and `hidden` (not readable by it).
fn cluster(rows: u32) -> Option<Postgres> {
    let pg = Postgres::start()?;
    pg.psql(&format!(
        "CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}';
         CREATE TABLE big AS SELECT i AS id, md5(i::text) AS h FROM generate_series(1, {rows}) i;
         GRANT SELECT ON big TO reader;
         CREATE TABLE hidden (x int);"
    ));
    Some(pg)
}

/// A workspace with a local store for the outputs and the datastore `shop` on `pg`
/// (port `port`, which may be closed), its password from `SHOP_PG_PASSWORD`.
fn workspace(s: &Scratch, port: u16, extra: &str) {
    s.write(
        "workspace.yaml",
        &format!(
            "default_datastore: local
datastores:
  local: {{type: local, root: store}}
  shop:
    type: postgresql
    host: 127.0.0.1
    port: {port}
    database: postgres
    user: reader
    password: {{env: SHOP_PG_PASSWORD}}
{extra}"
        ),
    );
    std::fs::create_dir_all(s.path().join("store")).unwrap();
}

/// A job reading the input `rows` (`input`: its fields) and running `script`.
fn job(s: &Scratch, input: &str, script: &str) -> std::path::PathBuf {
    s.write(
        "job.yaml",
        &format!(
            "name: pg
command: [sh, -c, '{script}']
inputs:
  rows: {{datastore: shop, {input}, mode: download}}
outputs:
  out: {{path: results, mode: upload}}
"
        ),
    )
}

/// Every output of a command and the events, checked for both passwords.
fn assert_no_secret(s: &Scratch, o: &Output) {
    let (out, err) = text(o);
    let events = std::fs::read_to_string(s.events_file()).unwrap_or_default();
    for secret in [PASSWORD, WRONG] {
        for (what, t) in [("stdout", &out), ("stderr", &err), ("events", &events)] {
            assert!(!t.contains(secret), "the password is in the {what}: {t}");
        }
    }
}

#[test]
fn a_million_rows_are_exported_before_the_job_and_read_by_it_unchanged() {
    let Some(pg) = cluster(1_000_000) else {
        return;
    };
    let s = Scratch::new();
    // No sslmode: `prefer`, which this server (without TLS) answers in plain text.
    workspace(&s, pg.port, "");
    let job = job(
        &s,
        "query: \"SELECT id, h FROM big ORDER BY id\"",
        "sha256sum < \"$AZUREML_DATAREFERENCE_rows\" | cut -c1-64 > \"$AZUREML_DATAREFERENCE_out/sha256\"; wc -l < \"$AZUREML_DATAREFERENCE_rows\" > \"$AZUREML_DATAREFERENCE_out/lines\"",
    );
    let o = s
        .run_cmd(&job)
        .env("SHOP_PG_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert_no_secret(&s, &o);

    // What psql's \copy of the same query writes, byte for byte.
    let reference = s.path().join("psql.csv");
    pg.psql(&format!(
        "\\copy (SELECT id, h FROM big ORDER BY id) TO '{}' WITH (FORMAT csv, HEADER)",
        reference.display()
    ));
    let bytes = std::fs::read(&reference).unwrap();
    let results = s.path().join("store/results");
    let read = |f: &str| std::fs::read_to_string(results.join(f)).unwrap();
    assert_eq!(
        read("sha256").trim(),
        sha256_hex(&bytes),
        "the job read other bytes than psql writes"
    );
    assert_eq!(
        read("lines").trim(),
        "1000001",
        "a header and a million rows"
    );

    let ev = s.events();
    let exported = ev
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::QueryExported {
                name,
                rows,
                bytes,
                format,
                datastore,
                ..
            } if name == "rows" => Some((*rows, *bytes, format.clone(), datastore.clone())),
            _ => None,
        })
        .expect("a query_exported event");
    assert_eq!(
        exported,
        (1_000_000, bytes.len() as u64, "csv".into(), "shop".into())
    );
    let peak = finished(&ev).peak_rss_bytes.expect("peak RSS reported");
    eprintln!(
        "exported 1,000,000 rows ({} bytes); the agent's peak RSS: {:.1} MiB",
        bytes.len(),
        peak as f64 / 1048576.0
    );
    // Bounded: well under the file's size, which the agent never holds.
    assert!(
        peak < 64 << 20,
        "the agent's peak RSS was {peak} bytes exporting a {}-byte file",
        bytes.len()
    );
    // Nothing partial left beside the file in the run folder.
    let leftovers: Vec<_> = walk(&s.run_dir())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("stagehand-partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// Runs a job whose input is `input` with `password`; it must fail with `code` before
/// the job runs, saying `says` and naming the datastore, with no password anywhere.
fn fails_before_the_job(
    s: &Scratch,
    port: u16,
    input: &str,
    password: &str,
    code: i32,
    says: &str,
) {
    workspace(s, port, "    sslmode: disable\n");
    let job = job(s, input, "touch \"$AZUREML_DATAREFERENCE_out/ran\"");
    let _ = std::fs::remove_file(s.events_file());
    let o = s
        .run_cmd(&job)
        .env("SHOP_PG_PASSWORD", password)
        .output()
        .unwrap();
    let (_, err) = expect_code(&o, code);
    assert!(err.contains(says), "{input}: expected {says:?} in: {err}");
    assert!(
        err.contains("\"shop\""),
        "{input}: the datastore is named: {err}"
    );
    assert_no_secret(s, &o);
    assert!(!s.saw("started"), "{input}: the job started");
    assert!(!s.run_dir().join("outputs/out/ran").exists());
}

#[test]
fn refusals_fail_the_run_before_the_job_and_writes_are_refused() {
    let Some(pg) = cluster(10) else {
        return;
    };
    let s = Scratch::new();
    let nf = code::NOT_FOUND_OR_DENIED;
    let port = pg.port;
    fails_before_the_job(
        &s,
        port,
        "query: \"SELEC id FROM big\"",
        PASSWORD,
        nf,
        "syntax error",
    );
    fails_before_the_job(
        &s,
        port,
        "table: big",
        WRONG,
        nf,
        "password authentication failed",
    );
    fails_before_the_job(
        &s,
        port,
        "table: nope",
        PASSWORD,
        nf,
        "relation \"nope\" does not exist",
    );
    fails_before_the_job(&s, port, "table: hidden", PASSWORD, nf, "permission denied");
    for write in [
        "INSERT INTO big VALUES (0, 1) RETURNING id",
        "DELETE FROM big RETURNING id",
    ] {
        let input = format!("query: \"{write}\"");
        fails_before_the_job(&s, port, &input, PASSWORD, nf, "read-only transaction");
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM big"),
        "10",
        "nothing was written"
    );

    // A server that does not answer is worth a retry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fails_before_the_job(
        &s,
        closed,
        "table: big",
        PASSWORD,
        code::STAGING_FAILED,
        "cannot reach",
    );
}

#[test]
fn plan_check_and_the_datastore_commands_read_the_database_without_showing_the_password() {
    let Some(pg) = cluster(10) else {
        return;
    };
    let s = Scratch::new();
    workspace(&s, pg.port, "    sslmode: disable\n");
    let ws = s.path().join("workspace.yaml");
    let cmd = |args: &[&str]| {
        let o = std::process::Command::new(bin())
            .args(args)
            .env("SHOP_PG_PASSWORD", PASSWORD)
            .current_dir(s.path())
            .output()
            .unwrap();
        assert_no_secret(&s, &o);
        o
    };
    let (out, _) = expect_code(&cmd(&["datastore", "list", "-w", ws.to_str().unwrap()]), 0);
    assert!(out.contains("shop\tpostgresql\tserver 127.0.0.1:"), "{out}");
    let (out, _) = expect_code(
        &cmd(&["datastore", "show", "shop", "-w", ws.to_str().unwrap()]),
        0,
    );
    assert!(
        out.contains("password:    environment variable SHOP_PG_PASSWORD"),
        "{out}"
    );
    assert!(out.contains("sslmode:     disable"), "{out}");
    let (out, _) = expect_code(
        &cmd(&["datastore", "check", "shop", "-w", ws.to_str().unwrap()]),
        0,
    );
    assert!(out.contains("user reader, read-only session: on"), "{out}");

    let good = job(&s, "table: big", "true");
    let o = cmd(&["plan", "--check", good.to_str().unwrap()]);
    let (_, err) = expect_code(&o, 0);
    assert!(err.contains("plans its query"), "{err}");
    let bad = job(&s, "query: \"SELECT nope FROM big\"", "true");
    let (_, err) = expect_code(
        &cmd(&["plan", "--check", bad.to_str().unwrap()]),
        code::NOT_FOUND_OR_DENIED,
    );
    assert!(err.contains("column \"nope\" does not exist"), "{err}");
    rows_land_as_csv_where_the_plan_says(&bad);
}

/// The plan shows where the rows land and what they are, and no password.
fn rows_land_as_csv_where_the_plan_says(job: &Path) {
    let plan = plan_json(job, &[]);
    let rows = &plan["inputs"][0];
    assert_eq!(rows["query"], "SELECT nope FROM big");
    assert!(
        rows["local_path"]
            .as_str()
            .unwrap()
            .ends_with("inputs/rows/rows.csv"),
        "{rows}"
    );
    assert!(!plan.to_string().contains(PASSWORD));
}

#[test]
fn tls_is_used_as_sslmode_says_and_verify_full_checks_the_certificate() {
    let Some(tls) = crate::common::tls::Tls::new() else {
        return;
    };
    let Some(pg) = Postgres::start_with_tls(&tls) else {
        return;
    };
    pg.psql(&format!("CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}'"));
    let s = Scratch::new();
    let input = "query: \"SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()\"";
    let job = job(
        &s,
        input,
        "cp \"$AZUREML_DATAREFERENCE_rows\" \"$AZUREML_DATAREFERENCE_out/ssl.csv\"",
    );
    let ssl_of_session = |mode: &str, ca: Option<&Path>| {
        workspace(&s, pg.port, &format!("    sslmode: {mode}\n"));
        let _ = std::fs::remove_file(s.events_file());
        let mut c = s.run_cmd(&job);
        c.env("SHOP_PG_PASSWORD", PASSWORD)
            .env_remove("SSL_CERT_DIR");
        match ca {
            Some(ca) => c.env("SSL_CERT_FILE", ca),
            // An authority that did not sign the server's certificate.
            None => c.env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
        };
        let o = c.output().unwrap();
        assert_no_secret(&s, &o);
        o
    };
    for mode in ["require", "verify-full"] {
        let o = ssl_of_session(mode, Some(&tls.ca));
        expect_code(&o, 0);
        let csv = std::fs::read_to_string(s.path().join("store/results/ssl.csv")).unwrap();
        assert_eq!(csv, "ssl\nt\n", "sslmode {mode}: the session is encrypted");
        std::fs::remove_file(s.path().join("store/results/ssl.csv")).unwrap();
    }
    let o = ssl_of_session("disable", Some(&tls.ca));
    expect_code(&o, 0);
    let csv = std::fs::read_to_string(s.path().join("store/results/ssl.csv")).unwrap();
    assert_eq!(csv, "ssl\nf\n", "sslmode disable: plain");
    // verify-full with authorities that did not sign it: refused before the job.
    let o = ssl_of_session("verify-full", None);
    let (_, err) = expect_code(&o, code::STAGING_FAILED);
    assert!(err.contains("certificate"), "{err}");
    assert!(!s.saw("started"));
}
