//! Reading a message's header without keys (`hyok inspect`): nothing is decrypted and no
//! key store is asked. Everything here comes from an untrusted message: escape it
//! ([`crate::text`]) before it reaches a terminal.

use std::io::Read;

pub use hyok_core::{ContentType, EncryptedDataKey, Header};
pub use hyok_keystore::{edk_key_name, edk_label};

use crate::{HeaderLimits, ParsedHeader, Result};

/// Read and parse a header (any number of EDKs up to the format's limit).
pub fn read_header<R: Read>(input: &mut R) -> Result<Header> {
    let limits = HeaderLimits {
        max_edks: u16::MAX as usize,
        // Only the header is read: show any frame length the format allows.
        max_frame_length: hyok_core::MAX_WRITE_FRAME_LEN,
    };
    Ok(ParsedHeader::read(input, limits)?.header)
}

/// The key version an EDK records, for stores with versioned keys (Vault Transit
/// `vault:vN:`).
pub fn key_version(edk: &EncryptedDataKey) -> Option<u32> {
    if edk.provider_id == hyok_keystore::vault::PROVIDER_ID {
        hyok_keystore::vault::ciphertext_version(&edk.ciphertext)
    } else {
        None
    }
}
