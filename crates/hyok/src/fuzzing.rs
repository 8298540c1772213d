//! Entry point of the fuzz target `config` in `fuzz/` (cargo-fuzz), also run over the
//! committed corpus by an ordinary test. Not a stable API: hidden from the docs.
//!
//! [`config`] takes arbitrary bytes and must never panic: the configuration parser refuses
//! or accepts, and an accepted configuration answers the lookups the commands make
//! (keyrings, locations, transfer settings) without panicking.

use std::path::Path;

use crate::config::Config;

/// Run `target` over every input of the corpus folder `dir`, each also cut at every length
/// and with one bit flipped at each position (how `cargo test` replays a committed corpus
/// without libFuzzer). How many inputs the folder held.
pub fn replay(dir: &Path, target: impl Fn(&[u8])) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        target(&data);
        for cut in 0..data.len() {
            target(&data[..cut]);
        }
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 1 << (i % 8);
            target(&d);
        }
        n += 1;
    }
    n
}

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
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
        assert!(replay(&dir, config) >= 3, "corpus fuzz/corpus/config");
    }
}
