//! Entry point of the fuzz target `gateway` in `fuzz/` (cargo-fuzz), also run over the
//! committed corpus by an ordinary test. Not a stable API: hidden from the docs.
//!
//! The gateway's own parsers of bytes it does not control, none of which may panic:
//!
//! - what it reads back from the backend, which the HYOK threat model does not trust: the
//!   records of parts sealed in place (`direct.rs`, `inplace.rs`) must encode back to the
//!   bytes they were decoded from, and an object's header (already fuzzed in `hyok-core`)
//!   must give a plaintext size no larger than the stored body and attributes that are
//!   exactly the context's values;
//! - what a client sends that the gateway reads itself (s3s parses the rest): the `Host`
//!   header under `virtual_host_domains` (a bucket only for `BUCKET.DOMAIN`), upload ids,
//!   object keys (an accepted key is stored under a path that gives it back, never one
//!   ending in `/`), `x-amz-copy-source-range` (a range inside the source) and
//!   `Content-Encoding` (kept as sent; an `aws-chunked` coding never stays).

use std::time::UNIX_EPOCH;

use hyok::store::{ObjectInfo, StoreUrl};
use hyok::{HeaderLimits, ParsedHeader};
use s3s::host::S3Host;

use crate::direct::{Record, RECORD_LEN};
use crate::host::Domains;
use crate::inplace::InPlace;
use crate::meta;

/// The configured domains of the `Host` case.
const DOMAINS: [&str; 2] = ["s3.example.com", "localhost"];

/// First byte: which parser (`0` records, `1` a stored header, `2` client text); the rest
/// is its input.
pub fn gateway(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => records(rest),
        1 => header(rest),
        _ => client_text(rest),
    }
}

fn records(data: &[u8]) {
    for magic in [crate::direct::MAGIC, crate::direct::MAGIC_MD5] {
        if let Some(r) = Record::decode_with(data, magic) {
            assert_eq!(
                r.encode_with(magic),
                data[..RECORD_LEN as usize],
                "a frames record encodes back to its bytes"
            );
        }
    }
    if let Some(p) = InPlace::decode(data) {
        assert_eq!(
            p.encode(),
            data,
            "an in-place record encodes back to its bytes"
        );
    }
}

/// Eight bytes of stored size, then the object's first bytes.
fn header(data: &[u8]) {
    let Some((size, mut bytes)) = data.split_first_chunk::<8>() else {
        return;
    };
    let stored = u64::from_be_bytes(*size);
    let Ok(parsed) = ParsedHeader::read(&mut bytes, HeaderLimits::default()) else {
        return;
    };
    if let Some(n) = meta::plaintext_len(&parsed, stored) {
        assert!(
            n <= stored - parsed.wire_len() as u64,
            "plaintext {n} of a stored {stored}"
        );
    }
    let Ok(url) = StoreUrl::parse("s3://bucket/key") else {
        return;
    };
    let info = ObjectInfo {
        url,
        size: stored,
        last_modified: UNIX_EPOCH,
        e_tag: None,
        metadata: Default::default(),
    };
    let d = meta::describe(&info, &parsed);
    let ctx = &parsed.header.context;
    for (key, value) in d.attrs.headers() {
        assert_eq!(value.as_deref(), ctx.get(key), "attribute {key}");
    }
    for (k, v) in &d.attrs.metadata {
        assert_eq!(
            ctx.get(&format!("{}{k}", meta::CTX_META)),
            Some(v.as_str()),
            "user metadata {k}"
        );
    }
    let _ = d.attrs.check();
    let _ = d.attrs.expires_timestamp();
}

fn client_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let domains = Domains::new(DOMAINS.iter().map(|d| (*d).to_owned()).collect());
    if let Ok(v) = domains.parse_host_header(text) {
        if let Some(bucket) = v.bucket() {
            let host = text.to_ascii_lowercase();
            assert!(
                DOMAINS
                    .iter()
                    .any(|d| host.starts_with(&format!("{bucket}.{d}"))),
                "{text:?} named bucket {bucket:?}"
            );
        }
    }
    if crate::multipart::check_id(text).is_ok() {
        assert!(text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()));
        let _ = crate::multipart::part_key(text, 1);
    }
    if crate::backend::check_key(text).is_ok() {
        let stored = crate::backend::stored_key(text);
        assert!(!stored.ends_with('/'), "{text:?} stored as {stored:?}");
        assert_eq!(crate::backend::client_key(&stored), text);
    }
    // A Content-Encoding is kept as sent, unless it names aws-chunked, which never stays.
    let chunked = |c: &str| c.trim().eq_ignore_ascii_case("aws-chunked");
    match meta::stored_encoding(Some(text)) {
        Some(kept) if text.split(',').any(chunked) => {
            assert!(!kept.split(',').any(chunked), "{text:?} kept as {kept:?}");
            assert!(!kept.trim().is_empty(), "{text:?} kept as {kept:?}");
        }
        Some(kept) => assert_eq!(kept, text),
        None => assert!(
            text.trim().is_empty() || text.split(',').any(chunked),
            "{text:?} dropped"
        ),
    }
    let size = text.len() as u64 * 1000;
    if let Ok(r) = crate::copy_part::source_range(text, size) {
        assert!(
            r.start < r.end && r.end <= size,
            "{text:?}: {r:?} of {size}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/gateway")
    }

    /// The hand-written seeds get past each parser, so the fuzzer starts from inputs that
    /// reach the checks above rather than only their rejections.
    #[test]
    fn the_seeds_are_accepted() {
        let seed = |name: &str| std::fs::read(corpus().join(name)).unwrap()[1..].to_vec();
        assert!(Record::decode_with(&seed("frames-record"), crate::direct::MAGIC).is_some());
        assert!(InPlace::decode(&seed("inplace-record")).is_some());
        let object = seed("gateway-object-header");
        let parsed = ParsedHeader::read(&mut &object[8..], HeaderLimits::default()).unwrap();
        let ctx = &parsed.header.context;
        assert!(ctx.get(meta::CTX_ETAG).is_some());
        assert!(ctx.get(&format!("{}owner", meta::CTX_META)).is_some());
        assert!(meta::plaintext_len(&parsed, object.len() as u64 - 8).is_some());
        let domains = Domains::new(DOMAINS.iter().map(|d| (*d).to_owned()).collect());
        let host = String::from_utf8(seed("host-virtual")).unwrap();
        let v = domains.parse_host_header(&host).unwrap();
        assert_eq!(v.bucket(), Some("my-bucket"));
        let id = String::from_utf8(seed("upload-id")).unwrap();
        assert!(crate::multipart::check_id(&id).is_ok());
        let marker = String::from_utf8(seed("folder-marker-key")).unwrap();
        assert!(crate::backend::check_key(&marker).is_ok() && marker.ends_with('/'));
        let range = String::from_utf8(seed("copy-source-range")).unwrap();
        let size = range.len() as u64 * 1000;
        assert_eq!(crate::copy_part::source_range(&range, size).unwrap(), 0..10);
        let encoding = String::from_utf8(seed("content-encoding-aws-chunked")).unwrap();
        assert_eq!(
            meta::stored_encoding(Some(&encoding)).as_deref(),
            Some("gzip")
        );
    }

    #[test]
    fn gateway_corpus_replays() {
        assert!(
            hyok::fuzzing::replay(&corpus(), gateway) >= 6,
            "corpus fuzz/corpus/gateway"
        );
    }
}
