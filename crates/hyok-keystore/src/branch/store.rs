//! The branch key store: branch key versions, each a random 256-bit key wrapped by the
//! keyring's master keys, kept as one file per version in a directory.
//!
//! Layout: `ROOT/NAME/SEQ.json`, `SEQ` eight decimal digits counting up from 1; the file
//! holds the version id and the wrapped key. The version with the highest `SEQ` is active.
//! A version file is created with a hard link from a private temporary file, which fails if
//! the name exists: two writers rotating at once both get a version (the loser retries with the next
//! `SEQ`), and neither overwrites the other. Re-wrapping a version (master key rotation)
//! replaces its file with an atomic rename; the branch key inside stays the same, so every
//! object wrapped under it stays readable.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyok_core::{AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::wrap::{VersionId, BRANCH_KEY_LEN};
use crate::error::{Error, Result};
use crate::keyring::{KeyManager, OpLabel};

/// The suite whose key length (32 bytes) and commitment rules the master keys wrap a branch
/// key version under; only the key length and the context reach the key stores.
const WRAP_SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
/// Context every master-key wrap of a version binds (where the key store binds context).
const CTX_BRANCH: &str = "hyok-branch-key";
const CTX_VERSION: &str = "hyok-branch-version";
/// Bounds on what is read from the store directory.
const MAX_FILE_BYTES: u64 = 256 * 1024;
const MAX_VERSIONS: usize = 100_000;
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

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("branch key store: {what} {}: {e}", path.display()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A directory of branch keys.
#[derive(Clone, Debug)]
pub struct BranchStore {
    root: PathBuf,
}

impl BranchStore {
    /// The store in directory `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.root.join(name))
    }

    /// Names of the branch keys in the store, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("cannot read", &self.root, e)),
        };
        let mut names = Vec::new();
        for entry in rd.take(MAX_VERSIONS) {
            let entry = entry.map_err(|e| io_err("cannot read", &self.root, e))?;
            if let Some(n) = entry.file_name().to_str() {
                if check_name(n).is_ok() && entry.path().is_dir() {
                    names.push(n.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every version of `name`, oldest first. An unknown name is `NotFound`.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        let dir = self.dir(name)?;
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    key: format!("branch:{name}"),
                    detail: format!("no branch key {name:?} in {}", self.root.display()),
                })
            }
            Err(e) => return Err(io_err("cannot read", &dir, e)),
        };
        let mut by_seq = BTreeMap::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_err("cannot read", &dir, e))?;
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some(seq) = parse_file_name(file) else {
                continue;
            };
            if by_seq.len() >= MAX_VERSIONS {
                return Err(Error::Config(format!(
                    "branch key {name}: more than {MAX_VERSIONS} versions"
                )));
            }
            let rec = read_version(&entry.path(), name)?;
            if rec.seq != seq {
                return Err(Error::Config(format!(
                    "branch key store: {} does not match its file name",
                    entry.path().display()
                )));
            }
            if by_seq.insert(seq, rec).is_some() {
                return Err(Error::Config(format!(
                    "branch key {name}: two versions with sequence number {seq}"
                )));
            }
        }
        if by_seq.is_empty() {
            return Err(Error::NotFound {
                key: format!("branch:{name}"),
                detail: "the branch key has no versions".into(),
            });
        }
        Ok(by_seq.into_values().collect())
    }

    /// The active (newest) version of `name`.
    pub fn active(&self, name: &str) -> Result<VersionRecord> {
        self.versions(name)?
            .pop()
            .ok_or_else(|| Error::Config("no versions".into()))
    }

    /// One version of `name`.
    pub fn version(&self, name: &str, version: &VersionId) -> Result<VersionRecord> {
        if let Some(rec) = self
            .versions(name)?
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
        let dir = self.dir(name)?;
        if dir.exists()
            && fs::read_dir(&dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        {
            return Err(Error::Config(format!(
                "branch key {name} already exists in {}; use rotate to add a version",
                self.root.display()
            )));
        }
        self.add_version(name, 1, master).await
    }

    /// Add a new active version to `name`, wrapped by `master`'s keys. Older versions stay
    /// (they open the objects wrapped under them).
    pub async fn rotate(&self, name: &str, master: &KeyManager) -> Result<VersionRecord> {
        let mut next = self.active(name)?.seq + 1;
        for _ in 0..16 {
            match self.add_version(name, next, master).await {
                Err(Error::Policy(_)) => next = self.active(name)?.seq + 1,
                other => return other,
            }
        }
        Err(Error::Config(format!(
            "branch key {name}: too many concurrent rotations; try again"
        )))
    }

    async fn add_version(
        &self,
        name: &str,
        seq: u64,
        master: &KeyManager,
    ) -> Result<VersionRecord> {
        let dir = self.dir(name)?;
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
        fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
        let path = dir.join(file_name(seq));
        let tmp = write_temp(&dir, &encode(&rec)?)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&dir);
                Ok(rec)
            }
            // Another writer took this sequence number first: the caller retries.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Policy(format!("sequence {seq} taken")))
            }
            Err(e) => Err(io_err("cannot create", &path, e)),
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
        let dir = self.dir(name)?;
        let versions = self.versions(name)?;
        for rec in &versions {
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
            let path = dir.join(file_name(rec.seq));
            let tmp = write_temp(&dir, &encode(&new)?)?;
            fs::rename(&tmp, &path).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                io_err("cannot replace", &path, e)
            })?;
        }
        sync_dir(&dir);
        Ok(versions.len())
    }

    /// Destroy one version (crypto-shredding): every object wrapped under it becomes
    /// unreadable. The active version cannot be destroyed (rotate first).
    pub fn destroy_version(&self, name: &str, version: &VersionId) -> Result<VersionRecord> {
        let dir = self.dir(name)?;
        let active = self.active(name)?;
        if active.version == *version {
            return Err(Error::Config(format!(
                "version {version} is the active version of branch key {name}: rotate first"
            )));
        }
        let rec = self.version(name, version)?;
        let path = dir.join(file_name(rec.seq));
        fs::remove_file(&path).map_err(|e| io_err("cannot remove", &path, e))?;
        sync_dir(&dir);
        Ok(rec)
    }
}

