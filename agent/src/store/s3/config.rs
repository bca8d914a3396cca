//! An S3 datastore's workspace entry turned into what its client needs: the service's
//! origin, how a bucket is named in a URL, the region, and the keys (read through
//! `credentials.rs`, so each is registered for redaction as it is read).
//!
//! Never put a key in an error: say where it was looked for.

use super::sign::Keys;
use crate::credentials::{resolve, CredentialError};
use stagehand_protocol::{Datastore, S3Addressing, S3Credentials};
use std::path::Path;

/// The environment variables the standard chain reads, as the AWS SDKs and CLI do.
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// See [`ENV_ACCESS_KEY_ID`].
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// See [`ENV_ACCESS_KEY_ID`].
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// A bucket, reachable.
#[derive(Debug, Clone)]
pub struct S3Target {
    /// The datastore's name in the workspace.
    pub datastore: String,
    /// The bucket.
    pub bucket: String,
    /// `scheme://host[:port]` of the service (without the bucket).
    pub origin: String,
    /// The region requests are signed for.
    pub region: String,
    /// Whether the bucket goes in the path (else in the host).
    pub path_style: bool,
    /// The keys, or `None` to send requests unsigned (anonymous).
    pub keys: Option<Keys>,
    /// Where the keys came from, for people (no secret).
    pub auth: String,
}

/// A workspace entry that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is wrong.
    #[error("{0}")]
    Invalid(String),
    /// A credential cannot be read.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// The target of the S3 datastore `ds`, named `name`; `env` reads the environment.
pub fn resolve_target(
    name: &str,
    ds: &Datastore,
    ws_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<S3Target, ConfigError> {
    let Datastore::S3 {
        bucket,
        credentials,
        ..
    } = ds
    else {
        return Err(ConfigError::Invalid("not an S3 datastore".into()));
    };
    let (origin, region, path_style) = place(ds, env)?;
    let (keys, auth) = keys(name, credentials, ws_dir, env)?;
    Ok(S3Target {
        datastore: name.to_string(),
        bucket: bucket.clone(),
        origin,
        region,
        path_style,
        keys,
        auth,
    })
}

/// The service's origin, the region and whether the bucket goes in the path.
fn place(
    ds: &Datastore,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String, bool), ConfigError> {
    let Datastore::S3 {
        bucket,
        endpoint,
        region,
        addressing,
        ..
    } = ds
    else {
        return Err(ConfigError::Invalid("not an S3 datastore".into()));
    };
    let region = region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let (origin, aws) = match endpoint {
        Some(e) => {
            let e = e.trim_end_matches('/');
            let host = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            if !host.is_some_and(|h| !h.is_empty() && !h.contains('/')) {
                return Err(ConfigError::Invalid(format!(
                    "endpoint {e:?} is not a service URL; write it as http(s)://host[:port], without a path (the bucket goes in `bucket`)"
                )));
            }
            (e.to_string(), e.ends_with(".amazonaws.com"))
        }
        None => (format!("https://s3.{region}.amazonaws.com"), true),
    };
    let path_style = match addressing {
        Some(S3Addressing::Path) => true,
        Some(S3Addressing::VirtualHost) => false,
        // boto3's rule: virtual host on AWS, path style anywhere else; a bucket name
        // with a dot cannot be a host under AWS's certificate either.
        None => !aws || bucket.contains('.'),
    };
    Ok((origin, region, path_style))
}

/// The keys, from the workspace or the environment, and where they came from.
fn keys(
    name: &str,
    c: &S3Credentials,
    ws_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<Keys>, String), ConfigError> {
    if c.anonymous {
        return Ok((None, "anonymously".into()));
    }
    if let (Some(id), Some(secret)) = (&c.access_key_id, &c.secret_access_key) {
        let token = match &c.session_token {
            Some(t) => Some(resolve(t, name, "session_token", ws_dir)?),
            None => None,
        };
        let keys = Keys {
            id: resolve(id, name, "access_key_id", ws_dir)?,
            secret: resolve(secret, name, "secret_access_key", ws_dir)?,
            token,
        };
        return Ok((Some(keys), "with the workspace's access key".into()));
    }
    let id = env(ENV_ACCESS_KEY_ID).filter(|v| !v.is_empty());
    let secret = env(ENV_SECRET_ACCESS_KEY).filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => {
            let token = env(ENV_SESSION_TOKEN).filter(|v| !v.is_empty());
            for v in [&id, &secret].into_iter().chain(token.as_ref()) {
                crate::redact::register(v);
            }
            Ok((
                Some(Keys { id, secret, token }),
                format!("with the access key from ${ENV_ACCESS_KEY_ID}"),
            ))
        }
        _ => Err(ConfigError::Invalid(format!(
            "no credentials: give credentials.access_key_id and credentials.secret_access_key in the workspace, set ${ENV_ACCESS_KEY_ID} and ${ENV_SECRET_ACCESS_KEY}, or write `anonymous: true` for a public bucket"
        ))),
    }
}

/// How an S3 datastore authenticates, for people: where each key comes from, never
/// a key.
pub fn describe_credentials(c: &S3Credentials) -> String {
    if c.anonymous {
        return "anonymous: a public bucket, read without credentials".into();
    }
    match (&c.access_key_id, &c.secret_access_key) {
        (Some(id), Some(secret)) => {
            let token = c
                .session_token
                .as_ref()
                .map_or(String::new(), |t| format!(", session token from {}", t.describe()));
            format!(
                "access key id from {}, secret access key from {}{token}",
                id.describe(),
                secret.describe()
            )
        }
        _ => format!("none given: ${ENV_ACCESS_KEY_ID}, ${ENV_SECRET_ACCESS_KEY} (and ${ENV_SESSION_TOKEN}) from the environment"),
    }
}

/// Where an S3 datastore's bucket is, for `datastore show` (no key is read).
pub fn describe_endpoint(ds: &Datastore) -> String {
    match place(ds, &|k| std::env::var(k).ok()) {
        Ok((origin, region, path_style)) => format!(
            "{origin} (region {region}, {} addressing)",
            if path_style {
                "path-style"
            } else {
                "virtual-host"
            }
        ),
        Err(e) => format!("invalid: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(yaml: &str) -> Datastore {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn path_style_off_aws_virtual_host_on_it() {
        let t = resolve_target(
            "s",
            &ds("{type: s3, bucket: b, endpoint: 'http://127.0.0.1:9000/', credentials: {anonymous: true}}"),
            Path::new("."),
            &no_env,
        )
        .unwrap();
        assert!(t.path_style);
        assert_eq!(t.origin, "http://127.0.0.1:9000");
        let t = resolve_target(
            "s",
            &ds("{type: s3, bucket: b, region: eu-west-1, credentials: {anonymous: true}}"),
            Path::new("."),
            &no_env,
        )
        .unwrap();
        assert!(!t.path_style);
        assert_eq!(t.origin, "https://s3.eu-west-1.amazonaws.com");
    }

    #[test]
    fn the_environment_chain_is_read_and_its_absence_says_what_to_do() {
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("s3cr3t-env".to_string()),
            "AWS_REGION" => Some("eu-central-1".to_string()),
            _ => None,
        };
        let t = resolve_target("s", &ds("{type: s3, bucket: b}"), Path::new("."), &env).unwrap();
        assert_eq!(t.region, "eu-central-1");
        assert_eq!(t.keys.unwrap().id, "AKIDENV");
        assert!(!t.auth.contains("s3cr3t"));
        let e =
            resolve_target("s", &ds("{type: s3, bucket: b}"), Path::new("."), &no_env).unwrap_err();
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    }
}
