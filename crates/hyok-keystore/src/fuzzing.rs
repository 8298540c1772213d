//! Entry points of the fuzz targets `ttlv` and `key_uri` in `fuzz/` (cargo-fuzz), also run
//! over the committed corpora by an ordinary test. Not a stable API: hidden from the docs.
//!
//! Each function takes arbitrary bytes, must never panic on them, and panics (an
//! assertion) only when a promise breaks:
//! - [`ttlv`]: the KMIP TTLV decoder refuses or decodes; a decoded message encodes to as
//!   many bytes as it took and decodes again to the same encoding; the response parser
//!   refuses or accepts it without panicking.
//! - [`key_uri`]: the key URI and `pkcs11:` URI parsers refuse or accept; an accepted key
//!   URI's scheme is the lowercased text before its first `:`.

/// Decode `data` as one KMIP TTLV message.
#[cfg(feature = "kmip")]
pub fn ttlv(data: &[u8]) {
    use crate::kmip::fuzz_ttlv;
    fuzz_ttlv(data);
}

/// Parse `data` (UTF-8) as a key URI and as a `pkcs11:` URI.
pub fn key_uri(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = crate::uri::KeyUri::parse(s) {
        // The scheme is what precedes the first `:`, lowercased.
        let lower = s.to_ascii_lowercase();
        assert!(lower.starts_with(&format!("{}:", u.scheme)), "scheme");
        let _ = u.namespace_and_name();
        let _ = u.only_attributes(&["file", "public", "private", "padding"]);
        #[cfg(feature = "pkcs11")]
        let _ = crate::pkcs11::Pkcs11Uri::from_key_uri(&u);
    }
    #[cfg(feature = "pkcs11")]
    if let Ok(p) = crate::pkcs11::Pkcs11Uri::parse(s) {
        let _ = p.object_label();
        let _ = p.token_display();
    }
}

/// Replays the committed corpus of a target, plus changed copies of each input.
#[cfg(test)]
pub(crate) fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let data = std::fs::read(&p).unwrap();
        f(&data);
        n += 1;
        // Every truncation of short inputs, and one bit flipped at every position.
        for cut in 0..data.len().min(256) {
            f(&data[..cut]);
        }
        for i in 0..data.len().min(512) {
            let mut d = data.clone();
            d[i] ^= 1 << (i % 8);
            f(&d);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "kmip")]
    #[test]
    fn ttlv_corpus_replays() {
        assert!(replay("ttlv", ttlv) >= 3, "corpus fuzz/corpus/ttlv");
    }

    #[test]
    fn key_uri_corpus_replays() {
        assert!(
            replay("key_uri", key_uri) >= 5,
            "corpus fuzz/corpus/key_uri"
        );
    }
}
