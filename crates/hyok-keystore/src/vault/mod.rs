//! HashiCorp Vault / OpenBao Transit (feature `vault`).
//!
//! The data key is encrypted by Transit (`POST MOUNT/encrypt/NAME`) with the serialized
//! encryption context as `associated_data` (Transit ignores `context` on keys that are not
//! derived), and decrypted by `POST MOUNT/decrypt/NAME` with the same associated data. The key
//! never leaves Vault.
//!
//! Key URI: `vault-transit:NAME?addr=https://vault:8200&mount=transit&namespace=NS&ca=PEM`.
//! `addr` defaults to `VAULT_ADDR`, `namespace` to `VAULT_NAMESPACE`, `ca` to `VAULT_CACERT`,
//! `mount` to `transit`. The token comes from `token_file=PATH`, `VAULT_TOKEN`, or an AppRole
//! login (`VAULT_ROLE_ID`, `VAULT_SECRET_ID`; `auth=approle` forces it), never from the URI.
//! `timeout=SECONDS` bounds connecting and each request; `retries=N` (default 3) bounds the
//! retries after refused connections, 429 and 5xx.
//!
//! EDK: provider id `vault-transit`, provider info = the key name, ciphertext = Transit's
//! `vault:vN:…` string, which records the key version.
//!
//! Calls need a tokio runtime with I/O and time enabled (the CLI and the facade have one).
//!
//! Hyok never creates a key by encrypting: Transit creates a missing key on encrypt when the
//! token may (upsert), so the first wrap of a process reads `MOUNT/keys/NAME` and fails with
//! "key not found" if it is missing (when the policy does not allow that read, the check is
//! skipped; give such tokens only `update` on `MOUNT/encrypt/NAME`, which forbids the upsert).

mod admin;
pub mod aead;
mod builder;
mod client;
mod transit;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyok_core::{DataKey, EncryptedDataKey};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::net::{self, one_line, RetryConfig, Secret, Timeouts};
use crate::store::{KeyInfo, KeyStore, WrapRequest};
use crate::uri::{decode, KeyUri};

use crate::registry::{shared, Scheme};
pub use admin::VaultAdmin;
pub use builder::{VaultConfigKey, VaultTransitBuilder};
pub use transit::VaultTransit;

/// `vault-transit:`: a key of a Vault/OpenBao Transit engine.
pub(crate) const REGISTRATION: Scheme = Scheme {
    name: SCHEME,
    syntax: "vault-transit:NAME?addr=https://HOST:8200",
    note: "token from VAULT_TOKEN; see docs/KEYSTORES.md",
    open: |u| Ok(shared(VaultTransit::from_uri(u)?)),
    admin: Some(|u| Ok(Box::new(VaultAdmin::from_uri(u)?))),
};
use client::{AuthConfig, Client, Reply};

/// EDK provider id of Transit-wrapped data keys.
pub const PROVIDER_ID: &str = "vault-transit";
/// URI scheme.
pub const SCHEME: &str = "vault-transit";
/// Most items sent in one `batch_input` request.
pub const MAX_BATCH: usize = 128;
/// Longest ciphertext accepted from an EDK (a 32-byte key gives about 90 bytes).
const MAX_CIPHERTEXT: usize = 4096;