fn file_name(seq: u64) -> String {
    format!("{seq:08}.json")
}

fn parse_file_name(file: &str) -> Option<u64> {
    let seq = file.strip_suffix(".json")?;
    if seq.len() != 8 || !seq.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
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

fn read_version(path: &Path, name: &str) -> Result<VersionRecord> {
    use std::io::Read;
    let f = fs::File::open(path).map_err(|e| io_err("cannot open", path, e))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("cannot read", path, e))?;
    let bad = |what: &str| Error::Config(format!("branch key store: {}: {what}", path.display()));
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bad("file too large"));
    }
    let file: VersionFile = serde_json::from_slice(&bytes).map_err(|e| bad(&e.to_string()))?;
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

/// Write `bytes` to a new private file (0600, O_EXCL) in `dir`, synced; its path.
fn write_temp(dir: &Path, bytes: &[u8]) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    for _ in 0..8 {
        let mut r = [0u8; 8];
        aws_lc_rs::rand::fill(&mut r)
            .map_err(|_| Error::Core(hyok_core::Error::Crypto("random")))?;
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!(".tmp-{name}"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                let res = f.write_all(bytes).and_then(|()| f.sync_all());
                if let Err(e) = res {
                    let _ = fs::remove_file(&path);
                    return Err(io_err("cannot write", &path, e));
                }
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("cannot create", &path, e)),
        }
    }
    Err(Error::Config(format!(
        "branch key store: cannot create a temporary file in {}",
        dir.display()
    )))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_reject_others() {
        assert_eq!(parse_file_name(&file_name(7)), Some(7));
        for bad in [
            "x.json",
            "1.json",
            "0000007.json",
            "00000007.txt",
            "0000000a.json",
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
