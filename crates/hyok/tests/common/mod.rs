//! Set-up shared by the facade's integration tests.

use hyok::config::{Config, Loaded};
use hyok::{KeySource, Session, SessionConfig};

/// A session whose `default` keyring is one raw AES key `raw-aes:test/NAME`, the 32 bytes
/// `byte` repeated, in a key file under `dir`.
pub(crate) fn raw_aes_session(dir: &std::path::Path, name: &str, byte: u8) -> Session {
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&key, [byte; 32]).unwrap();
    let text = format!(
        "[keyrings.default]\nkeys = [\"raw-aes:test/{name}?file={}\"]\n",
        key.display()
    );
    Session::open(
        SessionConfig {
            file: Loaded {
                config: Config::parse(&text).unwrap(),
                path: None,
            },
            ..SessionConfig::default()
        }
        .keys(KeySource::Keyring("default".into())),
    )
    .unwrap()
}
