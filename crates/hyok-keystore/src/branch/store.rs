//! The branch key store: branch key versions, each a random 256-bit key wrapped by the
//! keyring's master keys, kept as one file per version in a directory or an object store
//! ([`BranchFiles`]).
//!
//! Layout: `NAME/SEQ-VERSION.json`, `SEQ` eight decimal digits counting up from 1 and
//! `VERSION` the version's random id; the file holds the version id and the wrapped key
//! (stores written before version ids were in the name use `NAME/SEQ.json`, still read).
//! The version with the highest `(SEQ, VERSION)` is active.
//!
//! No version can be lost to a concurrent writer, on any backend: each version has a name no
//! other writer uses, and it is only ever *created*, with create-if-absent where the backend
//! has it. Two writers rotating at once may both take the same `SEQ`; both versions stay and
//! the version id breaks the tie. (An earlier design took `SEQ.json` with create-if-absent
//! alone; that is only as safe as the backend's conditional write, and a test server that
//! checks then writes lost a version under six concurrent rotations.) Re-wrapping a version
//! (master key rotation) replaces its file atomically; the branch key inside stays the same,
//! so every object wrapped under it stays readable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyok_core::{AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::files::{BranchFiles, DirFiles, MAX_VERSIONS};
use super::wrap::{VersionId, BRANCH_KEY_LEN};
use crate::error::{Error, Result};
use crate::keyring::{KeyManager, OpLabel};

/// The suite whose key length (32 bytes) and commitment rules the master keys wrap a branch
/// key version under; only the key length and the context reach the key stores.
const WRAP_SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
/// Context every master-key wrap of a version binds (where the key store binds context).
const CTX_BRANCH: &str = "hyok-branch-key";
const CTX_VERSION: &str = "hyok-branch-version";
const FORMAT: &str = "hyok-branch-key/1";

/// One branch key version as stored (no key material in the clear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    /// Branch key name.
    pub branch: String,
    /// Version id (recorded in every EDK wrapped under it).
    pub version: VersionId,
    /// Position in the branch's history; the highest is active.
    pub seq: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// The version's key wrapped by each master key.
    pub edks: Vec<EncryptedDataKey>,
}

#[derive(Serialize, Deserialize)]
struct EdkFile {
    provider_id: String,
    provider_info: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct VersionFile {
    format: String,
    branch: String,
    version: String,
    seq: u64,
    created: u64,
    edks: Vec<EdkFile>,
}

/// Branch key names: 1–128 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid branch key name {name:?}: use 1-128 of A-Z a-z 0-9 . _ - (not starting with .)"
        )))
    }
}

