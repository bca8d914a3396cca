//! Reaching a `postgresql` datastore: its settings turned into a connection (the
//! password resolved through `credentials`, TLS as its `sslmode` says), the session
//! made read-only at login, and the server's refusals turned into [`QueryError`]s.
//!
//! Never writes to the database, and never puts the password in an error: errors carry
//! the server's message and SQLSTATE, which never hold it.

use super::QueryError;
use crate::credentials;
use stagehand_protocol::workspace::SslMode;
use stagehand_protocol::Datastore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::SslMode as PgSslMode;

/// How long a connection may take to open (TCP, TLS and login): a server that does not
/// answer within it is unreachable, a failure worth a retry (exit 75).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A database datastore, ready to connect to: its settings, with the password read.
pub struct Target {
    /// The datastore's name.
    pub datastore: String,
    /// `host:port`, for messages.
    pub server: String,
    config: tokio_postgres::Config,
    sslmode: SslMode,
}

impl Target {
    /// The datastore `ds` (named `name`) as a connection's settings; its password is
    /// read here (and registered for redaction). `None` for a datastore that is not a
    /// database.
    pub fn resolve(
        name: &str,
        ds: &Datastore,
        ws_dir: &Path,
    ) -> Option<Result<Target, QueryError>> {
        let Datastore::Postgresql {
            host,
            port,
            database,
            user,
            password,
            sslmode,
        } = ds
        else {
            return None;
        };
        let port = port.unwrap_or(5432);
        let sslmode = sslmode.unwrap_or_default();
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .dbname(database)
            .user(user)
            .application_name("stagehand")
            .connect_timeout(CONNECT_TIMEOUT)
            // Read-only from the first statement: a query can change nothing, whatever
            // it says (the export's transaction is READ ONLY too).
            .options("-c default_transaction_read_only=on")
            .ssl_mode(match sslmode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
            });
        if let Some(secret) = password {
            match credentials::resolve(secret, name, "password", ws_dir) {
                Ok(p) => {
                    config.password(p);
                }
                Err(e) => return Some(Err(QueryError::Credential(e))),
            }
        }
        Some(Ok(Target {
            datastore: name.to_string(),
            server: format!("{host}:{port}"),
            config,
            sslmode,
        }))
    }

    /// A connection in a read-only session; its driving task runs until the client is
    /// dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, QueryError> {
        let tls = tls(self.sslmode).map_err(|detail| QueryError::Tls {
            datastore: self.datastore.clone(),
            detail,
        })?;
        let (client, connection) = self.config.connect(tls).await.map_err(|e| self.error(e))?;
        let datastore = self.datastore.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("datastore {datastore:?}: connection ended: {e}");
            }
        });
        Ok(client)
    }

    /// A driver error from this datastore, classified.
    pub fn error(&self, e: tokio_postgres::Error) -> QueryError {
        match e.as_db_error() {
            Some(db) => QueryError::Server {
                datastore: self.datastore.clone(),
                server: self.server.clone(),
                code: db.code().code().to_string(),
                message: server_message(db),
            },
            None => QueryError::Connect {
                datastore: self.datastore.clone(),
                server: self.server.clone(),
                detail: with_causes(&e),
                source: e,
            },
        }
    }
}

/// An error and its causes, each once (a cause's text that the error's already holds
/// is not repeated).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// The server's message with its detail and hint, as psql shows them.
fn server_message(db: &tokio_postgres::error::DbError) -> String {
    let mut m = db.message().to_string();
    if let Some(d) = db.detail() {
        m.push_str(&format!(" ({d})"));
    }
    if let Some(h) = db.hint() {
        m.push_str(&format!("; hint: {h}"));
    }
    m
}

/// The TLS of a connection: libpq's `prefer` and `require` encrypt without checking
/// the certificate (as libpq does without a root certificate file); `verify-ca` and
/// `verify-full` check it against the system's authorities, host name included.
fn tls(mode: SslMode) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "sslmode {} needs the system's CA certificates, and none could be read",
                    mode.as_str()
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Encryption without authentication (libpq's `prefer`/`require`): any certificate is
/// taken, but the handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
