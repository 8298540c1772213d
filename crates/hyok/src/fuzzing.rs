//! Entry point of the fuzz target `config` in `fuzz/` (cargo-fuzz), also run over the
//! committed corpus by an ordinary test. Not a stable API: hidden from the docs.
//!
//! [`config`] takes arbitrary bytes and must never panic: the configuration parser refuses
//! or accepts, and an accepted configuration answers the lookups the commands make
//! (keyrings, locations, transfer settings) without panicking.

use crate::config::Config;

/// Parse `data` (UTF-8) as a `hyok.toml`.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::parse(text) else {
        return;
    };
    for name in ["default", ""] {
        let _ = cfg.keyring(name);
    }
    let _ = (cfg.transfer.jobs(), cfg.transfer.transfer());
    for loc in [
        ":obj",
        "default:a/b",
        "s3://bucket/key",
        "file:///tmp/x",
        "local/path",
    ] {
        let _ = cfg.resolve_location(loc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            config(&data);
            for cut in 0..data.len() {
                config(&data[..cut]);
            }
            for i in 0..data.len() {
                let mut d = data.clone();
                d[i] ^= 1 << (i % 8);
                config(&d);
            }
            n += 1;
        }
        assert!(n >= 3, "corpus fuzz/corpus/config");
    }
}
