//! Branch keys through the facade: a key hierarchy under the customer's master keys (the
//! ESDK Hierarchical Keyring pattern; see `docs/ROTATION.md`).
//!
//! A keyring with `branch = "NAME"` in `hyok.toml` wraps each message's data key under the
//! active version of branch key NAME; its `keys` (HSM, Vault, KMIP …) wrap only the branch
//! key versions. [`crate::Session::key_manager`] builds that hierarchy; the `hyok branch`
//! commands manage the versions through [`crate::Session::branch_store`].

use std::path::{Path, PathBuf};

pub use hyok_keystore::branch::{
    check_name, edk_version, BranchKey, BranchStore, VersionId, VersionRecord, BRANCH_KEY_LEN,
    DEFAULT_TTL, PROVIDER_ID,
};

use crate::{Error, Result};

/// Environment variable naming the default branch key store directory.
pub const STORE_ENV: &str = "HYOK_BRANCH_STORE";

/// The branch key store directory: `explicit`, else the keyring's `branch_store` (relative to
/// the configuration file), else `$HYOK_BRANCH_STORE`, else `~/.local/share/hyok/branches`.
pub fn store_dir(
    explicit: Option<&Path>,
    configured: Option<&Path>,
    config_file: Option<&Path>,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = configured {
        return Ok(match config_file.and_then(Path::parent) {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        });
    }
    if let Some(p) = std::env::var_os(STORE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    crate::config::user_data_dir()
        .map(|d| d.join("branches"))
        .ok_or_else(|| {
            Error::Config(format!(
                "no branch key store: set {STORE_ENV}, branch_store in the keyring, or HOME"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_dir_order() {
        let e = Path::new("/e");
        let c = Path::new("rel/b");
        let f = Path::new("/etc/hyok/hyok.toml");
        assert_eq!(store_dir(Some(e), Some(c), Some(f)).unwrap(), e);
        assert_eq!(
            store_dir(None, Some(c), Some(f)).unwrap(),
            Path::new("/etc/hyok/rel/b")
        );
        assert_eq!(
            store_dir(None, Some(Path::new("/abs")), Some(f)).unwrap(),
            Path::new("/abs")
        );
    }
}
