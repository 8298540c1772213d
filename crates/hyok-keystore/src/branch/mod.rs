//! Branch keys: a key hierarchy under the customer's key store (the ESDK Hierarchical
//! Keyring pattern, with any hyok key store in the place of AWS KMS and a directory or an
//! object store in the place of DynamoDB).
//!
//! - A [`BranchStore`] holds branch key *versions*: random 256-bit keys, each wrapped by the
//!   keyring's master keys (PKCS#11, Vault, KMIP, raw; several for escrow).
//! - A [`BranchKey`] is a [`KeyStore`](crate::KeyStore): every message still gets its own
//!   random data key, wrapped locally under the active version ([`wrap`] module). Versions
//!   are unwrapped by the master keys once per cache lifetime, not once per object.
//! - Rotating the *master* key re-wraps the versions ([`BranchStore::rewrap`]): a handful of
//!   key-store calls, zero object bytes rewritten. Rotating the *branch* key
//!   ([`BranchStore::rotate`]) makes a new active version; old versions keep opening old
//!   objects until destroyed ([`BranchStore::destroy_version`]), which shreds exactly them.

mod files;
mod key;
mod store;
mod wrap;

pub use files::{BranchFiles, DirFiles, MAX_FILE_BYTES, MAX_VERSIONS};
pub use key::{BranchKey, DEFAULT_TTL};
pub use store::{check_name, BranchStore, VersionRecord};
pub use wrap::{edk_version, VersionId, BRANCH_KEY_LEN, PROVIDER_ID};