/// The key version recorded in a Transit ciphertext (`vault:v3:…` → 3).
pub fn ciphertext_version(ciphertext: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(ciphertext).ok()?;
    let rest = s.strip_prefix("vault:v")?;
    let (v, _) = rest.split_once(':')?;
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::builder::*;
    use super::transit::*;
    use super::*;

    #[test]
    fn versions_from_ciphertexts() {
        assert_eq!(ciphertext_version(b"vault:v1:abc"), Some(1));
        assert_eq!(ciphertext_version(b"vault:v12:abc"), Some(12));
        assert_eq!(ciphertext_version(b"vault:vx:abc"), None);
        assert_eq!(ciphertext_version(b"vault:v1"), None);
        assert_eq!(ciphertext_version(b"other"), None);
        assert_eq!(ciphertext_version(&[0xff, 0xfe]), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            check_addr("http://127.0.0.1:8200/").unwrap(),
            "http://127.0.0.1:8200"
        );
        assert_eq!(
            check_addr("http://localhost:8200").unwrap(),
            "http://localhost:8200"
        );
        assert_eq!(
            check_addr("http://[::1]:8200").unwrap(),
            "http://[::1]:8200"
        );
        assert_eq!(
            check_addr("https://vault.example:8200").unwrap(),
            "https://vault.example:8200"
        );
        assert!(check_addr("http://vault.example:8200").is_err());
        assert!(check_addr("https://u:p@vault.example").is_err());
        assert!(check_addr("https://vault.example/v1/transit").is_err());
        assert!(check_addr("ftp://vault.example").is_err());
        assert!(check_addr("vault.example:8200").is_err());
    }

    #[test]
    fn names_cannot_escape_the_path() {
        assert!(check_segment("hyok-key_1.v2", "n").is_ok());
        for bad in ["", ".", "..", "a/b", "a?b", "a%2Fb", "a b", "ä"] {
            assert!(check_segment(bad, "n").is_err(), "{bad:?}");
        }
        assert!(check_path("team/transit", "mount").is_ok());
        assert!(check_path("team/../sys", "mount").is_err());
    }

    #[test]
    fn secrets_are_refused_in_uris() {
        for uri in [
            "vault-transit:k?addr=http://127.0.0.1:8200&token=s.abc",
            "vault-transit:k?secret_id=x",
            "vault-transit:k?role_id=x",
        ] {
            let e = VaultTransitBuilder::new()
                .with_uri(&KeyUri::parse(uri).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains("must not be in a key URI"), "{e}");
        }
    }

    #[test]
    fn builder_needs_an_address_and_a_token() {
        let uri = KeyUri::parse("vault-transit:k").unwrap();
        let e = VaultTransitBuilder::new()
            .with_uri(&uri)
            .unwrap()
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no Vault address"), "{e}");
        let uri = KeyUri::parse("vault-transit:k?addr=http://127.0.0.1:8200").unwrap();
        let e = VaultTransitBuilder::new()
            .with_uri(&uri)
            .unwrap()
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no Vault token"), "{e}");
        let k = VaultTransitBuilder::new()
            .with_uri(&uri)
            .unwrap()
            .with_token(Secret::new("t".into()))
            .build()
            .unwrap();
        assert_eq!(
            &*k.info().uri,
            "vault-transit:k?addr=http://127.0.0.1:8200&mount=transit"
        );
        assert!(!format!("{k:?}").contains("\"t\""));
        let e = VaultTransitBuilder::new()
            .with_uri(&KeyUri::parse("vault-transit:k?nope=1").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("unknown key URI attribute"), "{e}");
    }

    #[test]
    fn several_nodes_in_addr() {
        let b = |s: &str| {
            VaultTransitBuilder::new()
                .with_uri(&KeyUri::parse(s).unwrap())
                .and_then(|b| b.with_token(Secret::new("t".into())).build())
        };
        let k =
            b("vault-transit:k?addr=http://127.0.0.1:1,http://127.0.0.1:2/&cooldown=5").unwrap();
        assert_eq!(
            &*k.info().uri,
            "vault-transit:k?addr=http://127.0.0.1:1,http://127.0.0.1:2&mount=transit"
        );
        for (bad, why) in [
            (
                "addr=http://127.0.0.1:1,http://vault.example:8200",
                "unencrypted",
            ),
            ("addr=http://127.0.0.1:1,http://127.0.0.1:1", "listed twice"),
            ("addr=,", "empty"),
            ("addr=http://127.0.0.1:1&cooldown=0", "cooldown"),
        ] {
            let e = b(&format!("vault-transit:k?{bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn error_classes() {
        let c = |msg: &str, status: u16| {
            classify(
                "k",
                "n",
                "transit",
                msg,
                StatusCode::from_u16(status).unwrap(),
                Some("vault:v1:x"),
            )
            .class()
        };
        assert_eq!(
            c("cipher: message authentication failed", 400),
            "unwrap-failed"
        );
        assert_eq!(
            c("invalid ciphertext: could not decode base64", 400),
            "unwrap-failed"
        );
        assert_eq!(
            c(
                "ciphertext or signature version is disallowed by policy (too old)",
                400
            ),
            "version-too-old"
        );
        assert_eq!(c("encryption key not found", 400), "not-found");
        assert_eq!(c("no handler for route \"x/decrypt/n\"", 404), "not-found");
        assert_eq!(c("Vault is sealed", 503), "unavailable");
        assert_eq!(c("something else", 400), "backend");
    }
}
