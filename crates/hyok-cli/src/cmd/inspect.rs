//! `hyok inspect`: the header of a message, without keys and without secrets. Everything
//! shown comes from the (untrusted) message: text output escapes it, JSON keeps it exact.

use std::io::BufReader;

use anyhow::Result;
use hyok::inspect::{edk_key_name, key_version, read_header, ContentType};
use hyok::text::{escape_bytes, escape_str};
use serde_json::json;

use crate::args::InspectArgs;
use crate::io::open_input;

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The key name for JSON: the exact text when it is UTF-8, else `0x` and hex.
fn json_key_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("0x{}", hex_encode(name)),
    }
}

pub(crate) fn run(a: InspectArgs) -> Result<()> {
    let input = open_input(&a.input, false)?;
    let mut r = BufReader::new(input.reader);
    let h = read_header(&mut r)?;
    let framing = match h.content_type {
        ContentType::Framed => format!("framed, {} bytes per frame", h.frame_length),
        ContentType::NonFramed => "non-framed (legacy)".to_owned(),
    };
    if a.json {
        let v = json!({
            "message_format_version": h.suite.message_format_version(),
            "suite_id": format!("0x{:04X}", h.suite.id()),
            "suite": h.suite.description(),
            "committing": h.suite.is_committing(),
            "signed": h.suite.signature().is_some(),
            "message_id": hex_encode(&h.message_id),
            "encryption_context": h.context.iter().collect::<std::collections::BTreeMap<_, _>>(),
            "encrypted_data_keys": h.edks.iter().map(|e| {
                let mut j = json!({
                    "provider_id": e.provider_id,
                    "key_name": json_key_name(edk_key_name(e)),
                    "wrapped_len": e.ciphertext.len(),
                });
                if let Some(v) = key_version(e) {
                    j["key_version"] = json!(v);
                }
                j
            }).collect::<Vec<_>>(),
            "content_type": if h.content_type == ContentType::Framed { "framed" } else { "non-framed" },
            "frame_length": h.frame_length,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "format:      ESDK message format v{}",
        h.suite.message_format_version()
    );
    println!(
        "suite:       0x{:04X} {}",
        h.suite.id(),
        h.suite.description()
    );
    println!("message id:  {}", hex_encode(&h.message_id));
    println!("body:        {framing}");
    if h.context.is_empty() {
        println!("context:     (empty)");
    } else {
        println!("context:");
        for (k, v) in h.context.iter() {
            println!("  {} = {}", escape_str(k), escape_str(v));
        }
    }
    let n = h.edks.len();
    println!("wrapped data keys: {n}");
    for e in &h.edks {
        let (p, name, l) = (
            escape_str(&e.provider_id),
            escape_bytes(edk_key_name(e)),
            e.ciphertext.len(),
        );
        match key_version(e) {
            Some(v) => println!("  provider \"{p}\", key \"{name}\", version {v} ({l} bytes)"),
            None => println!("  provider \"{p}\", key \"{name}\" ({l} bytes)"),
        }
    }
    Ok(())
}
