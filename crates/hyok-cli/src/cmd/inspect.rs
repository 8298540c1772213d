//! `hyok inspect`: the header of a message, without keys and without secrets.

use std::io::BufReader;

use anyhow::Result;
use hyok_core::{ContentType, EncryptedDataKey, HeaderLimits, ParsedHeader};
use serde_json::json;

use crate::args::InspectArgs;
use crate::io::open_input;

/// Key name recorded in an EDK: the raw-AES layout (name ‖ 128 ‖ 12 ‖ IV) or plain UTF-8.
pub(crate) fn edk_key_name(edk: &EncryptedDataKey) -> String {
    let info = &edk.provider_info;
    if info.len() >= 20 {
        let n = info.len() - 20;
        if info[n..n + 8] == [0, 0, 0, 0x80, 0, 0, 0, 12] {
            if let Ok(s) = std::str::from_utf8(&info[..n]) {
                return s.to_owned();
            }
        }
    }
    match std::str::from_utf8(info) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("0x{}", hex_encode(info)),
    }
}

/// The key version an EDK records, for stores with versioned keys (Vault Transit
/// `vault:vN:`).
fn key_version(edk: &EncryptedDataKey) -> Option<u32> {
    if edk.provider_id == hyok_keystore::vault::PROVIDER_ID {
        hyok_keystore::vault::ciphertext_version(&edk.ciphertext)
    } else {
        None
    }
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn run(a: InspectArgs) -> Result<()> {
    let input = open_input(&a.input, false)?;
    let mut r = BufReader::new(input.reader);
    let limits = HeaderLimits {
        max_edks: u16::MAX as usize,
        // Only the header is read: show any frame length the format allows.
        max_frame_length: hyok_core::MAX_WRITE_FRAME_LEN,
    };
    let parsed = ParsedHeader::read(&mut r, limits)?;
    let h = &parsed.header;
    let edks: Vec<_> = h
        .edks
        .iter()
        .map(|e| {
            (
                e.provider_id.clone(),
                edk_key_name(e),
                e.ciphertext.len(),
                key_version(e),
            )
        })
        .collect();
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
            "encrypted_data_keys": edks.iter().map(|(p, n, l, v)| {
                let mut e = json!({"provider_id": p, "key_name": n, "wrapped_len": l});
                if let Some(v) = v {
                    e["key_version"] = json!(v);
                }
                e
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
            println!("  {k} = {v}");
        }
    }
    println!("wrapped data keys: {}", edks.len());
    for (p, n, l, v) in &edks {
        match v {
            Some(v) => println!("  provider {p:?}, key {n:?}, version {v} ({l} bytes)"),
            None => println!("  provider {p:?}, key {n:?} ({l} bytes)"),
        }
    }
    Ok(())
}
