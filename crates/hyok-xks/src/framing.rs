//! The byte layouts the specification fixes: the AAD handed to the key store (Encrypt,
//! "ciphertextMetadata" note), the ciphertext data integrity value (Appendix C), and hyok's
//! own `ciphertextMetadata` (the key version of versioned keys).

use aws_lc_rs::digest::{digest, SHA256};

/// Longest `ciphertextMetadata` (bytes before Base64).
pub const MAX_METADATA: usize = 20;

/// The AAD for the key store: 2-byte big-endian length of `additionalAuthenticatedData` ‖
/// the AAD ‖ 1-byte length of `ciphertextMetadata` ‖ the metadata. Absent fields have length
/// zero. Callers bound the AAD to 65,535 bytes and the metadata to 20.
pub fn store_aad(aad: &[u8], metadata: &[u8]) -> Vec<u8> {
    debug_assert!(aad.len() <= usize::from(u16::MAX) && metadata.len() <= MAX_METADATA);
    let mut out = Vec::with_capacity(3 + aad.len() + metadata.len());
    out.extend_from_slice(&(aad.len() as u16).to_be_bytes());
    out.extend_from_slice(aad);
    out.push(metadata.len() as u8);
    out.extend_from_slice(metadata);
    out
}

/// The ciphertext data integrity value (Appendix C): SHA-256 over the decoded
/// `additionalAuthenticatedData ‖ ciphertextMetadata ‖ initializationVector ‖ ciphertext ‖
/// authenticationTag` (absent fields are empty; no lengths).
pub fn integrity_value(aad: &[u8], metadata: &[u8], iv: &[u8], ct: &[u8], tag: &[u8]) -> [u8; 32] {
    let mut all = Vec::with_capacity(aad.len() + metadata.len() + iv.len() + ct.len() + tag.len());
    for part in [aad, metadata, iv, ct, tag] {
        all.extend_from_slice(part);
    }
    let d = digest(&SHA256, &all);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// hyok's `ciphertextMetadata` for a key version: `kv=N` (ASCII, at most 13 bytes).
pub fn version_metadata(version: u32) -> Vec<u8> {
    format!("kv={version}").into_bytes()
}

/// The key version a `ciphertextMetadata` names, if it is hyok's `kv=N` (N without leading
/// zeros, 1 or more).
pub fn metadata_version(metadata: &[u8]) -> Option<u32> {
    let digits = metadata.strip_prefix(b"kv=")?;
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;

    /// Appendix C, byte for byte: the 86 bytes, their SHA-256 and its Base64.
    #[test]
    fn appendix_c_example() {
        let aad = b"project=nile,department=marketing";
        let metadata = b"key_version=1";
        let iv = B64.decode("HMrlRw85cAJUd5Ax").unwrap();
        let ct = B64.decode("ghxkK1txeDNn3q8Y").unwrap();
        let tag = B64.decode("vBxN2ncH1oEkR8WVXpmyYQ==").unwrap();
        assert_eq!(
            (aad.len(), metadata.len(), iv.len(), ct.len(), tag.len()),
            (33, 13, 12, 12, 16)
        );
        assert_eq!(
            B64.decode("cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n")
                .unwrap(),
            aad
        );
        assert_eq!(B64.decode("a2V5X3ZlcnNpb249MQ==").unwrap(), metadata);
        // The specification's hex listing of the 86 bytes.
        let listing = [
            "70 72 6f 6a 65 63 74 3d 6e 69 6c 65 2c 64 65 70",
            "61 72 74 6d 65 6e 74 3d 6d 61 72 6b 65 74 69 6e",
            "67",
            "6b 65 79 5f 76 65 72 73 69 6f 6e 3d 31",
            "1c ca e5 47 0f 39 70 02 54 77 90 31",
            "82 1c 64 2b 5b 71 78 33 67 de af 18",
            "bc 1c 4d da 77 07 d6 81 24 47 c5 95 5e 99 b2 61",
        ]
        .join(" ");
        let expected: Vec<u8> = listing
            .split(' ')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        let mut all = aad.to_vec();
        for p in [&metadata[..], &iv, &ct, &tag] {
            all.extend_from_slice(p);
        }
        assert_eq!(all.len(), 86);
        assert_eq!(all, expected);
        let v = integrity_value(aad, metadata, &iv, &ct, &tag);
        assert_eq!(
            hex::encode(v),
            "a8703f2260bd8791ec2d15ea0b23e65a0631eedcf2a13a65cc82db3f47cf5ec7"
        );
        assert_eq!(
            B64.encode(v),
            "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc="
        );
    }

    #[test]
    fn aad_framing_has_both_lengths() {
        assert_eq!(store_aad(b"", b""), [0, 0, 0]);
        assert_eq!(store_aad(b"ab", b""), [0, 2, b'a', b'b', 0]);
        assert_eq!(store_aad(b"", b"m"), [0, 0, 1, b'm']);
        // Moving the metadata into the AAD changes the framed bytes.
        assert_ne!(store_aad(b"m", b""), store_aad(b"", b"m"));
        let long = vec![7u8; 300];
        assert_eq!(&store_aad(&long, b"")[..2], &[1, 44]);
    }

    #[test]
    fn versions_round_trip() {
        for v in [1, 9, 10, 4_294_967_295] {
            let m = version_metadata(v);
            assert!(m.len() <= MAX_METADATA);
            assert_eq!(metadata_version(&m), Some(v));
        }
        for bad in [
            &b"kv="[..],
            b"kv=0",
            b"kv=01",
            b"kv=1x",
            b"v=1",
            b"kv=99999999999",
        ] {
            assert_eq!(metadata_version(bad), None, "{bad:?}");
        }
    }
}
