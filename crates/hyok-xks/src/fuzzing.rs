//! Entry point of the fuzz target `xks` in `fuzz/` (cargo-fuzz), also run over the
//! committed corpus by an ordinary test. Not a stable API: hidden from the docs.
//!
//! Everything the proxy parses from a request before any key is used, none of which may
//! panic:
//!
//! - the JSON bodies of the four operations, with the field checks the proxy makes (request
//!   metadata, Base64 fields: a decoded field is never larger than its bound, the one-line
//!   description has no control character, a `ciphertextMetadata` key version encodes back
//!   to the same bytes);
//! - the SigV4 `Authorization` header and the canonical request built from the headers it
//!   lists (a request it accepts was signed by the one configured credential);
//! - URI paths (an accepted key path names a valid key id and ends with its operation);
//! - `X-Amz-Date` (a parsed date formats back to the same text).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::api::{self, DecryptRequest, EncryptRequest, MetadataOnly, MAX_AAD, MAX_DATA};
use crate::error::ErrorName;
use crate::framing::{self, MAX_METADATA};
use crate::route::{self, Endpoint};
use crate::sigv4::{self, Credential, Signed, Verifier};

/// The one credential of the SigV4 case.
pub const FUZZ_ACCESS_KEY_ID: &str = "AKIAFUZZFUZZFUZZFUZZ";
/// Its secret (a test value).
pub const FUZZ_SECRET: &str = "hyok-fuzz-secret-not-a-real-one";
/// The region of the SigV4 case.
pub const FUZZ_REGION: &str = "us-east-1";
/// The proxy's clock in the SigV4 case: 2026-01-01T00:00:00Z.
pub const FUZZ_NOW: u64 = 1_767_225_600;

/// First byte: which parser (`0` bodies, `1` SigV4, `2` paths, `3` dates); the rest is its
/// input.
pub fn xks(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => bodies(rest),
        1 => signed(rest),
        2 => path(rest),
        _ => date(rest),
    }
}

fn field(name: &str, value: Option<&String>, max: usize) {
    if let Some(v) = value {
        if let Ok(bytes) = api::decode(
            name,
            v,
            max,
            ErrorName::Validation,
            ErrorName::UnsupportedOperation,
        ) {
            assert!(
                bytes.len() <= max,
                "{name}: {} bytes decoded, bound {max}",
                bytes.len()
            );
        }
    }
}

fn metadata(m: Option<&api::RequestMetadata>) {
    if let Some(m) = m {
        let _ = m.check(true, true);
        let line = m.describe();
        assert!(
            !line.chars().any(char::is_control),
            "control character in {line:?}"
        );
    }
}

fn bodies(body: &[u8]) {
    if let Ok(m) = api::parse::<MetadataOnly>(body) {
        metadata(m.request_metadata.as_ref());
    }
    if let Ok(r) = api::parse::<EncryptRequest>(body) {
        metadata(r.request_metadata.as_ref());
        let _ = api::check_algorithm(r.encryption_algorithm.as_deref());
        field("plaintext", r.plaintext.as_ref(), MAX_DATA);
        field(
            "additionalAuthenticatedData",
            r.additional_authenticated_data.as_ref(),
            MAX_AAD,
        );
    }
    if let Ok(r) = api::parse::<DecryptRequest>(body) {
        metadata(r.request_metadata.as_ref());
        let _ = api::check_algorithm(r.encryption_algorithm.as_deref());
        field("ciphertext", r.ciphertext.as_ref(), MAX_DATA);
        field("initializationVector", r.initialization_vector.as_ref(), 16);
        field("authenticationTag", r.authentication_tag.as_ref(), 16);
        field(
            "additionalAuthenticatedData",
            r.additional_authenticated_data.as_ref(),
            MAX_AAD,
        );
        field(
            "ciphertextMetadata",
            r.ciphertext_metadata.as_ref(),
            MAX_METADATA,
        );
        if let Some(Ok(m)) = r.ciphertext_metadata.as_ref().map(|m| {
            api::decode(
                "ciphertextMetadata",
                m,
                MAX_METADATA,
                ErrorName::InvalidCiphertext,
                ErrorName::InvalidCiphertext,
            )
        }) {
            if api::check_metadata_len(&m).is_ok() {
                if let Some(v) = framing::metadata_version(&m) {
                    assert_eq!(framing::version_metadata(v), m, "kv={v}");
                }
            }
        }
    }
}

