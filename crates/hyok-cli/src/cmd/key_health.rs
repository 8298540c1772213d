//! `hyok key health [URI] [--json]`: every server node behind a key (or behind each key of
//! the configured keyring), as probed now. Fails (exit 1) when a key has no node that serves.

use std::path::Path;

use anyhow::Result;

use crate::args::KeyHealthArgs;

pub(crate) fn run(config: Option<&Path>, a: KeyHealthArgs) -> Result<()> {
    let session = super::session(config, None)?;
    let result = probe(&session, &a);
    super::finish(session, result)
}

fn probe(session: &hyok::Session, a: &KeyHealthArgs) -> Result<()> {
    let keys = match &a.uri {
        Some(uri) => vec![hyok::health::open(session, uri)?],
        None => session.key_manager()?.keyring().keys().to_vec(),
    };
    let report = super::runtime()?.block_on(hyok::health::of_keys(&keys));
    for k in &report {
        if a.json {
            println!("{}", k.to_json());
        } else {
            print!("{}", k.to_text());
        }
    }
    let down: Vec<&str> = report
        .iter()
        .filter(|k| !k.serving())
        .map(|k| k.key.as_str())
        .collect();
    if down.is_empty() {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "no node serves {}",
        hyok::text::escape_str(&down.join(", "))
    ))
}
