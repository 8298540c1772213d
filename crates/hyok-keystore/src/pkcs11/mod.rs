//! PKCS#11 HSMs (feature `pkcs11`, on by default) through the `cryptoki` crate: keys are
//! generated inside the token and never leave it; hyok only asks the token to wrap and
//! unwrap data keys.
//!
//! Keys are named by RFC 7512 URIs,
//! `pkcs11:token=LABEL;object=KEYLABEL[;id=%01]?module-path=PATH&pin-source=file:PATH`:
//! without `module-path` the module comes from `HYOK_PKCS11_MODULE`, without `pin-source` the
//! user PIN from `HYOK_PKCS11_PIN`; `pin-value` is refused (a PIN in argv is visible to
//! every user of the machine).
//!
//! - **AES keys** wrap with CKM_AES_GCM inside the token (C_Encrypt/C_Decrypt), the
//!   serialized encryption context as AAD. The EDK has the raw AES keyring's shape: provider
//!   id = `namespace` (default `pkcs11`), provider info = label ‖ tag bits ‖ IV length ‖ IV,
//!   so `hyok inspect` shows the key. An IV written by the token (AWS CloudHSM) is used.
//! - **RSA key pairs** wrap locally with the public key (RSA-OAEP, `oaep-hash=`, default
//!   SHA-256, MGF1 with the same hash, like the raw RSA keyring) and unwrap inside the token
//!   with CKM_RSA_PKCS_OAEP. Before its first wrap in a process, a key checks that the token
//!   can undo that OAEP variant, so nothing is encrypted that the token cannot decrypt.
//! - **EC keys** sign digests for audit checkpoints: [`EcSigner`].
//!
//! One context per module per process (initialised with OS locking; [`shared_context`]
//! hands it out), and one pool of logged-in sessions per token, shared by every key and
//! thread. A session the token reports closed or invalid is replaced and the call retried.
//! Calls block; from async code they run on tokio's blocking pool.

mod admin;
pub mod aead;
mod error;
mod key;
mod objects;
mod sign;
mod slots;
mod token;
pub mod uri;

pub use admin::Pkcs11Admin;
pub use key::Pkcs11Key;
pub use sign::{EcCurve, EcSigner};
pub use slots::Pkcs11Slots;
pub use token::{shared_context, DEFAULT_POOL_SIZE};
pub use uri::{OaepHash, PinSource, Pkcs11Uri, TokenSelector};

use crate::error::{Error, Result};
use crate::registry::{shared, Scheme};

/// `pkcs11:`: a key inside an HSM token (RFC 7512 URI).
pub(crate) const REGISTRATION: Scheme = Scheme {
    name: "pkcs11",
    syntax: "pkcs11:token=LABEL[,LABEL2…];object=KEY[?oaep-hash=sha1]",
    note: "module from HYOK_PKCS11_MODULE, PIN from HYOK_PKCS11_PIN or ?pin-source=file:PATH; several tokens holding the same key fail over; see docs/HSM.md",
    open: |u| {
        let p = Pkcs11Uri::from_key_uri(u)?;
        if p.more_tokens.is_empty() {
            Ok(shared(Pkcs11Key::open(&p)?))
        } else {
            Ok(shared(Pkcs11Slots::open(&p)?))
        }
    },
    admin: Some(|_| Ok(Box::new(Pkcs11Admin))),
};

/// Run a blocking PKCS#11 call: on tokio's blocking pool inside a multi-thread runtime,
/// inline anywhere else.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            match tokio::task::spawn_blocking(f).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(Error::Unavailable {
                    key: "pkcs11".into(),
                    detail: "the PKCS#11 call was cancelled (runtime shutting down)".into(),
                }),
            }
        }
        _ => f(),
    }
}