fn context(branch: &str, version: &VersionId) -> EncryptionContext {
    [
        (CTX_BRANCH, branch.to_string()),
        (CTX_VERSION, version.to_string()),
    ]
    .into_iter()
    .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A store of branch keys, in a directory or any other [`BranchFiles`].
#[derive(Clone, Debug)]
pub struct BranchStore {
    files: Arc<dyn BranchFiles>,
}

impl BranchStore {
    /// The store in directory `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_files(Arc::new(DirFiles::new(root)))
    }

    /// The store kept in `files` (e.g. an object store).
    pub fn with_files(files: Arc<dyn BranchFiles>) -> Self {
        Self { files }
    }

    /// Where the store is, for messages: a directory or a URL.
    pub fn location(&self) -> String {
        self.files.location()
    }

    /// Names of the branch keys in the store, sorted.
    pub async fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .files
            .names()
            .await?
            .into_iter()
            .filter(|n| check_name(n).is_ok())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every version of `name` with its file name, oldest first. An unknown name is
    /// `NotFound`.
    async fn stored(&self, name: &str) -> Result<Vec<(String, VersionRecord)>> {
        check_name(name)?;
        let not_found = |detail: String| Error::NotFound {
            key: format!("branch:{name}"),
            detail,
        };
        let Some(files) = self.files.files(name).await? else {
            return Err(not_found(format!(
                "no branch key {name:?} in {}",
                self.location()
            )));
        };
        let mut by_order = BTreeMap::new();
        for (file, bytes) in files {
            let Some((seq, named)) = parse_file_name(&file) else {
                continue;
            };
            if by_order.len() >= MAX_VERSIONS {
                return Err(Error::Config(format!(
                    "branch key {name}: more than {MAX_VERSIONS} versions"
                )));
            }
            let shown = format!("{}/{name}/{file}", self.location().trim_end_matches('/'));
            let rec = decode(&bytes, name, &shown)?;
            if rec.seq != seq || named.is_some_and(|v| v != rec.version) {
                return Err(Error::Config(format!(
                    "branch key store: {shown} does not match its file name"
                )));
            }
            let version = rec.version;
            if by_order.insert((seq, version), (file, rec)).is_some() {
                return Err(Error::Config(format!(
                    "branch key {name}: version {version} stored twice"
                )));
            }
        }
        if by_order.is_empty() {
            return Err(not_found("the branch key has no versions".into()));
        }
        Ok(by_order.into_values().collect())
    }

    /// Every version of `name`, oldest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        Ok(self
            .stored(name)
            .await?
            .into_iter()
            .map(|(_, rec)| rec)
            .collect())
    }

    /// The active (newest) version of `name`.
    pub async fn active(&self, name: &str) -> Result<VersionRecord> {
        self.versions(name)
            .await?
            .pop()
            .ok_or_else(|| Error::Config("no versions".into()))
    }

    /// One version of `name`.
    pub async fn version(&self, name: &str, version: &VersionId) -> Result<VersionRecord> {
        if let Some(rec) = self
            .versions(name)
            .await?
            .into_iter()
            .find(|r| r.version == *version)
        {
            return Ok(rec);
        }
        Err(Error::NotFound {
            key: format!("branch:{name}"),
            detail: format!("version {version} does not exist (destroyed, or another store)"),
        })
    }

    /// Create branch key `name` with its first version, wrapped by `master`'s keys.
    pub async fn create(&self, name: &str, master: &KeyManager) -> Result<VersionRecord> {
        check_name(name)?;
        let exists = self
            .files
            .files(name)
            .await?
            .is_some_and(|f| f.iter().any(|(n, _)| parse_file_name(n).is_some()));
        // Two writers creating one new name at once both succeed, each with a version at
        // sequence 1; the version id orders them, and neither is lost.
        if exists {
            return Err(Error::Config(format!(
                "branch key {name} already exists in {}; use rotate to add a version",
                self.location()
            )));
        }
        self.add_version(name, 1, master).await
    }

    /// Add a new active version to `name`, wrapped by `master`'s keys. Older versions stay
    /// (they open the objects wrapped under them).
    pub async fn rotate(&self, name: &str, master: &KeyManager) -> Result<VersionRecord> {
        let next = self.active(name).await?.seq + 1;
        self.add_version(name, next, master).await
    }

    /// A new version at `seq`, in a file of its own.
    async fn add_version(
        &self,
        name: &str,
        seq: u64,
        master: &KeyManager,
    ) -> Result<VersionRecord> {
        check_name(name)?;
        let version = VersionId::random()?;
        let label = OpLabel {
            message_id: None,
            subject: Some(format!("branch:{name}/{version}")),
        };
        let (key, edks) = master
            .encryption_materials(WRAP_SUITE, &context(name, &version), 0, &label)
            .await?;
        drop(key);
        let rec = VersionRecord {
            branch: name.to_string(),
            version,
            seq,
            created: now(),
            edks,
        };
        let file = file_name(seq, &version);
        if self.files.create(name, &file, &encode(&rec)?).await? {
            Ok(rec)
        } else {
            // 122 random bits collided, or someone copied a file by hand: refuse, write nothing.
            Err(Error::Config(format!(
                "branch key store {}: {name}/{file} already exists",
                self.location()
            )))
        }
    }

    /// The plaintext key of one version, unwrapped by `master` (one key-store call, recorded
    /// by `master`'s audit sink).
    pub async fn unwrap(
        &self,
        rec: &VersionRecord,
        master: &KeyManager,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let label = OpLabel {
            message_id: None,
            subject: Some(format!("branch:{}/{}", rec.branch, rec.version)),
        };
        let dk = master
            .decrypt_data_key(
                WRAP_SUITE,
                &rec.edks,
                &context(&rec.branch, &rec.version),
                &label,
            )
            .await?;
        if dk.len() != BRANCH_KEY_LEN {
            return Err(Error::Config(format!(
                "branch key {}/{}: unwrapped key has {} bytes, not {BRANCH_KEY_LEN}",
                rec.branch,
                rec.version,
                dk.len()
            )));
        }
        Ok(Zeroizing::new(dk.expose().to_vec()))
    }

    /// Re-wrap every version of `name` from the keys of `from` to the keys of `to` (master key
    /// rotation): one unwrap and one wrap per master key per version, no object touched.
    /// Returns the number of versions re-wrapped.
    pub async fn rewrap(&self, name: &str, from: &KeyManager, to: &KeyManager) -> Result<usize> {
        let versions = self.stored(name).await?;
        for (file, rec) in &versions {
            let key = DataKey::from_slice(&self.unwrap(rec, from).await?);
            let label = OpLabel {
                message_id: None,
                subject: Some(format!("branch:{name}/{}", rec.version)),
            };
            let edks = to
                .wrap_existing(&key, WRAP_SUITE, &context(name, &rec.version), &label)
                .await?;
            let new = VersionRecord {
                edks,
                ..rec.clone()
            };
            self.files.replace(name, file, &encode(&new)?).await?;
        }
        Ok(versions.len())
    }

    /// Destroy one version (crypto-shredding): every object wrapped under it becomes
    /// unreadable. The active version cannot be destroyed (rotate first).
    pub async fn destroy_version(&self, name: &str, version: &VersionId) -> Result<VersionRecord> {
        let versions = self.stored(name).await?;
        let (_, active) = versions
            .last()
            .ok_or_else(|| Error::Config("no versions".into()))?;
        if active.version == *version {
            return Err(Error::Config(format!(
                "version {version} is the active version of branch key {name}: rotate first"
            )));
        }
        let Some((file, rec)) = versions.into_iter().find(|(_, r)| r.version == *version) else {
            return Err(Error::NotFound {
                key: format!("branch:{name}"),
                detail: format!("version {version} does not exist (destroyed, or another store)"),
            });
        };
        self.files.remove(name, &file).await?;
        Ok(rec)
    }
}

