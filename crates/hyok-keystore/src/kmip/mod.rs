//! KMIP key managers (feature `kmip`): Thales CipherTrust, Fortanix DSM, Entrust, IBM, PyKMIP
//! and any other server that speaks KMIP 1.4 over mutual TLS.
//!
//! The data key is encrypted by the server's Encrypt operation with an AES key that never
//! leaves it, in AES-GCM mode with a 16-byte tag and the serialized encryption context as
//! Authenticated Encryption Additional Data (KMIP 1.4 encoding), and decrypted by Decrypt
//! with the same data. The protocol version is negotiated with DiscoverVersions; a server
//! without KMIP 1.4 is refused with a message saying so.
//!
//! Key URI: `kmip://HOST:PORT/UNIQUE_ID_OR_NAME?ca=PEM&cert=PEM&key=PEM`. The port defaults
//! to 5696; an empty `HOST:PORT` (`kmip:///NAME`) means `HYOK_KMIP_ADDR`. `ca`, `cert` and
//! `key` (PEM files: the CA that signed the server's certificate, the client certificate, its
//! private key) default to `HYOK_KMIP_CA`, `HYOK_KMIP_CERT` and `HYOK_KMIP_KEY`.
//! `timeout=SECONDS` bounds connecting and each request; `retries=N` (default 3) bounds retries
//! after refused connections. A name is looked up with Locate; the key must be an AES key in
//! the Active state to wrap (Deactivated keys still unwrap).
//!
//! Calls need a tokio runtime with I/O and time enabled. Up to 16 idle TLS connections are kept
//! for reuse; calls in flight each use their own connection.
//!
//! EDK: provider id `kmip`, provider info = the key's Unique Identifier, ciphertext =
//! IV length (1 byte) ‖ IV ‖ encrypted data key ‖ 16-byte tag. The 12-byte IV is random,
//! drawn by hyok.

mod admin;
pub mod aead;
mod builder;
mod client;
mod conn;
mod key;
mod proto;
mod ttlv;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use hyok_core::{DataKey, EncryptedDataKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::net::{self, pem_files, RetryConfig, Timeouts};
use crate::store::{KeyInfo, KeyStore, WrapRequest};
use crate::uri::{decode, KeyUri};

use crate::registry::{shared, Scheme};
pub use admin::KmipAdmin;
pub use aead::KmipAead;
pub use builder::{KmipBuilder, KmipConfigKey};
pub(crate) use client::{op_error, KmipClient};
pub use key::KmipKey;
pub(crate) use key::{attributes_from, get_attributes_payload};

/// `kmip://`: a key on a KMIP 1.4 server (mutual TLS).
pub(crate) const REGISTRATION: Scheme = Scheme {
    name: SCHEME,
    syntax: "kmip://HOST:5696/NAME_OR_ID",
    note: "certificates from HYOK_KMIP_CA/CERT/KEY; see docs/KEYSTORES.md",
    open: |u| Ok(shared(KmipKey::from_uri(u)?)),
    admin: Some(|u| Ok(Box::new(KmipAdmin::from_uri(u)?))),
};
use conn::Connector;
use proto::{reason, tag, value, BatchResult, Operation, Version};
use ttlv::{Ttlv, TtlvError};

/// EDK provider id of KMIP-wrapped data keys.
pub const PROVIDER_ID: &str = "kmip";
/// URI scheme.
pub const SCHEME: &str = "kmip";
/// Default KMIP port.
pub const DEFAULT_PORT: u16 = 5696;
/// Most batch items in one request message.
pub const MAX_BATCH: usize = 64;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The `ttlv` fuzz target (see `crate::fuzzing`): decode, re-encode, parse as a response.
pub(crate) fn fuzz_ttlv(data: &[u8]) {
    let Ok(item) = Ttlv::decode(data) else {
        return;
    };
    let encoded = item.encode();
    // Padding bytes are not checked, so only the length must match the input.
    assert_eq!(encoded.len(), data.len(), "re-encoded length");
    let again = Ttlv::decode(&encoded).expect("an encoded message decodes");
    assert_eq!(again.encode(), encoded, "encoding is stable");
    for expected in 1..=3 {
        let _ = proto::parse_response(item.clone(), expected);
    }
}

#[cfg(test)]
mod tests {
    use super::builder::parse_authorities;
    use super::builder::parse_authority;
    use super::key::split_ciphertext;
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            parse_authority("127.0.0.1:5696").unwrap(),
            ("127.0.0.1".into(), 5696)
        );
        assert_eq!(
            parse_authority("kms.example").unwrap(),
            ("kms.example".into(), 5696)
        );
        assert_eq!(
            parse_authority("[::1]:15696").unwrap(),
            ("::1".into(), 15696)
        );
        assert_eq!(parse_authority("[::1]").unwrap(), ("::1".into(), 5696));
        for bad in [
            "", ":5696", "h:0", "h:x", "h:70000", "::1:5696", "[::1", "u@h:1",
        ] {
            assert!(parse_authority(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_lists() {
        assert_eq!(
            parse_authorities("k1:5696, k2,[::1]:7").unwrap(),
            vec![("k1".into(), 5696), ("k2".into(), 5696), ("::1".into(), 7)]
        );
        assert!(parse_authorities("k1,,").unwrap().len() == 1);
        assert!(parse_authorities("k1,u@k2").is_err());
        assert!(parse_authorities(",").is_err());
        let b = |s: &str| KmipBuilder::new().with_uri(&KeyUri::parse(s).unwrap());
        assert!(b("kmip://k1,k2/k?cooldown=5").is_ok());
        assert!(b("kmip://k1,k2/k?cooldown=0").is_err());
    }

    #[test]
    fn ciphertexts() {
        let mut c = vec![12u8];
        c.extend_from_slice(&[1; 12]);
        c.extend_from_slice(&[2; 32]);
        c.extend_from_slice(&[3; 16]);
        let (iv, ct, t) = split_ciphertext(&c).unwrap();
        assert_eq!((iv.len(), ct.len(), t.len()), (12, 32, 16));
        assert!(split_ciphertext(&c[..12 + 16]).is_none());
        assert!(split_ciphertext(&[]).is_none());
        let mut bad = c.clone();
        bad[0] = 200;
        assert!(split_ciphertext(&bad).is_none());
        bad[0] = 11;
        assert!(split_ciphertext(&bad).is_none());
    }

    #[test]
    fn uri_errors_say_what_is_missing() {
        let b = |s: &str| KmipBuilder::new().with_uri(&KeyUri::parse(s).unwrap());
        assert!(b("kmip:name")
            .unwrap_err()
            .to_string()
            .contains("kmip://HOST:PORT/KEY"));
        assert!(b("kmip://h/k?password=x")
            .unwrap_err()
            .to_string()
            .contains("must not be in a key URI"));
        assert!(b("kmip://h/k?what=x")
            .unwrap_err()
            .to_string()
            .contains("unknown key URI attribute"));
        let e = b("kmip://h/k").unwrap().build().unwrap_err().to_string();
        assert!(e.contains("no CA certificate"), "{e}");
        let e = b("kmip:///k").unwrap().build().unwrap_err().to_string();
        assert!(e.contains("no server address"), "{e}");
    }
}