/// A request of the SigV4 case.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: HeaderMap,
    body: &'a [u8],
}

/// `METHOD PATH[?QUERY]`, header lines `name: value` (lines that are no header are left
/// out), an empty line, the body.
fn request(data: &[u8]) -> Option<Request<'_>> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let (method, target) = lines.next()?.split_once(' ')?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// Verify `r` with the one fixed credential at [`FUZZ_NOW`].
fn verify(r: &Request<'_>, authority: Option<&str>) -> Result<String, String> {
    let verifier = Verifier::new(
        FUZZ_REGION,
        vec![Credential {
            access_key_id: FUZZ_ACCESS_KEY_ID.into(),
            secret: FUZZ_SECRET.to_owned().into(),
        }],
    );
    let signed = Signed {
        method: r.method,
        path: r.path,
        query: r.query,
        authority,
        headers: &r.headers,
        body: r.body,
    };
    verifier
        .verify(&signed, UNIX_EPOCH + Duration::from_secs(FUZZ_NOW))
        .map(str::to_owned)
}

fn signed(data: &[u8]) {
    let Some(r) = request(data) else {
        return;
    };
    if let Ok(who) = verify(&r, Some("xks.example.com")) {
        assert_eq!(who, FUZZ_ACCESS_KEY_ID);
    }
}

fn path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let bases = ["/kms/xks/v1".to_owned(), "/tenant-a/kms/xks/v1".to_owned()];
    match route::route(&bases, path) {
        Ok((i, Endpoint::Key { id, op })) => {
            assert!(i < bases.len());
            assert!(crate::config::valid_key_id(&id), "key id {id:?}");
            assert!(path.ends_with(&format!("/{id}/{}", op.as_str())));
        }
        Ok((i, Endpoint::Health)) => {
            assert_eq!(path, format!("{}/health", bases[i]));
        }
        Err(_) => {}
    }
}

fn date(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(t) = sigv4::parse_amz_date(text) else {
        return;
    };
    // A leap second (`…60Z`) is the first second of the next minute.
    if text.get(13..15) != Some("60") {
        assert_eq!(amz_date(t), text);
    }
}

/// `t` as `YYYYMMDD'T'HHMMSS'Z'`, from its RFC 3339 form (an independent formatter).
fn amz_date(t: SystemTime) -> String {
    let rfc = hyok::audit::Timestamp::from_system(t).to_string();
    let digits = |r: std::ops::Range<usize>| rfc.get(r).unwrap_or_default().to_owned();
    format!(
        "{}{}{}T{}{}{}Z",
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/xks")
    }

    /// The signed seed verifies, so the fuzzer starts from a request that reaches the
    /// signature comparison, not only the early rejections.
    #[test]
    fn the_signed_seed_verifies() {
        let data = std::fs::read(corpus().join("signed-health")).unwrap();
        let r = request(&data[1..]).expect("a request");
        assert_eq!(r.headers.len(), 4, "every header line of the seed parses");
        assert_eq!(verify(&r, None).as_deref(), Ok(FUZZ_ACCESS_KEY_ID));
    }

    #[test]
    fn dates_format_back() {
        for s in ["19700101T000000Z", "20000229T235959Z", "20261206T191000Z"] {
            assert_eq!(amz_date(sigv4::parse_amz_date(s).unwrap()), s);
        }
    }

    #[test]
    fn xks_corpus_replays() {
        assert!(
            hyok::fuzzing::replay(&corpus(), xks) >= 6,
            "corpus fuzz/corpus/xks"
        );
    }
}