fn file_name(seq: u64, version: &VersionId) -> String {
    format!("{seq:08}-{version}.json")
}

/// `SEQ-VERSION.json` → (seq, Some(version)); `SEQ.json` (older stores) → (seq, None).
fn parse_file_name(file: &str) -> Option<(u64, Option<VersionId>)> {
    let stem = file.strip_suffix(".json")?;
    let (seq, version) = match stem.split_once('-') {
        Some((seq, v)) => (seq, Some(VersionId::parse(v)?)),
        None => (stem, None),
    };
    if seq.len() != 8 || !seq.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((seq.parse().ok()?, version))
}

fn encode(rec: &VersionRecord) -> Result<Vec<u8>> {
    let file = VersionFile {
        format: FORMAT.into(),
        branch: rec.branch.clone(),
        version: rec.version.to_string(),
        seq: rec.seq,
        created: rec.created,
        edks: rec
            .edks
            .iter()
            .map(|e| EdkFile {
                provider_id: e.provider_id.clone(),
                provider_info: B64.encode(&e.provider_info),
                ciphertext: B64.encode(&e.ciphertext),
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::Config(format!("branch key store: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

fn decode(bytes: &[u8], name: &str, shown: &str) -> Result<VersionRecord> {
    let bad = |what: &str| Error::Config(format!("branch key store: {shown}: {what}"));
    let file: VersionFile = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    if file.format != FORMAT {
        return Err(bad(&format!("unknown format {:?}", file.format)));
    }
    if file.branch != name {
        return Err(bad(&format!("belongs to branch key {:?}", file.branch)));
    }
    let version = VersionId::parse(&file.version).ok_or_else(|| bad("invalid version id"))?;
    let edks = file
        .edks
        .into_iter()
        .map(|e| {
            Ok(EncryptedDataKey {
                provider_id: e.provider_id,
                provider_info: B64.decode(e.provider_info).map_err(|_| bad("bad base64"))?,
                ciphertext: B64.decode(e.ciphertext).map_err(|_| bad("bad base64"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if edks.is_empty() {
        return Err(bad("no wrapped copies of the key"));
    }
    Ok(VersionRecord {
        branch: file.branch,
        version,
        seq: file.seq,
        created: file.created,
        edks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_reject_others() {
        let v = VersionId::random().unwrap();
        assert_eq!(parse_file_name(&file_name(7, &v)), Some((7, Some(v))));
        assert_eq!(parse_file_name("00000007.json"), Some((7, None)));
        for bad in [
            "x.json",
            "1.json",
            "0000007.json",
            "00000007.txt",
            "0000000a.json",
            "00000007-.json",
            "00000007-not-a-version.json",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_checked() {
        for ok in ["a", "payroll-2026", "A.b_c"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
