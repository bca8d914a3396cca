//! An S3 datastore's workspace entry turned into what its client needs: the service's
//! origin, how a bucket is named in a URL, the region, and the keys (read through
//! `credentials.rs`, so each is registered for redaction as it is read).
//!
//! Where the keys come from, in the order of the AWS SDKs' default chain: the
//! workspace's `credentials`, then `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, then a
//! profile's static keys in `~/.aws/credentials` ([`profile`]), then the platform's
//! temporary keys ([`KeySource::Platform`]): a web identity (EKS IRSA), a container's
//! credentials endpoint (ECS task role, EKS Pod Identity), else the instance's role at
//! the metadata service (EC2, SageMaker), unless `AWS_EC2_METADATA_DISABLED=true`.
//! Those are fetched, cached and renewed before they expire by object_store's
//! providers, as Entra ID tokens are for Azure.
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
    /// Where the keys come from, or `None` to send requests unsigned (anonymous).
    pub keys: Option<KeySource>,
    /// Where the keys came from, for people (no secret).
    pub auth: String,
}

/// Where a request's keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// Keys read once, from the workspace or the environment.
    Fixed(Keys),
    /// The platform's temporary keys, fetched when first needed and renewed before
    /// they expire.
    Platform(object_store::aws::AwsCredentialProvider),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeySource::Fixed(_) => "Fixed(..)",
            KeySource::Platform(_) => "Platform(..)",
        })
    }
}

/// The variables that choose and configure the platform's source of temporary keys, as
/// the AWS SDKs read them, with the setting of object_store's builder each becomes.
const PLATFORM_VARIABLES: &[(&str, &str)] = &[
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "aws_web_identity_token_file"),
    ("AWS_ROLE_ARN", "aws_role_arn"),
    ("AWS_ROLE_SESSION_NAME", "aws_role_session_name"),
    ("AWS_ENDPOINT_URL_STS", "aws_endpoint_url_sts"),
    (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "aws_container_credentials_relative_uri",
    ),
    (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "aws_container_credentials_full_uri",
    ),
    (
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "aws_container_authorization_token_file",
    ),
    ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "aws_metadata_endpoint"),
];

/// The platform's source of temporary keys for `bucket` in `region`, and how to say
/// where they come from; `None` when the instance's metadata service is all that is
/// left and `AWS_EC2_METADATA_DISABLED` is true.
fn platform(
    bucket: &str,
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(KeySource, String)>, ConfigError> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let said = match (
        var("AWS_WEB_IDENTITY_TOKEN_FILE"),
        var("AWS_ROLE_ARN"),
        var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
    ) {
        (Some(file), Some(role), ..) => {
            format!("as role {role}, for the web identity token in {file}")
        }
        (_, _, Some(_), ..) => "from the container's credentials endpoint (ECS task role)".into(),
        (_, _, None, Some(url), Some(_)) => format!("from the EKS Pod Identity agent at {url}"),
        _ if var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) => {
            return Ok(None)
        }
        _ => format!(
            "from the instance's role, at the metadata service {}",
            var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                .unwrap_or_else(|| "http://169.254.169.254".into())
        ),
    };
    // object_store's reqwest is built without a bundled TLS provider (ring is ours).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        // A machine without the service (a laptop) is told so in seconds, not minutes.
        .with_retry(object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        });
    for (variable, setting) in PLATFORM_VARIABLES {
        if let (Some(v), Ok(key)) = (var(variable), setting.parse::<AmazonS3ConfigKey>()) {
            b = b.with_config(key, v);
        }
    }
    let s3 = b.build().map_err(|e| {
        ConfigError::Invalid(format!("cannot set up the platform's credentials: {e}"))
    })?;
    Ok(Some((KeySource::Platform(s3.credentials().clone()), said)))
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
    let (keys, auth) = keys(name, credentials, ws_dir, env, (bucket, &region))?;
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
    (bucket, region): (&str, &str),
) -> Result<(Option<KeySource>, String), ConfigError> {
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
        return Ok((
            Some(KeySource::Fixed(keys)),
            "with the workspace's access key".into(),
        ));
    }
    let id = env(ENV_ACCESS_KEY_ID).filter(|v| !v.is_empty());
    let secret = env(ENV_SECRET_ACCESS_KEY).filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => {
            let token = env(ENV_SESSION_TOKEN).filter(|v| !v.is_empty());
            let keys = Keys { id, secret, token };
            keys.hide();
            Ok((
                Some(KeySource::Fixed(keys)),
                format!("with the access key from ${ENV_ACCESS_KEY_ID}"),
            ))
        }
        _ => {
            if let Some((keys, said)) = profile(env)? {
                return Ok((Some(KeySource::Fixed(keys)), said));
            }
            match platform(bucket, region, env)? {
                Some((source, said)) => Ok((Some(source), said)),
                None => Err(ConfigError::Invalid(format!(
                    "no credentials: give credentials.access_key_id and credentials.secret_access_key in the workspace, set ${ENV_ACCESS_KEY_ID} and ${ENV_SECRET_ACCESS_KEY} or AWS_PROFILE, or write `anonymous: true` for a public bucket (the instance's metadata service is off: AWS_EC2_METADATA_DISABLED)"
                ))),
            }
        }
    }
}

