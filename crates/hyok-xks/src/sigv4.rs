//! SigV4 verification of XKS requests (spec Appendix A): service `kms-xks-proxy`, the
//! store's region, up to two credential pairs per store (rotation), requests at most five
//! minutes off the proxy's clock.
//!
//! The canonical request is rebuilt from exactly the headers the request lists in
//! `SignedHeaders` (which must include `host` and `x-amz-date`); the signing key derivation
//! and the final HMAC come from the `aws-sigv4` crate; the signatures are compared in
//! constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{digest, SHA256};
use http::HeaderMap;
use zeroize::Zeroizing;

/// The SigV4 service name of the XKS Proxy API.
pub const SERVICE: &str = "kms-xks-proxy";
/// Largest clock difference accepted.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// Most signed headers accepted in one request.
const MAX_SIGNED_HEADERS: usize = 32;

/// One SigV4 credential pair.
pub struct Credential {
    /// The access key id (20 to 30 characters of `A`–`Z`, `2`–`7`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Verifies requests of one logical key store.
#[derive(Debug)]
pub struct Verifier {
    region: String,
    credentials: Vec<Credential>,
}

/// The parts of a request the signature covers.
pub struct Signed<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as received.
    pub path: &'a str,
    /// Query string (XKS uses none).
    pub query: &'a str,
    /// `host` when the request has no Host header (HTTP/2 `:authority`).
    pub authority: Option<&'a str>,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body.
    pub body: &'a [u8],
}

impl Verifier {
    /// A verifier for `region` accepting any of `credentials`.
    pub fn new(region: impl Into<String>, credentials: Vec<Credential>) -> Self {
        Self {
            region: region.into(),
            credentials,
        }
    }

    /// Check the request's signature at time `now`; the access key id that signed it on
    /// success, a reason (safe to send back) on failure.
    pub fn verify(&self, req: &Signed<'_>, now: SystemTime) -> Result<&str, String> {
        let auth = single(req.headers, "authorization")?
            .ok_or("no Authorization header (SigV4 required)")?;
        let fields = auth
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or("the Authorization header is not AWS4-HMAC-SHA256")?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in fields.split(',') {
            let part = part.trim();
            let (k, v) = part
                .split_once('=')
                .ok_or("malformed Authorization header")?;
            let slot = match k {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => return Err("malformed Authorization header".into()),
            };
            if slot.replace(v).is_some() {
                return Err("malformed Authorization header".into());
            }
        }
        let credential = credential.ok_or("the Authorization header has no Credential")?;
        let signed = signed.ok_or("the Authorization header has no SignedHeaders")?;
        let signature = signature.ok_or("the Authorization header has no Signature")?;

        let scope: Vec<&str> = credential.split('/').collect();
        let [akid, date, region, service, terminator] = scope[..] else {
            return Err("malformed Credential scope".into());
        };
        if terminator != "aws4_request" {
            return Err("malformed Credential scope".into());
        }
        if service != SERVICE {
            return Err(format!("signed for service {service:?}, not {SERVICE}"));
        }
        if region != self.region {
            return Err(format!(
                "signed for region {region:?}; this key store expects {:?}",
                self.region
            ));
        }
        let names: Vec<&str> = signed.split(';').collect();
        if names.len() > MAX_SIGNED_HEADERS
            || names.iter().any(|n| n.is_empty())
            || names.windows(2).any(|w| w[0] >= w[1])
            || names
                .iter()
                .any(|n| n.bytes().any(|b| b.is_ascii_uppercase()))
        {
            return Err("SignedHeaders is not a sorted list of lowercase header names".into());
        }
        for required in ["host", "x-amz-date"] {
            if !names.contains(&required) {
                return Err(format!("SignedHeaders does not include {required}"));
            }
        }
        let amz_date = single(req.headers, "x-amz-date")?.ok_or("no X-Amz-Date header")?;
        let signed_at = parse_amz_date(amz_date).ok_or("malformed X-Amz-Date header")?;
        if !amz_date.starts_with(date) || date.len() != 8 {
            return Err("the Credential date is not the X-Amz-Date day".into());
        }
        let skew = now
            .duration_since(signed_at)
            .unwrap_or_else(|e| e.duration());
        if skew > MAX_SKEW {
            return Err("X-Amz-Date is more than 5 minutes away from the proxy's clock".into());
        }
        let cred = self
            .credentials
            .iter()
            .find(|c| c.access_key_id == akid)
            .ok_or("unknown access key id")?;

        let mut canonical = String::with_capacity(512);
        canonical.push_str(req.method);
        canonical.push('\n');
        canonical.push_str(req.path);
        canonical.push('\n');
        canonical.push_str(req.query);
        canonical.push('\n');
        for name in &names {
            let values: Vec<String> = req
                .headers
                .get_all(*name)
                .iter()
                .map(|v| v.to_str().map(collapse))
                .collect::<Result<_, _>>()
                .map_err(|_| format!("signed header {name} is not ASCII"))?;
            let value = match (values.is_empty(), *name, req.authority) {
                (false, _, _) => values.join(","),
                (true, "host", Some(a)) => a.to_owned(),
                _ => return Err(format!("signed header {name} is missing from the request")),
            };
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(&value);
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(signed);
        canonical.push('\n');
        canonical.push_str(&hex(digest(&SHA256, req.body).as_ref()));

        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{SERVICE}/aws4_request\n{}",
            hex(digest(&SHA256, canonical.as_bytes()).as_ref())
        );
        let key = aws_sigv4::sign::v4::generate_signing_key(
            &cred.secret,
            signed_at,
            &self.region,
            SERVICE,
        );
        let expected = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
        if signature.len() != expected.len()
            || aws_lc_rs::constant_time::verify_slices_are_equal(
                signature.as_bytes(),
                expected.as_bytes(),
            )
            .is_err()
        {
            return Err("signature mismatch".into());
        }
        Ok(&cred.access_key_id)
    }
}

/// The one value of a header, `None` when absent; an error when repeated or not ASCII.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, String> {
    let mut all = headers.get_all(name).iter();
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(format!("more than one {name} header"));
    }
    v.to_str()
        .map(Some)
        .map_err(|_| format!("the {name} header is not ASCII"))
}

/// Trim and collapse runs of spaces (SigV4 canonical header values).
fn collapse(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDD'T'HHMMSS'Z'` as a time.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    // ASCII first: the fields are sliced by byte position.
    if b.len() != 16 || !s.is_ascii() || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d == 0 || d > days_in[mo as usize - 1] {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo, d) = (i64::from(y), i64::from(mo), i64::from(d));
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(se);
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates() {
        let t = parse_amz_date("20211009T120000Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_633_780_800
        );
        assert_eq!(
            parse_amz_date("20000229T000000Z")
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            951_782_400
        );
        for bad in [
            "20211009T120000",
            "2021-10-09T12:00:00Z",
            "20210229T000000Z",
            "20211009T250000Z",
            "2021100+T120000Z",
            // 16 bytes, not ASCII: a field boundary inside a character (found by the fuzzer).
            "202\u{317}\0\0\0T235910Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_values_are_collapsed() {
        assert_eq!(collapse("  a   b  c "), "a b c");
    }
}
