//! AWS Signature Version 4 for S3 requests: the canonical request, the string to sign
//! and the `Authorization` header, with `ring`'s HMAC-SHA256. Bodies are sent as
//! `UNSIGNED-PAYLOAD` (TLS protects them on the way; the service checks each part's
//! Content-MD5 where we send one), so a file is never read twice to be signed.
//!
//! Must never put the secret key, the signing key or a session token in an error or a
//! log line: a failure here says which header could not be made, not its value.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ring::{digest, hmac};
use std::time::SystemTime;

/// Characters SigV4 leaves as they are (RFC 3986 unreserved); everything else is
/// percent-encoded, `/` too.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The same, keeping `/`: an object key in a URL path.
pub const KEY: &AsciiSet = &UNRESERVED.remove(b'/');

/// The payload hash sent for every request (see the module's doc).
pub const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// An access key pair, with a temporary credential's session token.
#[derive(Clone)]
pub struct Keys {
    /// The access key id.
    pub id: String,
    /// The secret access key.
    pub secret: String,
    /// The session token, for temporary credentials.
    pub token: Option<String>,
}

impl Keys {
    /// Keeps the key id, the secret and the session token out of every output from
    /// now on (keys that did not come through `credentials.rs`, which registers its own).
    pub fn hide(&self) {
        for v in [&self.id, &self.secret]
            .into_iter()
            .chain(self.token.as_ref())
        {
            crate::redact::register(v);
        }
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// One request to sign: what goes in the canonical request.
pub struct Request<'a> {
    /// `GET`, `PUT`, …
    pub method: &'a str,
    /// The `Host` header's value (with a port unless it is the scheme's default).
    pub host: &'a str,
    /// The URL's path, already encoded with [`KEY`].
    pub path: &'a str,
    /// The query's pairs, not encoded.
    pub query: &'a [(&'a str, String)],
}

/// The headers a signed request carries: `x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token` when there is one, and `authorization`.
pub fn sign(
    keys: &Keys,
    region: &str,
    req: &Request<'_>,
    now: SystemTime,
) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(now);
    let day = &amz_date[..8];
    let mut headers: Vec<(&'static str, String)> = vec![
        ("host", req.host.to_string()),
        ("x-amz-content-sha256", UNSIGNED.to_string()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(t) = &keys.token {
        headers.push(("x-amz-security-token", t.clone()));
    }
    let signed_headers = headers
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{UNSIGNED}",
        req.method,
        req.path,
        canonical_query(req.query)
    );
    let scope = format!("{day}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        crate::digest::hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mut key = format!("AWS4{}", keys.secret).into_bytes();
    for part in [day, region, "s3", "aws4_request"] {
        key = mac(&key, part.as_bytes());
    }
    let signature = crate::digest::hex(&mac(&key, to_sign.as_bytes()));
    headers.remove(0); // reqwest sets `host` from the URL
    headers.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            keys.id
        ),
    ));
    headers
}

/// The query as SigV4 wants it: each name and value encoded, sorted.
pub fn canonical_query(query: &[(&str, String)]) -> String {
    let mut pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, UNRESERVED),
                utf8_percent_encode(v, UNRESERVED)
            )
        })
        .collect();
    pairs.sort();
    pairs.join("&")
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// `YYYYMMDDTHHMMSSZ`, in UTC.
fn amz_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_utc_in_the_basic_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        assert_eq!(amz_date(t), "20130524T000000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_399);
        assert_eq!(amz_date(t), "20000228T235959Z");
    }

    /// A GET with a query, a key to encode and a session token, signed as botocore
    /// (1.x, `S3SigV4Auth` with an unsigned payload) signed the same request at the same time.
    #[test]
    fn a_request_is_signed_as_botocore_signs_it() {
        let keys = Keys {
            id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            token: Some("tok/en".into()),
        };
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_527_069);
        let path = format!("/{}", utf8_percent_encode("a dir/test+1.txt", KEY));
        let h = sign(
            &keys,
            "us-east-1",
            &Request {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: &path,
                query: &[("list-type", "2".into()), ("prefix", "a b".into())],
            },
            t,
        );
        let get = |k: &str| &h.iter().find(|(n, _)| *n == k).unwrap().1;
        assert_eq!(get("x-amz-date"), "20261206T031749Z");
        assert_eq!(
            get("authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261206/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=692e2ab2b6d716b55c6e6d5d7487b7ee64b265fa1ef7b234e41600af252e1482"
        );
        assert!(!format!("{h:?}").contains(&keys.secret));
    }

    #[test]
    fn the_query_is_encoded_and_sorted() {
        let q = [("prefix", "a b/c".to_string()), ("list-type", "2".into())];
        assert_eq!(canonical_query(&q), "list-type=2&prefix=a%20b%2Fc");
    }
}