/// The keys of a profile of the shared credentials file, as `aws configure` writes it:
/// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`, profile `AWS_PROFILE`,
/// else `default`. `None` when there is no such file, or (the default profile only)
/// no such profile or no keys in it; a profile named by `AWS_PROFILE` that is not
/// there, or that lacks a key, is an error naming it. Only static keys: a profile that assumes a role or
/// signs in through SSO is not followed.
fn profile(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<(Keys, String)>, ConfigError> {
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let file = match (var("AWS_SHARED_CREDENTIALS_FILE"), var("HOME")) {
        (Some(f), _) => std::path::PathBuf::from(f),
        (None, Some(home)) => Path::new(&home).join(".aws/credentials"),
        (None, None) => return Ok(None),
    };
    let named = var("AWS_PROFILE");
    let wanted = named.clone().unwrap_or_else(|| "default".into());
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError::Invalid(format!(
                "cannot read the AWS credentials file {}: {e}",
                file.display()
            )))
        }
    };
    let mut section = None;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            found |= section.as_deref() == Some(wanted.as_str());
            continue;
        }
        if section.as_deref() != Some(wanted.as_str()) {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_string()).filter(|v| !v.is_empty());
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    let said = format!("with profile {wanted:?} of {}", file.display());
    match (id, secret) {
        (Some(id), Some(secret)) => {
            let keys = Keys { id, secret, token };
            keys.hide();
            Ok(Some((keys, said)))
        }
        // The default profile without keys (it may only hold a region): on down the chain.
        _ if named.is_none() => Ok(None),
        _ if !found => Err(ConfigError::Invalid(format!(
            "AWS_PROFILE names profile {wanted:?}, which {} does not hold",
            file.display()
        ))),
        _ => Err(ConfigError::Invalid(format!(
            "profile {wanted:?} of {} lacks aws_access_key_id or aws_secret_access_key (a profile that assumes a role or uses SSO is not followed: give keys, or set AWS_PROFILE to one that has them)",
            file.display()
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
        _ => format!("none given: ${ENV_ACCESS_KEY_ID}, ${ENV_SECRET_ACCESS_KEY} (and ${ENV_SESSION_TOKEN}) from the environment, else a profile of ~/.aws/credentials (AWS_PROFILE), else the platform's temporary keys (a web identity, a container's credentials endpoint, the instance's role)"),
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
        let Some(KeySource::Fixed(keys)) = t.keys else {
            panic!("{:?}", t.keys)
        };
        assert_eq!(keys.id, "AKIDENV");
        assert!(!t.auth.contains("s3cr3t"));
        let no_metadata = |k: &str| (k == "AWS_EC2_METADATA_DISABLED").then(|| "true".to_string());
        let e = resolve_target(
            "s",
            &ds("{type: s3, bucket: b}"),
            Path::new("."),
            &no_metadata,
        )
        .unwrap_err();
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    }

    #[test]
    fn a_profile_of_the_shared_credentials_file_gives_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "# aws configure\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s3cr3t-default\n\n[lab]\naws_access_key_id=AKIDLAB\naws_secret_access_key=s3cr3t-lab\naws_session_token = tok-lab\n[sso]\nsso_session = corp\n",
        )
        .unwrap();
        let at = |profile: Option<&'static str>| {
            let file = file.to_str().unwrap().to_string();
            move |k: &str| match k {
                "AWS_SHARED_CREDENTIALS_FILE" => Some(file.clone()),
                "AWS_PROFILE" => profile.map(str::to_string),
                "AWS_EC2_METADATA_DISABLED" => Some("true".into()),
                _ => None,
            }
        };
        let keys_of = |profile| {
            let t = resolve_target(
                "s",
                &ds("{type: s3, bucket: b}"),
                Path::new("."),
                &at(profile),
            );
            let t = t.unwrap();
            let Some(KeySource::Fixed(k)) = t.keys else {
                panic!("{:?}", t.keys)
            };
            (k.id, k.token, t.auth)
        };
        let (id, token, auth) = keys_of(None);
        assert_eq!((id.as_str(), token), ("AKIDDEFAULT", None));
        assert!(auth.contains("profile \"default\""), "{auth}");
        let (id, token, _) = keys_of(Some("lab"));
        assert_eq!(
            (id.as_str(), token.as_deref()),
            ("AKIDLAB", Some("tok-lab"))
        );
        for (profile, says) in [(Some("nope"), "does not hold"), (Some("sso"), "SSO")] {
            let e = resolve_target(
                "s",
                &ds("{type: s3, bucket: b}"),
                Path::new("."),
                &at(profile),
            )
            .unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        // The workspace's keys and the environment's come first.
        let env_first = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("x".into()),
            k => at(Some("lab"))(k),
        };
        let t = resolve_target(
            "s",
            &ds("{type: s3, bucket: b}"),
            Path::new("."),
            &env_first,
        )
        .unwrap();
        assert!(t.auth.contains("AWS_ACCESS_KEY_ID"), "{}", t.auth);
    }

    #[test]
    fn without_keys_the_platform_gives_them_in_the_sdks_order() {
        let platform = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let t =
                resolve_target("s", &ds("{type: s3, bucket: b}"), Path::new("."), &env).unwrap();
            assert!(
                matches!(t.keys, Some(KeySource::Platform(_))),
                "{:?}",
                t.keys
            );
            t.auth
        };
        let irsa = [
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/train"),
        ];
        assert_eq!(
            platform(&irsa),
            "as role arn:aws:iam::1:role/train, for the web identity token in /var/run/secrets/token"
        );
        assert!(platform(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x")]).contains("ECS"));
        let pod = [
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t"),
        ];
        assert!(platform(&pod).contains("EKS Pod Identity agent at http://169.254.170.23"));
        assert_eq!(
            platform(&[]),
            "from the instance's role, at the metadata service http://169.254.169.254"
        );
    }
}
